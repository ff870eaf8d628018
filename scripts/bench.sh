#!/usr/bin/env bash
# Benchmark (`make bench`): every figure of issue 16 as a ratio against its floor, both sides
# measured in this run, on the same machine and data. N directory users (default 100,000) in
# slapd; the target is the benchmark's SCIM double (bench/main.rs, Rust, in memory), so that
# the target side measures roster and not a Python server (scim2-server stays the tests'
# correctness reference).
#
# 1. first plan into an empty target, against `ldapsearch` paging the same entries with the
#    same page size and attributes;
# 2. apply of that plan (N creates), creates/s against the benchmark's minimal client (keep-alive
#    connections, the same bodies) with the same concurrency against a fresh double;
# 3. no-change plan (N on both sides), against the slower of the two reads it needs: the
#    `ldapsearch` dump, and `curl` paging the target's listing at the largest page it accepts
#    (`filter.maxResults` from /ServiceProviderConfig);
# 4. roster's peak memory (`/usr/bin/time -f %M`) in each;
# 5. a small apply with `rate-limit RATE` (default 200), against the most requests the double
#    counted in any one second.
# Timed figures take the best of RUNS (default 3) runs of each side, the least disturbed one;
# apply runs once (it changes the target).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
source "$here/bench-lib.sh"
ROSTER=${ROSTER:-$root/target/release/roster}
export BENCH=${BENCH:-$root/target/release/examples/bench}
N=${1:-100000}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-4}
TOKEN=bench-token

bench_work bench

# roster_timed NAME ARGS...: runs roster in $work, sets SECONDS_TAKEN, CPU (user + system
# seconds, which a loaded machine disturbs less than the wall clock) and KIB (peak memory).
roster_timed() {
    local name=$1; shift
    local t0; t0=$(now)
    (cd "$work" && /usr/bin/time -f "%U %S %M" -o "$work/time.$name" "$ROSTER" -c "$work/roster.kdl" "$@" \
        >"$work/out.$name" 2>"$work/err.$name") || { cat "$work/err.$name" >&2; exit 1; }
    SECONDS_TAKEN=$(echo "$(now) - $t0" | bc -l)
    read -r user sys KIB < <(tail -1 "$work/time.$name")
    CPU=$(echo "$user + $sys" | bc -l)
}

ldap_dump() {
    ldapsearch -x -LLL -H "$SLAPD_URL" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -b "ou=People,$BASE_DN" \
        -E pr=500/noprompt "(objectClass=inetOrgPerson)" entryUUID uid cn mail telephoneNumber | grep -c '^dn:'
}

echo "loading $N users into slapd..."
people_ldif "$N" > "$work/people.ldif"
start_slapd "$work/slapd" "$work/people.ldif"
start_bench_scim "$work" "$TOKEN"
export LDAP_BIND_PASSWORD=$ADMIN_PASSWORD SCIM_TOKEN=$TOKEN
write_config "$work/roster.kdl"
sed -i "s|^    token env=\"SCIM_TOKEN\"|&\n    concurrency $CONCURRENCY|" "$work/roster.kdl"

# 1. First plan.
ldap_floor=""
for _ in $(seq "$RUNS"); do
    t0=$(now); count=$(ldap_dump); t=$(echo "$(now) - $t0" | bc -l)
    [ "$count" = "$N" ] || { echo "error: ldapsearch saw $count entries, not $N" >&2; exit 1; }
    best ldap_floor "$t"
done
first=""; first_cpu=""; first_kib=0
for i in $(seq "$RUNS"); do
    rm -f "$work/state.db"*
    roster_timed "first.$i" plan --format json
    best first "$SECONDS_TAKEN"; best first_cpu "$CPU"; (( KIB > first_kib )) && first_kib=$KIB
done
adds=$(summary "$work/out.first.1" add)
[ "$adds" = "$N" ] || { echo "error: the first plan has $adds adds, not $N" >&2; exit 1; }
plan_bytes=$(stat -c %s "$work/out.first.1")

# 2. Apply: roster against a minimal client with the same concurrency, each on its own double.
rm -f "$work/state.db"*
roster_timed plan-out plan --out "$work/plan.json" --format json
roster_timed apply apply "$work/plan.json"
apply_seconds=$SECONDS_TAKEN; apply_cpu=$CPU; apply_kib=$KIB
held=$("$BENCH" page --url "$SCIM_URL" --token "$TOKEN" --count 1000)
[ "$held" = "$N" ] || { echo "error: the target holds $held users after apply, not $N" >&2; exit 1; }
start_bench_scim "$work" "$TOKEN" FLOOR
client_line=$("$BENCH" create --url "$FLOOR_URL" --token "$TOKEN" --users "$N" --concurrency "$CONCURRENCY")
kill "$FLOOR_PID" 2>/dev/null || true; FLOOR_PID=""
client_rate=$(echo "$client_line" | sed -E 's/.*: ([0-9.]+) creates\/s/\1/')
roster_rate=$(echo "$N / $apply_seconds" | bc -l)

# 2b. Rate limit: a small apply with `rate-limit`, checked by the double's own count of the
#     most requests in any one second (the plan's listing and the creates together).
RATE=${RATE:-200}
RATE_USERS=${RATE_USERS:-$((RATE * 3))}
start_bench_scim "$work" "$TOKEN" RATED
mkdir -p "$work/rated"
people_csv "$RATE_USERS" > "$work/rated/people.csv"
cat > "$work/rated/roster.kdl" <<KDL
state "state.db"
source "csv" { path "people.csv"; }
target "scim" {
    url "$RATED_URL"
    token env="SCIM_TOKEN"
    concurrency $CONCURRENCY
    rate-limit $RATE
}
user {
    key "entryUUID"
    username "uid"
    name "cn"
    email "mail"
    phone "telephoneNumber"
}
KDL
(cd "$work/rated" && "$ROSTER" -c roster.kdl apply --auto-approve >/dev/null 2>"$work/err.rated") ||
    { cat "$work/err.rated" >&2; exit 1; }
rated_max=$(curl -sf -H "Authorization: Bearer $TOKEN" "${RATED_URL%/scim/v2}/bench/max-per-second" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["max"])')
kill "$RATED_PID" 2>/dev/null || true; RATED_PID=""

# 3. No-change plan: N on both sides.
max_results=$(curl -sf -H "Authorization: Bearer $TOKEN" "$SCIM_URL/ServiceProviderConfig" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["filter"]["maxResults"])')
page=$(( max_results < 1000 ? max_results : 1000 ))
: > "$work/pages.curl"
for (( start = 1; start <= N; start += page )); do
    printf 'url = "%s/Users?startIndex=%d&count=%d"\noutput = "/dev/null"\n' "$SCIM_URL" "$start" "$page" >> "$work/pages.curl"
done
target_floor=""
for _ in $(seq "$RUNS"); do
    t0=$(now)
    curl -sf -H "Authorization: Bearer $TOKEN" --config "$work/pages.curl"
    best target_floor "$(echo "$(now) - $t0" | bc -l)"
done
nochange=""; nochange_cpu=""; nochange_kib=0
for i in $(seq "$RUNS"); do
    roster_timed "nochange.$i" plan --format json
    best nochange "$SECONDS_TAKEN"; best nochange_cpu "$CPU"; (( KIB > nochange_kib )) && nochange_kib=$KIB
done
nothing_of "$work/out.nochange.1" "no-change plan" add update remove delete || exit 1
nochange_floor=$(echo "if ($ldap_floor > $target_floor) $ldap_floor else $target_floor" | bc -l)

printf '\n%d users; target: the benchmark SCIM double (maxResults %d); concurrency %d; best of %d\n\n' \
    "$N" "$max_results" "$CONCURRENCY" "$RUNS"
printf '%-34s %12s %12s %8s   %s\n' "figure" "roster" "floor" "ratio" "goal"
printf '%-34s %10.2f s %10.2f s %8.2f   %s\n' "first plan ($N adds)" "$first" "$ldap_floor" \
    "$(echo "$first / $ldap_floor" | bc -l)" "<= 1.3 (floor: ldapsearch paged dump)"
printf '%-34s %10.2f s %10.2f s %8.2f   %s\n' "no-change plan" "$nochange" "$nochange_floor" \
    "$(echo "$nochange / $nochange_floor" | bc -l)" \
    "$(printf '<= 1.1 (floor: slower of ldapsearch %.2f s, curl paging %d a page %.2f s)' "$ldap_floor" "$page" "$target_floor")"
printf '%-34s %8.0f /s %8.0f /s %8.2f   %s\n' "apply ($N creates)" "$roster_rate" "$client_rate" \
    "$(echo "$roster_rate / $client_rate" | bc -l)" ">= 0.95 (floor: minimal client, same concurrency)"
printf '%-34s %8d /s %8d /s %8.2f   %s\n' "rate limit ($RATE_USERS creates)" "$rated_max" "$RATE" \
    "$(echo "$rated_max / $RATE" | bc -l)" "<= 1 (most requests the double saw in any 1 s; rate-limit)"
printf '%-34s %8.1f MiB %12s %8s   %s\n' "peak memory, first plan" "$(mib "$first_kib")" "" "" "<= 256 MiB"
printf '%-34s %8.1f MiB %12s %8s   %s\n' "peak memory, no-change plan" "$(mib "$nochange_kib")" "" "" "<= 256 MiB"
printf '%-34s %8.1f MiB %12s %8s   %s\n' "peak memory, apply" "$(mib "$apply_kib")" "" "" "<= 256 MiB"
printf '%-34s %8.2f s (first plan), %.2f s (no-change plan), %.2f s (apply)\n' "roster CPU time (user + system)" \
    "$first_cpu" "$nochange_cpu" "$apply_cpu"
printf '%-34s %8.1f MiB\n' "plan JSON, first plan" "$(echo "$plan_bytes / 1048576" | bc -l)"
