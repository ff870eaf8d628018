//! End to end with file sources: the real `roster` binary reads a CSV or LDIF export and
//! syncs it into a real scim2-server. Every test asserts what the target holds afterwards.

mod support;

use std::path::PathBuf;
use std::process::Output;
use support::{expect_code, roster_in, text};

use serde_json::Value;
use support::scim::ScimServer;

const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

/// One target and one working directory holding roster.kdl and the export.
struct World {
    scim: ScimServer,
    dir: tempfile::TempDir,
}

impl World {
    /// `source` is the source block; `export` is written beside roster.kdl as `file`.
    fn new(source: &str, key: &str, file: &str, export: &[u8]) -> World {
        let world = World {
            scim: ScimServer::start(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::write(world.path(file), export).expect("write export");
        let config = format!(
            r#"
state "state.db"
{source}
target "scim" {{
    url "{scim}"
    token env="{SCIM_TOKEN_VAR}"
}}
user {{
    key "{key}"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
    phone "telephoneNumber"
}}
"#,
            scim = world.scim.url,
        );
        std::fs::write(world.path("roster.kdl"), config).expect("write config");
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir.path(),
            args,
            &[(SCIM_TOKEN_VAR, self.scim.token.as_str())],
        )
    }

    /// Runs roster and checks its exit code; returns stdout.
    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        text(&out.stdout)
    }

    /// The id of the latest run: the first column of the first row after `roster runs`' header.
    fn last_run_id(&self) -> String {
        let runs = self.ok(&["runs"], 0);
        runs.lines()
            .nth(1)
            .and_then(|row| row.split_whitespace().next())
            .unwrap_or_else(|| panic!("no run listed:\n{runs}"))
            .to_string()
    }

    fn user(&self, username: &str) -> Value {
        self.scim
            .user_by_username(username)
            .unwrap_or_else(|| panic!("{username} is not in the target"))
    }

    fn usernames(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .scim
            .users()
            .iter()
            .filter_map(|u| u["userName"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }
}

fn emails(user: &Value) -> Vec<String> {
    user["emails"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn phones(user: &Value) -> Vec<String> {
    user["phoneNumbers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn csv_export_is_planned_with_its_rejects_and_applied() {
    let csv = "employeeId,uid,cn,mail,telephoneNumber,telephoneNumber\n\
               e-1,Alice,\"Liddell, Alice\",alice@example.com,+1 555 0100,+1 555 0101\n\
               e-2,bob,Bob Builder,bob@example.com,,\n\
               ,nokey,No Key,nokey@example.com,,\n";
    let w = World::new(
        "source \"csv\" {\n    path \"people.csv\"\n}",
        "employeeId",
        "people.csv",
        csv.as_bytes(),
    );

    let plan = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("  + user alice (Liddell, Alice <alice@example.com>)"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 2 to add, 0 to update, 0 to remove, 0 to delete. 1 rejected record"),
        "{plan}"
    );
    let run_id = w.last_run_id();
    let shown = w.ok(&["show", &run_id], 0);
    // Origins name the file as the config does (relative to it) and the row's line.
    let reject = "  people.csv:4: no key: attribute employeeId is missing or empty";
    assert!(
        shown.contains("Rejected source records (1):") && shown.contains(reject),
        "{shown}"
    );
    assert!(w.scim.users().is_empty(), "plan must not touch the target");

    let applied = w.ok(&["apply", "--auto-approve"], 0);
    assert!(applied.contains("2 applied, 0 failed"), "{applied}");
    assert_eq!(w.usernames(), ["alice", "bob"]);
    let alice = w.user("alice");
    assert_eq!(alice["externalId"], "roster:roster:e-1");
    assert_eq!(alice["displayName"], "Liddell, Alice");
    assert_eq!(emails(&alice), ["alice@example.com"]);
    assert_eq!(phones(&alice), ["+1 555 0100", "+1 555 0101"]);
    let bob = w.user("bob");
    assert_eq!(bob["displayName"], "Bob Builder");
    assert_eq!(emails(&bob), ["bob@example.com"]);
    assert_eq!(phones(&bob), [] as [&str; 0], "empty cells are no phones");

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn csv_duplicate_keys_reject_both_records() {
    // Semicolon-separated with a BOM, as spreadsheet exports in many locales are.
    let csv = "\u{feff}employeeId;uid;cn;mail\n\
               e-1;alice;Alice Liddell;alice@example.com\n\
               e-1;alicia;Alicia Keys;alicia@example.com\n\
               e-3;carol;\"Danvers; Carol\";carol@example.com\n";
    let w = World::new(
        "source \"csv\" {\n    path \"people.csv\"\n    delimiter \";\"\n}",
        "employeeId",
        "people.csv",
        csv.as_bytes(),
    );

    let plan = w.ok(&["plan"], 0);
    assert!(
        plan.contains("Plan: 1 to add, 0 to update, 0 to remove, 0 to delete. 2 rejected records"),
        "{plan}"
    );
    let shown = w.ok(&["show", &w.last_run_id()], 0);
    assert!(shown.contains("Rejected source records (2):"), "{shown}");
    for line in [2, 3] {
        let reject = format!("  people.csv:{line}: duplicate key e-1");
        assert!(
            shown.contains(&reject),
            "no reject for line {line}:\n{shown}"
        );
    }

    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        w.usernames(),
        ["carol"],
        "neither duplicate reaches the target"
    );
    assert_eq!(w.user("carol")["displayName"], "Danvers; Carol");
}

#[test]
fn ldif_export_round_trips_base64_names_and_guid_keys() {
    // An Active Directory style export: objectGUID (binary) as the key, a name in base64.
    let ldif = "version: 1

# ldifde -f people.ldif
dn: CN=Zoe Durand,OU=People,DC=example,DC=com
changetype: add
objectGUID:: 5gyLLTKqMU+m6AobLD1OXw==
uid: Zoe
cn:: Wm/DqyBEdXJhbmQ=
mail: zoe@example.com
telephoneNumber: +33 1 23 45 67 89
telephoneNumber: +33 6 12 34 56 78

dn: CN=Alice Liddell,OU=People,DC=example,DC=com
changetype: add
objectGUID:: AAECAwQFBgcICQoLDA0ODw==
uid: alice
cn: Alice
  Liddell
mail: alice@example.com

dn: CN=No Mail,OU=People,DC=example,DC=com
objectGUID:: EBESExQVFhcYGRobHB0eHw==
uid: nomail
cn: No Mail
";
    let w = World::new(
        "source \"ldif\" {\n    path \"people.ldif\"\n}",
        "objectGUID",
        "people.ldif",
        ldif.as_bytes(),
    );

    let plan = w.ok(&["plan"], 0);
    assert!(
        plan.contains("  + user zoe (Zoë Durand <zoe@example.com>)"),
        "{plan}"
    );
    assert!(plan.contains("1 rejected record"), "{plan}");
    let shown = w.ok(&["show", &w.last_run_id()], 0);
    assert!(
        shown.contains("  CN=No Mail,OU=People,DC=example,DC=com: no email"),
        "{shown}"
    );

    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.usernames(), ["alice", "zoe"]);
    let zoe = w.user("zoe");
    assert_eq!(zoe["displayName"], "Zoë Durand");
    assert_eq!(
        zoe["externalId"],
        "roster:roster:2d8b0ce6-aa32-4f31-a6e8-0a1b2c3d4e5f"
    );
    assert_eq!(emails(&zoe), ["zoe@example.com"]);
    assert_eq!(phones(&zoe), ["+33 1 23 45 67 89", "+33 6 12 34 56 78"]);
    let alice = w.user("alice");
    assert_eq!(alice["displayName"], "Alice Liddell");
    assert_eq!(
        alice["externalId"],
        "roster:roster:03020100-0504-0706-0809-0a0b0c0d0e0f"
    );

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn a_malformed_export_plans_nothing_and_names_the_line() {
    let csv = "employeeId,uid,cn,mail\ne-1,alice,Alice,alice@example.com\ne-2,bob,Bob, Builder,bob@example.com\n";
    let w = World::new(
        "source \"csv\" {\n    path \"people.csv\"\n}",
        "employeeId",
        "people.csv",
        csv.as_bytes(),
    );
    let out = w.roster(&["apply", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("people.csv, line 3: 5 fields where the header row has 4"),
        "{stderr}"
    );
    assert!(
        w.scim.users().is_empty(),
        "an incomplete read applies nothing"
    );
}
