//! What every HTTP connector gets from `roster::http`, checked through the connectors
//! themselves: requests through a proxy with basic auth (absolute-form, `Proxy-Authorization`,
//! forwarded to the origin), and secrets that a server echoes back (the `Authorization`
//! header, a token grant's form body, the proxy's credentials) kept out of every error, in
//! every encoding roster sends them.

mod support;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use roster::config::{
    FreshserviceList, FreshserviceSource, HttpOptions, ScimTarget, ServiceNowOAuth,
    ServiceNowSource, Spanned,
};
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::freshservice::FreshserviceHelpdesk;
use roster::source::servicenow::ServiceNowInstance;
use roster::source::{Source, SourceError};
use roster::target::Target;
use roster::target::scim::ScimService;
use serde_json::json;
use support::proxy::ProxyDouble;
use support::vendors::{Freshservice, FreshserviceSetup, HttpDouble, Response, fs_requester};

/// Characters that every encoding writes differently: `@`, space, `/`, `+`, `&`, `=`.
const PASSWORD: &str = "p@ss w/rd+&=9f3";
const CLIENT_SECRET: &str = "cl/ent sec+ret&7";
const TOKEN: &str = "scim-token/+=81c4";
const PROXY_USER: &str = "sync";
const PROXY_PASSWORD: &str = "pr0xy p@ss/word";

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
        std::fs::write(&path, format!("{value}\n")).expect("write secret");
        spanned(SecretRef::File(path))
    }
}

/// Every form in which roster may send `secret` (and, for basic auth, `user:secret`).
fn forms(user: Option<&str>, secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_string(),
        // Form-encoded (space as `+`) and percent-encoded (space as `%20`).
        url_encode(secret, "+"),
        url_encode(secret, "%20"),
    ];
    if let Some(user) = user {
        let pair = format!("{user}:{secret}");
        forms.push(format!("Basic {}", STANDARD.encode(&pair)));
        forms.push(STANDARD.encode(&pair));
        forms.push(STANDARD_NO_PAD.encode(&pair));
    }
    forms
}

fn url_encode(text: &str, space: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b' ' => space.to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_clean(message: &str, forms: &[String]) {
    for form in forms {
        assert!(
            !message.contains(form.as_str()),
            "{form:?} leaked into: {message}"
        );
    }
}

/// A server that refuses everything with 401, echoing the `Authorization` header and the
/// body it was sent (form bodies raw and decoded) in the shapes the connectors quote.
fn echo_double() -> HttpDouble {
    HttpDouble::start(|request| {
        let authorization = request
            .header("authorization")
            .unwrap_or("none")
            .to_string();
        let decoded: Vec<String> = request
            .form()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let echo = format!(
            "you sent Authorization: {authorization}; body {} ({})",
            request.body,
            decoded.join(", ")
        );
        if request.path.ends_with("/oauth_token.do") {
            Response::json(
                401,
                json!({"error": "access_denied", "error_description": echo}),
            )
        } else if request.path.starts_with("/api/now/") {
            Response::json(
                401,
                json!({"error": {"message": "User Not Authenticated", "detail": echo}}),
            )
        } else if request.path.starts_with("/scim/") {
            Response::json(401, json!({"status": "401", "detail": echo}))
        } else {
            // Not JSON: quoted as it is.
            Response {
                status: 401,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: echo,
            }
        }
    })
}

fn servicenow(url: &str, secrets: &Secrets) -> ServiceNowSource {
    ServiceNowSource {
        url: spanned(url.to_string()),
        username: spanned("roster.sync".to_string()),
        password: secrets.file("password", PASSWORD),
        oauth: None,
        query: spanned("active=true".to_string()),
        page_size: 10,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    }
}

fn read_users(source: &mut dyn Source) -> Result<Vec<SourceRecord>, SourceError> {
    let mut records = Vec::new();
    source.read_users(&["user_name".to_string()], &mut |r| records.push(r))?;
    Ok(records)
}

#[test]
fn an_echoed_basic_auth_header_stays_out_of_the_error() {
    let double = echo_double();
    let secrets = Secrets::new();
    let err = read_users(&mut ServiceNowInstance::new(servicenow(
        &double.url,
        &secrets,
    )))
    .expect_err("refused");
    let message = err.to_string();
    assert!(
        matches!(err, SourceError::Refused { status: 401, .. }),
        "{message}"
    );
    assert!(
        message.contains("you sent Authorization: Basic <redacted>"),
        "{message}"
    );
    assert_clean(&message, &forms(Some("roster.sync"), PASSWORD));
    // The double did get the real credentials.
    let sent = double.requests();
    assert_eq!(
        sent[0].header("authorization"),
        Some(forms(Some("roster.sync"), PASSWORD)[3].as_str())
    );
}

#[test]
fn an_echoed_token_grant_stays_out_of_the_error() {
    let double = echo_double();
    let secrets = Secrets::new();
    let config = ServiceNowSource {
        oauth: Some(ServiceNowOAuth {
            client_id: spanned("3f2a9c0d".to_string()),
            client_secret: secrets.file("client-secret", CLIENT_SECRET),
        }),
        ..servicenow(&double.url, &secrets)
    };
    let err = read_users(&mut ServiceNowInstance::new(config)).expect_err("refused");
    let message = err.to_string();
    assert!(
        matches!(err, SourceError::Refused { status: 401, .. }),
        "{message}"
    );
    assert!(message.contains("client_secret=<redacted>"), "{message}");
    let sent = double.requests();
    assert_eq!(sent[0].path, "/oauth_token.do");
    assert_eq!(
        sent[0].form().get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
    let mut leaks = forms(None, CLIENT_SECRET);
    leaks.extend(forms(None, PASSWORD));
    assert_clean(&message, &leaks);
}

#[test]
fn an_echoed_bearer_token_stays_out_of_the_error() {
    let double = echo_double();
    let secrets = Secrets::new();
    let config = ScimTarget {
        url: spanned(format!("{}/scim/v2", double.url)),
        token: secrets.file("token", TOKEN),
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
        concurrency: 1,
        rate_limit: None,
        page_size: Some(10),
        provider: Default::default(),
        compatibility: Default::default(),
    };
    let scim = ScimService::new(&config, vec![]).expect("service");
    let err = scim.get_user("7").expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("refused the credentials (HTTP 401)"),
        "{message}"
    );
    assert!(message.contains("Bearer <redacted>"), "{message}");
    assert_clean(&message, &forms(None, TOKEN));
}

#[test]
fn an_echoed_api_key_stays_out_of_a_plain_text_error() {
    let double = echo_double();
    let secrets = Secrets::new();
    let key = "fs-key/with+odd=chars";
    let config = FreshserviceSource {
        url: spanned(double.url.clone()),
        api_key: secrets.file("api-key", key),
        include: vec![FreshserviceList::Requesters],
        page_size: 10,
        http: HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        },
    };
    let err = read_users(&mut FreshserviceHelpdesk::new(config)).expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("Basic <redacted>"), "{message}");
    let mut leaks = forms(Some(key), "X");
    leaks.retain(|f| f != "X");
    leaks.extend(forms(None, key));
    assert_clean(&message, &leaks);
}

fn proxied(password: &str, secrets: &Secrets, proxy: &ProxyDouble) -> HttpOptions {
    HttpOptions {
        timeout_secs: 5,
        proxy: Some(spanned(proxy.url().to_string())),
        proxy_user: Some(spanned(PROXY_USER.to_string())),
        proxy_password: Some(secrets.file("proxy-password", password)),
        ..HttpOptions::default()
    }
}

fn helpdesk(double: &Freshservice, secrets: &Secrets, http: HttpOptions) -> FreshserviceSource {
    FreshserviceSource {
        url: spanned(double.url().to_string()),
        api_key: secrets.file("api-key", &FreshserviceSetup::default().api_key),
        include: vec![FreshserviceList::Requesters],
        page_size: 2,
        http,
    }
}

#[test]
fn a_source_reads_through_the_proxy_with_its_credentials() {
    let helpdesk_double = Freshservice::start(FreshserviceSetup {
        requesters: (1..=3)
            .map(|i| fs_requester(100 + i, &format!("P{i}"), "Smith", true))
            .collect(),
        ..FreshserviceSetup::default()
    });
    let proxy = ProxyDouble::start(PROXY_USER, PROXY_PASSWORD);
    let secrets = Secrets::new();
    let config = helpdesk(
        &helpdesk_double,
        &secrets,
        proxied(PROXY_PASSWORD, &secrets, &proxy),
    );
    let records = read_users(&mut FreshserviceHelpdesk::new(config)).expect("read via the proxy");
    assert_eq!(records.len(), 3);

    let through_proxy = proxy.requests();
    assert_eq!(through_proxy.len(), 2, "two pages, both through the proxy");
    for request in &through_proxy {
        assert!(
            request
                .path
                .starts_with(&format!("{}/api/v2/requesters", helpdesk_double.url())),
            "absolute-form: {}",
            request.path
        );
        assert_eq!(
            request.header("proxy-authorization"),
            Some(forms(Some(PROXY_USER), PROXY_PASSWORD)[3].as_str())
        );
    }
    // The origin got the requests, without the proxy's credentials.
    let at_origin = helpdesk_double.requests();
    assert_eq!(at_origin.len(), 2);
    assert!(
        at_origin
            .iter()
            .all(|r| r.header("proxy-authorization").is_none())
    );
}

#[test]
fn a_refused_proxy_password_stays_out_of_the_error() {
    let helpdesk_double = Freshservice::start(FreshserviceSetup::default());
    let proxy = ProxyDouble::start(PROXY_USER, "the proxy wants another one");
    let secrets = Secrets::new();
    let config = helpdesk(
        &helpdesk_double,
        &secrets,
        proxied(PROXY_PASSWORD, &secrets, &proxy),
    );
    let err = read_users(&mut FreshserviceHelpdesk::new(config)).expect_err("407");
    let message = err.to_string();
    assert!(message.contains("HTTP 407"), "{message}");
    assert!(
        message.contains("Proxy-Authorization: Basic <redacted>"),
        "{message}"
    );
    assert_clean(&message, &forms(Some(PROXY_USER), PROXY_PASSWORD));
    assert!(
        helpdesk_double.requests().is_empty(),
        "nothing got past the proxy"
    );
}

#[test]
fn the_target_goes_through_the_proxy_too() {
    let origin = HttpDouble::start(|_| {
        Response::json(
            200,
            json!({"id": "7", "userName": "alice", "meta": {"version": "W/\"1\""}}),
        )
    });
    let proxy = ProxyDouble::start(PROXY_USER, PROXY_PASSWORD);
    let secrets = Secrets::new();
    let config = ScimTarget {
        url: spanned(format!("{}/scim/v2", origin.url)),
        token: secrets.file("token", TOKEN),
        http: proxied(PROXY_PASSWORD, &secrets, &proxy),
        concurrency: 1,
        rate_limit: None,
        page_size: Some(10),
        provider: Default::default(),
        compatibility: Default::default(),
    };
    let scim = ScimService::new(&config, vec![]).expect("service");
    let user = scim.get_user("7").expect("get").expect("found");
    assert_eq!(user.username, "alice");
    let through_proxy = proxy.requests();
    assert_eq!(through_proxy.len(), 1);
    assert_eq!(
        through_proxy[0].path,
        format!("{}/scim/v2/Users/7", origin.url)
    );
    assert_eq!(
        through_proxy[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let at_origin = origin.requests();
    assert_eq!(at_origin.len(), 1);
    assert_eq!(at_origin[0].header("proxy-authorization"), None);
}

#[test]
fn an_unreachable_proxy_is_an_error_without_the_password() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let secrets = Secrets::new();
    let http = HttpOptions {
        timeout_secs: 2,
        proxy: Some(spanned(format!("http://127.0.0.1:{port}"))),
        proxy_user: Some(spanned(PROXY_USER.to_string())),
        proxy_password: Some(secrets.file("proxy-password", PROXY_PASSWORD)),
        ..HttpOptions::default()
    };
    let config = FreshserviceSource {
        url: spanned("http://127.0.0.1:9".to_string()),
        api_key: secrets.file("api-key", "fs-api-key-5d2e9b"),
        include: vec![FreshserviceList::Requesters],
        page_size: 2,
        http,
    };
    let err = read_users(&mut FreshserviceHelpdesk::new(config)).expect_err("no proxy");
    let message = err.to_string();
    assert!(matches!(err, SourceError::Incomplete { .. }), "{message}");
    assert_clean(&message, &forms(Some(PROXY_USER), PROXY_PASSWORD));
}
