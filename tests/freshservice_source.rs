//! The Freshservice source against the API v2 double: paging by `Link` and to an empty page,
//! requesters and agents, deactivated people left out, 429 with `Retry-After`, 5xx retried or
//! failing the read, a refused API key, and requester groups.

mod support;

use std::time::Duration;

use roster::config::{FreshserviceList, FreshserviceSource, HttpOptions, Spanned};
use roster::model::MemberRef;
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::freshservice::FreshserviceHelpdesk;
use roster::source::{GroupQuery, Source, SourceError};
use serde_json::json;
use support::vendors::{Fault, Freshservice, FreshserviceSetup, fs_agent, fs_requester};

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

struct Key {
    dir: tempfile::TempDir,
}

impl Key {
    fn new() -> Key {
        Key {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn file(&self, name: &str, value: &str) -> Spanned<SecretRef> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).expect("write key");
        spanned(SecretRef::File(path))
    }
}

/// Requesters only, pages of 2.
fn config(double: &Freshservice, key: &Key) -> FreshserviceSource {
    FreshserviceSource {
        url: spanned(double.url().to_string()),
        api_key: key.file("api-key", &FreshserviceSetup::default().api_key),
        include: vec![FreshserviceList::Requesters],
        page_size: 2,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    }
}

fn read(config: FreshserviceSource) -> Result<Vec<SourceRecord>, SourceError> {
    let mut records = Vec::new();
    let count = FreshserviceHelpdesk::new(config).read_users(&[], &mut |r| records.push(r))?;
    assert_eq!(count, records.len() as u64);
    Ok(records)
}

fn origins(records: &[SourceRecord]) -> Vec<&str> {
    records.iter().map(|r| r.origin.as_str()).collect()
}

/// Five requesters, ids 101..=105; 104 deactivated.
fn five_requesters() -> Vec<serde_json::Value> {
    ["Ann", "Ben", "Cat", "Dan", "Eve"]
        .iter()
        .enumerate()
        .map(|(i, name)| fs_requester(101 + i as u64, name, "Smith", i != 3))
        .collect()
}

fn pages(double: &Freshservice, path: &str) -> Vec<String> {
    double
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.param("page").unwrap_or("?").to_string())
        .collect()
}

#[test]
fn requesters_are_read_by_following_link_headers() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        ..Default::default()
    });
    let key = Key::new();
    let records = read(config(&double, &key)).expect("read");
    assert_eq!(
        origins(&records),
        [
            "requesters/101",
            "requesters/102",
            "requesters/103",
            "requesters/105"
        ],
        "the deactivated requester is left out"
    );
    let ann = &records[0];
    assert_eq!(ann.values("id"), ["101"]);
    assert_eq!(ann.values("first_name"), ["Ann"]);
    assert_eq!(ann.values("primary_email"), ["ann@example.com"]);
    assert_eq!(ann.values("secondary_emails"), ["ann@example.org"]);
    assert_eq!(ann.values("work_phone_number"), ["+1 555 0200"]);
    assert!(
        !ann.attrs.contains_key("mobile_phone_number"),
        "null is not pushed"
    );
    assert_eq!(ann.values("active"), ["true"]);
    assert_eq!(ann.values("custom_fields.cost_center"), ["CC-7"]);

    // Three pages; the last has no Link header, which ends the list without a fourth request.
    assert_eq!(pages(&double, "/api/v2/requesters"), ["1", "2", "3"]);
    let first = &double.requests()[0];
    assert_eq!(first.param("per_page"), Some("2"));
}

#[test]
fn without_link_headers_pages_are_read_until_one_is_empty() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        link_header: false,
        ..Default::default()
    });
    let key = Key::new();
    let records = read(config(&double, &key)).expect("read");
    assert_eq!(records.len(), 4);
    assert_eq!(pages(&double, "/api/v2/requesters"), ["1", "2", "3", "4"]);
}

#[test]
fn requesters_and_agents_are_both_read_when_included() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        agents: vec![fs_agent(9001, "Ada", true), fs_agent(9002, "Bob", false)],
        ..Default::default()
    });
    let key = Key::new();
    let records = read(FreshserviceSource {
        include: vec![FreshserviceList::Requesters, FreshserviceList::Agents],
        ..config(&double, &key)
    })
    .expect("read");
    assert_eq!(records.len(), 5);
    let ada = records.last().expect("an agent");
    assert_eq!(ada.origin, "agents/9001");
    assert_eq!(ada.values("email"), ["ada@example.com"]);
}

#[test]
fn a_429_waits_for_retry_after() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        rate_limit_once: true,
        ..Default::default()
    });
    let key = Key::new();
    assert_eq!(read(config(&double, &key)).expect("read").len(), 4);
    let requests = double.requests();
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert_eq!(requests[1].param("page"), Some("1"), "the same page again");
}

#[test]
fn a_wrong_api_key_is_refused_clearly_and_never_shown() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        ..Default::default()
    });
    let key = Key::new();
    let wrong = "wrong-api-key-0f0f0f";
    let err = read(FreshserviceSource {
        api_key: key.file("wrong-key", wrong),
        ..config(&double, &key)
    })
    .expect_err("refused");
    assert!(
        matches!(err, SourceError::Refused { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(double.url()), "{message}");
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(message.contains("check api-key"), "{message}");
    for shown in [message, format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
    assert_eq!(double.requests().len(), 1, "a refusal is not retried");
}

#[test]
fn a_500_in_the_middle_of_paging_fails_the_read_as_incomplete() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        fault: Some(Fault {
            at: 2,
            times: u32::MAX,
        }),
        ..Default::default()
    });
    let key = Key::new();
    let mut received = 0;
    let err = FreshserviceHelpdesk::new(config(&double, &key))
        .read_users(&[], &mut |_| received += 1)
        .expect_err("incomplete");
    match &err {
        SourceError::Incomplete { url, read, message } => {
            assert!(url.contains("page=2"), "{url}");
            assert_eq!(*read, 2);
            assert!(message.contains("HTTP 500"), "{message}");
        }
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert_eq!(received, 2);
}

#[test]
fn a_transient_500_is_retried_and_the_read_completes() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        fault: Some(Fault { at: 2, times: 1 }),
        ..Default::default()
    });
    let key = Key::new();
    assert_eq!(read(config(&double, &key)).expect("read").len(), 4);
    assert_eq!(pages(&double, "/api/v2/requesters"), ["1", "2", "2", "3"]);
}

#[test]
fn requester_groups_are_read_with_their_members() {
    let double = Freshservice::start(FreshserviceSetup {
        requesters: five_requesters(),
        groups: vec![
            (
                json!({"id": 7, "name": "Finance", "type": "manual"}),
                vec![101, 102, 103],
            ),
            (json!({"id": 8, "name": "Empty", "type": "manual"}), vec![]),
            (json!({"id": 9, "name": "Ops", "type": "manual"}), vec![105]),
        ],
        ..Default::default()
    });
    let key = Key::new();
    let mut groups = Vec::new();
    FreshserviceHelpdesk::new(config(&double, &key))
        .read_groups(&GroupQuery::default(), &mut |g| groups.push(g))
        .expect("groups");
    let read: Vec<(&str, &str, Vec<MemberRef>)> = groups
        .iter()
        .map(|g| {
            (
                g.record.origin.as_str(),
                g.record.first("name").unwrap_or(""),
                g.members.clone(),
            )
        })
        .collect();
    let requester = |id: u64| MemberRef::Record(format!("requesters/{id}"));
    assert_eq!(
        read,
        [
            (
                "requester_groups/7",
                "Finance",
                vec![requester(101), requester(102), requester(103)]
            ),
            ("requester_groups/8", "Empty", vec![]),
            ("requester_groups/9", "Ops", vec![requester(105)]),
        ]
    );
    assert_eq!(groups[0].record.first("id"), Some("7"));
    assert_eq!(
        pages(&double, "/api/v2/requester_groups/7/members"),
        ["1", "2"],
        "members are paged too"
    );
}
