//! `source "cherwell"` against the Cherwell REST API double: the password grant, search pages
//! to `totalRows`, filters, a revoked token renewed once, and the reads that must fail: a
//! total not reached, an empty page before it, a search that answers `hasError`, refused
//! credentials. One run of the real binary into scim2-server.

mod support;

use roster::config::{CherwellFilter, CherwellSource, HttpOptions, Spanned};
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::cherwell::CherwellServer;
use roster::source::{Source, SourceError};
use support::cherwell::{
    BUS_OB_ID, CLIENT_ID, CherwellDouble, CherwellFault, CherwellSetup, FIELD_STATUS, PASSWORD,
    USERNAME, customer,
};

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

struct Secrets(tempfile::TempDir);

impl Secrets {
    fn new() -> Secrets {
        Secrets(tempfile::tempdir().expect("temp dir"))
    }

    fn file(&self, value: &str) -> Spanned<SecretRef> {
        let path = self.0.path().join(value);
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        spanned(SecretRef::File(path))
    }
}

fn start(fault: CherwellFault) -> CherwellDouble {
    CherwellDouble::start(CherwellSetup {
        customers: vec![
            customer("r1", "ann", "Ann", "Active"),
            customer("r2", "ben", "Ben", "Active"),
            customer("r3", "cat", "Cat", "Inactive"),
            customer("r4", "dan", "Dan", "Active"),
            customer("r5", "eve", "Eve", "Active"),
            customer("r6", "fay", "Fay", "Active"),
        ],
        fault,
    })
}

fn config(double: &CherwellDouble, secrets: &Secrets, password: &str) -> CherwellSource {
    CherwellSource {
        url: spanned(double.url()),
        client_id: spanned(CLIENT_ID.into()),
        username: spanned(USERNAME.into()),
        password: secrets.file(password),
        business_object: spanned(BUS_OB_ID.into()),
        filters: vec![CherwellFilter {
            field_id: FIELD_STATUS.into(),
            operator: "eq".into(),
            value: "Active".into(),
        }],
        page_size: 2,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    }
}

fn read(config: CherwellSource) -> Result<Vec<SourceRecord>, SourceError> {
    let mut records = Vec::new();
    let count = CherwellServer::new(config).read_users(&[], &mut |r| records.push(r))?;
    assert_eq!(count, records.len() as u64);
    Ok(records)
}

#[test]
fn customers_are_searched_page_by_page_to_total_rows() {
    let double = start(CherwellFault::None);
    let secrets = Secrets::new();
    let records = read(config(&double, &secrets, PASSWORD)).expect("read");
    let logins: Vec<&str> = records.iter().filter_map(|r| r.first("loginid")).collect();
    assert_eq!(
        logins,
        ["ann", "ben", "dan", "eve", "fay"],
        "the filter leaves Cat out"
    );
    let ann = &records[0];
    assert_eq!(ann.origin, format!("{BUS_OB_ID}/r1"));
    assert_eq!(ann.values("email"), ["ann@example.com"]);
    assert_eq!(ann.values("busobpublicid"), ["ann"]);
    assert_eq!(ann.values("cellphone"), [""]);
    let searches = double.searches();
    let pages: Vec<u64> = searches
        .iter()
        .filter_map(|s| s["pageNumber"].as_u64())
        .collect();
    assert_eq!(
        pages,
        [1, 2, 3],
        "five rows in pages of two; the read ends at totalRows"
    );
    assert_eq!(searches[0]["busObId"], BUS_OB_ID);
    assert_eq!(searches[0]["pageSize"], 2);
    assert_eq!(searches[0]["filters"][0]["fieldId"], FIELD_STATUS);
    assert_eq!(double.tokens_issued(), 1, "one token for the whole read");
}

#[test]
fn a_revoked_token_is_renewed_once() {
    let double = start(CherwellFault::RevokeFirstToken);
    let secrets = Secrets::new();
    assert_eq!(
        read(config(&double, &secrets, PASSWORD))
            .expect("read")
            .len(),
        5
    );
    assert_eq!(double.tokens_issued(), 2);
}

#[test]
fn reads_short_of_total_rows_or_with_errors_fail() {
    let secrets = Secrets::new();
    let double = start(CherwellFault::TotalTooHigh);
    let err = read(config(&double, &secrets, PASSWORD)).expect_err("short");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 5, message, .. } if message.contains("counted 6 rows")),
        "{err:?}"
    );
    let double = start(CherwellFault::EmptySecondPage);
    let err = read(config(&double, &secrets, PASSWORD)).expect_err("empty page");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 2, message, .. } if message.contains("before an empty page")),
        "{err:?}"
    );
    let double = start(CherwellFault::ErrorOnSecondPage);
    let err = read(config(&double, &secrets, PASSWORD)).expect_err("hasError");
    assert!(
        matches!(&err, SourceError::Incomplete { read: 2, message, .. } if message.contains("Search timed out")),
        "{err:?}"
    );
    let double = start(CherwellFault::None);
    let err = read(CherwellSource {
        business_object: spanned("nope".into()),
        ..config(&double, &secrets, PASSWORD)
    })
    .expect_err("unknown business object");
    assert!(
        matches!(&err, SourceError::Incomplete { message, .. } if message.contains("definition not found")),
        "{err:?}"
    );
}

#[test]
fn a_wrong_password_is_refused_and_never_shown() {
    let double = start(CherwellFault::None);
    let secrets = Secrets::new();
    let err = read(config(&double, &secrets, "wrong-password-77")).expect_err("refused");
    let SourceError::Refused {
        status, message, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 400);
    assert!(
        message.contains("BADCREDENTIALS") && message.contains("check client-id"),
        "{message}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-password-77"));
    assert!(double.searches().is_empty(), "no search without a token");
}

#[test]
fn cherwell_customers_sync_into_scim2_server() {
    use support::scim::ScimServer;
    use support::{expect_code, roster_in};
    let double = start(CherwellFault::None);
    let scim = ScimServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        r#"
state "state.db"
source "cherwell" {{
    url "{url}"
    client-id "{CLIENT_ID}"
    username "{USERNAME}"
    password env="E2E_CHERWELL_PASSWORD"
    business-object "{BUS_OB_ID}"
    filter "{FIELD_STATUS}" "eq" "Active"
    page-size 2
    timeout 5
}}
target "scim" {{
    url "{scim}"
    token env="E2E_SCIM_TOKEN"
}}
user {{
    key "busObRecId"
    username "LoginID"
    name "FirstName"
    email "Email"
}}
"#,
        url = double.url(),
        scim = scim.url,
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("write config");
    let env = [
        ("E2E_CHERWELL_PASSWORD", PASSWORD),
        ("E2E_SCIM_TOKEN", scim.token.as_str()),
    ];
    let args = ["apply", "--auto-approve"];
    let out = roster_in(dir.path(), &args, &env);
    expect_code(&out, &args, 0);
    let mut names: Vec<String> = scim
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["ann", "ben", "dan", "eve", "fay"]);
    let ann = scim.user_by_username("ann").expect("ann");
    assert_eq!(
        ann["externalId"], "roster:roster:r1",
        "the owner, then the key"
    );
    assert_eq!(ann["emails"][0]["value"], "ann@example.com");
}
