#!/usr/bin/env bash
# Benchmark (`make bench-1m`, not part of `make test`): an incremental plan touching 1% of N
# directory users (default 1,000,000), against issue 16's goals (<= 2 s, <= 256 MiB).
#
# N users in a slapd with the syncprov overlay (RFC 4533 content sync; its session log holds
# SESSIONLOG changes, default twice the changes made, or the read would fall back to a
# complete one); the target is the benchmark's SCIM double (bench/main.rs), which answers
# `meta.lastModified gt` listings, so the target is read by change too. The policy reads
# `incremental`.
#
# 1. a first plan (a complete read, which takes the cookies) and its apply: N creates, each
#    timed with its peak memory (the million-user figures of an LDAP source, beside
#    bench-1m.sh's CSV one);
# 2. SETTLE seconds after the apply (default 305: the 5 minutes an incremental target read
#    asks for before its base run's read, against clock skew, and 5 more), a catch-up plan:
#    its source read is incremental (nothing changed), its target read by change lists the
#    N accounts the apply created, and it becomes the base of the next run. Without the wait
#    the timed plan would list again the accounts the apply touched in its last 5 minutes;
# 3. N/100 users modified with ldapmodify (every 100th user's telephoneNumber);
# 4. the timed plan: `roster plan --incremental` from a copy of the store as step 3 left it,
#    RUNS times (default 3; the best CPU and wall clock count, the largest peak memory). The
#    plan must have exactly N/100 updates and nothing else, or the script fails.
#
# WRAP="perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -o /tmp/incr.perf" runs the
# timed plan under that command (its figures then include the profiler's). KEEP=1 keeps the
# work directory (the store, each timed run's debug log `plan.N.log` and plan `plan.N.json`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
source "$here/bench-lib.sh"
ROSTER=${ROSTER:-$root/target/release/roster}
export BENCH=${BENCH:-$root/target/release/examples/bench}
N=${1:-1000000}
CHANGES=$(( N / 100 ))
SESSIONLOG=${SESSIONLOG:-$(( CHANGES * 2 > 100 ? CHANGES * 2 : 100 ))}
SETTLE=${SETTLE:-305}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-4}
WRAP=${WRAP:-}
TOKEN=bench-token
(( CHANGES > 0 )) || { echo "error: N must be at least 100" >&2; exit 1; }

bench_work bench-incr
script_start=$(now)
# step WHAT: prints what is being done, with the time since the script started.
step() { printf '[%6.0f s] %s\n' "$(echo "$(now) - $script_start" | bc -l)" "$1"; }
# notes FILE: the plan's notes, one a line.
notes() { plan_text "$1" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin).get("notes", [])))'; }
roster() {
    (cd "$work" && "$ROSTER" -c roster.kdl "$@" >"$work/out" 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
}
# roster_timed NAME ARGS...: roster, with its wall clock in TIMED_S and peak memory in TIMED_KIB
# (what it prints is not kept: the JSON of a million adds is most of a gigabyte).
roster_timed() {
    local name=$1; shift
    local t0; t0=$(now)
    (cd "$work" && /usr/bin/time -f "%M" -o "$work/time.$name" "$ROSTER" -c roster.kdl "$@" \
        >/dev/null 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
    TIMED_S=$(echo "$(now) - $t0" | bc -l)
    TIMED_KIB=$(tail -1 "$work/time.$name")
}

step "writing $N people and loading them into slapd (syncprov, session log $SESSIONLOG)..."
people_ldif "$N" > "$work/people.ldif"
start_slapd "$work/slapd" "$work/people.ldif" "" "$SESSIONLOG"
rm -f "$work/people.ldif"
start_bench_scim "$work" "$TOKEN"
export LDAP_BIND_PASSWORD=$ADMIN_PASSWORD SCIM_TOKEN=$TOKEN
write_config "$work/roster.kdl" "" 'policy {
    read "incremental"
}'
sed -i "s|^    token env=\"SCIM_TOKEN\"|&\n    concurrency $CONCURRENCY|" "$work/roster.kdl"

# 1. First plan and its apply.
step "first plan (complete read)..."
roster_timed first plan --out "$work/first.json" --format json
first_s=$TIMED_S; first_kib=$TIMED_KIB
adds=$(summary "$work/first.json" add)
[ "$adds" = "$N" ] || { echo "error: the first plan has $adds adds, not $N" >&2; exit 1; }
step "applying $N creates..."
roster_timed apply apply "$work/first.json"
apply_s=$TIMED_S; apply_kib=$TIMED_KIB
applied_at=$(now)
rm -f "$work/first.json"

# 2. The catch-up plan, once the apply's changes are older than the target read's margin.
wait_for_it=$(echo "$applied_at + $SETTLE - $(now)" | bc -l)
if (( $(echo "$wait_for_it > 0" | bc -l) )); then
    step "waiting $(printf '%.0f' "$wait_for_it") s (SETTLE) for the apply's changes to pass the target read's margin..."
    sleep "$wait_for_it"
fi
step "catch-up plan (the base of the timed one)..."
roster plan --out "$work/catchup.json" --format json
nothing_of "$work/catchup.json" "catch-up plan" add update remove delete || { notes "$work/catchup.json" >&2; exit 1; }
catchup_notes=$(notes "$work/catchup.json")
grep -q '^incremental read:' <<<"$catchup_notes" ||
    { echo "error: the catch-up plan's source read was not incremental:" >&2; echo "$catchup_notes" >&2; exit 1; }

# 3. 1% of the users change.
step "modifying $CHANGES users (ldapmodify)..."
awk -v n="$N" -v base="$BASE_DN" 'BEGIN {
    for (i = 100; i <= n; i += 100)
        printf "dn: uid=user%06d,ou=People,%s\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: +44 20 7946 %04d\n\n", i, base, i % 10000
}' > "$work/changes.ldif"
ldapmodify -x -H "$SLAPD_URL" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -f "$work/changes.ldif" >/dev/null
cp "$work/state.db" "$work/base.db"
for f in "$work"/state.db-*; do [ -e "$f" ] && cp "$f" "$work/base.db${f#"$work"/state.db}"; done

# 4. The timed plan, each run from the same store.
best_t=""; best_cpu=""; peak_kib=0
for i in $(seq "$RUNS"); do
    rm -f "$work"/state.db*
    for f in "$work"/base.db*; do cp "$f" "$work/state.db${f#"$work"/base.db}"; done
    step "timed incremental plan, run $i of $RUNS..."
    t0=$(now)
    # shellcheck disable=SC2086 # WRAP is a command line
    (cd "$work" && /usr/bin/time -f "%U %S %M" -o "$work/time.$i" $WRAP "$ROSTER" -c roster.kdl \
        --log-file "plan.$i.log" plan --incremental --out "plan.$i.json" --format json \
        >/dev/null 2>"$work/err.$i") || { cat "$work/err.$i" >&2; exit 1; }
    t=$(echo "$(now) - $t0" | bc -l)
    read -r user sys kib < <(tail -1 "$work/time.$i")
    cpu=$(echo "$user + $sys" | bc -l)
    if [ -z "$best_t" ] || (( $(echo "$t < $best_t" | bc -l) )); then best_t=$t; fi
    if [ -z "$best_cpu" ] || (( $(echo "$cpu < $best_cpu" | bc -l) )); then best_cpu=$cpu; fi
    (( kib > peak_kib )) && peak_kib=$kib
    printf '           %.2f s, %.2f s CPU, %.1f MiB\n' "$t" "$cpu" "$(mib "$kib")"
    updates=$(summary "$work/plan.$i.json" update)
    nothing_of "$work/plan.$i.json" "incremental plan" add remove delete || exit 1
    [ "$updates" = "$CHANGES" ] ||
        { echo "error: the incremental plan has $updates updates, not $CHANGES" >&2; notes "$work/plan.$i.json" >&2; exit 1; }
done

printf '\n%d slapd users (syncprov), %d modified; target: the benchmark SCIM double; best of %d\n' "$N" "$CHANGES" "$RUNS"
notes "$work/plan.1.json" | sed 's/^/  note: /'
printf '%-30s %10.2f s     goal <= 10 s (first plan, complete LDAP read, %d adds)\n' "first plan" "$first_s" "$N"
printf '%-30s %10.1f MiB   goal <= 256 MiB\n' "its peak memory" "$(mib "$first_kib")"
printf '%-30s %10.0f /s    (%d creates in %.1f s, concurrency %d)\n' "apply" "$(echo "$N / $apply_s" | bc -l)" \
    "$N" "$apply_s" "$CONCURRENCY"
printf '%-30s %10.1f MiB   goal <= 256 MiB\n' "its peak memory" "$(mib "$apply_kib")"
printf '%-30s %10.2f s     goal <= 2 s\n' "incremental plan" "$best_t"
printf '%-30s %10.2f s\n' "its CPU time (user + system)" "$best_cpu"
printf '%-30s %10.1f MiB   goal <= 256 MiB\n' "its peak memory" "$(mib "$peak_kib")"
printf '%-30s %10.0f s\n' "the whole script" "$(echo "$(now) - $script_start" | bc -l)"
