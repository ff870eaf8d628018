#!/usr/bin/env bash
# Benchmark: the first plan of N directory users (default 100,000) into an empty SCIM
# target, against the floor: the time `ldapsearch` needs to page through the same entries
# with the same page size and attributes. Prints the ratio and roster's peak memory.
# Each side runs 3 times; the best time counts (the least disturbed run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
ROSTER=${ROSTER:-$root/target/release/roster}
N=${1:-100000}
RUNS=3

work=$(mktemp -d /tmp/roster-bench.XXXXXX)
cleanup() {
    [ -n "${SLAPD_PID:-}" ] && kill "$SLAPD_PID" 2>/dev/null || true
    [ -n "${SCIM_PID:-}" ] && kill "$SCIM_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "loading $N users into slapd..."
people_ldif "$N" > "$work/people.ldif"
start_slapd "$work/slapd" "$work/people.ldif"
start_scim "$work" bench-token

export LDAP_BIND_PASSWORD=$ADMIN_PASSWORD SCIM_TOKEN=bench-token
write_config "$work/roster.kdl"

now() { date +%s.%N; }
floor=""
for _ in $(seq $RUNS); do
    t0=$(now)
    count=$(ldapsearch -x -LLL -H "$SLAPD_URL" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -b "ou=People,$BASE_DN" \
        -E pr=500/noprompt "(objectClass=inetOrgPerson)" entryUUID uid cn mail telephoneNumber | grep -c '^dn:')
    t=$(echo "$(now) - $t0" | bc -l)
    [ "$count" = "$N" ] || { echo "error: ldapsearch saw $count entries, not $N" >&2; exit 1; }
    if [ -z "$floor" ] 2>/dev/null || (( $(echo "$t < ${floor:-1e9}" | bc -l) )); then floor=$t; fi
done

roster_best=""; peak_kib=0
for i in $(seq $RUNS); do
    rm -f "$work/state.db"*
    t0=$(now)
    /usr/bin/time -f "%M" -o "$work/time.$i" "$ROSTER" -c "$work/roster.kdl" plan --format json > "$work/plan.json" 2>"$work/roster.err" \
        || { cat "$work/roster.err" >&2; exit 1; }
    t=$(echo "$(now) - $t0" | bc -l)
    kib=$(tail -1 "$work/time.$i")
    (( kib > peak_kib )) && peak_kib=$kib
    if [ -z "$roster_best" ] || (( $(echo "$t < $roster_best" | bc -l) )); then roster_best=$t; fi
done
adds=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["add"])' "$work/plan.json")
[ "$adds" = "$N" ] || { echo "error: the plan has $adds adds, not $N" >&2; exit 1; }

ratio=$(echo "$roster_best / $floor" | bc -l)
printf '\nusers:                     %d\n' "$N"
printf 'ldapsearch paged dump:     %.2f s (floor)\n' "$floor"
printf 'roster plan (first sync):  %.2f s\n' "$roster_best"
printf 'ratio roster / floor:      %.2f   (target <= 2.0)\n' "$ratio"
printf 'roster peak memory:        %.1f MiB (target <= 300)\n' "$(echo "$peak_kib / 1024" | bc -l)"
