//! Safety policies end to end, against real slapd and scim2-server: each test breaks if its
//! rule is broken, and asserts what the target holds afterwards.

mod support;

use serde_json::{Value, json};
use support::world::*;

fn ldif_modify(w: &World, uid: &str, change: &str) {
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\n{change}\n",
        w.dn(uid)
    ));
}

#[test]
fn an_alias_is_set_then_cleared_by_a_blank_value_and_left_alone_when_missing() {
    let w = World::standard();
    let cfg = Cfg {
        user: r#"alias "displayName" to="nickName""#,
        ..Cfg::default()
    };
    w.write(&cfg);
    ldif_modify(&w, "alice", "add: displayName\ndisplayName: Ally");
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.user("alice")["nickName"], "Ally");
    assert!(
        w.user("bob").get("nickName").is_none(),
        "no alias in the source, none set"
    );

    // Set by hand in the target, missing in the source: left alone.
    let bob = w.user("bob");
    w.scim.patch_user(
        bob["id"].as_str().expect("id"),
        json!([{"op": "replace", "path": "nickName", "value": "Bobby"}]),
    );
    // A whitespace-only alias in the source clears the stored one.
    ldif_modify(&w, "alice", "replace: displayName\ndisplayName:: IA==");
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user alice planned"]);
    assert_eq!(
        plan["actions"][0]["changes"],
        json!([{"field": "nickName", "before": "Ally", "after": null}])
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(
        w.user("alice").get("nickName").is_none(),
        "{}",
        w.user("alice")
    );
    assert_eq!(w.user("bob")["nickName"], "Bobby");
    w.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn on_invalid_fail_refuses_the_plan_listing_every_bad_record() {
    let w = World::standard();
    ldif_modify(&w, "alice", "replace: mail\nmail: alice-at-example");
    ldif_modify(&w, "bob", "delete: mail");
    w.write_config(r#"on-invalid "fail""#);
    let out = w.roster(&["apply", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 source records are invalid"), "{stderr}");
    assert!(
        stderr.contains(&w.dn("alice")) && stderr.contains("invalid email"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&w.dn("bob")) && stderr.contains("no email"),
        "{stderr}"
    );
    assert!(
        w.scim.users().is_empty(),
        "nothing planned, nothing applied"
    );

    // The default, skip, rejects them and syncs the rest.
    w.write_config("");
    let out = w.ok(&["apply", "--auto-approve"], 0);
    assert!(out.contains("2 rejected records"), "{out}");
    let users: Vec<Value> = w.scim.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["userName"], "carol");
}

#[test]
fn records_sharing_a_key_are_all_rejected_and_their_account_is_not_removed() {
    let w = World::standard();
    for (uid, number) in [("alice", "1"), ("bob", "2"), ("carol", "3")] {
        ldif_modify(
            &w,
            uid,
            &format!("add: employeeNumber\nemployeeNumber: {number}"),
        );
    }
    let cfg_policy = "mode \"delete\"\n    max-removes 10\n    max-source-shrink-percent 100";
    w.write(&Cfg {
        key: "employeeNumber",
        policy: cfg_policy,
        ..Cfg::default()
    });
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.user("bob")["externalId"], "roster:roster:2");

    // carol's record now claims bob's key: both are ambiguous, both rejected.
    ldif_modify(&w, "carol", "replace: employeeNumber\nemployeeNumber: 2");
    let plan = w.plan_json(&[]);
    assert_eq!(plan["summary"]["rejected"], 2, "{plan}");
    // Neither account is removed: bob's carries the rejected key, carol's the username of a
    // rejected record. The plan shows both as skipped, with the reason.
    assert_eq!(
        actions(&plan),
        ["delete user bob skipped", "delete user carol skipped"]
    );
    assert!(
        plan["actions"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected"),
        "{plan}"
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(active(&w.user("bob")) && active(&w.user("carol")));
    let shown = w.ok(&["show", "2"], 0);
    assert!(shown.contains("duplicate key 2"), "{shown}");
}

#[test]
fn an_account_deactivated_by_someone_else_is_not_updated() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    let bob = w.user("bob");
    w.scim.patch_user(
        bob["id"].as_str().expect("id"),
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    ldif_modify(&w, "bob", "replace: cn\ncn: Robert Builder");
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user bob skipped"]);
    assert_eq!(plan["summary"]["update"], 0);
    w.ok(&["plan", "--detailed-exitcode"], 0);
    w.ok(&["apply", "--auto-approve"], 0);
    let bob = w.user("bob");
    assert_eq!(bob["displayName"], "Bob Builder");
    assert!(!active(&bob));
}

#[test]
fn force_plans_on_an_empty_source_and_says_so() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    for uid in ["alice", "bob", "carol"] {
        w.slapd.delete(&w.dn(uid));
    }
    w.write_config("mode \"remove\"\n    max-removes 5");
    let out = w.roster(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let forced = w.ok(&["plan", "--force"], 0);
    assert!(
        forced.contains("--force overrode a safety check") && forced.contains("no users"),
        "{forced}"
    );
    assert!(
        forced.contains("Plan: 0 to add, 0 to update, 3 to remove"),
        "{forced}"
    );
}

#[test]
fn an_add_cap_holds_adds_until_forced() {
    let w = World::standard();
    w.write_config("max-adds 2");
    let out = w.roster(&["plan", "--out", "plan.json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(3));
    let held = text(&out.stdout);
    assert!(held.contains("3 adds planned, max-adds is 2"), "{held}");
    // The reviewer is shown which line holds them.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("3 actions are held by max-adds, which is set here")
            && stderr.contains("max-adds 2"),
        "{stderr}"
    );
    let out = w.ok(&["apply", "plan.json"], 0);
    assert!(out.contains("0 applied") && out.contains("3 held"), "{out}");
    assert!(w.scim.users().is_empty());
    w.ok(&["apply", "plan.json", "--force"], 0);
    assert_eq!(w.scim.users().len(), 3);
}

#[test]
fn a_source_whose_records_are_all_rejected_counts_as_empty() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    // A mapping gone wrong: every record lacks the key attribute.
    let policy = "mode \"delete\"\n    max-removes 100\n    max-source-shrink-percent 100";
    w.write(&Cfg {
        key: "employeeNumber",
        policy,
        ..Cfg::default()
    });
    let out = w.roster(&["apply", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no users") && stderr.contains("3 records were read but rejected"),
        "{stderr}"
    );
    assert_eq!(w.scim.users().len(), 3, "nothing deleted");
}

#[test]
fn a_target_listing_far_short_of_the_last_one_is_refused_instead_of_recreating_accounts() {
    let w = World::many(10);
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 10);

    // Four managed accounts vanish from the target's listing (deleted by hand here; a broken
    // listing looks the same from roster's side): 40% fewer than the last good read.
    for user in w.scim.users().iter().take(4) {
        w.scim.delete_user(user["id"].as_str().expect("id"));
    }
    let out = w.roster(&["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the target lists 6 accounts roster manages where 10 are expected"),
        "{stderr}"
    );
    let refused = w.roster(&["sync", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(w.scim.users().len(), 6, "nothing was re-created");

    // A human who knows they were deleted on purpose overrides it; the plan says so.
    let plan = w.plan_json(&["--force"]);
    assert_eq!(plan["summary"]["add"], 4);
    assert!(
        plan["forced"][0]
            .as_str()
            .is_some_and(|f| f.contains("max-target-shrink-percent")),
        "{plan}"
    );
    w.ok(&["apply", "--auto-approve", "--force"], 0);
    assert_eq!(w.scim.users().len(), 10);
    w.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn deletes_roster_applied_do_not_trip_the_target_guard() {
    let w = World::many(10);
    w.ok(&["sync", "--auto-approve"], 0);
    // Half the directory leaves and roster deletes their accounts (caps and shrink guard
    // opened for it): the next listing is half the size, as expected.
    for i in 1..=5 {
        w.slapd.delete(&w.dn(&format!("user{i:06}")));
    }
    w.write_config("mode \"delete\"\n    max-removes 10\n    max-source-shrink-percent 60");
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 5);
    w.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_percent_cap_holds_in_the_saved_plan_and_again_at_apply() {
    let w = World::many(20);
    w.ok(&["sync", "--auto-approve"], 0);
    for i in 1..=3 {
        w.slapd.delete(&w.dn(&format!("user{i:06}")));
    }
    // 3 of 20 managed accounts is 15 %: over 10 %, so all three are held.
    w.write_config(
        "mode \"remove\"\n    max-removes 100\n    max-remove-percent 10\n    max-source-shrink-percent 50",
    );
    let plan = w.plan_json(&["--out", "plan.json"]);
    assert_eq!(plan["summary"]["held"], 3, "{plan}");
    assert_eq!(
        plan["managed"], 20,
        "the base of the percent cap is recorded"
    );
    let out = w.ok(&["apply", "plan.json"], 0);
    assert!(out.contains("3 held"), "{out}");
    let active_users = w.scim.users().iter().filter(|u| active(u)).count();
    assert_eq!(active_users, 20, "nothing removed while held");
    w.ok(&["apply", "plan.json", "--allow-removes", "3"], 0);
    let active_users = w.scim.users().iter().filter(|u| active(u)).count();
    assert_eq!(active_users, 17);
}
