//! Incremental runs read the SCIM target by change too: the real `roster` binary against a
//! real slapd and a real scim2-server, which filters on `meta.lastModified`. The requests
//! roster made are counted from scim2-server's own request log; every test asserts what the
//! target holds afterwards.

mod support;

use serde_json::json;
use support::slapd::person;
use support::world::*;

/// The listings of `/Users` scim2-server logged after `offset` bytes of its log: by change
/// (`meta.lastModified` filter), the total (a page of one), and whole (unfiltered pages).
#[derive(Debug, Default, PartialEq, Eq)]
struct Listings {
    by_change: usize,
    total: usize,
    whole: usize,
}

fn listings(w: &World, offset: usize) -> Listings {
    let log = w.scim.log();
    let mut seen = Listings::default();
    for line in log[offset..].lines() {
        let Some(at) = line.find("\"GET /v2/Users?") else {
            continue;
        };
        let request = &line[at..];
        if request.contains("filter=meta.lastModified") {
            seen.by_change += 1;
        } else if request.contains("filter=") {
            // A lookup by userName or externalId, not a listing.
        } else if request.contains("startIndex=1&count=1 ") {
            seen.total += 1;
        } else {
            seen.whole += 1;
        }
    }
    seen
}

/// A sync that creates the accounts, then a plan whose target snapshot holds them (the
/// sync's own was read before it created them): the base of the next run.
fn synced(w: &World, policy: &str) {
    w.write_config(&format!("{INCREMENTAL}\n    {policy}"));
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 3);
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), Vec::<String>::new());
    let note = note_starting(&plan, "incremental target read:");
    assert!(note.contains("3 accounts changed"), "{note}");
}

/// Moves the base run's read time so that `meta.lastModified gt` asks from now on: the
/// five minutes roster allows for clock skew would otherwise take in every account this
/// test made a moment ago.
fn ask_changes_from_now(w: &World) {
    // Filters ask by whole seconds: what came before is in an earlier one.
    next_second();
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    let at = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    db.execute(
        "UPDATE source_reads SET read_at = ?1 WHERE run_id = (SELECT max(run_id) FROM source_reads)",
        [at],
    )
    .expect("update");
    // scim2-server keeps microseconds: a change in the next second is after it.
    next_second();
}

fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

fn id_of(w: &World, username: &str) -> String {
    w.user(username)["id"].as_str().expect("id").to_string()
}

#[test]
fn an_account_changed_on_the_target_is_read_by_change_and_its_update_planned_back() {
    let w = World::standard();
    synced(&w, "");

    ask_changes_from_now(&w);
    let alice = id_of(&w, "alice");
    w.scim.patch_user(
        &alice,
        json!([{"op": "replace", "path": "displayName", "value": "Mallory"}]),
    );

    let offset = w.scim.log().len();
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update user alice planned"]);
    let note = note_starting(&plan, "incremental target read:");
    assert!(note.contains("1 account changed"), "{note}");
    assert!(note.contains("the target holds 3 accounts"), "{note}");
    assert_eq!(
        listings(&w, offset),
        Listings {
            by_change: 1,
            total: 1,
            whole: 0
        },
        "one filtered listing and one page of one for the total, no whole listing"
    );

    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(
        w.user("alice")["displayName"],
        "Alice Liddell",
        "the change made on the target was put back"
    );
    assert_eq!(w.user("bob")["displayName"], "Bob Builder");
}

#[test]
fn an_account_deleted_on_the_target_makes_the_counts_differ_and_the_target_is_listed_whole() {
    let w = World::standard();
    // One of three deleted by hand is more than the default target shrink guard allows;
    // every third read is complete.
    synced(
        &w,
        "max-target-shrink-percent 50\n    complete-every \"3 runs\"",
    );
    let bob = id_of(&w, "bob");
    w.scim.delete_user(&bob);

    let offset = w.scim.log().len();
    let plan = w.plan_json(&[]);
    assert_eq!(
        actions(&plan),
        ["add user bob planned"],
        "the whole listing shows bob gone"
    );
    let note = note_starting(&plan, "target listed whole:");
    assert!(
        note.contains("holds 2 accounts") && note.contains("holds 3"),
        "{note}"
    );
    let seen = listings(&w, offset);
    assert_eq!((seen.by_change, seen.total), (1, 1), "{seen:?}");
    assert!(seen.whole >= 1, "the target was listed whole: {seen:?}");

    // The third read since the complete one is complete, on both sides.
    let offset = w.scim.log().len();
    w.ok(&["sync", "--auto-approve"], 0);
    let seen = listings(&w, offset);
    assert_eq!((seen.by_change, seen.total), (0, 0), "{seen:?}");
    assert!(seen.whole >= 1, "{seen:?}");
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    let kind: String = db
        .query_row(
            "SELECT kind FROM source_reads ORDER BY run_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the sync's read");
    assert_eq!(kind, "complete", "complete-every forced a complete read");
    assert!(active(&w.user("bob")), "bob was created again");
    assert_eq!(w.scim.users().len(), 3);
}

#[test]
fn another_owners_accounts_listed_by_change_stay_theirs() {
    let w = World::standard();
    synced(&w, "");

    ask_changes_from_now(&w);
    // Made out of band by another config (owner "hr"): one on its own, one with the
    // username of a person the directory gains now.
    w.scim.create_user(json!({
        "userName": "zed",
        "displayName": "Zed Other",
        "externalId": "roster:hr:zed-key",
        "active": true,
    }));
    w.scim.create_user(json!({
        "userName": "dave",
        "displayName": "Dave of HR",
        "externalId": "roster:hr:dave-key",
        "active": true,
    }));
    w.slapd.add(&person(
        "dave",
        "Dave Lister",
        Some("dave@example.com"),
        &[],
    ));
    let carol = id_of(&w, "carol");
    w.scim.patch_user(
        &carol,
        json!([{"op": "replace", "path": "displayName", "value": "Carol D."}]),
    );

    let offset = w.scim.log().len();
    let plan = w.plan_json(&[]);
    let note = note_starting(&plan, "incremental target read:");
    assert!(note.contains("3 accounts changed"), "{note}");
    assert!(note.contains("the target holds 5 accounts"), "{note}");
    assert_eq!(listings(&w, offset).whole, 0);
    assert_eq!(
        actions(&plan),
        ["update user carol planned"],
        "dave is another owner's username: rejected, and nothing of hr's is touched"
    );
    assert!(
        notes(&plan)
            .iter()
            .any(|n| n.contains("2 accounts") && n.contains("owner \"hr\"")),
        "{:?}",
        notes(&plan)
    );
    assert_eq!(
        plan["summary"]["rejected"], 1,
        "dave's record is rejected: {plan}"
    );
    let db = rusqlite::Connection::open(w.path("state.db")).expect("state store");
    let reason: String = db
        .query_row(
            "SELECT reason FROM rejects WHERE run_id = (SELECT max(run_id) FROM rejects)",
            [],
            |r| r.get(0),
        )
        .expect("a reject");
    assert!(reason.contains("owner \"hr\" manages"), "{reason}");

    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.user("dave")["displayName"], "Dave of HR");
    assert_eq!(w.user("zed")["externalId"], "roster:hr:zed-key");
    assert_eq!(w.user("carol")["displayName"], "Carol Danvers");
}
