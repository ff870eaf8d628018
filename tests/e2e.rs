//! End to end: the real `roster` binary against a real slapd and a real scim2-server.
//! Every test asserts what the target holds afterwards, not only exit codes.

mod support;

use std::process::Output;

use serde_json::Value;
use support::slapd::person;
use support::world::*;

#[test]
fn first_plan_adds_everyone_apply_creates_them_and_a_second_plan_has_no_changes() {
    let w = World::standard();

    let human = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        human.contains("  + user alice (Alice Liddell <alice@example.com>)"),
        "{human}"
    );
    assert!(
        human.contains("Plan: 3 to add, 0 to update, 0 to remove, 0 to delete."),
        "{human}"
    );
    assert!(w.scim.users().is_empty(), "plan must not touch the target");

    w.ok(&["plan", "--out", "plan.json"], 0);
    // The file is compact (no nulls, no default status), read back as the contract's plan.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("plan.json")).expect("plan file"))
            .expect("JSON");
    assert_eq!(file["format_version"], 1);
    assert_eq!(file["actions"][0].get("status"), None);
    let plan: Value =
        serde_json::from_str(&w.ok(&["show", "plan.json", "--format", "json"], 0)).expect("JSON");
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["add"], 3);
    assert_eq!(
        actions(&plan),
        [
            "add user alice planned",
            "add user bob planned",
            "add user carol planned"
        ]
    );
    assert!(plan["plan_id"].is_string() && plan["created_at"].is_string());

    let applied = w.ok(&["apply", "plan.json"], 0);
    assert!(applied.contains("3 applied, 0 failed"), "{applied}");
    let users = w.scim.users();
    assert_eq!(users.len(), 3);
    let alice = w.user("alice");
    assert_eq!(alice["externalId"], owned(&w.entry_uuid("alice")));
    assert_eq!(alice["displayName"], "Alice Liddell");
    assert_eq!(
        emails(&alice),
        [("alice@example.com".to_string(), "work".to_string())]
    );
    assert_eq!(alice["emails"][0]["primary"], true);
    assert_eq!(phones(&alice), ["+1 555 0100"]);
    assert_eq!(alice["phoneNumbers"][0]["type"], "work");
    assert_eq!(phones(&w.user("carol")), ["+1 555 0102", "+1 555 0103"]);

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");

    let twice = w.roster(&["apply", "plan.json"]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        text(&twice.stderr).contains("already applied"),
        "{}",
        text(&twice.stderr)
    );
    assert_eq!(w.scim.users().len(), 3, "a second apply creates nothing");
}

/// The size above which roster writes a plan file zstd-compressed (16 MiB unless told; see
/// README, "The plan file").
const ZSTD_ABOVE_VAR: &str = "ROSTER_PLAN_FILE_ZSTD_ABOVE";

#[test]
fn a_plan_file_over_the_size_is_zstd_and_is_shown_compared_and_applied_like_a_plain_one() {
    let w = World::standard();
    let out = w
        .command(&["plan", "--out", "plan.json"])
        .env(ZSTD_ABOVE_VAR, "256")
        .output()
        .expect("roster");
    support::expect_code(&out, &["plan", "--out", "plan.json"], 0);
    let bytes = std::fs::read(w.path("plan.json")).expect("plan file");
    assert_eq!(bytes[..4], [0x28, 0xB5, 0x2F, 0xFD], "a zstd frame");
    // Under the size, the same plan is plain JSON.
    let out = w
        .command(&["plan", "--out", "plain.json"])
        .env(ZSTD_ABOVE_VAR, "1000000")
        .output()
        .expect("roster");
    support::expect_code(&out, &["plan", "--out", "plain.json"], 0);
    let plain: Value =
        serde_json::from_slice(&std::fs::read(w.path("plain.json")).expect("plan")).expect("JSON");
    assert_eq!(plain["summary"]["add"], 3);

    let shown: Value =
        serde_json::from_str(&w.ok(&["show", "plan.json", "--format", "json"], 0)).expect("JSON");
    assert_eq!(
        actions(&shown),
        [
            "add user alice planned",
            "add user bob planned",
            "add user carol planned"
        ]
    );
    assert_eq!(shown["actions"][0]["changes"][0]["before"], Value::Null);
    let human = w.ok(&["show", "plan.json"], 0);
    assert!(
        human.contains("  + user alice (Alice Liddell <alice@example.com>)"),
        "{human}"
    );
    let same = w.ok(&["plan", "--compare", "plan.json"], 0);
    assert!(same.contains("the same actions"), "{same}");

    let applied = w.ok(&["apply", "plan.json"], 0);
    assert!(applied.contains("3 applied, 0 failed"), "{applied}");
    assert_eq!(w.scim.users().len(), 3);
    let alice = w.user("alice");
    assert_eq!(alice["displayName"], "Alice Liddell");
    assert_eq!(phones(&w.user("carol")), ["+1 555 0102", "+1 555 0103"]);
    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn a_changed_attribute_becomes_exactly_one_update_and_a_rename_is_an_update() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    let bob_id = w.user("bob")["id"].clone();

    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@builders.example.com\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user bob planned"]);
    assert_eq!(
        plan["actions"][0]["changes"],
        serde_json::json!([{"field": "email", "before": "bob@example.com", "after": "bob@builders.example.com"}])
    );
    let human = w.ok(&["plan"], 0);
    assert!(
        human.contains(
            "  ~ user bob\n      ~ email: \"bob@example.com\" -> \"bob@builders.example.com\""
        ),
        "{human}"
    );

    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        ["update user robert planned"],
        "a rename is one update, never a delete plus an add"
    );
    let fields: Vec<&str> = plan["actions"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["username", "email"]);

    w.ok(&["apply", "--auto-approve"], 0);
    let robert = w.user("robert");
    assert_eq!(robert["id"], bob_id, "the same account, renamed");
    assert_eq!(emails(&robert)[0].0, "bob@builders.example.com");
    assert!(w.scim.user_by_username("bob").is_none());
    w.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_user_deleted_from_the_directory_is_left_alone_in_add_only_and_deactivated_in_remove_mode() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("carol"));

    // Three users is a tiny directory: losing one is a 33 % shrink, over the default 20 %.
    let out = w.roster(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the source shrank from 3 to 2 users"),
        "{}",
        text(&out.stderr)
    );
    // A limit written in the config is pointed at, as `roster validate` points at problems.
    w.write_config("max-source-shrink-percent 25");
    let out = w.roster(&["plan"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the limit is set here"), "{stderr}");
    assert!(
        stderr.contains("roster.kdl:") && stderr.contains("max-source-shrink-percent 25"),
        "{stderr}"
    );

    // add-only (the default): nothing to do, carol stays active.
    w.write_config("max-source-shrink-percent 50");
    w.ok(&["plan", "--detailed-exitcode"], 0);
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(active(&w.user("carol")));

    // remove mode within the cap: one remove, applied as active=false.
    w.write_config(
        r#"mode "remove"
    max-removes 1
    max-source-shrink-percent 50"#,
    );
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["remove user carol planned"]);
    let human = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(human.contains("  - user carol"), "{human}");
    w.ok(&["apply", "--auto-approve"], 0);
    let carol = w.user("carol");
    assert!(!active(&carol), "carol is deactivated, not deleted");
    assert!(active(&w.user("alice")) && active(&w.user("bob")));
    w.ok(&["plan", "--detailed-exitcode"], 0);

    // She comes back: roster reactivates the account it deactivated.
    w.slapd.add(&person(
        "carol",
        "Carol Danvers",
        Some("carol@example.com"),
        &[],
    ));
    let plan = w.plan_json(&[]);
    // A re-created entry has a new entryUUID: the account is re-keyed by username and reactivated.
    assert_eq!(actions(&plan), ["update user carol planned"]);
    w.ok(&["apply", "--auto-approve"], 0);
    let back = w.user("carol");
    assert!(active(&back));
    assert_eq!(back["id"], carol["id"]);
    assert_eq!(back["externalId"], owned(&w.entry_uuid("carol")));
}

#[test]
fn removes_over_the_cap_are_held_until_released() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("bob"));
    w.slapd.delete(&w.dn("carol"));
    w.write_config(
        r#"mode "remove"
    max-removes 1
    max-source-shrink-percent 100"#,
    );

    let human = w.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 3);
    assert!(
        human.contains("(held: 2 removes planned, max-removes is 1)"),
        "{human}"
    );
    assert!(human.contains("2 to remove (held)"), "{human}");
    let out = w.roster(&["apply", "plan.json", "--allow-removes", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--allow-removes 1 does not cover the 2 held"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        active(&w.user("bob")) && active(&w.user("carol")),
        "nothing applied"
    );

    let applied = w.ok(&["apply", "plan.json", "--allow-removes", "2"], 0);
    assert!(applied.contains("2 applied"), "{applied}");
    assert!(!active(&w.user("bob")) && !active(&w.user("carol")));
    assert!(active(&w.user("alice")));
}

#[test]
fn accounts_made_by_hand_are_never_removed_and_same_username_is_adopted() {
    let w = World::standard();
    w.scim.create_user(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "byhand", "displayName": "Made By Hand"
    }));
    w.scim.create_user(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "alice", "displayName": "Alice Liddell",
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}, {"value": "alice@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}]
    }));
    w.write_config(
        r#"mode "delete"
    max-removes 10"#,
    );
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        [
            "add user bob planned",
            "add user carol planned",
            "update user alice planned"
        ]
    );
    assert_eq!(plan["summary"]["unmanaged"], 1);
    let adopt = &plan["actions"][2];
    assert!(
        adopt["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("adopted"),
        "{adopt}"
    );
    assert_eq!(
        adopt["changes"],
        serde_json::json!([{"field": "externalId", "before": null, "after": w.entry_uuid("alice")}])
    );

    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.user("alice")["externalId"], owned(&w.entry_uuid("alice")));
    assert_eq!(
        emails(&w.user("alice")).len(),
        2,
        "the home address is kept"
    );
    let byhand = w.user("byhand");
    assert!(
        byhand.get("externalId").is_none() && active(&byhand),
        "unmanaged account untouched"
    );
    assert_eq!(w.scim.users().len(), 4);
}

#[test]
fn phones_are_additive() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    let alice = w.user("alice");
    // Someone adds a phone in the target; the directory gets a new one and a re-punctuated old one.
    w.scim.patch_user(
        alice["id"].as_str().expect("id"),
        serde_json::json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "+44 20 7946 0000", "type": "mobile"}]}]),
    );
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: +1 (555) 010-0\ntelephoneNumber: +1 555 0199\n",
        w.dn("alice")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(
        plan["actions"][0]["changes"],
        serde_json::json!([{"field": "phone", "before": null, "after": "+1 555 0199"}])
    );
    w.ok(&["apply", "--auto-approve"], 0);
    let mut got = phones(&w.user("alice"));
    got.sort();
    assert_eq!(got, ["+1 555 0100", "+1 555 0199", "+44 20 7946 0000"]);
}

fn assert_failed_cleanly(w: &World, out: &Output, expect: &str, secrets: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
    for secret in secrets {
        assert!(
            !stderr.contains(secret) && !text(&out.stdout).contains(secret),
            "secret leaked:\n{stderr}"
        );
    }
    assert!(w.scim.users().is_empty(), "nothing applied");
}

#[test]
fn failures_say_what_and_where_apply_nothing_and_leak_no_secret() {
    let mut w = World::standard();

    // Wrong bind password.
    w.ldap_password = "not-the-password-xyzzy".into();
    let out = w.roster(&["apply", "--auto-approve"]);
    assert_failed_cleanly(&w, &out, "invalid credentials", &["not-the-password-xyzzy"]);
    w.ldap_password = w.slapd.admin_password.clone();

    // Wrong SCIM token.
    w.scim_token = "wrong-token-plugh".into();
    let out = w.roster(&["apply", "--auto-approve"]);
    assert_failed_cleanly(
        &w,
        &out,
        "refused the credentials",
        &["wrong-token-plugh", &w.scim.token],
    );
    w.scim_token = w.scim.token.clone();

    // Unreachable LDAP server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("ldap://127.0.0.1:{closed}");
    w.write_config_with(&url, "", "");
    let out = w.roster(&["apply", "--auto-approve"]);
    assert_failed_cleanly(&w, &out, &url, &[&w.slapd.admin_password]);

    // A certificate the system does not trust.
    w.write_config_with(&w.slapd.ldaps_url, "", "");
    let out = w.roster(&["plan"]);
    assert_failed_cleanly(&w, &out, "certificate", &[&w.slapd.admin_password]);

    // ... and trusted with ca-file: the same server works.
    let ca = format!("ca-file \"{}\"", w.slapd.ca_file.display());
    w.write_config_with(&w.slapd.ldaps_url, &ca, "");
    w.ok(&["plan", "--detailed-exitcode"], 2);
}

#[test]
fn an_empty_source_is_refused_while_the_target_has_managed_accounts() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    for uid in ["alice", "bob", "carol"] {
        w.slapd.delete(&w.dn(uid));
    }
    w.write_config(
        r#"mode "delete"
    max-removes 100"#,
    );
    let out = w.roster(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no users"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(w.scim.users().len(), 3, "nothing deleted");
}

#[test]
fn validate_reports_config_problems_with_their_place() {
    let w = World::standard();
    std::fs::write(
        w.path("broken.kdl"),
        "source \"ldap\" {\n    url \"ldap://x\"\n    base-nd \"dc=x\"\n}\n",
    )
    .expect("write");
    let out = w.roster(&["-c", "broken.kdl", "validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.kdl") && stderr.contains("base-dn"),
        "{stderr}"
    );
    w.ok(&["validate"], 0);

    // A secret missing from this environment is a warning, not a failure, and names the node.
    let mut w = w;
    w.scim_token = String::new();
    let out = w.roster(&["validate"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: token: environment variable") && stderr.contains("is empty"),
        "{stderr}"
    );
}

/// The externalId roster writes for `key` under the default owner (the config's file stem).
fn owned(key: &str) -> String {
    format!("roster:roster:{key}")
}
