//! End to end with Active Directory's `disabled "inactive"`: the real `roster` binary reading
//! a real slapd whose entries carry the test schema's stand-ins for `userAccountControl` and
//! `accountExpires`, writing a real scim2-server. Disabled and expired accounts are kept
//! and synced as inactive accounts; an account enabled again is reactivated.

mod support;

use support::slapd::person;
use support::world::{Cfg, World, actions, active};

/// Seconds since 1970 as AD's `accountExpires` (100-ns ticks since 1601).
fn filetime(unix: i64) -> i64 {
    (unix + 11_644_473_600) * 10_000_000
}

/// A person with the Active Directory account attributes.
fn ad_person(uid: &str, uac: u32, expires: i64) -> String {
    let mut ldif = person(
        uid,
        &format!("{uid} Test"),
        Some(&format!("{uid}@example.com")),
        &[],
    )
    .replacen(
        "objectClass: inetOrgPerson\n",
        "objectClass: inetOrgPerson\nobjectClass: rosterTestAD\n",
        1,
    );
    ldif.pop();
    ldif.push_str(&format!(
        "userAccountControl: {uac}\naccountExpires: {expires}\n\n"
    ));
    ldif
}

fn set_uac(w: &World, uid: &str, uac: u32) {
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {uac}\n\n",
        w.dn(uid)
    ));
}

fn ad_world() -> World {
    let w = World::new(&[]);
    w.slapd.add(&ad_person("alice", 512, 0));
    w.slapd.add(&ad_person("bob", 514, 0)); // disabled
    w.slapd
        .add(&ad_person("carol", 512, filetime(1_000_000_000))); // expired in 2001
    w.write(&Cfg {
        tls: "active-directory #true\n    disabled \"inactive\"",
        ..Cfg::default()
    });
    w
}

#[test]
fn disabled_accounts_are_created_inactive_and_reactivated_when_enabled_again() {
    let w = ad_world();
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        [
            "add user alice planned",
            "add user bob planned",
            "add user carol planned"
        ],
        "out-of-service accounts are added (inactive), and adds are not held by the remove caps"
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(active(&w.user("alice")));
    assert!(!active(&w.user("bob")), "disabled: created inactive");
    assert!(!active(&w.user("carol")), "expired: created inactive");
    assert!(w.ok(&["plan"], 0).contains("No changes."));

    // bob is enabled again: roster created his account inactive, so it reactivates it.
    set_uac(&w, "bob", 512);
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user bob planned"]);
    assert_eq!(
        plan["actions"][0]["changes"][0],
        serde_json::json!({"field": "active", "before": "false", "after": "true"})
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(active(&w.user("bob")), "reactivated");
    assert!(!active(&w.user("carol")));
}

#[test]
fn a_disabled_account_is_deactivated_within_the_remove_caps_and_reactivated_when_enabled() {
    let w = ad_world();
    w.ok(&["apply", "--auto-approve"], 0);

    // alice is disabled in the directory. The default max-removes 0 holds the deactivation:
    // it counts with the removes.
    set_uac(&w, "alice", 514);
    let out = w.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 3);
    assert!(out.contains("~ active: \"true\" -> \"false\""), "{out}");
    assert!(
        out.contains("(held: 1 deactivation planned, max-removes is 0)"),
        "{out}"
    );
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user alice held"]);
    w.ok(&["apply", "plan.json", "--allow-removes", "1"], 0);
    assert!(!active(&w.user("alice")), "deactivated once released");
    assert!(w.ok(&["plan"], 0).contains("No changes."));

    // Enabled again: roster deactivated the account, so it reactivates it.
    set_uac(&w, "alice", 66048); // NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(active(&w.user("alice")), "reactivated");
}

#[test]
fn an_account_deactivated_by_someone_else_is_left_alone() {
    let w = ad_world();
    w.ok(&["apply", "--auto-approve"], 0);
    let alice = w.user("alice");
    let id = alice["id"].as_str().expect("id").to_string();
    w.scim.patch_user(
        &id,
        serde_json::json!([{"op": "replace", "path": "active", "value": false}]),
    );
    // Disabled and enabled again in the directory: the account is not roster's to reactivate.
    set_uac(&w, "alice", 514);
    assert!(w.ok(&["plan"], 0).contains("No changes."));
    set_uac(&w, "alice", 512);
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(!active(&w.user("alice")), "someone else deactivated it");
}
