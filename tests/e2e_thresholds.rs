//! Thresholds per kind, releases per kind, grace periods, drip removals and initial loads,
//! end to end against real slapd and scim2-server: each test asserts what the target holds
//! after every step, so that a rule that stopped holding would show as a changed account.

mod support;

use serde_json::Value;
use support::slapd::person;
use support::world::*;

/// The users in the target, by username, with whether each is active.
fn accounts(w: &World) -> Vec<(String, bool)> {
    let mut users: Vec<(String, bool)> = w
        .scim
        .users()
        .iter()
        .map(|u| (u["userName"].as_str().unwrap_or("").to_string(), active(u)))
        .collect();
    users.sort();
    users
}

fn active_count(w: &World) -> usize {
    accounts(w).iter().filter(|(_, a)| *a).count()
}

fn held_by(plan: &Value, username: &str) -> String {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["username"] == username)
        .and_then(|a| a["held_by"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn reason(plan: &Value, username: &str) -> String {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["username"] == username)
        .and_then(|a| a["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Runs roster expecting a failure; returns stderr.
fn refused(w: &World, args: &[&str]) -> String {
    let out = w.roster(args);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{args:?} succeeded:\n{stderr}");
    stderr
}

fn cfg(policy: &str) -> Cfg<'_> {
    Cfg {
        key: "uid",
        policy,
        ..Cfg::default()
    }
}

#[test]
fn each_kind_is_held_over_its_cap_and_released_only_by_its_own_flag() {
    let w = World::standard();
    w.write(&cfg("max-adds 2"));
    w.ok(&["plan", "--out", "adds.json"], 0);
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("adds.json")).expect("plan"))
            .expect("JSON");
    assert_eq!(held_by(&plan, "alice"), "3 adds planned, max-adds is 2");
    // Too small a release, or another kind's flag, releases nothing.
    let stderr = refused(&w, &["apply", "adds.json", "--allow-adds", "2"]);
    assert!(
        stderr.contains("--allow-adds 2 does not cover the 3 held adds"),
        "{stderr}"
    );
    let out = w.ok(&["apply", "adds.json", "--allow-removes", "3"], 0);
    assert!(out.contains("--allow-adds 3"), "{out}");
    assert!(accounts(&w).is_empty(), "{:?}", accounts(&w));
    w.ok(&["apply", "adds.json", "--allow-adds", "3"], 0);
    assert_eq!(active_count(&w), 3);

    // Deletes under their own cap: max-removes would let them through, max-deletes does not.
    w.write(&cfg(
        "mode \"delete\"\n    max-removes 10\n    max-deletes 1\n    max-source-shrink-percent 100",
    ));
    w.slapd.delete(&w.dn("alice"));
    w.slapd.delete(&w.dn("bob"));
    w.ok(&["plan", "--out", "deletes.json"], 0);
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("deletes.json")).expect("plan"))
            .expect("JSON");
    assert_eq!(held_by(&plan, "bob"), "2 deletes planned, max-deletes is 1");
    w.ok(&["apply", "deletes.json", "--allow-removes", "2"], 0);
    assert_eq!(
        accounts(&w).len(),
        3,
        "--allow-removes does not release deletes"
    );
    w.ok(&["apply", "deletes.json", "--allow-deletes", "2"], 0);
    assert_eq!(accounts(&w), [("carol".to_string(), true)]);

    // Updates, and max-changes over all kinds together.
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Carol Marvel\n",
        w.dn("carol")
    ));
    w.slapd
        .add(&person("dave", "Dave Grohl", Some("dave@example.com"), &[]));
    w.write(&cfg("max-changes 1"));
    let plan = w.plan_json(&["--out", "changes.json"]);
    assert_eq!(
        held_by(&plan, "carol"),
        "2 changes planned, max-changes is 1"
    );
    w.ok(
        &[
            "apply",
            "changes.json",
            "--allow-updates",
            "1",
            "--allow-adds",
            "1",
        ],
        0,
    );
    assert_eq!(w.user("carol")["displayName"], "Carol Marvel");
    assert!(active(&w.user("dave")));
}

#[test]
fn a_release_edited_into_a_signed_plan_is_refused_at_apply_by_the_same_caps() {
    const KEY_VAR: &str = "E2E_PLAN_SIGNING_KEY";
    const KEY: &str = "a signing key of some length";
    let w = World::standard();
    w.write(&cfg("max-adds 1"));
    let path = w.path("roster.kdl");
    let mut config = std::fs::read_to_string(&path).expect("config");
    config.push_str(&format!("plan-signing-key env=\"{KEY_VAR}\"\n"));
    std::fs::write(&path, config).expect("config");
    let run = |args: &[&str]| w.command(args).env(KEY_VAR, KEY).output().expect("roster");
    let out = run(&["plan", "--out", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Someone with the key releases the held adds inside the plan and signs it again.
    let value: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("plan.json")).expect("plan"))
            .expect("JSON");
    let (mut plan, _) = roster::plan::contract::read_signed(value).expect("plan");
    // The state store knows this plan with its digest and would refuse the edit as an
    // edited file: it is applied from a store that never saw it, on the signature alone.
    plan.actions.iter_mut().for_each(|a| a.release());
    let seal = roster::plan::seal::seal(&plan, Some(KEY.as_bytes()));
    let signed = roster::plan::contract::signed_view(&plan, seal.signature.as_deref());
    std::fs::write(
        w.path("plan.json"),
        serde_json::to_string(&signed).expect("JSON"),
    )
    .expect("write");

    let out = run(&["--state", "fresh.db", "apply", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("3 planned where max-adds is 1") && stderr.contains("--allow-adds N"),
        "{stderr}"
    );
    assert!(
        accounts(&w).is_empty(),
        "nothing applied: {:?}",
        accounts(&w)
    );
    // The release the policy asks for, given at apply, is what lets them through.
    let out = run(&[
        "--state",
        "fresh.db",
        "apply",
        "plan.json",
        "--allow-adds",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(active_count(&w), 3);
}

#[test]
fn remove_after_marks_the_missing_waits_unmarks_the_returned_and_skips_failed_reads() {
    let w = World::standard();
    let runs = "mode \"remove\"\n    max-removes 10\n    max-source-shrink-percent 100\n    remove-after \"3 runs\"";
    w.write(&cfg(runs));
    w.ok(&["sync", "--auto-approve"], 0);
    let carol = person("carol", "Carol Danvers", Some("carol@example.com"), &[]);

    // Every run that reads the source counts, a plan too.
    w.slapd.delete(&w.dn("carol"));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["remove user carol skipped"]);
    assert!(
        reason(&plan, "carol").ends_with("; missing 1 of 3 runs"),
        "{plan}"
    );
    // A read that fails does not count as a run that missed her.
    let out = w
        .command(&["plan"])
        .env(LDAP_PASSWORD_VAR, "wrong")
        .output()
        .expect("roster");
    assert_ne!(out.status.code(), Some(0));
    let plan = w.plan_json(&[]);
    assert!(
        reason(&plan, "carol").ends_with("; missing 2 of 3 runs"),
        "{plan}"
    );
    // Back in the source: unmarked, nothing to do; gone again, the count starts again.
    w.slapd.add(&carol);
    assert!(actions(&w.plan_json(&[])).is_empty());
    w.slapd.delete(&w.dn("carol"));
    let plan = w.plan_json(&[]);
    assert!(
        reason(&plan, "carol").ends_with("; missing 1 of 3 runs"),
        "{plan}"
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(active(&w.user("carol")), "run 2 of 3: still there");
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(
        !active(&w.user("carol")),
        "missing 3 runs in a row: removed"
    );

    // A time: the mark keeps the first run that missed the account.
    w.slapd.delete(&w.dn("bob"));
    w.write(&cfg(
        "mode \"remove\"\n    max-removes 10\n    max-source-shrink-percent 100\n    remove-after \"72h\"",
    ));
    w.ok(&["sync", "--auto-approve"], 0);
    let plan = w.plan_json(&[]);
    let why = reason(&plan, "bob");
    assert!(
        why.contains("; missing since ") && why.ends_with(" UTC, removed after 72h"),
        "{why}"
    );
    assert!(active(&w.user("bob")));
    // 73 hours later (the store's mark moved back, as the clock would have moved on).
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state");
    let moved = db
        .execute(
            "UPDATE missing_accounts SET since = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-73 hours') WHERE key = 'bob'",
            [],
        )
        .expect("update");
    assert_eq!(moved, 1);
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(!active(&w.user("bob")), "72h passed: removed");
    assert!(active(&w.user("alice")));
}

#[test]
fn drip_drains_a_mass_departure_oldest_missing_first_never_more_than_the_cap_per_run() {
    let w = World::many(6);
    let drip = |max: u32| {
        format!(
            "mode \"remove\"\n    max-removes {max}\n    over-cap \"drip\"\n    max-source-shrink-percent 100"
        )
    };
    let policy = drip(2);
    w.write(&cfg(&policy));
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(active_count(&w), 6);

    // user000006 leaves first, while the cap lets nothing through: held, but marked.
    let policy0 = drip(0);
    w.write(&cfg(&policy0));
    w.slapd.delete(&w.dn("user000006"));
    w.ok(&["sync", "--auto-approve"], 3);
    assert_eq!(active_count(&w), 6);

    // Then three more leave: two go per run, the one missing longest first.
    w.write(&cfg(&policy));
    for uid in ["user000001", "user000002", "user000003"] {
        w.slapd.delete(&w.dn(uid));
    }
    let plan = w.plan_json(&[]);
    assert!(
        held_by(&plan, "user000003")
            .ends_with("; over-cap drip: the 2 missing longest go first, the rest wait"),
        "{plan}"
    );
    w.ok(&["sync", "--auto-approve"], 3);
    let gone: Vec<String> = accounts(&w)
        .into_iter()
        .filter(|(_, a)| !a)
        .map(|(u, _)| u)
        .collect();
    assert_eq!(gone, ["user000001", "user000006"]);
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(active_count(&w), 2, "{:?}", accounts(&w));
    assert!(active(&w.user("user000004")) && active(&w.user("user000005")));
}

#[test]
fn initial_loads_an_empty_target_once_and_refuses_a_second_time() {
    let w = World::standard();
    w.write(&cfg("max-adds \"10%\""));
    let plan = w.plan_json(&[]);
    assert_eq!(
        held_by(&plan, "alice"),
        "3 adds planned, max-adds is 10% of 0 accounts in the target"
    );
    let notes = plan["notes"].to_string();
    assert!(notes.contains("roster plan --initial"), "{plan}");

    let plan = w.plan_json(&["--initial"]);
    assert_eq!(plan["initial"], true);
    assert!(
        actions(&plan).iter().all(|a| a.ends_with(" planned")),
        "{plan}"
    );
    w.ok(&["plan", "--initial", "--out", "initial.json"], 0);
    w.ok(&["apply", "--initial", "--auto-approve"], 0);
    assert_eq!(active_count(&w), 3);

    let stderr = refused(&w, &["apply", "--initial", "--auto-approve"]);
    assert!(
        stderr.contains("--initial is for a first load")
            && stderr.contains("has 3 accounts roster manages"),
        "{stderr}"
    );
    // The first initial plan, saved before the load, cannot load twice either.
    refused(&w, &["apply", "initial.json"]);
    assert_eq!(accounts(&w).len(), 3);
    // A saved plan takes no --initial.
    let stderr = refused(&w, &["apply", "initial.json", "--initial"]);
    assert!(
        stderr.contains("--initial cannot change a saved plan"),
        "{stderr}"
    );
}
