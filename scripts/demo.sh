#!/usr/bin/env bash
# The main job, end to end on loopback: a real slapd with sample users, a real SCIM server,
# `roster plan`, `roster apply`, and a second plan that shows no changes; then the same
# directory into a LoginTC domain (a local stand-in for the LoginTC Admin API).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/servers.sh"
ROSTER=${ROSTER:-$root/target/release/roster}

work=$(mktemp -d /tmp/roster-demo.XXXXXX)
cleanup() {
    [ -n "${SLAPD_PID:-}" ] && kill "$SLAPD_PID" 2>/dev/null || true
    [ -n "${SCIM_PID:-}" ] && kill "$SCIM_PID" 2>/dev/null || true
    [ -n "${LOGINTC_PID:-}" ] && kill "$LOGINTC_PID" 2>/dev/null || true
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

step "LoginTC: the same directory into a LoginTC domain (a local stand-in for the Admin API)"
LOGINTC_KEY=$(printf 'demo%.0s' $(seq 1 16))
LOGINTC_DOMAIN=9120580e94f134cb7c9f27cd1e43dbc82980e152
ltc_port=$(free_port)
python3 "$here/logintc_double.py" "$ltc_port" "$LOGINTC_KEY" "$LOGINTC_DOMAIN" "Office VPN" \
    >"$work/logintc.log" 2>&1 &
LOGINTC_PID=$!
wait_for "the LoginTC stand-in" curl -sf -H "Authorization: LoginTC key=\"$LOGINTC_KEY\"" \
    "http://127.0.0.1:$ltc_port/api/domains/$LOGINTC_DOMAIN"
export LOGINTC_API_KEY=$LOGINTC_KEY
sed -n '/^source "ldap"/,/^}/p' roster.kdl > source.kdl
cat > logintc.kdl <<KDL
state "logintc-state.db"
owner "vpn-sync"

$(cat source.kdl)

target "logintc" {
    url "http://127.0.0.1:$ltc_port"
    api-key env="LOGINTC_API_KEY"
    domain "$LOGINTC_DOMAIN"
    token-mode "without-email"
}

user {
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
}
KDL
cat logintc.kdl

step "roster -c logintc.kdl sync --auto-approve"
"$ROSTER" -c logintc.kdl sync --auto-approve

step "The domain now holds"
curl -s -H "Authorization: LoginTC key=\"$LOGINTC_KEY\"" \
    "http://127.0.0.1:$ltc_port/api/domains/$LOGINTC_DOMAIN/users?page=1" \
    | python3 -c 'import json,sys; [print(" ", u["username"], u["name"], u["email"]) for u in json.load(sys.stdin)]'
echo "  ... (members are listed two a page)"

step "A second LoginTC plan: nothing to do"
"$ROSTER" -c logintc.kdl plan --detailed-exitcode
echo "exit code: $?"
