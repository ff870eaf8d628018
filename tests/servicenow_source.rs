//! The ServiceNow source against the Table API double: paging through short and empty pages
//! by `Link`, by `X-Total-Count` and by offset, the encoded query deciding who is read, 429
//! with `Retry-After`, 5xx retried or failing the read, refused credentials, and OAuth tokens
//! fetched, refreshed and replaced.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use roster::config::{HttpOptions, ServiceNowOAuth, ServiceNowSource, Spanned};
use roster::model::MemberRef;
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::servicenow::ServiceNowInstance;
use roster::source::{GroupQuery, Source, SourceError};
use serde_json::json;
use support::vendors::{Fault, ServiceNow, ServiceNowSetup, sn_user};

const ATTRS: &[&str] = &[
    "user_name",
    "name",
    "email",
    "phone",
    "mobile_phone",
    "active",
];

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

/// Secrets in files of their own: tests never change the process environment.
struct Secrets {
    dir: tempfile::TempDir,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn file(&self, name: &str, value: &str) -> Spanned<SecretRef> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, value).expect("write secret");
        spanned(SecretRef::File(path))
    }
}

/// Basic auth with the double's credentials, `active=true`, pages of 3.
fn config(double: &ServiceNow, secrets: &Secrets) -> ServiceNowSource {
    ServiceNowSource {
        url: spanned(double.url().to_string()),
        username: spanned("roster.sync".to_string()),
        password: secrets.file("password", &ServiceNowSetup::default().password),
        oauth: None,
        query: spanned("active=true".to_string()),
        page_size: 3,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    }
}

fn with_oauth(
    config: ServiceNowSource,
    secrets: &Secrets,
    client_secret: &str,
) -> ServiceNowSource {
    ServiceNowSource {
        oauth: Some(ServiceNowOAuth {
            client_id: spanned(ServiceNowSetup::default().client_id),
            client_secret: secrets.file("client-secret", client_secret),
        }),
        ..config
    }
}

fn read(source: &mut ServiceNowInstance) -> Result<Vec<SourceRecord>, SourceError> {
    let attrs: Vec<String> = ATTRS.iter().map(|a| a.to_string()).collect();
    let mut records = Vec::new();
    let count = source.read_users(&attrs, &mut |r| records.push(r))?;
    assert_eq!(count, records.len() as u64);
    Ok(records)
}

fn read_config(config: ServiceNowSource) -> Result<Vec<SourceRecord>, SourceError> {
    read(&mut ServiceNowInstance::new(config))
}

/// Reads to the end, keeping what reached the sink even when the read then fails.
fn read_all(config: ServiceNowSource) -> (Vec<SourceRecord>, Result<u64, SourceError>) {
    let attrs: Vec<String> = ATTRS.iter().map(|a| a.to_string()).collect();
    let mut records = Vec::new();
    let result = ServiceNowInstance::new(config).read_users(&attrs, &mut |r| records.push(r));
    (records, result)
}

/// The error of a read that must end short of the stated total, with its numbers.
fn short_read(result: Result<u64, SourceError>, read: u64, total: u64) -> String {
    let err = result.expect_err("a read short of X-Total-Count is incomplete");
    let message = err.to_string();
    assert!(
        matches!(err, SourceError::Incomplete { read: r, .. } if r == read),
        "{message}"
    );
    assert!(
        message.contains(&format!("counted {total} sys_user rows"))
            && message.contains(&format!("but sent {read}")),
        "{message}"
    );
    message
}

fn user_names(records: &[SourceRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.first("user_name").unwrap_or("?").to_string())
        .collect()
}

/// Ten users `u00`..`u09`, sys_ids in the same order; u03 and u07 inactive.
fn ten_users() -> Vec<serde_json::Value> {
    (0..10)
        .map(|i| {
            sn_user(
                &format!("{i:02}aa"),
                &format!("u{i:02}"),
                &format!("User {i}"),
                i != 3 && i != 7,
            )
        })
        .collect()
}

fn hidden(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pages_follow_the_link_header_through_short_pages() {
    // Pages of 3 over 8 active users; ACLs hide two of the first three, so page one has one
    // row. Every page is read, and since X-Total-Count still counts the hidden two, the read
    // is then refused as short: people the query selects were not seen.
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        hidden: hidden(&["00aa", "01aa"]),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let (records, result) = read_all(config(&double, &secrets));
    let message = short_read(result, 6, 8);
    assert!(
        message.contains("hidden from the integration account by ACLs"),
        "{message}"
    );
    assert_eq!(
        user_names(&records),
        ["u02", "u04", "u05", "u06", "u08", "u09"]
    );

    let alice = &records[0];
    assert_eq!(alice.origin, "sys_user/02aa");
    assert_eq!(alice.values("sys_id"), ["02aa"]);
    assert_eq!(alice.values("email"), ["u02@example.com"]);
    assert_eq!(
        alice.values("mobile_phone"),
        [""],
        "an empty field is pushed empty"
    );
    assert!(
        !alice.attrs.contains_key("title"),
        "only the fields asked for are read"
    );

    let requests = double.user_requests();
    assert_eq!(requests.len(), 3, "8 active users, pages of 3");
    let first = &requests[0];
    assert_eq!(
        first.param("sysparm_query"),
        Some("active=true^ORDERBYsys_id")
    );
    assert_eq!(first.param("sysparm_limit"), Some("3"));
    assert_eq!(first.param("sysparm_offset"), Some("0"));
    assert_eq!(first.param("sysparm_exclude_reference_link"), Some("true"));
    assert_eq!(
        first.param("sysparm_fields"),
        Some("sys_id,user_name,name,email,phone,mobile_phone,active")
    );
    let offsets: Vec<_> = requests
        .iter()
        .map(|r| r.param("sysparm_offset").unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        offsets,
        ["0", "3", "6"],
        "the offset advances by the limit, not by the rows"
    );
}

#[test]
fn without_links_the_offset_runs_to_x_total_count_through_an_empty_page() {
    // The whole second page (u04, u05, u06) is hidden: an empty page that is not the end.
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        hidden: hidden(&["04aa", "05aa", "06aa"]),
        link_header: false,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let (records, result) = read_all(config(&double, &secrets));
    short_read(result, 5, 8);
    assert_eq!(user_names(&records), ["u00", "u01", "u02", "u08", "u09"]);
    assert_eq!(double.user_requests().len(), 3);

    // The same paging with every row visible is a complete read.
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        link_header: false,
        ..Default::default()
    });
    let records = read_config(config(&double, &secrets)).expect("read");
    assert_eq!(records.len(), 8);
    assert_eq!(double.user_requests().len(), 3);
}

#[test]
fn a_last_page_that_drops_rows_the_total_counts_is_an_incomplete_read() {
    let secrets = Secrets::new();
    for link_header in [true, false] {
        let double = ServiceNow::start(ServiceNowSetup {
            users: ten_users(),
            drop_from_last_page: 1,
            link_header,
            ..Default::default()
        });
        let (records, result) = read_all(config(&double, &secrets));
        short_read(result, 7, 8);
        assert_eq!(records.len(), 7, "links: {link_header}");
    }
}

#[test]
fn without_links_or_a_total_the_read_ends_at_an_empty_page() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        hidden: hidden(&["01aa"]),
        link_header: false,
        total_count: false,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let records = read_config(config(&double, &secrets)).expect("read");
    assert_eq!(
        user_names(&records),
        ["u00", "u02", "u04", "u05", "u06", "u08", "u09"]
    );
    let offsets: Vec<_> = double
        .user_requests()
        .iter()
        .map(|r| r.param("sysparm_offset").unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        offsets,
        ["0", "3", "6", "9"],
        "the fourth page is the empty one"
    );
}

#[test]
fn the_query_decides_whether_inactive_users_are_read() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let active = read_config(config(&double, &secrets)).expect("read");
    assert_eq!(active.len(), 8);
    assert!(!user_names(&active).contains(&"u03".to_string()));
    assert!(active.iter().all(|r| r.first("active") == Some("true")));

    let everyone = read_config(ServiceNowSource {
        query: spanned(String::new()),
        ..config(&double, &secrets)
    })
    .expect("read");
    assert_eq!(everyone.len(), 10);
    let last = double.user_requests().pop().expect("a request");
    assert_eq!(last.param("sysparm_query"), Some("ORDERBYsys_id"));
}

#[test]
fn a_429_waits_for_retry_after() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        rate_limit_once: true,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let records = read_config(config(&double, &secrets)).expect("read");
    assert_eq!(records.len(), 8);
    let requests = double.user_requests();
    assert_eq!(requests[0].param("sysparm_offset"), Some("0"));
    assert_eq!(
        requests[1].param("sysparm_offset"),
        Some("0"),
        "the same page again"
    );
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
}

#[test]
fn a_wrong_password_is_refused_clearly_and_the_password_is_never_shown() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let wrong = "not-the-password-91x";
    let config = ServiceNowSource {
        password: secrets.file("wrong", wrong),
        ..config(&double, &secrets)
    };
    let err = read_config(config).expect_err("refused");
    assert!(
        matches!(err, SourceError::Refused { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(double.url()), "{message}");
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(message.contains("roster.sync"), "{message}");
    for shown in [message, format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
    assert_eq!(double.user_requests().len(), 1, "a refusal is not retried");
}

#[test]
fn a_500_in_the_middle_of_paging_fails_the_read_as_incomplete() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        fault: Some(Fault {
            at: 3,
            times: u32::MAX,
        }),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let attrs: Vec<String> = ATTRS.iter().map(|a| a.to_string()).collect();
    let mut received = 0;
    let err = ServiceNowInstance::new(config(&double, &secrets))
        .read_users(&attrs, &mut |_| received += 1)
        .expect_err("incomplete");
    match &err {
        SourceError::Incomplete { url, read, message } => {
            assert!(url.contains("sysparm_offset=3"), "{url}");
            assert_eq!(*read, 3);
            assert!(message.contains("HTTP 500"), "{message}");
            assert!(message.contains("gave up after 3 retries"), "{message}");
        }
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert_eq!(
        received, 3,
        "the first page was handed over before the failure"
    );
    assert!(err.to_string().contains("the read is incomplete"), "{err}");
    assert_eq!(
        double.user_requests().len(),
        1 + 4,
        "one page, then 1 + 3 tries"
    );
}

#[test]
fn a_transient_500_is_retried_and_the_read_completes() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        fault: Some(Fault { at: 3, times: 1 }),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let records = read_config(config(&double, &secrets)).expect("read");
    assert_eq!(records.len(), 8);
}

#[test]
fn a_next_link_to_another_host_is_not_followed() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        link_origin: Some("http://127.0.0.2:9".into()),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let err = read_config(config(&double, &secrets)).expect_err("refused link");
    assert!(matches!(err, SourceError::Incomplete { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("refusing to send the credentials there"),
        "{err}"
    );
}

#[test]
fn oauth_gets_a_token_and_refreshes_it_after_it_expires() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        token_lifetime: 1,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let setup = ServiceNowSetup::default();
    let mut source = ServiceNowInstance::new(with_oauth(
        config(&double, &secrets),
        &secrets,
        &setup.client_secret,
    ));
    assert_eq!(read(&mut source).expect("first read").len(), 8);
    assert_eq!(double.grants(), ["password"]);
    let token_request = double
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth_token.do")
        .expect("a token request");
    assert_eq!(
        token_request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = token_request.form();
    assert_eq!(form["grant_type"], "password");
    assert_eq!(form["username"], "roster.sync");
    assert!(
        double.user_requests().iter().all(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))),
        "table requests carry the token, not the password"
    );

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(read(&mut source).expect("second read").len(), 8);
    assert_eq!(double.grants(), ["password", "refresh_token"]);
}

#[test]
fn a_refused_refresh_falls_back_to_the_password_grant() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        token_lifetime: 1,
        refuse_refresh: true,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let setup = ServiceNowSetup::default();
    let mut source = ServiceNowInstance::new(with_oauth(
        config(&double, &secrets),
        &secrets,
        &setup.client_secret,
    ));
    read(&mut source).expect("first read");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(read(&mut source).expect("second read").len(), 8);
    assert_eq!(double.grants(), ["password", "refresh_token", "password"]);
}

#[test]
fn a_revoked_access_token_is_replaced_once() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let setup = ServiceNowSetup::default();
    let mut source = ServiceNowInstance::new(with_oauth(
        config(&double, &secrets),
        &secrets,
        &setup.client_secret,
    ));
    read(&mut source).expect("first read");
    double.revoke_access_tokens();
    assert_eq!(read(&mut source).expect("second read").len(), 8);
    assert_eq!(double.grants(), ["password", "refresh_token"]);
}

#[test]
fn a_wrong_client_secret_is_refused_by_the_token_endpoint_without_showing_it() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let wrong = "wrong-client-secret-4q";
    let err =
        read_config(with_oauth(config(&double, &secrets), &secrets, wrong)).expect_err("refused");
    let message = err.to_string();
    assert!(
        matches!(err, SourceError::Refused { status: 401, .. }),
        "{err:?}"
    );
    assert!(message.contains("/oauth_token.do"), "{message}");
    assert!(message.contains("client-secret"), "{message}");
    let password = ServiceNowSetup::default().password;
    for shown in [message, format!("{err:?}")] {
        assert!(
            !shown.contains(wrong) && !shown.contains(&password),
            "{shown}"
        );
    }
    assert!(double.user_requests().is_empty());
}

#[test]
fn a_missing_password_file_is_a_credential_error() {
    let double = ServiceNow::start(ServiceNowSetup::default());
    let secrets = Secrets::new();
    let config = ServiceNowSource {
        password: spanned(SecretRef::File(secrets.dir.path().join("absent"))),
        ..config(&double, &secrets)
    };
    let err = read_config(config).expect_err("no password");
    assert!(matches!(err, SourceError::Credential { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("ServiceNow password for the source"),
        "{err}"
    );
    assert!(
        double.requests().is_empty(),
        "nothing is sent without the password"
    );
}

#[test]
fn groups_and_memberships_are_read_page_by_page() {
    let groups: Vec<_> = (0..5)
        .map(|i| json!({"sys_id": format!("g{i}"), "name": format!("Group {i}"), "active": if i == 4 { "false" } else { "true" }}))
        .collect();
    let memberships: Vec<_> = (0..7)
        .map(|i| json!({"sys_id": format!("m{i}"), "group": format!("g{}", i % 3), "user": format!("{i:02}aa")}))
        .collect();
    let double = ServiceNow::start(ServiceNowSetup {
        groups,
        memberships,
        ..Default::default()
    });
    let secrets = Secrets::new();
    let started = Instant::now();
    let query = GroupQuery {
        query: "active=true".into(),
        attrs: vec!["sys_id".into(), "name".into()],
        ..GroupQuery::default()
    };
    let mut read = Vec::new();
    ServiceNowInstance::new(config(&double, &secrets))
        .read_groups(&query, &mut |g| read.push(g))
        .expect("groups");
    assert!(started.elapsed() < Duration::from_secs(5));
    let names: Vec<(&str, Option<&str>, &str)> = read
        .iter()
        .map(|g| {
            (
                g.record.origin.as_str(),
                g.record.first("sys_id"),
                g.record.first("name").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        (0..4)
            .map(|i| (
                [
                    "sys_user_group/g0",
                    "sys_user_group/g1",
                    "sys_user_group/g2",
                    "sys_user_group/g3"
                ][i],
                Some(["g0", "g1", "g2", "g3"][i]),
                ["Group 0", "Group 1", "Group 2", "Group 3"][i],
            ))
            .collect::<Vec<_>>(),
        "inactive groups are left out"
    );
    let members: Vec<usize> = read.iter().map(|g| g.members.len()).collect();
    assert_eq!(
        members,
        [3, 2, 2, 0],
        "seven memberships, joined to their groups"
    );
    assert_eq!(
        read[1].members,
        [
            MemberRef::Record("sys_user/01aa".into()),
            MemberRef::Record("sys_user/04aa".into())
        ],
        "members are the origins of their user records"
    );
    let tables: HashSet<_> = double.requests().into_iter().map(|r| r.path).collect();
    assert!(tables.contains("/api/now/table/sys_user_group"));
    assert!(tables.contains("/api/now/table/sys_user_grmember"));
}

/// Role grants: u01 has itil directly and through a group (one role), and admin only
/// requested; u02 has knowledge (its itil is being removed); u04 has itil; u05 none.
fn role_grants() -> Vec<serde_json::Value> {
    use support::vendors::sn_role;
    vec![
        sn_role("r1", "01aa", "itil", "active"),
        sn_role("r2", "01aa", "itil", "active"),
        sn_role("r3", "01aa", "admin", "requested"),
        sn_role("r4", "02aa", "knowledge", "active"),
        sn_role("r5", "02aa", "itil", "pending_delete"),
        sn_role("r6", "04aa", "itil", "active"),
    ]
}

fn with_roles(records: &mut ServiceNowInstance) -> Result<Vec<SourceRecord>, SourceError> {
    let mut attrs: Vec<String> = ATTRS.iter().map(|a| a.to_string()).collect();
    attrs.push("roles".into());
    let mut out = Vec::new();
    records.read_users(&attrs, &mut |r| out.push(r))?;
    Ok(out)
}

#[test]
fn roles_are_read_from_sys_user_has_role_when_the_mapping_names_them() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        role_grants: role_grants(),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let records =
        with_roles(&mut ServiceNowInstance::new(config(&double, &secrets))).expect("read");
    let roles = |origin: &str| -> Vec<String> {
        records
            .iter()
            .find(|r| r.origin == origin)
            .unwrap_or_else(|| panic!("{origin}"))
            .values("roles")
            .to_vec()
    };
    assert_eq!(
        roles("sys_user/01aa"),
        ["itil"],
        "active grants, each role once"
    );
    assert_eq!(roles("sys_user/02aa"), ["knowledge"]);
    assert!(roles("sys_user/05aa").is_empty(), "no grant, no roles");
    assert_eq!(roles("sys_user/04aa"), ["itil"]);
    let role_requests: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/now/table/sys_user_has_role")
        .collect();
    assert_eq!(role_requests.len(), 2, "six grants, pages of three");
    assert_eq!(
        role_requests[0].param("sysparm_fields"),
        Some("user,role.name")
    );
    assert!(
        double.user_requests()[0]
            .param("sysparm_fields")
            .is_some_and(|f| !f.split(',').any(|f| f == "roles")),
        "roles are not asked of sys_user"
    );

    // Without `roles` in the mapping, the table is not read at all.
    let plain = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        role_grants: role_grants(),
        ..Default::default()
    });
    read_config(config(&plain, &secrets)).expect("read");
    assert!(
        plain
            .requests()
            .iter()
            .all(|r| r.path != "/api/now/table/sys_user_has_role")
    );
}

#[test]
fn a_failed_roles_read_fails_the_user_read_before_any_user_is_handed_on() {
    let double = ServiceNow::start(ServiceNowSetup {
        users: ten_users(),
        role_grants: role_grants(),
        role_fault: Some(3),
        ..Default::default()
    });
    let secrets = Secrets::new();
    let mut attrs: Vec<String> = ATTRS.iter().map(|a| a.to_string()).collect();
    attrs.push("roles".into());
    let mut handed = 0;
    let err = ServiceNowInstance::new(config(&double, &secrets))
        .read_users(&attrs, &mut |_| handed += 1)
        .expect_err("roles page fails");
    assert!(
        matches!(&err, SourceError::Incomplete { url, .. } if url.contains("sys_user_has_role")),
        "{err:?}"
    );
    assert_eq!(handed, 0, "no user without its roles");
}
