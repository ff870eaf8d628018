#!/usr/bin/env bash
# The main job, end to end on loopback: a real slapd with sample users, a real SCIM server,
# `roster plan`, `roster apply`, and a second plan that shows no changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
ROSTER=${ROSTER:-$root/target/release/roster}

work=$(mktemp -d /tmp/roster-demo.XXXXXX)
cleanup() {
    [ -n "${SLAPD_PID:-}" ] && kill "$SLAPD_PID" 2>/dev/null || true
    [ -n "${SCIM_PID:-}" ] && kill "$SCIM_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting slapd (StartTLS, a throwaway CA) and scim2-server on loopback"
person() { # uid "Full Name" phone
    printf 'dn: uid=%s,ou=People,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.com\ntelephoneNumber: %s\n\n' \
        "$1" "$BASE_DN" "$1" "$2" "${2##* }" "$1" "$3"
}
{
    person alice "Alice Liddell" "+1 555 0100"
    person bob "Bob Builder" "+1 555 0101"
    person carol "Carol Danvers" "+1 555 0102"
    person dave "Dave Grohl" "+1 555 0103"
    person erin "Erin Brockovich" "+1 555 0104"
    person frank "Frank Herbert" "+1 555 0105"
} > "$work/people.ldif"
make_certs "$work/certs"
start_slapd "$work/slapd" "$work/people.ldif" "$work/certs"
start_scim "$work" demo-token
echo "slapd:        $SLAPD_URL with StartTLS ($BASE_DN, 6 people)"
echo "scim2-server: $SCIM_URL"

# Secrets reach roster through the environment, never through the config file.
export LDAP_BIND_PASSWORD=$ADMIN_PASSWORD SCIM_TOKEN=demo-token
write_config "$work/roster.kdl" \
    "    starttls #true
    ca-file \"$CA_FILE\"" \
    "policy \"$root/policies/default.kdl\""
cd "$work"

step "roster.kdl (secrets come from the environment, never from the file)"
cat roster.kdl

step "roster validate"
"$ROSTER" validate

step "roster plan --out plan.json"
"$ROSTER" plan --out plan.json

step "roster apply plan.json"
"$ROSTER" apply plan.json

step "The target now holds"
curl -s -H "Authorization: Bearer demo-token" "$SCIM_URL/Users?count=3" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["totalResults"], "users, e.g.:"); [print(" ", u["userName"], "externalId=" + u.get("externalId"), u["displayName"], u["emails"][0]["value"], u["phoneNumbers"][0]["value"]) for u in d["Resources"]]'

step "A second plan: nothing to do (exit code 0 with --detailed-exitcode)"
"$ROSTER" plan --detailed-exitcode
echo "exit code: $?"

step "roster runs"
"$ROSTER" runs
