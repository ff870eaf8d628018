//! A bounded config fuzzer: mutations of valid configs (byte flips, truncation, repeated and
//! nested nodes, huge numbers, odd Unicode) through `roster::config::parse`. Whatever the
//! text, parsing never panics (nor aborts: a stack overflow would end the test binary) and
//! every failure is a `ConfigError` whose report renders. Deterministic: a fixed seed and a
//! small PRNG, so a failure names the case that reproduces it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use miette::{GraphicalReportHandler, GraphicalTheme};
use roster::config::{ConfigError, parse};

/// Cases per run: enough to reach every block's value readers, quick enough for `make test`.
const CASES: u64 = 2000;

/// The configs that are mutated: every block and every source kind, with inline policies
/// (a `policy "FILE"` would read from disk).
const SEEDS: &[&str] = &[
    r#"state "var/state.db"
source "ldap" {
    url "ldap://dc1.example.com:389"
    starttls #true
    ca-file "certs/corp-ca.pem"
    bind-dn "cn=sync,ou=Service,dc=example,dc=com"
    bind-password env="LDAP_BIND_PASSWORD"
    base-dn "ou=People,dc=example,dc=com" "ou=Contractors,dc=example,dc=com"
    filter "(objectClass=inetOrgPerson)"
    page-size 200
    timeout 10
    active-directory #true
    disabled "inactive"
    follow-referrals #true
}
target "scim" {
    url "https://example.com/scim/v2"
    token file="/run/secrets/scim"
    concurrency 8
    rate-limit 2.5
    proxy "http://proxy.example.com:3128"
    proxy-user "sync"
    proxy-password env="PROXY_PASSWORD"
}
user {
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn" normalize="trim"
    email "mail" normalize="trim,lowercase"
    phone "telephoneNumber" "mobile"
    alias "mail" to="nickName"
    attribute "title" to="title" normalize="trim"
    role "Lead" when="title" contains="Engineer 4"
    role "Admin" in-group="Admins"
    role "Ops" when="employeeType" matches="^C-[0-9]+$" to="urn:x:User:kind"
    role "Staff" default=#true
}
group {
    base-dn "ou=Groups,dc=example,dc=com"
    filter "(objectClass=groupOfNames)"
    name "cn"
    key "entryUUID"
    nested #true
}
policy {
    mode "remove"
    max-removes 10
    max-remove-percent 5
    max-adds 100
    max-updates "10%"
    max-member-removes "10%"
    max-source-shrink-percent 15
    max-target-shrink-percent 15
    on-invalid "fail"
    default-email "{username}@example.com"
    default-name "{givenName} {sn}"
    group-all "Everyone"
}
"#,
    r#"source "servicenow" {
    url "https://acme.service-now.com"
    username "roster.sync"
    password env="SN_PASSWORD"
    client-id "3f2a9c0d"
    client-secret file="/run/secrets/sn-client"
    query "active=true^department=IT"
    page-size 200
    timeout 10
}
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "sys_id"
    username "user_name"
    email "email"
}
group {
    query "active=true"
    name "name"
}
"#,
    r#"source "freshservice" {
    url "https://acme.freshservice.com"
    api-key env="FS_API_KEY"
    include "requesters" "agents"
    page-size 50
}
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "id"
    username "primary_email" normalize="lowercase"
}
policy { mode "add-only"; max-adds "50%"; }
"#,
    "source \"csv\" {\n    path \"people.csv\"\n    delimiter \"tab\"\n}\ntarget \"scim\" {\n    \
     url \"https://example.com/scim/v2\"\n    token env=\"T\"\n}\nuser {\n    key \"id\"\n    \
     username \"uid\"\n}\n",
    "source \"ldif\" { path \"people.ldif\"; }\ntarget \"scim\" { url \"https://x.example/scim\"; \
     token env=\"T\"; }\nuser { key \"entryUUID\"; username \"uid\"; }\n",
];

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that mean something to KDL or to roster's readers.
const SPECIAL: &[u8] = b"{}\"\\#/*;=\n\r\t 0-.%#e\x00\xff";

const NUMBERS: &[&str] = &[
    "99999999999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "-1",
    "0",
    "1e309",
    "-0.0",
    "0x7fffffffffffffff",
    "#nan",
    "#inf",
    "#-inf",
    "\"1000000000000%\"",
    "\"-5%\"",
    "\"%\"",
    "1_000_000_000_000",
];

const ODD_TEXT: &[&str] = &[
    "\u{202e}",
    "\u{feff}",
    "\u{0}",
    "\u{2028}",
    "\u{85}",
    "é",
    "e\u{301}",
    "😀",
    "\u{10ffff}",
    "\u{1b}[2K",
    "\\u{0}",
    "\\",
    "r#\"",
    "\"#",
    "/*",
    "*/",
    "/-",
    "#true",
    "#null",
    "null",
    "=",
    "\"\"",
    "{",
    "}",
    "(u8)",
];

/// One mutation of `text`, chosen by `rng`.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>) {
    let len = text.len();
    match rng.below(9) {
        // A byte flipped to a special or random value.
        0 if len > 0 => {
            let at = rng.below(len);
            text[at] = if rng.below(2) == 0 {
                *rng.pick(SPECIAL)
            } else {
                rng.next() as u8
            };
        }
        // Truncated.
        1 => text.truncate(rng.below(len + 1)),
        // A range deleted.
        2 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(40)).min(len);
            text.drain(at..end);
        }
        // A line (a node, usually) repeated.
        3 => {
            let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            let line = lines[rng.below(lines.len())].to_vec();
            let times = 1 + rng.below(50);
            let at = rng.below(len + 1);
            let mut insert = Vec::new();
            for _ in 0..times {
                insert.extend_from_slice(&line);
                insert.push(b'\n');
            }
            text.splice(at..at, insert);
        }
        // Nested blocks, sometimes deeper than the parser allows.
        4 => {
            let depth = *rng.pick(&[2, 10, 63, 64, 65, 200, 3000]);
            let name = *rng.pick(&["user", "policy", "x", "group", "source \"ldap\""]);
            let mut nested = Vec::new();
            for _ in 0..depth {
                nested.extend_from_slice(name.as_bytes());
                nested.extend_from_slice(b" {\n");
            }
            if rng.below(3) > 0 {
                for _ in 0..depth {
                    nested.extend_from_slice(b"}\n");
                }
            }
            let at = rng.below(len + 1);
            text.splice(at..at, nested);
        }
        // A number replaced by a huge, negative or odd one.
        5 => {
            let digits: Vec<usize> = (0..len).filter(|&i| text[i].is_ascii_digit()).collect();
            if let Some(&at) = digits.get(rng.below(digits.len())) {
                let end = (at..len)
                    .find(|&i| !text[i].is_ascii_digit() && text[i] != b'.')
                    .unwrap_or(len);
                text.splice(at..end, rng.pick(NUMBERS).bytes());
            }
        }
        // Odd Unicode or KDL syntax inserted anywhere (even inside a character).
        6 => {
            let at = rng.below(len + 1);
            text.splice(at..at, rng.pick(ODD_TEXT).bytes());
        }
        // A range copied elsewhere.
        7 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(80)).min(len);
            let piece = text[start..end].to_vec();
            let at = rng.below(len + 1);
            text.splice(at..at, piece);
        }
        // A quoted value replaced by a long one.
        _ => {
            if let Some(at) = text.iter().position(|b| *b == b'"') {
                let long = "a".repeat(*rng.pick(&[1, 300, 9_999, 10_001, 70_000]));
                text.splice(at + 1..at + 1, long.bytes());
            }
        }
    }
}

fn render(error: &ConfigError) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, error)
        .expect("rendering to a String cannot fail");
    out
}

#[test]
fn mutated_configs_never_panic_and_every_failure_is_a_config_error_that_renders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("roster.kdl");
    let mut rng = Rng(0x5eed_c0ff_ee15_900d);
    let (mut valid, mut invalid) = (0u64, 0u64);
    for case in 0..CASES {
        let mut bytes = SEEDS[case as usize % SEEDS.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut bytes);
        }
        // The loader reads UTF-8 text only; bytes that are not become U+FFFD here, which
        // keeps the case useful instead of discarding it.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(trace) = std::env::var_os("ROSTER_FUZZ_TRACE") {
            // A crash that cannot be caught (a stack overflow aborts) leaves its case here.
            std::fs::write(&trace, &text).expect("trace file");
            eprintln!("case {case}");
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match parse(&path, &text) {
            Ok(_) => None,
            Err(error) => {
                let report = render(&error);
                assert!(!report.trim().is_empty(), "an empty report");
                Some(error.to_string())
            }
        }));
        match outcome {
            Ok(None) => valid += 1,
            Ok(Some(message)) => {
                assert!(
                    !message.is_empty(),
                    "case {case}: an error without a message"
                );
                invalid += 1;
            }
            Err(_) => panic!(
                "case {case} panicked; the config was:\n{}",
                text.chars().take(4000).collect::<String>()
            ),
        }
    }
    // The mutations must reach both outcomes, or they test nothing.
    assert!(
        valid > 0 && invalid > CASES / 2,
        "{valid} valid, {invalid} invalid"
    );
}

/// The two crashes the fuzzer found, kept as cases of their own.
#[test]
fn the_cases_the_fuzzer_found_are_config_errors() {
    let path = Path::new("roster.kdl");
    // An unclosed quote before thousands of nested blocks overflowed kdl's stack.
    let deep = format!(
        "source \"ldap\" {{\n    query \"active=t{}",
        "group {\n".repeat(3000)
    );
    let report = render(&parse(path, &deep).expect_err("too deep"));
    assert!(report.contains("nested more than 64 deep"), "{report}");
    // A problem 70,000 characters into a line made the report itself panic.
    let long = format!("source \"{}\" {{\n}}\n", "a".repeat(70_000));
    let error = parse(path, &long).expect_err("too long");
    assert!(
        error
            .problems()
            .iter()
            .any(|p| p.code() == "roster::config::too_long"),
        "{error}"
    );
    assert!(render(&error).contains("longer than 10000 characters"));
}
