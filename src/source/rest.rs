//! The HTTP client the REST sources (ServiceNow, Freshservice) share.
//!
//! Both vendors page a JSON API behind per-instance rate limits, and a source read must be
//! whole or an error (a short read would look like a reason to remove accounts). So the
//! rules live in one place:
//! - **Every request has a timeout** (`timeout` in the source config).
//! - **429 waits for `Retry-After`** (seconds or an HTTP date), and for the backoff when the
//!   header is missing. A vendor that asks for more than `MAX_RETRY_AFTER_SECS` fails the read
//!   at once instead of stalling a scheduled run for an hour.
//! - **5xx and transport failures are retried** with exponential backoff, at most
//!   `MAX_RETRIES` times. Everything sent here is a read (GET) or a token grant, both safe to
//!   send again.
//! - **401 and 403 are never retried**: the caller turns them into "credentials refused".
//! - **Secrets stay in the request.** They go out only in the `Authorization` header (which
//!   reqwest marks sensitive) or a token grant's form body; every text a server sends back is
//!   scrubbed of them before it becomes part of an error.
//! - **Links are followed on the configured origin only**, so a `Link` header can never make
//!   roster send the instance's credentials to another host.
//!
//! Blocking reqwest on the calling thread, like every connector: no runtime of our own.

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::http::{error_chain, link_next, parse_retry_after, quote_body};
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::SourceError;

/// Retries after the first attempt of a request.
pub const MAX_RETRIES: u32 = 3;
/// Backoff before the first retry; doubled for each further one, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured by waiting; a longer one fails the read.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// How a request proves who is asking.
pub enum Auth<'a> {
    Basic {
        user: &'a str,
        password: &'a Secret,
    },
    /// Basic auth with a secret key as the user name and a fixed, public password (Freshservice
    /// takes its API key as the user and `X` as the password).
    KeyAsUser {
        key: &'a Secret,
        password: &'a str,
    },
    Bearer(&'a Secret),
}

/// A blocking HTTP client bound to one instance (scheme, host and port).
#[derive(Debug)]
pub struct RestClient {
    client: Client,
    /// The configured URL, its path ending in `/` so that API paths join onto it.
    base: Url,
    timeout_secs: u64,
    /// Every secret this client may send: scrubbed from anything the server says back.
    secrets: Vec<Secret>,
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    status: StatusCode,
}

/// Why a request failed, after any retries. Never holds a secret.
#[derive(Debug)]
pub enum Failure {
    /// 401 or 403.
    Refused { status: u16, detail: Option<String> },
    /// Any other non-2xx answer.
    Status {
        status: u16,
        detail: Option<String>,
        retry_after: Option<u64>,
        retries: u32,
    },
    /// No answer: connection refused or dropped, timeout.
    Transport { message: String, retries: u32 },
    /// An answer roster cannot use (not JSON, a link to another host, ...).
    Invalid(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused { status, detail } => {
                write!(f, "HTTP {status}")?;
                if let Some(detail) = detail {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            Failure::Status {
                status,
                detail,
                retry_after,
                retries,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(detail) = detail {
                    write!(f, ": {detail}")?;
                }
                match retry_after {
                    Some(secs) if *secs > MAX_RETRY_AFTER_SECS => write!(
                        f,
                        "; the source asked to wait {secs} s before retrying, longer than the \
                         {MAX_RETRY_AFTER_SECS} s roster waits: run again later"
                    )?,
                    _ => {}
                }
                if *retries > 0 {
                    write!(f, " (gave up after {retries} retries)")?;
                }
                Ok(())
            }
            Failure::Transport { message, retries } => {
                write!(f, "{message}")?;
                if *retries > 0 {
                    write!(f, " (gave up after {retries} retries)")?;
                }
                Ok(())
            }
            Failure::Invalid(message) => write!(f, "unexpected answer: {message}"),
        }
    }
}

impl Failure {
    fn is_transient(&self) -> bool {
        match self {
            Failure::Status { status, .. } => *status == 429 || *status >= 500,
            Failure::Transport { .. } => true,
            Failure::Refused { .. } | Failure::Invalid(_) => false,
        }
    }

    fn retried(self, count: u32) -> Failure {
        match self {
            Failure::Status {
                status,
                detail,
                retry_after,
                ..
            } => Failure::Status {
                status,
                detail,
                retry_after,
                retries: count,
            },
            Failure::Transport { message, .. } => Failure::Transport {
                message,
                retries: count,
            },
            other => other,
        }
    }
}

impl Reply {
    pub fn json(&self) -> Result<Value, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::Invalid(format!(
                "HTTP {} with a body that is not JSON ({e}): {}",
                self.status.as_u16(),
                quote_body(&self.body)
            ))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the answer carries a `Link` header at all (whatever its relations).
    pub fn has_link_header(&self) -> bool {
        self.headers.contains_key(header::LINK)
    }
}

impl RestClient {
    /// Checks the instance URL and builds the client; sends nothing yet. `secrets` are the
    /// values this client will send, to be scrubbed from server text.
    pub fn new(url: &str, timeout_secs: u64, secrets: Vec<Secret>) -> Result<Self, SourceError> {
        let base = instance_url(url)?;
        let client = Client::builder()
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(timeout_secs.max(1)))
            .build()
            .map_err(|e| {
                SourceError::Setup(format!(
                    "cannot set up the HTTP client: {}",
                    error_chain(&e)
                ))
            })?;
        Ok(RestClient {
            client,
            base,
            timeout_secs: timeout_secs.max(1),
            secrets,
        })
    }

    /// An API path (`api/now/table/sys_user`) on this instance.
    pub fn url(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| SourceError::Setup(format!("cannot build a URL for {path}: {e}")))
    }

    /// GET with retries; `Ok` only for a 2xx answer.
    pub fn get(&self, url: &Url, auth: &Auth) -> Result<Reply, Failure> {
        self.send(url, &|| {
            let request = self
                .client
                .get(url.clone())
                .header(header::ACCEPT, "application/json");
            match auth {
                Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
                Auth::KeyAsUser { key, password } => {
                    request.basic_auth(key.expose(), Some(password))
                }
                Auth::Bearer(token) => request.bearer_auth(token.expose()),
            }
        })
    }

    /// POST of a form-encoded body (an OAuth token grant) with retries.
    pub fn post_form(&self, url: &Url, form: &[(&str, &str)]) -> Result<Reply, Failure> {
        self.send(url, &|| {
            self.client
                .post(url.clone())
                .header(header::ACCEPT, "application/json")
                .form(form)
        })
    }

    /// The `rel="next"` link of an answer, resolved against its URL. A link to another origin
    /// is refused: following it would send the credentials there.
    pub fn next_link(&self, reply: &Reply) -> Result<Option<Url>, Failure> {
        let Some(header) = reply.header(header::LINK.as_str()) else {
            return Ok(None);
        };
        let Some(target) = link_next(header) else {
            return Ok(None);
        };
        let next = reply
            .url
            .join(target)
            .map_err(|e| Failure::Invalid(format!("the next-page link {target:?}: {e}")))?;
        if next.origin() != self.base.origin() {
            return Err(Failure::Invalid(format!(
                "the next-page link points to {}, not to {}; refusing to send the credentials there",
                next.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(Some(next))
    }

    fn send(&self, url: &Url, build: &dyn Fn() -> RequestBuilder) -> Result<Reply, Failure> {
        let mut retries = 0;
        loop {
            let failure = match self.attempt(url, build()) {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            let Some(wait) = retry_wait(&failure, retries) else {
                return Err(failure.retried(retries));
            };
            retries += 1;
            log::warn!(
                "{url}: {failure}; retry {retries} of {MAX_RETRIES} in {:.1} s",
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
        }
    }

    fn attempt(&self, url: &Url, request: RequestBuilder) -> Result<Reply, Failure> {
        let response = request.send().map_err(|e| self.transport_failure(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .map_err(|e| self.transport_failure(&e))?
            .to_vec();
        log::debug!("{url} -> {}", status.as_u16());
        if status.is_success() {
            return Ok(Reply {
                url: url.clone(),
                headers,
                body,
                status,
            });
        }
        let detail = error_detail(&body).map(|d| self.scrub(&d));
        Err(match status.as_u16() {
            code @ (401 | 403) => Failure::Refused {
                status: code,
                detail,
            },
            code => Failure::Status {
                status: code,
                detail,
                retry_after: headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
                retries: 0,
            },
        })
    }

    fn transport_failure(&self, err: &reqwest::Error) -> Failure {
        let message = if err.is_timeout() {
            format!(
                "no answer within {} s (raise `timeout` in the source config if the source is slow)",
                self.timeout_secs
            )
        } else if err.is_connect() {
            format!("cannot connect: {}", error_chain(err))
        } else {
            error_chain(err)
        };
        Failure::Transport {
            message: self.scrub(&message),
            retries: 0,
        }
    }

    /// Server text can echo a request back; no secret may reach an error through it.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.expose().is_empty())
            .fold(text.to_string(), |text, secret| {
                text.replace(secret.expose(), "<redacted>")
            })
    }
}

/// Adds a JSON field to a record the way every REST source renders values: strings as they
/// are (an empty string too: the field is empty), numbers and booleans as text, each element
/// of an array as one value, a reference object (`{"value": ..., "link": ...}`) as its
/// `value`. `null`, and objects without a `value`, are not pushed: the target is left alone.
pub fn push_json(record: &mut SourceRecord, name: &str, value: &Value) {
    match value {
        Value::String(s) => record.push(name, s.as_str()),
        Value::Number(n) => record.push(name, n.to_string()),
        Value::Bool(b) => record.push(name, b.to_string()),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Array(_) => {}
                    _ => push_json(record, name, item),
                }
            }
        }
        Value::Object(object) => {
            if let Some(inner @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) =
                object.get("value")
            {
                push_json(record, name, inner);
            }
        }
        Value::Null => {}
    }
}

/// How long to wait before retry number `retries + 1`, or `None` to give up.
fn retry_wait(failure: &Failure, retries: u32) -> Option<Duration> {
    if retries >= MAX_RETRIES || !failure.is_transient() {
        return None;
    }
    let backoff = FIRST_BACKOFF.saturating_mul(1 << retries).min(MAX_BACKOFF);
    match failure {
        Failure::Status {
            retry_after: Some(secs),
            ..
        } if *secs > MAX_RETRY_AFTER_SECS => None,
        Failure::Status {
            retry_after: Some(secs),
            ..
        } => Some(backoff.max(Duration::from_secs(*secs))),
        _ => Some(backoff),
    }
}

/// The configured instance URL, checked, with a path ending in `/`.
fn instance_url(url: &str) -> Result<Url, SourceError> {
    let mut parsed = Url::parse(url.trim())
        .map_err(|e| SourceError::Setup(format!("source url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SourceError::Setup(format!(
            "source url {url:?} must start with https:// (or http://)"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Also keeps credentials out of every error message, which all carry URLs.
        return Err(SourceError::Setup(
            "the source url carries credentials: put them in the source's settings instead".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(SourceError::Setup(format!(
            "source url {url:?} must be the instance's address, without ? or #"
        )));
    }
    if parsed.scheme() == "http" {
        log::warn!("{url}: credentials are sent unencrypted over http://; use https://");
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

fn non_blank(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// What an error answer says, from the shapes the vendors use: ServiceNow
/// `{"error":{"message","detail"}}`, OAuth `{"error","error_description"}`, Freshservice
/// `{"message"}` / `{"description","errors"}`; otherwise the body itself, shortened.
fn error_detail(body: &[u8]) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Some(quote_body(body));
    };
    let parts: Vec<&str> = match value.get("error") {
        Some(error @ Value::Object(_)) => [error.get("message"), error.get("detail")]
            .into_iter()
            .filter_map(non_blank)
            .collect(),
        Some(Value::String(code)) => std::iter::once(code.as_str())
            .chain(non_blank(value.get("error_description")))
            .collect(),
        _ => [value.get("message"), value.get("description")]
            .into_iter()
            .filter_map(non_blank)
            .collect(),
    };
    if parts.is_empty() {
        Some(quote_body(body))
    } else {
        Some(parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_and_honour_retry_after_up_to_the_cap() {
        let status = |status, retry_after| Failure::Status {
            status,
            detail: None,
            retry_after,
            retries: 0,
        };
        assert_eq!(
            retry_wait(&status(500, None), 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_wait(&status(502, None), 2),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_wait(&status(500, None), MAX_RETRIES), None);
        assert_eq!(
            retry_wait(&status(429, Some(5)), 0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_wait(&status(429, Some(61)), 0), None);
        assert_eq!(retry_wait(&status(404, None), 0), None);
        assert_eq!(retry_wait(&status(400, Some(1)), 0), None);
        let refused = Failure::Refused {
            status: 401,
            detail: None,
        };
        assert_eq!(retry_wait(&refused, 0), None);
        let dropped = Failure::Transport {
            message: "reset".into(),
            retries: 0,
        };
        assert_eq!(retry_wait(&dropped, 1), Some(Duration::from_secs(1)));
    }

    #[test]
    fn failures_say_what_happened() {
        let long_wait = Failure::Status {
            status: 429,
            detail: Some("Rate limit exceeded".into()),
            retry_after: Some(3600),
            retries: 0,
        };
        assert_eq!(
            long_wait.to_string(),
            "HTTP 429: Rate limit exceeded; the source asked to wait 3600 s before retrying, \
             longer than the 60 s roster waits: run again later"
        );
        let gave_up = Failure::Status {
            status: 500,
            detail: None,
            retry_after: None,
            retries: 3,
        };
        assert_eq!(gave_up.to_string(), "HTTP 500 (gave up after 3 retries)");
    }

    #[test]
    fn error_details_come_from_each_vendor_shape() {
        let servicenow = br#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
        assert_eq!(
            error_detail(servicenow).as_deref(),
            Some("User Not Authenticated: Required to provide Auth information")
        );
        let oauth = br#"{"error_description":"access_denied","error":"server_error"}"#;
        assert_eq!(
            error_detail(oauth).as_deref(),
            Some("server_error: access_denied")
        );
        let freshservice = br#"{"code":"access_denied","message":"You are not authorized to perform this action."}"#;
        assert_eq!(
            error_detail(freshservice).as_deref(),
            Some("You are not authorized to perform this action.")
        );
        assert_eq!(
            error_detail(b"<html>Bad gateway</html>").as_deref(),
            Some("<html>Bad gateway</html>")
        );
        assert_eq!(error_detail(b" \n"), None);
    }

    #[test]
    fn instance_urls_are_checked() {
        assert_eq!(
            instance_url("https://acme.service-now.com")
                .expect("valid")
                .as_str(),
            "https://acme.service-now.com/"
        );
        assert_eq!(
            instance_url("https://proxy.example.com/sn")
                .expect("valid")
                .join("api/now/table/sys_user")
                .expect("joins")
                .as_str(),
            "https://proxy.example.com/sn/api/now/table/sys_user"
        );
        for bad in [
            "acme.service-now.com",
            "ftp://acme.service-now.com",
            "https://sync:hunter2@acme.service-now.com",
            "https://acme.service-now.com/?x=1",
        ] {
            let err = instance_url(bad).expect_err(bad).to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn json_values_become_strings() {
        let row = serde_json::json!({
            "user_name": "alice",
            "title": "",
            "failed_attempts": 3,
            "vip": false,
            "manager": {"link": "https://x/api/now/table/sys_user/abc", "value": "abc"},
            "location": null,
            "secondary_emails": ["a@example.com", "b@example.com", null, ["nested"]],
            "custom_fields": {"cost_center": "42"},
        });
        let mut record = SourceRecord::new("test");
        for (name, value) in row.as_object().expect("object") {
            push_json(&mut record, name, value);
        }
        assert_eq!(record.values("user_name"), ["alice"]);
        assert_eq!(record.values("title"), [""]);
        assert_eq!(record.values("failed_attempts"), ["3"]);
        assert_eq!(record.values("vip"), ["false"]);
        assert_eq!(record.values("manager"), ["abc"]);
        assert!(record.values("location").is_empty());
        assert!(!record.attrs.contains_key("location"));
        assert_eq!(
            record.values("secondary_emails"),
            ["a@example.com", "b@example.com"]
        );
        assert!(!record.attrs.contains_key("custom_fields"));
    }

    #[test]
    fn secrets_are_scrubbed_from_server_text() {
        let client = RestClient::new(
            "https://acme.service-now.com",
            5,
            vec![Secret::new("hunter2".into())],
        )
        .expect("client");
        assert_eq!(
            client.scrub("bad password hunter2 for sync"),
            "bad password <redacted> for sync"
        );
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
