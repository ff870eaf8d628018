//! Incremental reads by RFC 4533 content sync end to end: the real `roster` binary against a
//! real slapd with the `syncprov` overlay and a real scim2-server. Deletes are named by the
//! server, planned under the remove caps and applied; every doubt is a complete read.

mod support;

use support::slapd::person;
use support::world::*;

fn last_cookie(w: &World) -> String {
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    db.query_row(
        "SELECT cookie FROM source_reads WHERE run_id = (SELECT max(run_id) FROM source_reads)",
        [],
        |r| r.get(0),
    )
    .expect("a cookie")
}

fn set_last_cookie(w: &World, value: &str) {
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    db.execute(
        "UPDATE source_reads SET cookie = ?1 WHERE run_id = (SELECT max(run_id) FROM source_reads)",
        [value],
    )
    .expect("update");
}

#[test]
fn content_sync_reads_changes_adds_and_named_deletes() {
    const INCREMENTAL: &str = "mode \"remove\"\n    max-removes 0\n    read \"incremental\"";
    let w = World::with_syncprov(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("bob", "Bob Builder", Some("bob@example.com"), &[]),
        ("carol", "Carol Danvers", Some("carol@example.com"), &[]),
    ]);
    w.write_config(INCREMENTAL);
    let first = w.plan_json(&[]);
    assert!(note_starting(&first, "complete read:").contains("no earlier good read"));
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 3);
    assert!(last_cookie(&w).starts_with("ldap-content-sync:"));

    // A modify: one update, exactly one changed record (no second of timestamps read again).
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@builders.example.com\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user bob planned"]);
    assert!(
        note_starting(&plan, "incremental read:").contains("1 changed record and 0 deletes"),
        "{:?}",
        notes(&plan)
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(emails(&w.user("bob"))[0].0, "bob@builders.example.com");

    // An add: one add.
    w.slapd.add(&person(
        "dave",
        "Dave Lister",
        Some("dave@example.com"),
        &[],
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["add user dave planned"]);
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.user("dave")["displayName"], "Dave Lister");

    // A delete: the server names it, it is planned as a remove and held by the remove cap
    // (max-removes 0) until released, then applied.
    w.slapd.delete(&w.dn("carol"));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["remove user carol held"]);
    assert!(
        note_starting(&plan, "incremental read:").contains("0 changed records and 1 delete"),
        "{:?}",
        notes(&plan)
    );
    w.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 3);
    w.ok(&["apply", "plan.json", "--allow-removes", "1"], 0);
    assert!(
        !active(&w.user("carol")),
        "carol is deactivated in the target"
    );
    assert!(active(&w.user("alice")) && active(&w.user("bob")) && active(&w.user("dave")));

    // Nothing changed: nothing planned, the read still incremental.
    let plan = w.plan_json(&[]);
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));
    assert!(note_starting(&plan, "incremental read:").contains("0 changed records"));
}

#[test]
fn a_corrupt_or_refused_content_sync_cookie_is_a_complete_read_with_the_reason() {
    let w = World::with_syncprov(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("bob", "Bob Builder", Some("bob@example.com"), &[]),
        ("carol", "Carol Danvers", Some("carol@example.com"), &[]),
    ]);
    w.write_config(&format!("{INCREMENTAL}\n    max-source-shrink-percent 50"));
    w.ok(&["sync", "--auto-approve"], 0);

    set_last_cookie(&w, "ldap-content-sync:zz");
    let plan = w.plan_json(&[]);
    let note = note_starting(&plan, "complete read:");
    assert!(note.contains("cannot be used"), "{note}");
    assert!(actions(&plan).is_empty());

    // A cookie from before the session log: the server answers with a present phase, which
    // never removes anything; a complete read is made instead, and it sees the delete.
    let base = w.slapd.base_dn.clone();
    let old = format!(
        "ldap-content-sync:{}={}",
        hex(&format!("ou=People,{base}")),
        hex("rid=000,csn=19990101000000.000000Z#000000#000#000000")
    );
    let cookie = last_cookie(&w);
    assert!(cookie.starts_with("ldap-content-sync:"), "{cookie}");
    w.slapd.delete(&w.dn("bob"));
    set_last_cookie(&w, &old);
    let plan = w.plan_json(&[]);
    let note = note_starting(&plan, "complete read:");
    assert!(note.contains("present phase"), "{note}");
    assert_eq!(actions(&plan), ["remove user bob planned"]);
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn in_delete_mode_a_named_delete_deletes_the_account() {
    let w = World::with_syncprov(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("bob", "Bob Builder", Some("bob@example.com"), &[]),
    ]);
    w.write_config("mode \"delete\"\n    max-removes 1\n    read \"incremental\"");
    w.ok(&["sync", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("bob"));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["delete user bob planned"]);
    assert!(note_starting(&plan, "incremental read:").contains("1 delete"));
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(
        w.scim.user_by_username("bob").is_none(),
        "bob is deleted in the target"
    );
    assert!(active(&w.user("alice")));
}

#[test]
fn a_stale_cookie_answered_refresh_required_is_a_complete_read_that_sees_the_delete() {
    let w = World::with_syncprov_reload_hint(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("bob", "Bob Builder", Some("bob@example.com"), &[]),
        ("carol", "Carol Danvers", Some("carol@example.com"), &[]),
    ]);
    w.write_config(&format!("{INCREMENTAL}\n    max-source-shrink-percent 50"));
    w.ok(&["sync", "--auto-approve"], 0);

    // A cookie older than every entry: with the reload hint, syncprov answers 4096.
    let base = w.slapd.base_dn.clone();
    let stale = format!(
        "ldap-content-sync:{}={}",
        hex(&format!("ou=People,{base}")),
        hex("rid=000,csn=19990101000000.000000Z#000000#000#000000")
    );
    w.slapd.delete(&w.dn("bob"));
    set_last_cookie(&w, &stale);
    let plan = w.plan_json(&[]);
    let note = note_starting(&plan, "complete read:");
    assert!(note.contains("e-syncRefreshRequired"), "{note}");
    assert_eq!(
        actions(&plan),
        ["remove user bob planned"],
        "the complete read saw the delete"
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(!active(&w.user("bob")));
    assert!(active(&w.user("alice")) && active(&w.user("carol")));
}

/// Content sync names a deleted entry by its entryUUID, after the entries it sends. An entry
/// deleted and created again under the same DN between two reads is sent as the new entry
/// (a new entryUUID) and named as a delete of the old one: the delete is of the old entry,
/// and must not take out the new one, which the read just loaded at that DN.
#[test]
fn an_entry_deleted_and_created_again_under_its_dn_is_the_new_entry_not_a_remove() {
    let w = World::with_syncprov(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("bob", "Bob Builder", Some("bob@example.com"), &[]),
    ]);
    w.write_config(INCREMENTAL);
    w.ok(&["sync", "--auto-approve"], 0);
    let old = w.entry_uuid("bob");

    w.slapd.delete(&w.dn("bob"));
    w.slapd.add(&person(
        "bob",
        "Bob Rebuilt",
        Some("bob@rebuilt.example.com"),
        &[],
    ));
    let new = w.entry_uuid("bob");
    assert_ne!(old, new, "slapd gave the new entry a new entryUUID");
    let plan = w.plan_json(&[]);
    // The delete of the old entry took nothing out: its DN holds the new one.
    assert!(
        note_starting(&plan, "incremental read:").contains("1 changed record and 0 deletes"),
        "{:?}",
        notes(&plan)
    );
    // The account follows the new entry (re-keyed by its username), nothing is removed.
    assert_eq!(actions(&plan), ["update user bob planned"]);
    w.ok(&["sync", "--auto-approve"], 0);
    let bob = w.user("bob");
    assert!(active(&bob), "bob stays in service");
    assert_eq!(bob["externalId"], format!("roster:roster:{new}"));
    assert_eq!(bob["displayName"], "Bob Rebuilt");
    assert!(active(&w.user("alice")));

    // The next read agrees: nothing to do.
    let plan = w.plan_json(&[]);
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));
}
