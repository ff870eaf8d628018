#!/usr/bin/env bash
# Benchmark (`make bench-1m`, not part of `make test`): the first plan of a CSV of N people
# (default 1,000,000) into the benchmark's empty SCIM double: time and peak memory against the
# issue's goals (<= 10 s, <= 256 MiB whatever the size), and what the plan and store weigh;
# then that plan applied, and a no-change plan of N on both sides: its time and peak memory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
source "$here/bench-lib.sh"
ROSTER=${ROSTER:-$root/target/release/roster}
export BENCH=${BENCH:-$root/target/release/examples/bench}
N=${1:-1000000}
TOKEN=bench-token

bench_work bench-1m

echo "writing $N people to a CSV file..."
people_csv "$N" > "$work/people.csv"
start_bench_scim "$work" "$TOKEN"
export SCIM_TOKEN=$TOKEN
cat > "$work/roster.kdl" <<KDL
state "state.db"
source "csv" {
    path "people.csv"
}
target "scim" {
    url "$SCIM_URL"
    token env="SCIM_TOKEN"
    concurrency 4
}
user {
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
    phone "telephoneNumber"
}
KDL

t0=$(now)
(cd "$work" && /usr/bin/time -f "%M" -o "$work/time" "$ROSTER" -c roster.kdl plan --out plan.json --format json \
    > /dev/null 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
t=$(echo "$(now) - $t0" | bc -l)
kib=$(tail -1 "$work/time")
adds=$(summary "$work/plan.json" add)
text_bytes=$(plan_text "$work/plan.json" | wc -c)
[ "$adds" = "$N" ] || { echo "error: the plan has $adds adds, not $N" >&2; exit 1; }

printf '\n%d CSV users, first plan into an empty SCIM double\n' "$N"
printf '%-28s %10.2f s     goal <= 10 s\n' "time" "$t"
printf '%-28s %10.1f MiB   goal <= 256 MiB\n' "peak memory" "$(mib "$kib")"
printf '%-28s %10.1f MiB   (%d bytes an action; its JSON %d bytes an action)\n' "plan file" \
    "$(echo "$(stat -c %s "$work/plan.json") / 1048576" | bc -l)" \
    "$(( $(stat -c %s "$work/plan.json") / N ))" "$(( text_bytes / N ))"
printf '%-28s %10.1f MiB\n' "state store" "$(echo "$(du -cb "$work"/state.db* | tail -1 | cut -f1) / 1048576" | bc -l)"

# The plan applied (N creates), then a plan with nothing to change: both sides read whole,
# every user paired.
(cd "$work" && "$ROSTER" -c roster.kdl apply plan.json > "$work/apply.out" 2>&1) || { cat "$work/apply.out" >&2; exit 1; }
t0=$(now)
(cd "$work" && /usr/bin/time -f "%U %S %M" -o "$work/time" "$ROSTER" -c roster.kdl plan --format json \
    > "$work/nochange.json" 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
t=$(echo "$(now) - $t0" | bc -l)
read -r user sys kib < <(tail -1 "$work/time")
nothing_of "$work/nochange.json" "no-change plan" add update remove delete || exit 1
printf '\n%d CSV users on both sides, no-change plan\n' "$N"
printf '%-28s %10.2f s     (%.2f s CPU)\n' "time" "$t" "$(echo "$user + $sys" | bc -l)"
printf '%-28s %10.1f MiB   goal <= 256 MiB\n' "peak memory" "$(mib "$kib")"
