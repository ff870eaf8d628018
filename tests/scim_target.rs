//! The SCIM target against a real scim2-server, and against a scripted double for the
//! failures a real server does not produce on demand.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use roster::config::{HttpOptions, ScimTarget, Spanned};
use roster::model::{DesiredUser, FieldValue, TargetUser};
use roster::secret::SecretRef;
use roster::target::scim::ScimService;
use roster::target::{Target, TargetError, UserUpdate};
use serde_json::{Value, json};
use support::scim::{ScimServer, scripted_server};

const FIELDS: [&str; 3] = ["nickName", "title", "name.givenName"];

/// A service for `url`, the token read from a file (a file rather than an environment
/// variable: tests run in parallel threads, and setting the environment is not thread-safe).
fn service_with(url: &str, token: &str, tweak: impl FnOnce(&mut ScimTarget)) -> ScimService {
    let dir = tempfile::tempdir().expect("temporary directory");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let mut config = ScimTarget {
        url: Spanned::new(url.to_string(), (0, 0).into()),
        token: Spanned::new(SecretRef::File(token_file), (0, 0).into()),
        http: HttpOptions {
            timeout_secs: 10,
            ..HttpOptions::default()
        },
        concurrency: 4,
        rate_limit: None,
        page_size: Some(100),
        provider: Default::default(),
        compatibility: Default::default(),
    };
    tweak(&mut config);
    ScimService::new(&config, FIELDS.iter().map(|f| f.to_string()).collect()).expect("service")
}

fn service(server: &ScimServer) -> ScimService {
    service_with(&server.url, &server.token, |_| {})
}

fn desired(username: &str) -> DesiredUser {
    DesiredUser {
        key: format!("key-{username}"),
        username: username.to_string(),
        name: Some(format!("{username} Liddell")),
        email: Some(format!("{username}@example.com")),
        phones: vec!["+1 555 0100".into(), "+1 555 0101".into()],
        fields: BTreeMap::from([
            (
                "nickName".into(),
                FieldValue::Set(format!("{username}-nick")),
            ),
            ("title".into(), FieldValue::Set("Engineer".into())),
            ("name.givenName".into(), FieldValue::Set("Alice".into())),
        ]),
        active: true,
    }
}

fn list(target: &dyn Target) -> Vec<TargetUser> {
    let mut users = Vec::new();
    let count = target.list_users(&mut |u| users.push(u)).expect("listing");
    assert_eq!(count, users.len() as u64);
    users
}

#[test]
fn create_then_list_round_trips_every_field() {
    let server = ScimServer::start();
    let scim = service(&server);

    let created = scim.create_user(&desired("alice")).expect("create");
    assert!(!created.id.is_empty());
    assert_eq!(created.external_id.as_deref(), Some("key-alice"));
    assert_eq!(created.username, "alice");
    assert_eq!(created.name.as_deref(), Some("alice Liddell"));
    assert_eq!(created.email.as_deref(), Some("alice@example.com"));
    assert_eq!(created.phones, ["+1 555 0100", "+1 555 0101"]);
    assert!(created.active);
    assert_eq!(created.version.as_deref(), Some("W/\"1\""));
    let fields: Vec<(&str, &str)> = created
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("name.givenName", "Alice"),
            ("nickName", "alice-nick"),
            ("title", "Engineer")
        ]
    );

    assert_eq!(list(&scim), std::slice::from_ref(&created));
    let stored = server.user(&created.id);
    assert_eq!(
        stored["emails"],
        json!([{"value": "alice@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(stored["phoneNumbers"][0]["type"], "work");
    assert_eq!(stored["active"], true);
}

#[test]
fn listing_pages_through_every_user_exactly_once() {
    let server = ScimServer::start();
    for i in 0..25 {
        server.create_user(
            json!({ "userName": format!("user{i:02}"), "externalId": format!("k{i}") }),
        );
    }
    let scim = service_with(&server.url, &server.token, |c| c.page_size = Some(10));
    let mut names: Vec<String> = list(&scim).into_iter().map(|u| u.username).collect();
    names.sort();
    let expected: Vec<String> = (0..25).map(|i| format!("user{i:02}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn update_changes_only_what_it_names() {
    let server = ScimServer::start();
    let before = server.create_user(json!({
        "userName": "bob", "externalId": "key-bob", "displayName": "Bob", "nickName": "bobby",
        "emails": [{"value": "bob@home.example", "type": "home"},
                   {"value": "bob@old.example", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
    }));
    let id = before["id"].as_str().expect("id");
    let version = before["meta"]["version"].as_str().expect("version");
    let scim = service(&server);

    let update = UserUpdate {
        username: Some("robert".into()),
        name: Some("Robert".into()),
        email: Some("robert@example.com".into()),
        add_phones: vec!["+1 555 0199".into()],
        fields: BTreeMap::from([
            ("nickName".into(), FieldValue::Clear),
            ("title".into(), FieldValue::Set("Boss".into())),
        ]),
        active: Some(false),
        ..UserUpdate::default()
    };
    let new_version = scim
        .update_user(id, Some(version), &update)
        .expect("update");

    let after = server.user(id);
    assert_eq!(new_version.as_deref(), after["meta"]["version"].as_str());
    assert_ne!(new_version.as_deref(), Some(version));
    assert_eq!(after["userName"], "robert");
    assert_eq!(after["displayName"], "Robert");
    assert_eq!(after["externalId"], "key-bob");
    assert_eq!(
        after["emails"],
        json!([{"value": "bob@home.example", "type": "home"},
               {"value": "robert@example.com", "type": "work", "primary": true}])
    );
    let phones: Vec<&str> = after["phoneNumbers"]
        .as_array()
        .expect("phones")
        .iter()
        .filter_map(|p| p["value"].as_str())
        .collect();
    assert_eq!(phones, ["+1 555 0100", "+1 555 0199"]);
    assert_eq!(after.get("nickName"), None);
    assert_eq!(after["title"], "Boss");
    assert_eq!(after["active"], false);

    let read = scim.get_user(id).expect("get").expect("exists");
    assert_eq!(read.email.as_deref(), Some("robert@example.com"));
    assert!(!read.active);
    assert_eq!(read.version, new_version);
}

#[test]
fn a_stale_version_is_refused_and_nothing_changes() {
    let server = ScimServer::start();
    let scim = service(&server);
    let created = scim.create_user(&desired("carol")).expect("create");
    let old = created.version.clone().expect("version");
    server.patch_user(
        &created.id,
        json!([{"op": "replace", "path": "title", "value": "Changed by hand"}]),
    );
    let snapshot = server.user(&created.id);

    let rename = UserUpdate {
        username: Some("caroline".into()),
        ..UserUpdate::default()
    };
    let err = scim
        .update_user(&created.id, Some(&old), &rename)
        .expect_err("stale");
    assert!(matches!(err, TargetError::Stale { .. }), "{err}");
    assert!(err.to_string().contains("stale"), "{err}");

    // An e-mail change reads the account first and sees the new version there.
    let email = UserUpdate {
        email: Some("c@example.com".into()),
        ..UserUpdate::default()
    };
    let err = scim
        .update_user(&created.id, Some(&old), &email)
        .expect_err("stale");
    assert!(matches!(err, TargetError::Stale { .. }), "{err}");

    let err = scim
        .delete_user(&created.id, Some(&old))
        .expect_err("stale");
    assert!(matches!(err, TargetError::Stale { .. }), "{err}");
    assert_eq!(server.user(&created.id), snapshot);
}

#[test]
fn a_duplicate_create_is_a_conflict() {
    let server = ScimServer::start();
    let scim = service(&server);
    scim.create_user(&desired("dave")).expect("create");
    let err = scim.create_user(&desired("DAVE")).expect_err("duplicate");
    assert!(err.is_conflict(), "{err}");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(server.users().len(), 1);
}

#[test]
fn lookups_by_username_and_id() {
    let server = ScimServer::start();
    let scim = service(&server);
    let created = scim.create_user(&desired("Erin")).expect("create");
    server.create_user(json!({ "userName": "erin2" }));
    let found = scim.find_user("ERIN").expect("find").expect("found");
    assert_eq!(found.id, created.id);
    assert_eq!(scim.find_user("nobody").expect("find"), None);
    // Quotes and backslashes in the value are escaped inside the filter.
    assert_eq!(scim.find_user("a\"b\\c").expect("find"), None);
    assert_eq!(scim.get_user("no-such-id").expect("get"), None);
    let hand_made = scim.find_user("erin2").expect("find").expect("found");
    assert!(!hand_made.is_managed());
    assert!(hand_made.active, "an absent `active` reads as active");
}

#[test]
fn delete_is_idempotent() {
    let server = ScimServer::start();
    let scim = service(&server);
    let created = scim.create_user(&desired("frank")).expect("create");
    scim.delete_user(&created.id, created.version.as_deref())
        .expect("delete");
    assert_eq!(scim.get_user(&created.id).expect("get"), None);
    scim.delete_user(&created.id, None).expect("deleting again");
}

#[test]
fn a_wrong_token_is_unauthorized_and_no_token_is_shown() {
    let server = ScimServer::start();
    let wrong = "wrong-token-0123456789";
    let scim = service_with(&server.url, wrong, |_| {});
    let err = scim.list_users(&mut |_| {}).expect_err("refused");
    assert!(
        matches!(err, TargetError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    for text in [err.to_string(), format!("{err:?}"), format!("{scim:?}")] {
        assert!(
            !text.contains(wrong) && !text.contains(&server.token),
            "token shown in {text}"
        );
    }
}

// ---- Failures only a scripted double produces ----

fn user_json(id: &str) -> Value {
    json!({ "id": id, "userName": format!("user-{id}"), "meta": {"version": "W/\"1\""} })
}

fn list_json(total: u64, users: &[Value]) -> String {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total, "Resources": users })
    .to_string()
}

const SCRIPTED_TOKEN: &str = "scripted-token-42";

fn no_headers() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn a_server_error_is_retried() {
    let (url, requests) = scripted_server(vec![
        (
            500,
            no_headers(),
            r#"{"status":"500","detail":"hiccup"}"#.into(),
        ),
        (200, no_headers(), list_json(1, &[user_json("1")])),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let users = list(&scim);
    assert_eq!(users.len(), 1);
    let received = requests.all();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].target, "/Users?startIndex=1&count=100");
    assert_eq!(
        received[1].header("authorization"),
        Some("Bearer scripted-token-42")
    );
    assert!(
        received[1]
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("roster/"))
    );
}

#[test]
fn retry_after_is_honoured() {
    let (url, requests) = scripted_server(vec![
        (429, vec![("Retry-After".into(), "1".into())], String::new()),
        (200, no_headers(), user_json("7").to_string()),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let user = scim.get_user("7").expect("get").expect("found");
    assert_eq!(user.id, "7");
    let received = requests.all();
    assert_eq!(received.len(), 2);
    assert!(received[1].at - received[0].at >= Duration::from_secs(1));
}

#[test]
fn a_create_is_not_resent_after_a_server_error() {
    let (url, requests) = scripted_server(vec![
        (500, no_headers(), String::new()),
        (201, no_headers(), user_json("1").to_string()),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let err = scim.create_user(&desired("gina")).expect_err("500");
    assert!(
        matches!(err, TargetError::Http { status: 500, .. }),
        "{err}"
    );
    assert_eq!(requests.all().len(), 1);
}

#[test]
fn an_error_detail_reaches_the_message() {
    let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                       "scimType": "invalidValue", "detail": "userName must not contain spaces" });
    let (url, requests) = scripted_server(vec![(400, no_headers(), body.to_string())]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let err = scim.create_user(&desired("h i")).expect_err("400");
    let message = err.to_string();
    assert!(
        message.contains("userName must not contain spaces"),
        "{message}"
    );
    assert!(message.contains("invalidValue"), "{message}");
    let received = requests.all();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(
        received[0].header("content-type"),
        Some("application/scim+json")
    );
    let sent: Value = serde_json::from_str(&received[0].body).expect("JSON body");
    assert_eq!(sent["externalId"], "key-h i");
    assert_eq!(sent["name"]["givenName"], "Alice");
}

#[test]
fn a_body_that_is_not_json_is_an_invalid_response() {
    let (url, _requests) = scripted_server(vec![(200, no_headers(), "<html>login</html>".into())]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let err = scim.get_user("1").expect_err("not JSON");
    assert!(matches!(err, TargetError::InvalidResponse { .. }), "{err}");
}

#[test]
fn a_listing_that_ends_short_is_an_error() {
    let (url, _requests) = scripted_server(vec![
        (
            200,
            no_headers(),
            list_json(3, &[user_json("1"), user_json("2")]),
        ),
        (200, no_headers(), list_json(3, &[])),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |c| c.page_size = Some(2));
    let err = scim.list_users(&mut |_| {}).expect_err("incomplete");
    assert!(err.to_string().contains("2 of the 3"), "{err}");
}

#[test]
fn a_conditional_patch_sends_if_match_and_returns_the_new_etag() {
    // A 204 carries no resource: the change is read back with a GET.
    let read_back = json!({ "id": "a b", "userName": "x", "displayName": "New",
        "phoneNumbers": [{"value": "1"}] });
    let (url, requests) = scripted_server(vec![
        (204, vec![("ETag".into(), "W/\"4\"".into())], String::new()),
        (
            200,
            vec![("ETag".into(), "W/\"4\"".into())],
            read_back.to_string(),
        ),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |_| {});
    let update = UserUpdate {
        name: Some("New".into()),
        add_phones: vec!["1".into()],
        ..UserUpdate::default()
    };
    let version = scim
        .update_user("a b", Some("W/\"3\""), &update)
        .expect("update");
    assert_eq!(version.as_deref(), Some("W/\"4\""));
    let received = requests.all();
    assert_eq!(received[0].method, "PATCH");
    assert_eq!(received[0].target, "/Users/a%20b");
    assert_eq!(received[0].header("if-match"), Some("W/\"3\""));
    assert_eq!(received[1].method, "GET");
    let sent: Value = serde_json::from_str(&received[0].body).expect("JSON body");
    assert_eq!(
        sent["Operations"],
        json!([{"op": "replace", "path": "displayName", "value": "New"},
               {"op": "add", "path": "phoneNumbers", "value": [{"value": "1", "type": "work"}]}])
    );
}

#[test]
fn the_rate_limit_holds_across_threads() {
    let answers = (0..10)
        .map(|i| (200, no_headers(), user_json(&i.to_string()).to_string()))
        .collect();
    let (url, requests) = scripted_server(answers);
    let scim = service_with(&url, SCRIPTED_TOKEN, |c| c.rate_limit = Some(5.0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..5 {
                    scim.get_user("1").expect("get");
                }
            });
        }
    });
    // 10 requests at 5 per second: the 10th starts 9 intervals of 200 ms after the first.
    // (The first slot was booked when the service was built, a moment before `start`.)
    assert!(
        start.elapsed() >= Duration::from_millis(1750),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(requests.all().len(), 10);
}

#[test]
fn setup_problems_are_reported_before_any_request() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").expect("file");
    std::fs::write(dir.path().join("token"), "x").expect("token file");
    let config = |url: &str, ca_file: Option<std::path::PathBuf>| ScimTarget {
        url: Spanned::new(url.to_string(), (0, 0).into()),
        token: Spanned::new(SecretRef::File(dir.path().join("token")), (0, 0).into()),
        http: HttpOptions {
            timeout_secs: 10,
            ca_file: ca_file.map(|p| Spanned::new(p, (0, 0).into())),
            ..HttpOptions::default()
        },
        concurrency: 4,
        rate_limit: None,
        page_size: Some(100),
        provider: Default::default(),
        compatibility: Default::default(),
    };
    let err = ScimService::new(
        &config("https://example.com/scim/v2", Some(not_pem)),
        vec![],
    )
    .expect_err("bad CA");
    assert!(err.to_string().contains("ca-file"), "{err}");
    let err = ScimService::new(&config("https://u:secret@example.com/v2", None), vec![])
        .expect_err("credentials");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = ScimService::new(
        &config("https://example.com/v2", None),
        vec!["emails[type eq \"work\"]".into()],
    )
    .expect_err("bad field");
    assert!(
        err.to_string().contains("not a SCIM attribute path"),
        "{err}"
    );
    let missing = ScimTarget {
        token: Spanned::new(SecretRef::File(dir.path().join("absent")), (0, 0).into()),
        ..config("https://example.com/v2", None)
    };
    assert!(matches!(
        ScimService::new(&missing, vec![]),
        Err(TargetError::Secret(_))
    ));
    let scim = ScimService::new(&config("https://example.com/v2/", None), vec![]).expect("valid");
    assert_eq!(scim.describe(), "https://example.com/v2");
    assert!(matches!(
        scim.delete_user("", None),
        Err(TargetError::Setup(_))
    ));
}

#[test]
fn a_total_that_falls_while_paging_must_still_be_reached() {
    // Three users; the first is deleted between the pages, so the second page starts past
    // user 3 and comes back empty, stating 2. Stopping there would leave user 3 out.
    let (url, _requests) = scripted_server(vec![
        (
            200,
            no_headers(),
            list_json(3, &[user_json("1"), user_json("2")]),
        ),
        (200, no_headers(), list_json(2, &[])),
    ]);
    let scim = service_with(&url, SCRIPTED_TOKEN, |c| c.page_size = Some(2));
    let err = scim.list_users(&mut |_| {}).expect_err("a short listing");
    assert!(
        err.to_string().contains("ended after 2 of the 3 users"),
        "{err}"
    );
}
