//! End to end with the file target: the real `roster` binary reads a real slapd (or a CSV
//! export) and writes the accounts to a file. Every test asserts what the file holds
//! afterwards, and what the state store kept as the next plan's snapshot.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::slapd::{Slapd, person, person_dn};
use support::{expect_code, roster_in, text};

const LDAP_PASSWORD_VAR: &str = "E2E_LDAP_PASSWORD";

/// A working directory with a roster.kdl whose target is a file.
struct Dir {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.path(name), content).expect("write");
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_else(|e| panic!("{name} cannot be read: {e}"))
    }

    fn roster(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        roster_in(self.dir.path(), args, &env)
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        text(&out.stdout)
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        serde_json::from_str(&self.ok(args, code)).expect("JSON")
    }
}

fn ldap_config(slapd: &Slapd, target: &str, policy: &str) -> String {
    format!(
        r#"
state "state.db"
source "ldap" {{
    url "{url}"
    bind-dn "{admin}"
    bind-password env="{LDAP_PASSWORD_VAR}"
    base-dn "ou=People,{base}"
    filter "(objectClass=inetOrgPerson)"
}}
target "file" {{
    {target}
}}
user {{
    key "uid"
    username "uid"
    name "cn"
    email "mail"
    phone "telephoneNumber"
    attribute "sn" to="surname"
}}
policy {{
    max-source-shrink-percent 50
    {policy}
}}
"#,
        url = slapd.url,
        admin = slapd.admin_dn,
        base = slapd.base_dn,
    )
}

fn slapd_with_people() -> Slapd {
    let slapd = Slapd::start();
    slapd.add(&person(
        "alice",
        "Alice Liddell",
        Some("alice@example.com"),
        &["+1 555 0100"],
    ));
    slapd.add(&person("bob", "Bob Builder", Some("bob@example.com"), &[]));
    slapd.add(&person(
        "carol",
        "Carol Danvers",
        Some("carol@example.com"),
        &[],
    ));
    slapd
}

fn ldap_dir(slapd: &Slapd) -> Dir {
    let mut dir = Dir::new();
    dir.env
        .push((LDAP_PASSWORD_VAR, slapd.admin_password.clone()));
    dir
}

/// The summary counts of a plan.
fn counts(plan: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| plan["summary"][k].as_u64().unwrap_or(0);
    (n("add"), n("update"), n("remove"), n("delete"))
}

#[test]
fn a_directory_becomes_a_csv_file_and_its_changes_update_it() {
    let slapd = slapd_with_people();
    let dir = ldap_dir(&slapd);
    std::fs::create_dir(dir.path("export")).expect("mkdir");
    dir.write(
        "roster.kdl",
        &ldap_config(
            &slapd,
            r#"path "export/people.csv""#,
            r#"mode "remove"; max-removes 1"#,
        ),
    );
    dir.ok(&["validate"], 0);
    dir.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        dir.read("export/people.csv"),
        "key,username,name,email,phone,surname,active\n\
         alice,alice,Alice Liddell,alice@example.com,+1 555 0100,Liddell,true\n\
         bob,bob,Bob Builder,bob@example.com,,Builder,true\n\
         carol,carol,Carol Danvers,carol@example.com,,Danvers,true\n"
    );
    // Nothing changed: the kept rows are the snapshot, and the plan is empty.
    dir.ok(&["plan", "--detailed-exitcode"], 0);

    // The importing system took the file away: roster still knows what it wrote.
    std::fs::remove_file(dir.path("export/people.csv")).expect("rm");
    dir.ok(&["plan", "--detailed-exitcode"], 0);

    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice Kingsleigh\n",
        person_dn("alice")
    ));
    slapd.delete(&person_dn("bob"));
    let plan = dir.json(&["plan", "--format", "json"], 0);
    assert_eq!(counts(&plan), (0, 1, 1, 0), "{plan:#}");
    let human = dir.ok(&["plan"], 0);
    assert!(
        human.contains("user bob  (stays in people.csv, marked inactive)"),
        "{human}"
    );
    dir.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        dir.read("export/people.csv"),
        "key,username,name,email,phone,surname,active\n\
         alice,alice,Alice Kingsleigh,alice@example.com,+1 555 0100,Liddell,true\n\
         bob,bob,Bob Builder,bob@example.com,,Builder,false\n\
         carol,carol,Carol Danvers,carol@example.com,,Danvers,true\n"
    );
    dir.ok(&["plan", "--detailed-exitcode"], 0);

    // In delete mode the row leaves the file.
    dir.write(
        "roster.kdl",
        &ldap_config(
            &slapd,
            r#"path "export/people.csv""#,
            r#"mode "delete"; max-removes 1"#,
        ),
    );
    let plan = dir.json(&["plan", "--format", "json"], 0);
    assert_eq!(counts(&plan), (0, 0, 0, 1), "{plan:#}");
    dir.ok(&["apply", "--auto-approve"], 0);
    let file = dir.read("export/people.csv");
    assert!(!file.contains("bob"), "{file}");
    assert_eq!(file.lines().count(), 3, "{file}");
    dir.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn the_changes_of_each_apply_as_an_ldif_change_file() {
    let slapd = slapd_with_people();
    let dir = ldap_dir(&slapd);
    let target = r#"path "changes.ldif"
    content "changes"
    base-dn "ou=Imported,dc=example,dc=com""#;
    dir.write(
        "roster.kdl",
        &ldap_config(&slapd, target, r#"mode "delete"; max-removes 1"#),
    );
    dir.ok(&["apply", "--auto-approve"], 0);
    let first = dir.read("changes.ldif");
    assert_eq!(first.matches("changetype: add\n").count(), 3, "{first}");
    assert!(
        first.contains(
            "dn: uid=alice,ou=Imported,dc=example,dc=com\nchangetype: add\nkey: alice\n\
             username: alice\nname: Alice Liddell\nemail: alice@example.com\n\
             phone: +1 555 0100\nsurname: Liddell\nactive: TRUE\n"
        ),
        "{first}"
    );
    dir.ok(&["plan", "--detailed-exitcode"], 0);

    slapd.delete(&person_dn("carol"));
    dir.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        dir.read("changes.ldif"),
        "version: 1\n\ndn: uid=carol,ou=Imported,dc=example,dc=com\nchangetype: delete\n"
    );
    dir.ok(&["plan", "--detailed-exitcode"], 0);
}

const CSV_CONFIG: &str = r#"
state "state.db"
source "csv" { path "people.csv"; }
target "file" { path "out/people.csv"; }
user {
    key "id"
    username "uid"
    name "cn"
    email "mail"
}
"#;

#[test]
fn when_the_file_cannot_be_written_every_action_fails_and_a_retry_writes_it() {
    let dir = Dir::new();
    std::fs::create_dir(dir.path("out")).expect("mkdir");
    dir.write("roster.kdl", CSV_CONFIG);
    dir.write(
        "people.csv",
        "id,uid,cn,mail\n1,alice,Alice,alice@example.com\n2,bob,Bob,bob@example.com\n",
    );
    dir.ok(&["plan", "--out", "plan.json"], 0);
    // Something stands where the file goes: the rename onto it fails.
    std::fs::create_dir_all(dir.path("out/people.csv/in-the-way")).expect("mkdir");
    let out = dir.roster(&["apply", "plan.json"]);
    expect_code(&out, &["apply", "plan.json"], 1);
    assert!(
        text(&out.stdout).contains("0 applied, 2 failed"),
        "{}",
        text(&out.stdout)
    );
    let shown = dir.json(&["show", "plan.json", "--format", "json"], 0);
    let statuses: Vec<&str> = shown["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["failed", "failed"], "{shown:#}");
    let error = shown["actions"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot write the file"), "{error}");
    // Nothing was kept: a new plan still has both adds.
    let plan = dir.json(&["plan", "--format", "json"], 0);
    assert_eq!(counts(&plan), (2, 0, 0, 0), "{plan:#}");

    std::fs::remove_dir_all(dir.path("out/people.csv")).expect("rm");
    dir.ok(&["apply", "plan.json"], 0);
    assert_eq!(
        dir.read("out/people.csv"),
        "key,username,name,email,phone,active\n\
         1,alice,Alice,alice@example.com,,true\n\
         2,bob,Bob,bob@example.com,,true\n"
    );
    dir.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_plan_for_a_directory_that_does_not_exist_is_refused_before_anything_is_written() {
    let dir = Dir::new();
    dir.write("roster.kdl", CSV_CONFIG);
    dir.write(
        "people.csv",
        "id,uid,cn,mail\n1,alice,Alice,alice@example.com\n",
    );
    let out = dir.roster(&["plan"]);
    expect_code(&out, &["plan"], 1);
    let err = text(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!dir.path("out").exists());
}

#[test]
fn an_xlsx_file_from_a_csv_export() {
    use calamine::{Reader, Xlsx, open_workbook};
    let dir = Dir::new();
    dir.write(
        "roster.kdl",
        &CSV_CONFIG.replace("out/people.csv", "people.xlsx"),
    );
    dir.write(
        "people.csv",
        "id,uid,cn,mail\n1,alice,Alice,alice@example.com\n2,bob,\"=HYPERLINK(\"\"x\"\")\",bob@example.com\n",
    );
    dir.ok(&["apply", "--auto-approve"], 0);
    let mut book: Xlsx<_> = open_workbook(dir.path("people.xlsx")).expect("workbook");
    let range = book.worksheet_range("roster").expect("sheet");
    let cells: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells.len(), 3, "{cells:?}");
    assert_eq!(
        cells[0],
        ["key", "username", "name", "email", "phone", "active"]
    );
    assert_eq!(cells[2][2], "=HYPERLINK(\"x\")", "a formula stays text");
    dir.ok(&["plan", "--detailed-exitcode"], 0);
}

fn problems(config: &str) -> String {
    let dir = Dir::new();
    dir.write("roster.kdl", config);
    dir.write("people.csv", "id,uid\n1,alice\n");
    let out = dir.roster(&["validate"]);
    expect_code(&out, &["validate"], 1);
    text(&out.stderr)
}

#[test]
fn validate_refuses_what_a_file_target_cannot_write() {
    let err = problems(&CSV_CONFIG.replace("out/people.csv", "people.txt"));
    assert!(err.contains("names no format roster writes"), "{err}");

    let err = problems(&CSV_CONFIG.replace("out/people.csv", "people.ldif"));
    assert!(err.contains("needs `base-dn`"), "{err}");

    let err = problems(&CSV_CONFIG.replace(
        r#"path "out/people.csv";"#,
        r#"path "people.csv"; base-dn "ou=People,dc=example,dc=com";"#,
    ));
    assert!(err.contains("applies only to LDIF files"), "{err}");

    let err = problems(&CSV_CONFIG.replace(
        r#"email "mail""#,
        r#"email "mail"; attribute "cn" to="Email""#,
    ));
    assert!(err.contains("two columns named `Email`"), "{err}");

    let err = problems(
        &CSV_CONFIG
            .replace("out/people.csv", "people.ldif\"; base-dn \"o=x")
            .replace(r#"email "mail""#, r#"attribute "cn" to="display name""#),
    );
    assert!(err.contains("not an LDAP attribute name"), "{err}");

    let err = problems(&CSV_CONFIG.replace(
        r#"path "out/people.csv";"#,
        r#"path "p.csv"; format "json";"#,
    ));
    assert!(err.contains("unknown format \"json\""), "{err}");
}
