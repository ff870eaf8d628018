# Shell helpers for the demo and the benchmark: a throwaway slapd and scim2-server on
# free loopback ports, under a work directory. Source this file; it defines functions only.
# (The Rust tests have their own harness in tests/support/.)

SLAPD=${SLAPD:-/usr/sbin/slapd}
SCIM2_SERVER=${ROSTER_SCIM2_SERVER:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/scim2-server}
BASE_DN="dc=example,dc=com"
ADMIN_DN="cn=admin,$BASE_DN"
ADMIN_PASSWORD="admin-secret"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION COMMAND...: retries COMMAND for up to 15 s.
wait_for() {
    local what=$1; shift
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "error: $what did not come up" >&2
    return 1
}

# people_ldif N: N inetOrgPerson entries under ou=People.
people_ldif() {
    awk -v n="$1" -v base="$BASE_DN" 'BEGIN {
        for (i = 1; i <= n; i++) {
            uid = sprintf("user%06d", i)
            printf "dn: uid=%s,ou=People,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: User %06d\nsn: %06d\n", uid, base, uid, i, i
            printf "mail: %s@example.com\ntelephoneNumber: +1 555 %04d\n\n", uid, i % 10000
        }
    }'
}

# make_certs DIR: a throwaway CA and a certificate for 127.0.0.1 signed by it.
# Sets CA_FILE.
make_certs() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=roster demo CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
    chmod 644 "$dir/server.key"
    CA_FILE=$dir/ca.pem
}

# start_slapd DIR LDIF_FILE [CERT_DIR] [SESSIONLOG]: a slapd serving BASE_DN from DIR,
# bulk-loaded from LDIF_FILE; with CERT_DIR (from make_certs, or "" for none) it offers
# StartTLS; with SESSIONLOG it has the syncprov overlay (RFC 4533 content sync, which
# incremental reads use) with a session log of that many changes, so that a cookie older
# than that many changes is answered with a present phase (a complete read).
# Sets SLAPD_URL and SLAPD_PID.
start_slapd() {
    local dir=$1 ldif=$2 certs=${3:-} sessionlog=${4:-}
    mkdir -p "$dir/db"
    local tls=""
    if [ -n "$certs" ]; then
        tls="TLSCACertificateFile $certs/ca.pem
TLSCertificateFile $certs/server.pem
TLSCertificateKeyFile $certs/server.key"
    fi
    local syncmod="" sync="" slapadd_sync=""
    if [ -n "$sessionlog" ]; then
        syncmod="moduleload syncprov"
        sync="index entryCSN,entryUUID eq
overlay syncprov
syncprov-checkpoint 1 1
syncprov-sessionlog $sessionlog"
        # -w: the suffix gets the contextCSN of the entries loaded, syncprov's starting point.
        slapadd_sync="-w"
    fi
    cat > "$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
$syncmod
pidfile $dir/slapd.pid
sizelimit unlimited
$tls
database mdb
maxsize 4294967296
suffix "$BASE_DN"
rootdn "$ADMIN_DN"
rootpw $ADMIN_PASSWORD
directory $dir/db
index uid eq
$sync
CONF
    {
        printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$BASE_DN"
        printf 'dn: ou=People,%s\nobjectClass: organizationalUnit\nou: People\n\n' "$BASE_DN"
        cat "$ldif"
    } > "$dir/all.ldif"
    "${SLAPD%slapd}slapadd" -q $slapadd_sync -f "$dir/slapd.conf" -l "$dir/all.ldif" 2>"$dir/slapadd.log" \
        || { cat "$dir/slapadd.log" >&2; return 1; }
    local port; port=$(free_port)
    SLAPD_URL="ldap://127.0.0.1:$port"
    "$SLAPD" -d 0 -f "$dir/slapd.conf" -h "$SLAPD_URL/" 2>"$dir/slapd.log" &
    SLAPD_PID=$!
    wait_for "slapd on $SLAPD_URL" ldapsearch -x -H "$SLAPD_URL" -b "" -s base
}

# start_scim DIR TOKEN: scim2-server with a bearer token. Sets SCIM_URL and SCIM_PID.
start_scim() {
    local dir=$1 token=$2
    local port; port=$(free_port)
    SCIM_URL="http://127.0.0.1:$port/v2"
    "$SCIM2_SERVER" --port "$port" --bearer-token "$token" >"$dir/scim.log" 2>&1 &
    SCIM_PID=$!
    # Users, not /ServiceProviderConfig, which scim2-server answers without the token.
    wait_for "scim2-server on $SCIM_URL" curl -sf -H "Authorization: Bearer $token" "$SCIM_URL/Users?count=1"
}

# write_config FILE [SOURCE_EXTRA] [TRAILER]: a roster.kdl for the running slapd and
# scim2-server: the standard mapping, secrets from LDAP_BIND_PASSWORD and SCIM_TOKEN.
# SOURCE_EXTRA adds nodes to the source block (TLS); TRAILER adds top-level nodes (policy).
write_config() {
    local file=$1 source_extra=${2:-} trailer=${3:-}
    cat > "$file" <<KDL
state "state.db"

source "ldap" {
    url "$SLAPD_URL"
$source_extra
    bind-dn "$ADMIN_DN"
    bind-password env="LDAP_BIND_PASSWORD"
    base-dn "ou=People,$BASE_DN"
    filter "(objectClass=inetOrgPerson)"
    page-size 500
}

target "scim" {
    url "$SCIM_URL"
    token env="SCIM_TOKEN"
}

user {
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
    phone "telephoneNumber"
}
$trailer
KDL
}

# start_bench_scim DIR TOKEN [VAR_PREFIX]: the benchmark's SCIM double (bench/main.rs, built by
# `cargo build --release --example bench`) on a free port. Sets ${PREFIX}_URL and ${PREFIX}_PID
# (default prefix SCIM, like start_scim, so write_config uses it).
start_bench_scim() {
    local dir=$1 token=$2 prefix=${3:-SCIM}
    local bench=${BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/examples/bench}
    local out="$dir/bench-scim.$prefix.out"
    "$bench" scim --port 0 --token "$token" >"$out" 2>&1 &
    printf -v "${prefix}_PID" '%s' "$!"
    wait_for "the benchmark's SCIM double" test -s "$out"
    printf -v "${prefix}_URL" '%s' "$(head -1 "$out")"
    local url_var="${prefix}_URL"
    wait_for "the benchmark's SCIM double on ${!url_var}" \
        curl -sf -H "Authorization: Bearer $token" "${!url_var}/ServiceProviderConfig"
}

# people_csv N: the same N people as people_ldif, as a CSV file with an entryUUID column.
people_csv() {
    awk -v n="$1" 'BEGIN {
        print "entryUUID,uid,cn,mail,telephoneNumber"
        for (i = 1; i <= n; i++) {
            uid = sprintf("user%06d", i)
            printf "%08d-0000-4000-8000-000000000000,%s,User %06d,%s@example.com,+1 555 %04d\n", i, uid, i, uid, i % 10000
        }
    }'
}
