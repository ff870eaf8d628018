//! What the REST sources (ServiceNow, Freshservice) share on top of `crate::http`.
//!
//! Both vendors page a JSON API behind per-instance rate limits, and a source read must be
//! whole or an error (a short read would look like a reason to remove accounts). Timeouts,
//! proxy and TLS settings, the retry policy (5xx and transport failures with backoff, 429
//! with `Retry-After` up to a cap) and secret scrubbing are `HttpClient`'s; everything sent
//! here is a read (GET) or a token grant, both marked safe to send again. What this module
//! adds for the sources:
//! - **401 and 403 are `Failure::Refused`**, never retried: the caller turns them into
//!   "credentials refused".
//! - **Error details from the vendors' shapes** (ServiceNow, OAuth, Freshservice), scrubbed.
//! - **Links are followed on the configured origin only**, so a `Link` header can never make
//!   roster send the instance's credentials to another host.
//! - **An instance URL with credentials, a query or a fragment is refused** before anything
//!   is sent.

use std::fmt;

use reqwest::header;
use reqwest::{Method, Url};
use serde_json::Value;

use crate::config::HttpOptions;
use crate::http::{
    self, Authorization, Body, FormValue, HttpClient, InvalidBody, MAX_RETRY_AFTER_SECS, Pacer,
    Request, Resend, Role, Settings, SetupError, link_next, quote_body,
};
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::SourceError;

pub use crate::http::Reply;

/// A blocking HTTP client bound to one instance (scheme, host and port).
#[derive(Debug)]
pub struct RestClient {
    http: HttpClient,
    /// The configured URL, its path ending in `/` so that API paths join onto it.
    base: Url,
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

impl From<InvalidBody> for Failure {
    fn from(invalid: InvalidBody) -> Self {
        Failure::Invalid(invalid.0)
    }
}

impl RestClient {
    /// Checks the instance URL and builds the client; sends nothing yet. `secrets` are the
    /// values this client will send, to be scrubbed from server text.
    pub fn new(url: &str, options: &HttpOptions, secrets: &[Secret]) -> Result<Self, SourceError> {
        Self::paced(url, options, None, secrets)
    }

    /// `new`, with the `rate-limit` gate every attempt takes.
    pub fn paced(
        url: &str,
        options: &HttpOptions,
        pacer: Option<Pacer>,
        secrets: &[Secret],
    ) -> Result<Self, SourceError> {
        let base = instance_url(url)?;
        let http = HttpClient::new(Settings {
            role: Role::Source,
            http: options,
            accept: "application/json",
            pacer,
            secrets,
        })
        .map_err(|e| match e {
            SetupError::ProxyPassword(error) => SourceError::Credential {
                what: "proxy-password",
                error,
            },
            SetupError::Invalid(message) => SourceError::Setup(message),
        })?;
        Ok(RestClient { http, base })
    }

    /// An API path (`api/now/table/sys_user`) on this instance.
    pub fn url(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| SourceError::Setup(format!("cannot build a URL for {path}: {e}")))
    }

    /// GET with retries; `Ok` only for a 2xx answer.
    pub fn get(&self, url: &Url, auth: &Authorization) -> Result<Reply, Failure> {
        self.send(&Request::new(Method::GET, url.as_str(), Resend::Safe).auth(auth))
    }

    /// POST of a form-encoded body (an OAuth token grant) with retries: a grant sent twice
    /// only issues a second token.
    pub fn post_form(
        &self,
        url: &Url,
        form: Vec<(&'static str, FormValue)>,
    ) -> Result<Reply, Failure> {
        self.send(&Request::new(Method::POST, url.as_str(), Resend::Safe).body(Body::Form(form)))
    }

    /// POST of a JSON body that only reads (a search), with retries: sending it twice
    /// changes nothing.
    pub fn post_json_read(
        &self,
        url: &Url,
        auth: &Authorization,
        body: &Value,
    ) -> Result<Reply, Failure> {
        self.send(
            &Request::new(Method::POST, url.as_str(), Resend::Safe)
                .auth(auth)
                .body(Body::Bytes {
                    content_type: "application/json",
                    bytes: body.to_string().into_bytes(),
                }),
        )
    }

    /// GET with retries and the request's own headers; `Ok` only for a 2xx answer.
    pub fn get_as(&self, url: &Url, auth: Option<&Authorization>) -> Result<Reply, Failure> {
        let mut request = Request::new(Method::GET, url.as_str(), Resend::Safe);
        request.auth = auth;
        self.send(&request)
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
        self.follow(&reply.url, target).map(Some)
    }

    /// A next-page link (from a header or a body), resolved against the URL of the answer it
    /// came in. A link to another origin is refused: following it would send the credentials
    /// there.
    pub fn follow(&self, from: &str, target: &str) -> Result<Url, Failure> {
        let next = Url::parse(from)
            .and_then(|url| url.join(target))
            .map_err(|e| Failure::Invalid(format!("the next-page link {target:?}: {e}")))?;
        if next.origin() != self.base.origin() {
            return Err(Failure::Invalid(format!(
                "the next-page link points to {}, not to {}; refusing to send the credentials there",
                next.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(next)
    }

    fn send(&self, request: &Request) -> Result<Reply, Failure> {
        self.http.send(request).map_err(|failure| match failure {
            http::Failure::Status {
                status,
                retry_after,
                body,
                retries,
            } => {
                let detail = error_detail(body.as_bytes()).map(|d| self.scrub(&d));
                match status {
                    401 | 403 => Failure::Refused { status, detail },
                    _ => Failure::Status {
                        status,
                        detail,
                        retry_after,
                        retries,
                    },
                }
            }
            http::Failure::Transport { message, retries } => {
                Failure::Transport { message, retries }
            }
            http::Failure::Request(message) => Failure::Transport {
                message,
                retries: 0,
            },
        })
    }

    /// Server text can echo a request back; no secret may reach an error through it.
    pub fn scrub(&self, text: &str) -> String {
        self.http.scrub(text)
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

/// The configured instance URL, checked, with a path ending in `/`.
fn instance_url(url: &str) -> Result<Url, SourceError> {
    let mut parsed = endpoint_url(url)?;
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// A configured URL, checked as `instance_url` checks it, its path kept as written (the
/// endpoint of `source "rest"`, where `/people` and `/people/` may differ).
pub fn endpoint_url(url: &str) -> Result<Url, SourceError> {
    let parsed = Url::parse(url.trim())
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
            &HttpOptions::default(),
            &[Secret::new("hunter2".into())],
        )
        .expect("client");
        assert_eq!(
            client.scrub("bad password hunter2 for sync"),
            "bad password <redacted> for sync"
        );
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
