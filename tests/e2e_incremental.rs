//! Incremental reads end to end: the real `roster` binary against a real slapd (change
//! tracking by `modifyTimestamp`) and a real scim2-server. Every test asserts what the target
//! holds afterwards, and that an incremental read removes nothing by absence.

mod support;

use support::slapd::person;
use support::world::*;

/// Rewrites one column of the newest recorded read, as damage or time would.
fn set_last_read(w: &World, column: &str, value: &str) {
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    db.execute(
        &format!(
            "UPDATE source_reads SET {column} = ?1 WHERE run_id = (SELECT max(run_id) FROM source_reads)"
        ),
        [value],
    )
    .expect("update");
}

/// The same second as the previous read's newest entry is read again (`>=`); waiting one
/// second keeps the counts in these tests exact.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn incremental_reads_patch_changes_and_adds_and_never_remove_by_absence() {
    let w = World::standard();
    w.write_config(INCREMENTAL);

    let first = w.plan_json(&[]);
    assert_eq!(
        note_starting(&first, "complete read:"),
        "complete read: there is no earlier good read to start from"
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 3);

    next_second();
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@builders.example.com\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user bob planned"]);
    // The entries of the cookie's own second are read again (`>=`): all three were added in
    // it, and an unchanged record read again changes nothing.
    let note = note_starting(&plan, "incremental read:");
    assert!(note.contains("changed records and 0 deletes"), "{note}");
    // The cookie moved on to bob's change: now only that second is read again.
    let human = w.ok(&["plan"], 0);
    assert!(
        human.contains("Note: incremental read: 1 changed record and 0 deletes"),
        "{human}"
    );

    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(
        emails(&w.user("bob"))[0].0,
        "bob@builders.example.com",
        "the incremental update reached the target"
    );

    next_second();
    w.slapd.add(&person(
        "dave",
        "Dave Lister",
        Some("dave@example.com"),
        &[],
    ));
    w.slapd.delete(&w.dn("carol"));
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        ["add user dave planned"],
        "carol's delete leaves no entry to find by timestamp: nothing is removed"
    );
    assert!(
        note_starting(&plan, "incremental read:").contains("nothing is removed for being absent")
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.user("dave")["displayName"], "Dave Lister");
    assert!(
        active(&w.user("carol")),
        "carol stays until a complete read"
    );
    assert!(active(&w.user("alice")) && active(&w.user("bob")));

    // A complete read sees the delete (one of four is more than the default shrink limit).
    w.write_config("mode \"remove\"\n    max-removes 5\n    max-source-shrink-percent 50");
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["remove user carol planned"]);
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(!active(&w.user("carol")), "the complete read removed carol");
    assert!(active(&w.user("dave")));
}

#[test]
fn a_damaged_old_or_foreign_cookie_falls_back_to_a_complete_read_and_says_why() {
    let w = World::standard();
    w.write_config(INCREMENTAL);
    w.ok(&["sync", "--auto-approve"], 0);

    set_last_read(&w, "cookie", "ldap-modify-timestamp:garbage");
    let plan = w.plan_json(&[]);
    let note = note_starting(&plan, "complete read:");
    assert!(
        note.contains("cannot be used") && note.contains("not a GeneralizedTime"),
        "{note}"
    );
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));

    set_last_read(&w, "read_at", "2000-01-01T00:00:00+00:00");
    let note = note_starting(&w.plan_json(&[]), "complete read:");
    assert!(
        note.contains("more than max-incremental-age \"7d\""),
        "{note}"
    );

    set_last_read(&w, "server", "ldap://elsewhere ou=People=another-uuid");
    let note = note_starting(&w.plan_json(&[]), "complete read:");
    assert!(note.contains("is not the one the last good read"), "{note}");

    // Each fallback was a complete read that kept a fresh cookie: the next read is incremental.
    let plan = w.plan_json(&[]);
    assert!(note_starting(&plan, "incremental read:").contains("0 deletes"));

    // Another server behind the source (another URL): its changes do not continue the cookie.
    let other = support::slapd::Slapd::start();
    w.write_config_with(&other.url, "", INCREMENTAL);
    let out = w.roster(&["-v", "plan", "--format", "json"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("complete read: the source is {} now", other.url)),
        "{stderr}"
    );
    assert!(
        stderr.contains("refusing to plan"),
        "the empty other server is read whole, and refused as empty: {stderr}"
    );
    assert_eq!(w.scim.users().len(), 3, "nothing was applied");
    assert!(w.scim.users().iter().all(active));
}

#[test]
fn incremental_is_a_flag_too_and_a_changed_config_reads_everything_again() {
    let w = World::standard();
    w.ok(&["sync", "--auto-approve"], 0);

    // The last good read kept no cookie (the policy read complete): --incremental reads
    // whole once, keeping one.
    let plan = w.plan_json(&["--incremental"]);
    assert_eq!(
        note_starting(&plan, "complete read:"),
        format!(
            "complete read: the last good read (run {}) kept no cookie",
            plan_run(&w) - 1
        )
    );
    next_second();
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice Pleasance Liddell\n",
        w.dn("alice")
    ));
    let plan = w.plan_json(&["--incremental"]);
    assert_eq!(actions(&plan), ["update user alice planned"]);
    assert!(note_starting(&plan, "incremental read:").contains("0 deletes"));

    w.write_config("max-removes 1");
    let plan = w.plan_json(&["--incremental"]);
    assert!(note_starting(&plan, "complete read:").contains("the config changed"));
    w.ok(&["sync", "--auto-approve", "--incremental"], 0);
    assert_eq!(w.user("alice")["displayName"], "Alice Pleasance Liddell");

    let refused = w.roster(&["apply", "plan.json", "--incremental"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("--incremental cannot change a saved plan"));
}

/// The id of the newest run.
fn plan_run(w: &World) -> i64 {
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    db.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .expect("runs")
}
