//! Initial loads (`--initial`) by SCIM `/Bulk`, end to end with the real `roster` binary:
//! against scim2-server (which serves Bulk and enforces the limits it announces), and
//! against the quirks double for what a real server does not do on demand (an operation
//! refused, a 413 for a request the provider advertised it would take, a 500 after the
//! work was done). Each test checks what the target holds afterwards: every account once.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use support::scim::ScimServer;
use support::scim_double::{BulkQuirks, Quirks, ScimDouble, TOKEN, spc, spc_with_bulk};
use support::slapd::person;
use support::world::World;
use support::{expect_code, roster_in, text};

const TOKEN_VAR: &str = "E2E_DOUBLE_TOKEN";

/// scim2-server's own configuration, with Bulk limited to `max_operations` a request.
fn scim2_config(max_operations: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": max_operations, "maxPayloadSize": 1_048_576},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
    })
}

/// Usernames and how many accounts hold each.
fn usernames(users: &[Value]) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for user in users {
        let name = user["userName"].as_str().unwrap_or_default().to_string();
        *names.entry(name).or_insert(0) += 1;
    }
    names
}

#[test]
fn an_initial_load_creates_each_account_once_in_bulk_requests_of_max_operations() {
    let w = World::many_on(250, ScimServer::start_with_config(Some(&scim2_config(100))));
    let applied = w.ok(&["apply", "--initial", "--auto-approve"], 0);
    assert!(applied.contains("0 failed"), "{applied}");

    assert_eq!(
        w.scim.requests_logged("POST", "Bulk"),
        3,
        "ceil(250 / 100) requests:\n{}",
        w.scim.log()
    );
    assert_eq!(w.scim.requests_logged("POST", "Users"), 0);
    let users = w.scim.users();
    let names = usernames(&users);
    assert_eq!(names.len(), 250, "{names:?}");
    assert!(names.values().all(|&n| n == 1), "{names:?}");
    assert!(names.contains_key("user000001") && names.contains_key("user000250"));
    let user = w.user("user000137");
    assert_eq!(user["displayName"], "User 000137");
    assert_eq!(
        user["externalId"],
        format!("roster:roster:{}", w.entry_uuid("user000137"))
    );

    // Created as a single create creates, and owned: nothing to do the second time.
    let plan = w.plan_json(&[]);
    assert_eq!(plan["actions"], json!([]), "{plan}");

    // A later add, not an initial load: one POST of its own.
    w.slapd
        .add(&person("zoe", "Zoe Ng", Some("zoe@example.com"), &[]));
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.scim.requests_logged("POST", "Bulk"), 3);
    assert_eq!(w.scim.requests_logged("POST", "Users"), 1);
    assert_eq!(w.user("zoe")["displayName"], "Zoe Ng");
}

// The double, with a CSV export of `PEOPLE` people.

const PEOPLE: usize = 12;

fn export() -> String {
    let mut csv = String::from("uid,cn,mail\n");
    for i in 1..=PEOPLE {
        csv.push_str(&format!("u{i:02},User {i:02},u{i:02}@example.com\n"));
    }
    csv
}

fn setup(double: &ScimDouble, compatibility: &str) -> tempfile::TempDir {
    setup_with(double, compatibility, "")
}

fn setup_with(double: &ScimDouble, compatibility: &str, policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"
state "state.db"
source "csv" {{
    path "people.csv"
}}
target "scim" {{
    url "{url}"
    token env="{TOKEN_VAR}"
    {compatibility}
}}
user {{
    key "uid"
    username "uid"
    name "cn"
    email "mail"
}}
policy {{
    {policy}
}}
"#,
        url = double.url
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("write config");
    std::fs::write(dir.path().join("people.csv"), export()).expect("write export");
    dir
}

/// Runs roster; returns stdout and stderr together.
fn roster(dir: &Path, args: &[&str], code: i32) -> String {
    let out = roster_in(dir, args, &[(TOKEN_VAR, TOKEN)]);
    expect_code(&out, args, code);
    text(&out.stdout) + &text(&out.stderr)
}

fn initial_load(dir: &Path, code: i32) -> String {
    roster(dir, &["apply", "--initial", "--auto-approve"], code)
}

/// The bodies of the Bulk requests the double answered, in order.
fn bulk_bodies(double: &ScimDouble) -> Vec<Value> {
    double
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Bulk"))
        .map(|r| serde_json::from_str(&r.body).expect("a Bulk request is JSON"))
        .collect()
}

/// The Bulk requests the double answered with 200, as the number of operations each had.
fn bulk_requests(double: &ScimDouble) -> Vec<usize> {
    bulk_bodies(double)
        .iter()
        .map(|body| body["Operations"].as_array().map_or(0, Vec::len))
        .collect()
}

/// The userNames each Bulk request carried, request by request.
fn bulk_usernames(double: &ScimDouble) -> Vec<Vec<String>> {
    bulk_bodies(double)
        .iter()
        .map(|body| {
            body["Operations"]
                .as_array()
                .map(|ops| {
                    ops.iter()
                        .filter_map(|op| op["data"]["userName"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn single_creates(double: &ScimDouble) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Users"))
        .count()
}

/// Every one of the export's people is in the double, once, with roster's key.
fn all_created_once(double: &ScimDouble) {
    let users = double.users();
    let names = usernames(&users);
    assert_eq!(names.len(), PEOPLE, "{names:?}");
    assert!(names.values().all(|&n| n == 1), "{names:?}");
    for user in &users {
        let name = user["userName"].as_str().unwrap_or_default();
        assert_eq!(
            user["externalId"],
            format!("roster:roster:{name}"),
            "{user}"
        );
    }
}

fn nothing_to_do(dir: &Path) {
    let second = roster(dir, &["plan", "--detailed-exitcode"], 0);
    assert!(second.contains("No changes"), "{second}");
}

#[test]
fn requests_keep_to_max_operations_and_to_max_payload_size_as_sent() {
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(5, 1_000_000)),
        ..Quirks::default()
    });
    let dir = setup_with(&double, "", "group-all \"Everyone\"");
    initial_load(dir.path(), 0);
    let mut sent = bulk_requests(&double);
    sent.sort_unstable();
    assert_eq!(sent, [2, 5, 5], "requests run in parallel, in any order");
    assert_eq!(single_creates(&double), 0);
    all_created_once(&double);
    // The memberships took each new id from the journal, as after single creates.
    let groups = double.groups();
    let mut members: Vec<String> = groups[0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    members.sort();
    let mut ids: Vec<String> = double
        .users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    assert_eq!((groups.len(), members), (1, ids));
    nothing_to_do(dir.path());

    // A payload limit of about three creates: cut by size, every body under it.
    let limit = 1_000;
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(100, limit)),
        ..Quirks::default()
    });
    let dir = setup(&double, "");
    initial_load(dir.path(), 0);
    let sizes: Vec<usize> = double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/Bulk"))
        .map(|r| r.bytes.len())
        .collect();
    assert!(sizes.len() > 1, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= limit), "{sizes:?}");
    assert_eq!(bulk_requests(&double).iter().sum::<usize>(), PEOPLE);
    assert_eq!(single_creates(&double), 0);
    all_created_once(&double);
    nothing_to_do(dir.path());
}

#[test]
fn an_operation_refused_fails_only_its_own_add() {
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(100, 1_000_000)),
        bulk: BulkQuirks {
            refuse: vec![("u03".into(), 409), ("u07".into(), 400)],
            ..BulkQuirks::default()
        },
        ..Quirks::default()
    });
    let dir = setup(&double, "");
    let out = initial_load(dir.path(), 1);
    assert!(out.contains("2 failed"), "{out}");
    assert!(out.contains("already exists (HTTP 409)"), "{out}");
    assert!(out.contains("u07 is refused here"), "{out}");

    assert_eq!(bulk_requests(&double), [PEOPLE]);
    // The duplicate was looked for (to adopt it), and not created again alone.
    assert_eq!(single_creates(&double), 0);
    let names = usernames(&double.users());
    assert_eq!(names.len(), PEOPLE - 2, "{names:?}");
    assert!(!names.contains_key("u03") && !names.contains_key("u07"));

    // The two are still to add; the rest are roster's.
    let plan: Value = serde_json::from_str(&roster(dir.path(), &["plan", "--format", "json"], 0))
        .expect("plan JSON");
    let mut adds: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["username"].as_str())
        .collect();
    adds.sort_unstable();
    assert_eq!(adds, ["u03", "u07"], "{plan}");
}

#[test]
fn a_request_answered_413_is_halved_until_it_passes() {
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(10, 1_000_000)),
        bulk: BulkQuirks {
            too_large_above: Some(3),
            ..BulkQuirks::default()
        },
        ..Quirks::default()
    });
    let dir = setup(&double, "");
    initial_load(dir.path(), 0);
    let sent = bulk_requests(&double);
    assert!(
        sent.contains(&10),
        "the advertised size was tried: {sent:?}"
    );
    // What the double took: requests of at most 3 operations, every account once.
    let taken: usize = sent.iter().filter(|&&n| n <= 3).sum();
    assert_eq!(taken, PEOPLE, "{sent:?}");
    assert_eq!(single_creates(&double), 0);
    all_created_once(&double);
    nothing_to_do(dir.path());
}

#[test]
fn a_request_that_failed_after_the_work_was_done_makes_no_duplicate() {
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(5, 1_000_000)),
        bulk: BulkQuirks {
            fail_after_processing: Some(1),
            ..BulkQuirks::default()
        },
        ..Quirks::default()
    });
    let dir = setup(&double, "");
    let out = initial_load(dir.path(), 0);
    assert!(
        out.contains("HTTP 500") && out.contains("looked up before they are created"),
        "{out}"
    );
    // Not resent: each account went out in one request only, and exactly the accounts of
    // the failed (first) request were looked up, found and adopted as roster's own. How
    // many the first request carries depends on how far the journal had committed the
    // starts when it was sent, so the test reads it from the request itself.
    let sent = bulk_requests(&double);
    assert_eq!(sent.iter().sum::<usize>(), PEOPLE, "{sent:?}");
    let mut in_failed: Vec<String> = bulk_usernames(&double)
        .into_iter()
        .next()
        .expect("a first Bulk request");
    let mut looked_up: Vec<String> = double
        .requests()
        .iter()
        .filter_map(|r| {
            r.param("filter")?
                .strip_prefix("userName eq \"")?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .collect();
    in_failed.sort();
    looked_up.sort();
    assert!(!in_failed.is_empty());
    assert_eq!(looked_up, in_failed);
    assert_eq!(single_creates(&double), 0);
    all_created_once(&double);
    nothing_to_do(dir.path());
}

#[test]
fn without_bulk_an_initial_load_creates_one_account_a_request() {
    // The provider does not serve Bulk.
    let double = ScimDouble::start(Quirks {
        spc: Some(spc(true, true)),
        ..Quirks::default()
    });
    let dir = setup(&double, "");
    let out = roster(
        dir.path(),
        &["apply", "--initial", "--auto-approve", "-vv"],
        0,
    );
    assert!(
        out.contains("the adds of the initial plan go one request each"),
        "{out}"
    );
    assert!(bulk_requests(&double).is_empty());
    assert_eq!(single_creates(&double), PEOPLE);
    all_created_once(&double);

    // It does, and the config says not to use it.
    let double = ScimDouble::start(Quirks {
        spc: Some(spc_with_bulk(100, 1_000_000)),
        ..Quirks::default()
    });
    let dir = setup(&double, "compatibility {\n        bulk #false\n    }");
    initial_load(dir.path(), 0);
    assert!(bulk_requests(&double).is_empty());
    assert_eq!(single_creates(&double), PEOPLE);
    all_created_once(&double);
}
