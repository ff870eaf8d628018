//! End to end: owner scope on a SCIM target. Two configs (two owners, two state stores) on
//! one real scim2-server must never take, update away or remove each other's accounts, and
//! this must hold with a lost store, since the owner is kept in the account's externalId
//! (`roster:OWNER:KEY`). Accounts written before owners were recorded (a bare key) keep
//! syncing for the config that made them, without a duplicate, and one of unknown owner is
//! never removed. Every test asserts what the target holds afterwards.

mod support;

use serde_json::{Value, json};
use support::world::*;

const POLICY: &str = r#"mode "remove"
    max-removes 5
    max-source-shrink-percent 100"#;

/// The standard world's config as `employees.kdl` (owner "employees", its own store), and
/// a CSV config `contractors.kdl` (owner "contractors", mode delete, its own store) on the
/// same target, with `contractors` as its rows (uid, cn, mail, id).
fn two_owners(contractors: &[(&str, &str)]) -> World {
    let w = World::standard();
    w.write_config(POLICY);
    let employees = std::fs::read_to_string(w.path("roster.kdl"))
        .expect("config")
        .replace(
            "state \"state.db\"",
            "state \"employees.db\"\nowner \"employees\"",
        );
    std::fs::write(w.path("employees.kdl"), employees).expect("write");
    let contractors_kdl = format!(
        r#"
state "contractors.db"
owner "contractors"
source "csv" {{
    path "contractors.csv"
}}
target "scim" {{
    url "{scim}"
    token env="{SCIM_TOKEN_VAR}"
}}
user {{
    key "id"
    username "uid"
    name "cn"
    email "mail"
}}
policy {{
    mode "delete"
    max-removes 5
    max-source-shrink-percent 100
}}
"#,
        scim = w.scim.url
    );
    std::fs::write(w.path("contractors.kdl"), contractors_kdl).expect("write");
    write_contractors(&w, contractors);
    w
}

fn write_contractors(w: &World, rows: &[(&str, &str)]) {
    let mut csv = String::from("uid,cn,mail,id\n");
    for (uid, id) in rows {
        csv.push_str(&format!(
            "{uid},{uid} Contractor,{uid}@contractors.example.com,{id}\n"
        ));
    }
    std::fs::write(w.path("contractors.csv"), csv).expect("write csv");
}

fn plan_of(w: &World, config: &str) -> Value {
    serde_json::from_str(&w.ok(&["-c", config, "plan", "--format", "json"], 0)).expect("JSON")
}

#[test]
fn two_owners_side_by_side_each_remove_only_their_own_even_with_a_lost_store() {
    let w = two_owners(&[("zed", "c-1"), ("yan", "c-2")]);
    w.ok(&["-c", "employees.kdl", "apply", "--auto-approve"], 0);
    w.ok(&["-c", "contractors.kdl", "apply", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 5);
    assert_eq!(
        w.user("alice")["externalId"],
        format!("roster:employees:{}", w.entry_uuid("alice"))
    );
    assert_eq!(w.user("zed")["externalId"], "roster:contractors:c-1");

    // Each sees the other's accounts, and says it leaves them alone.
    let human = w.ok(&["-c", "employees.kdl", "plan", "--detailed-exitcode"], 0);
    assert!(human.contains("No changes."), "{human}");
    assert!(
        human.contains("2 accounts in") && human.contains("belong to owner \"contractors\""),
        "{human}"
    );

    // bob leaves the directory, zed the CSV: each config removes only its own.
    w.slapd.delete(&w.dn("bob"));
    write_contractors(&w, &[("yan", "c-2")]);
    let employees = plan_of(&w, "employees.kdl");
    assert_eq!(actions(&employees), ["remove user bob planned"]);
    w.ok(&["-c", "employees.kdl", "apply", "--auto-approve"], 0);
    assert!(!active(&w.user("bob")), "bob taken out of service");
    assert!(active(&w.user("zed")), "the employees never touch zed");
    let contractors = plan_of(&w, "contractors.kdl");
    assert_eq!(actions(&contractors), ["delete user zed planned"]);
    w.ok(&["-c", "contractors.kdl", "apply", "--auto-approve"], 0);
    assert!(w.scim.user_by_username("zed").is_none(), "zed deleted");
    assert!(
        w.scim.user_by_username("bob").is_some(),
        "the contractors (mode delete) never delete the employees' bob"
    );

    // Both stores lost: the target still says whose is whose.
    std::fs::remove_file(w.path("employees.db")).expect("lose the store");
    std::fs::remove_file(w.path("contractors.db")).expect("lose the store");
    w.slapd.delete(&w.dn("carol"));
    write_contractors(&w, &[("xan", "c-3")]);
    let employees = plan_of(&w, "employees.kdl");
    assert_eq!(
        actions(&employees),
        ["remove user carol planned"],
        "the employees' own carol is still provably theirs; yan is not"
    );
    let contractors = plan_of(&w, "contractors.kdl");
    assert_eq!(
        actions(&contractors),
        ["add user xan planned", "delete user yan planned"],
        "nothing of the employees' is deleted, not even bob, who is in no source"
    );
    w.ok(&["-c", "employees.kdl", "apply", "--auto-approve"], 0);
    w.ok(&["-c", "contractors.kdl", "apply", "--auto-approve"], 0);
    assert!(!active(&w.user("carol")));
    assert!(active(&w.user("alice")));
    assert!(w.scim.user_by_username("bob").is_some());
    assert!(w.scim.user_by_username("yan").is_none());
}

#[test]
fn a_source_user_with_another_owners_username_is_rejected_not_adopted() {
    // The contractors' CSV has an "alice" too: the employees' alice exists first.
    let w = two_owners(&[("alice", "c-9")]);
    w.ok(&["-c", "employees.kdl", "apply", "--auto-approve"], 0);
    let before = w.user("alice");
    let stdout = w.ok(&["-c", "contractors.kdl", "plan"], 0);
    assert!(stdout.contains("1 rejected record"), "{stdout}");
    let runs = w.ok(&["-c", "contractors.kdl", "runs"], 0);
    let last = runs
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a run")
        .to_string();
    let shown = w.ok(&["-c", "contractors.kdl", "show", &last], 0);
    assert!(
        shown.contains("owner \"employees\" manages in the target"),
        "{shown}"
    );
    w.ok(&["-c", "contractors.kdl", "apply", "--auto-approve"], 0);
    assert_eq!(w.user("alice"), before, "alice untouched");
}

#[test]
fn accounts_written_before_owners_are_adopted_without_a_duplicate_and_unknown_ones_never_removed() {
    let w = World::standard();
    w.write_config(POLICY);
    w.ok(&["apply", "--auto-approve"], 0);
    // As an earlier roster wrote them: bare keys, no owner (the store still has its records).
    for name in ["alice", "bob", "carol"] {
        let user = w.user(name);
        let id = user["id"].as_str().expect("id");
        w.scim.patch_user(
            id,
            json!([{"op": "replace", "path": "externalId", "value": w.entry_uuid(name)}]),
        );
    }
    // And one written by an earlier roster for a user long gone, by whichever config.
    w.scim.create_user(json!({
        "userName": "olduser", "externalId": "legacy-key-9", "active": true
    }));

    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        [
            "update user alice planned",
            "update user bob planned",
            "update user carol planned",
            "remove user olduser skipped"
        ]
    );
    assert_eq!(
        plan["actions"][0]["changes"],
        json!([{"field": "owner", "before": null, "after": "roster"}])
    );
    assert!(
        plan["actions"][3]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not removed: owner unknown")),
        "{}",
        plan["actions"][3]
    );
    let human = w.ok(&["plan"], 0);
    assert!(human.contains("+ owner: \"roster\""), "{human}");

    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 4, "no duplicate");
    assert_eq!(
        w.user("alice")["externalId"],
        format!("roster:roster:{}", w.entry_uuid("alice"))
    );
    let old = w.user("olduser");
    assert!(
        active(&old) && old["externalId"] == "legacy-key-9",
        "never removed"
    );
    let again = w.ok(&["plan"], 0);
    assert!(again.contains("No changes."), "{again}");

    // A lost store: an old-style account matching a source user by key and username is
    // still adopted; one gone from the source is never removed without a record.
    std::fs::remove_file(w.path("state.db")).expect("lose the store");
    for name in ["bob", "carol"] {
        let id = w.user(name)["id"].as_str().expect("id").to_string();
        w.scim.patch_user(
            &id,
            json!([{"op": "replace", "path": "externalId", "value": w.entry_uuid(name)}]),
        );
    }
    let carol_key = w.entry_uuid("carol");
    w.slapd.delete(&w.dn("carol"));
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        [
            "update user bob planned",
            "remove user carol skipped",
            "remove user olduser skipped"
        ]
    );
    w.ok(&["apply", "--auto-approve"], 0);
    let carol = w.user("carol");
    assert!(active(&carol), "owner unknown: not removed");
    assert_eq!(carol["externalId"], carol_key.as_str());
    assert_eq!(w.scim.users().len(), 4, "no duplicate");
}
