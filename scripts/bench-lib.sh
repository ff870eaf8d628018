# Shared by the benchmarks (bench.sh, bench-1m.sh, bench-incremental.sh), sourced after
# servers.sh: their work directory and its cleanup, and the helpers they time and read plans
# with.

# bench_work NAME: a fresh work directory in $work, removed when the script exits (KEEP=1
# keeps it) once the servers it started (SLAPD_PID, SCIM_PID, FLOOR_PID, RATED_PID) are
# stopped.
bench_work() {
    work=$(mktemp -d "/tmp/roster-$1.XXXXXX")
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${SLAPD_PID:-}" "${SCIM_PID:-}" "${FLOOR_PID:-}" "${RATED_PID:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}

now() { date +%s.%N; }
# best VAR SECONDS: keeps the smaller.
best() { if [ -z "${!1}" ] || (( $(echo "$2 < ${!1}" | bc -l) )); then printf -v "$1" '%s' "$2"; fi; }
mib() { echo "$1 / 1024" | bc -l; }
# plan_text FILE: the JSON of a plan file, which is zstd-compressed above 16 MiB (its first
# bytes say which), or of roster's JSON on stdout.
plan_text() {
    if [ "$(head -c4 "$1" | od -An -tx1 | tr -d ' \n')" = "28b52ffd" ]; then zstd -dc "$1"; else cat "$1"; fi
}
# summary FILE FIELD: a count from a plan's summary.
summary() { plan_text "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"][sys.argv[1]])' "$2"; }
# nothing_of FILE WHAT FIELD...: fails, saying so, unless the plan in FILE (WHAT names it in
# the error) has none of the FIELDs (add, update, remove, delete).
nothing_of() {
    local file=$1 what=$2 field n
    shift 2
    for field in "$@"; do
        n=$(summary "$file" "$field")
        [ "$n" = 0 ] || { echo "error: the $what has $n ${field}s" >&2; return 1; }
    done
}
