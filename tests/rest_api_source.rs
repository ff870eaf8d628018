//! `source "rest"` against a local JSON API double: every paging style with a server that
//! caps its pages, every auth kind (OAuth with a revoked token renewed once), and each way a
//! read must fail rather than hand part of the directory on: a total not reached, an empty
//! page before the total, a looping cursor, an answer that is not JSON, records that are not
//! an array, refused credentials.

mod support;

use roster::config::{HttpOptions, RestApiSource, RestAuth, RestOAuth, RestPaging, Spanned};
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::rest_api::RestApi;
use roster::source::{Source, SourceError};
use support::rest_api::{ApiAuth, ApiFault, ApiSetup, RestApiDouble, Style, person};

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

fn five() -> Vec<serde_json::Value> {
    ["Ann", "Ben", "Cat", "Dan", "Eve"]
        .iter()
        .enumerate()
        .map(|(i, name)| person(101 + i as u64, name, "Lee"))
        .collect()
}

fn paging(style: Style) -> RestPaging {
    match style {
        Style::None => RestPaging::None,
        Style::Offset => RestPaging::Offset {
            offset: "offset".into(),
            limit: "limit".into(),
        },
        Style::Page => RestPaging::Page {
            page: "page".into(),
            size: "per_page".into(),
            first: 1,
        },
        Style::Cursor => RestPaging::Cursor {
            next: "/meta/next_cursor".into(),
            param: "cursor".into(),
            size: Some("limit".into()),
        },
        Style::NextLink => RestPaging::NextLink {
            next: "/links/next".into(),
            size: Some("limit".into()),
        },
        Style::LinkHeader => RestPaging::LinkHeader {
            size: Some("limit".into()),
        },
    }
}

/// Asks for pages of 10; the double caps them at 2.
fn config(double: &RestApiDouble, style: Style, total: bool) -> RestApiSource {
    RestApiSource {
        url: spanned(double.endpoint()),
        params: vec![("status".into(), "active".into())],
        auth: RestAuth::None,
        paging: paging(style),
        page_size: 10,
        records: spanned("/data".into()),
        total: total.then(|| spanned("/meta/total".into())),
        id: Some(spanned("/id".into())),
        rate_limit: None,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    }
}

fn read(config: RestApiSource) -> Result<Vec<SourceRecord>, SourceError> {
    let mut records = Vec::new();
    let count = RestApi::new(config).read_users(&[], &mut |r| records.push(r))?;
    assert_eq!(count, records.len() as u64);
    Ok(records)
}

fn start(style: Style, fault: ApiFault) -> RestApiDouble {
    RestApiDouble::start(ApiSetup {
        people: five(),
        style,
        fault,
        ..ApiSetup::default()
    })
}

fn origins(records: &[SourceRecord]) -> Vec<&str> {
    records.iter().map(|r| r.origin.as_str()).collect()
}

const ALL: [&str; 5] = [
    "people/101",
    "people/102",
    "people/103",
    "people/104",
    "people/105",
];

#[test]
fn every_paging_style_reads_every_record_from_a_server_that_caps_its_pages() {
    for style in [
        Style::Offset,
        Style::Page,
        Style::Cursor,
        Style::NextLink,
        Style::LinkHeader,
    ] {
        let double = start(style, ApiFault::None);
        let records =
            read(config(&double, style, true)).unwrap_or_else(|e| panic!("{style:?}: {e}"));
        assert_eq!(origins(&records), ALL, "{style:?}");
        assert_eq!(
            double.page_requests().len(),
            3,
            "{style:?}: three pages of two"
        );
        let first = &double.page_requests()[0];
        assert_eq!(
            first.param("status"),
            Some("active"),
            "{style:?}: params are sent"
        );
    }
    // A page that was asked for 10 and got 2 does not end the read; offsets advance by what
    // came back.
    let double = start(Style::Offset, ApiFault::None);
    read(config(&double, Style::Offset, false)).expect("read");
    let offsets: Vec<_> = double
        .page_requests()
        .iter()
        .map(|r| r.param("offset").unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        offsets,
        ["0", "2", "4", "5"],
        "offsets advance by the records received, to an empty page without a total"
    );
}

#[test]
fn paging_none_takes_the_one_answer() {
    let double = start(Style::None, ApiFault::None);
    let records = read(config(&double, Style::None, true)).expect("read");
    assert_eq!(records.len(), 5);
    assert_eq!(double.page_requests().len(), 1);
}

#[test]
fn nested_values_reach_the_mapping_by_dotted_names() {
    let double = start(Style::Offset, ApiFault::None);
    let records = read(config(&double, Style::Offset, true)).expect("read");
    let ann = &records[0];
    assert_eq!(ann.values("login"), ["ann"]);
    assert_eq!(ann.values("name.given"), ["Ann"]);
    assert_eq!(ann.values("name.family"), ["Lee"]);
    assert_eq!(ann.values("emails.value"), ["ann@example.com"]);
    assert_eq!(ann.values("emails.primary"), ["true"]);
    assert!(!ann.attrs.contains_key("department"), "null is not pushed");
}

#[test]
fn a_stated_total_that_the_records_do_not_reach_fails_the_read() {
    for style in [Style::Offset, Style::Page, Style::Cursor, Style::LinkHeader] {
        let double = start(style, ApiFault::TotalTooHigh);
        let err = read(config(&double, style, true)).expect_err("short of the total");
        let SourceError::Incomplete { read, message, .. } = &err else {
            panic!("{style:?}: {err:?}");
        };
        assert_eq!(*read, 5, "{style:?}");
        assert!(
            message.contains("stated 7 records") && message.contains("sent 5"),
            "{style:?}: {message}"
        );
    }
}

#[test]
fn an_empty_page_before_the_total_fails_the_read() {
    for style in [Style::Offset, Style::Page] {
        let double = start(style, ApiFault::EmptySecondPage);
        let err = read(config(&double, style, true)).expect_err("empty page");
        assert!(
            matches!(&err, SourceError::Incomplete { read: 2, message, .. } if message.contains("stated 5")),
            "{style:?}: {err:?}"
        );
    }
}

#[test]
fn a_looping_cursor_fails_the_read() {
    for style in [Style::Cursor, Style::NextLink, Style::LinkHeader] {
        let double = RestApiDouble::start(ApiSetup {
            people: (0..20)
                .map(|i| person(200 + i, &format!("P{i}"), "Loop"))
                .collect(),
            style,
            fault: ApiFault::Loop,
            total: false,
            ..ApiSetup::default()
        });
        let err = read(config(&double, style, false)).expect_err("loop");
        assert!(
            matches!(&err, SourceError::Incomplete { message, .. } if message.contains("asked for before")),
            "{style:?}: {err:?}"
        );
        assert!(
            double.page_requests().len() < 10,
            "{style:?}: stopped early"
        );
    }
}

#[test]
fn answers_that_are_not_json_or_hold_no_array_fail_the_read() {
    let double = start(Style::Offset, ApiFault::NotJson);
    let err = read(config(&double, Style::Offset, true)).expect_err("HTML");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 2, message, .. } if message.contains("not JSON") && message.contains("Maintenance")),
        "{err:?}"
    );
    let double = start(Style::Offset, ApiFault::NotAnArray);
    let err = read(config(&double, Style::Offset, true)).expect_err("object");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 2, message, .. } if message.contains("an object at \"/data\"")),
        "{err:?}"
    );
    // A records pointer that names nothing is the same failure, from the first page.
    let double = start(Style::Offset, ApiFault::None);
    let err = read(RestApiSource {
        records: spanned("/results".into()),
        ..config(&double, Style::Offset, true)
    })
    .expect_err("no such pointer");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 0, message, .. } if message.contains("nothing at \"/results\"")),
        "{err:?}"
    );
    // A total pointer that names nothing cannot check the read.
    let err = read(RestApiSource {
        total: Some(spanned("/meta/count".into())),
        ..config(&double, Style::Offset, true)
    })
    .expect_err("no such total");
    assert!(
        matches!(&err, SourceError::Incomplete { message, .. } if message.contains("no total at \"/meta/count\"")),
        "{err:?}"
    );
}

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
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        spanned(SecretRef::File(path))
    }
}

fn with_auth(api: ApiAuth) -> RestApiDouble {
    RestApiDouble::start(ApiSetup {
        people: five(),
        auth: api,
        ..ApiSetup::default()
    })
}

#[test]
fn basic_bearer_and_api_key_credentials_are_sent_and_refusals_say_so() {
    let secrets = Secrets::new();
    let double = with_auth(ApiAuth::Basic("sync".into(), "s3cret-pass".into()));
    let good = RestApiSource {
        auth: RestAuth::Basic {
            user: spanned("sync".into()),
            password: secrets.file("password", "s3cret-pass"),
        },
        ..config(&double, Style::Offset, true)
    };
    assert_eq!(read(good.clone()).expect("basic").len(), 5);
    let bad = RestApiSource {
        auth: RestAuth::Basic {
            user: spanned("sync".into()),
            password: secrets.file("wrong", "wrong-pass-1"),
        },
        ..good
    };
    let err = read(bad).expect_err("refused");
    let SourceError::Refused {
        status, message, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 401);
    assert!(message.contains("check the credentials"), "{message}");
    assert!(!err.to_string().contains("wrong-pass-1"), "{err}");

    let double = with_auth(ApiAuth::Bearer("tok-123456789".into()));
    let bearer = RestApiSource {
        auth: RestAuth::Bearer {
            token: secrets.file("token", "tok-123456789"),
        },
        ..config(&double, Style::Offset, true)
    };
    assert_eq!(read(bearer).expect("bearer").len(), 5);

    let double = with_auth(ApiAuth::ApiKey("X-API-Key".into(), "key-abcdefgh".into()));
    let key = RestApiSource {
        auth: RestAuth::ApiKey {
            header: spanned("X-API-Key".into()),
            key: secrets.file("key", "key-abcdefgh"),
        },
        ..config(&double, Style::Offset, true)
    };
    assert_eq!(read(key).expect("api key").len(), 5);
    let sent = &double.page_requests()[0];
    assert_eq!(sent.header("x-api-key"), Some("key-abcdefgh"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "the key goes in its own header only"
    );

    // No credentials where the API wants some.
    let double = with_auth(ApiAuth::Bearer("tok-123456789".into()));
    let err = read(config(&double, Style::Offset, true)).expect_err("none");
    assert!(
        matches!(&err, SourceError::Refused { message, .. } if message.contains("add an `auth` block")),
        "{err:?}"
    );
}

#[test]
fn oauth_client_credentials_get_a_token_and_renew_it_once_when_refused() {
    let secrets = Secrets::new();
    let double = RestApiDouble::start(ApiSetup {
        people: five(),
        auth: ApiAuth::OAuth(
            "roster".into(),
            "client-secret-1".into(),
            Some("people.read".into()),
        ),
        fault: ApiFault::RevokeFirstToken,
        ..ApiSetup::default()
    });
    let oauth = |secret: &str| {
        RestAuth::OAuth(RestOAuth {
            token_url: spanned(double.token_url()),
            client_id: spanned("roster".into()),
            client_secret: secrets.file(secret, secret),
            scope: Some("people.read".into()),
        })
    };
    let records = read(RestApiSource {
        auth: oauth("client-secret-1"),
        ..config(&double, Style::Offset, true)
    })
    .expect("read with a renewed token");
    assert_eq!(origins(&records), ALL);
    assert_eq!(
        double.tokens_issued(),
        2,
        "one grant, and one more after the revoked token was refused"
    );
    let err = read(RestApiSource {
        auth: oauth("wrong-secret-9"),
        ..config(&double, Style::Offset, true)
    })
    .expect_err("bad client");
    let SourceError::Refused { message, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!err.to_string().contains("wrong-secret-9"), "{err}");
}

/// The real binary: a `source "rest"` block in roster.kdl, read from the double into a real
/// scim2-server; asserts what the target holds.
#[test]
fn a_rest_source_syncs_into_scim2_server() {
    use support::scim::ScimServer;
    use support::{expect_code, roster_in};
    let double = RestApiDouble::start(ApiSetup {
        people: five(),
        style: Style::Cursor,
        auth: ApiAuth::ApiKey("X-API-Key".into(), "key-abcdefgh".into()),
        ..ApiSetup::default()
    });
    let scim = ScimServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"
state "state.db"
source "rest" {{
    url "{url}"
    param "status" "active"
    auth "api-key" {{
        header "X-API-Key"
        key env="E2E_REST_KEY"
    }}
    paging "cursor" next="/meta/next_cursor" param="cursor" size="limit"
    page-size 50
    records "/data"
    total "/meta/total"
    id "/id"
    rate-limit 50
    timeout 5
}}
target "scim" {{
    url "{scim}"
    token env="E2E_SCIM_TOKEN"
}}
user {{
    key "id"
    username "login"
    name "name.given"
    email "emails.value"
}}
"#,
        url = double.endpoint(),
        scim = scim.url,
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("write config");
    let env = [
        ("E2E_REST_KEY", "key-abcdefgh"),
        ("E2E_SCIM_TOKEN", scim.token.as_str()),
    ];
    let validate = roster_in(dir.path(), &["validate"], &env);
    expect_code(&validate, &["validate"], 0);
    let args = ["apply", "--auto-approve"];
    let out = roster_in(dir.path(), &args, &env);
    expect_code(&out, &args, 0);
    let mut names: Vec<String> = scim
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["ann", "ben", "cat", "dan", "eve"]);
    let ann = scim.user_by_username("ann").expect("ann");
    assert_eq!(
        ann["externalId"], "roster:roster:101",
        "the owner, then the key"
    );
    assert_eq!(ann["displayName"], "Ann");
    assert_eq!(ann["emails"][0]["value"], "ann@example.com");
}

#[test]
fn rest_blocks_are_checked_at_validate() {
    use std::path::Path;
    let rest_of = r#"
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "id"
    username "login"
}
"#;
    let parse = |source: &str| {
        roster::config::parse(Path::new("roster.kdl"), &format!("{source}{rest_of}"))
    };
    let config = parse(
        r#"source "rest" {
    url "https://itsm.example.com/api/people"
    param "type" "employee"
    auth "oauth" {
        token-url "https://itsm.example.com/oauth/token"
        client-id "roster"
        client-secret env="ITSM_SECRET"
        scope "people.read"
    }
    paging "page" size="limit" first=0
    records ""
    total "/count"
}
"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let roster::config::SourceConfig::Rest(rest) = &config.source else {
        panic!("not a rest source");
    };
    assert_eq!(rest.params, [("type".to_string(), "employee".to_string())]);
    assert_eq!(
        rest.paging,
        RestPaging::Page {
            page: "page".into(),
            size: "limit".into(),
            first: 0
        }
    );
    assert_eq!(rest.page_size, 100);
    assert!(matches!(&rest.auth, RestAuth::OAuth(o) if o.scope.as_deref() == Some("people.read")));
    assert!(
        config
            .secrets()
            .iter()
            .any(|(what, _)| *what == "client-secret")
    );

    let problems = |source: &str| -> Vec<String> {
        match parse(source) {
            Ok(_) => panic!("expected problems:\n{source}"),
            Err(error) => error.problems().iter().map(|p| p.to_string()).collect(),
        }
    };
    let found = problems(
        r#"source "rest" {
    url "https://itsm.example.com/api/people?status=active"
    auth "bearer" { token "inline-secret" }
    paging "cursor" param="cursor" limit="x"
    records "data"
    total ""
}
"#,
    );
    let all = found.join("\n");
    for expected in [
        "must not carry a query",
        "`token` holds a secret written inline",
        "this paging style needs `next=`",
        "`limit=` does not apply to paging \"cursor\"",
        "not a JSON Pointer",
        "an empty pointer names the whole answer",
    ] {
        assert!(all.contains(expected), "{expected:?} in:\n{all}");
    }
    let found = problems(
        r#"source "rest" {
    url "https://itsm.example.com/api/people"
    auth "api-key" { header "Content-Type"; key env="K" }
    paging "offest"
    records "/data"
}
"#,
    )
    .join("\n");
    assert!(found.contains("is set by roster itself"), "{found}");
    assert!(found.contains("unknown paging style \"offest\""), "{found}");
    let found = problems("source \"rest\" { url \"https://x.example.com/p\" }\n").join("\n");
    for missing in ["no `auth`", "no `paging`", "no `records`"] {
        assert!(found.contains(missing), "{missing:?} in:\n{found}");
    }
}
