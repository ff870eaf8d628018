//! `HttpClient`: the one way roster's HTTP connectors talk to their servers.
//!
//! A connector (the SCIM target, the ServiceNow and Freshservice sources, and the targets to
//! come) builds one from its `HttpOptions` and the secrets it will send, then hands it
//! `Request`s: a method, a URL, its `Authorization`, a body, and whether resending is safe.
//! It gets back a 2xx `Reply` or a classified `Failure`, and turns that into its own error
//! type with its own wording. What the client does for all of them:
//! - **Timeouts** per request (`timeout`), **TLS** with the system roots plus a `ca-file`,
//!   a **proxy** (`proxy`, with `proxy-user` / `proxy-password` as basic auth) for every request.
//! - **Retries** by the one policy in `retry.rs`, and the **rate-limit gate** (`Pacer`) taken
//!   by every attempt.
//! - **Secrets stay out of errors.** Credentials go out only as sensitive headers (never in a
//!   URL), and every text a server sends back is scrubbed (`scrub.rs`) of every secret the
//!   client knows: those it was built with, the proxy password, and each credential and secret
//!   form field it sends, learned as it sends them.
//!
//! Every connector is blocking code; the client is too, seen from its callers. Under it each
//! calling thread works a *lane* of its own (`Lanes`): reqwest's async client with its own
//! connection pool, driven by a current-thread tokio runtime on the caller's thread. A request
//! is written, answered and read on the thread that asked, with no hand-off to another thread
//! and back (reqwest's blocking client sends every request through its one runtime thread: at
//! four apply workers, the context switches and that one thread were the limit).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use super::limit::Admission;
use super::pacer::Pacer;
use super::retry::{Jitter, Resend, retries_allowed, retry_wait};
use super::scrub::Scrubber;
use super::{error_chain, parse_retry_after, quote_body};
use crate::config::HttpOptions;
use crate::secret::{Secret, SecretError};

/// Which side of a sync a client serves; its messages point at that side's config block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
    /// The webhooks of the `notify` block.
    Notify,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
            Role::Notify => "notify",
        }
    }
}

/// What a connector gives to build its client.
pub struct Settings<'a> {
    pub role: Role,
    pub http: &'a HttpOptions,
    /// The `Accept` header of every request.
    pub accept: &'static str,
    /// The `rate-limit` gate, if the connector has one.
    pub pacer: Option<Pacer>,
    /// Secrets to scrub from server text from the start (the credentials in the config).
    pub secrets: &'a [Secret],
}

/// Why a client cannot be built. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("proxy-password: {0}")]
    ProxyPassword(SecretError),
    /// The whole message (a ca-file that cannot be read, a proxy that is not a URL, ...).
    #[error("{0}")]
    Invalid(String),
}

/// How a request proves who is asking: the `Authorization` header's value, and the forms of
/// the secrets in it that server text must be scrubbed of.
#[derive(Clone)]
pub struct Authorization {
    /// The header it goes in: `Authorization`, or an API's own key header.
    name: HeaderName,
    header: Secret,
    /// Secrets to scrub (each in all its encodings); `basic` the pair of a basic auth.
    secrets: Vec<Secret>,
    basic: Option<(Secret, Secret)>,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

impl Authorization {
    /// Basic auth with a user name and a secret password.
    pub fn basic(user: &str, password: &Secret) -> Authorization {
        Authorization {
            name: header::AUTHORIZATION,
            header: Secret::new(basic_header(user, password.expose())),
            secrets: vec![password.clone()],
            basic: Some((Secret::new(user.to_string()), password.clone())),
        }
    }

    /// Basic auth with a secret key as the user name and a fixed, public password (Freshservice
    /// takes its API key as the user and `X` as the password).
    pub fn key_as_user(key: &Secret, password: &str) -> Authorization {
        Authorization {
            name: header::AUTHORIZATION,
            header: Secret::new(basic_header(key.expose(), password)),
            secrets: vec![key.clone()],
            basic: Some((key.clone(), Secret::new(password.to_string()))),
        }
    }

    /// `Bearer <token>`.
    pub fn bearer(token: &Secret) -> Authorization {
        Authorization {
            name: header::AUTHORIZATION,
            header: Secret::new(format!("Bearer {}", token.expose())),
            secrets: vec![token.clone()],
            basic: None,
        }
    }

    /// A header a connector words itself around one secret (LoginTC's
    /// `LoginTC key="<key>"`): `header` is the whole value, `secret` the part to scrub.
    pub fn custom(header: Secret, secret: &Secret) -> Authorization {
        Authorization {
            name: header::AUTHORIZATION,
            header,
            secrets: vec![secret.clone()],
            basic: None,
        }
    }

    /// A secret key as the whole value of an API's own header (`X-API-Key: <key>`).
    pub fn in_header(name: HeaderName, key: &Secret) -> Authorization {
        Authorization {
            name,
            header: key.clone(),
            secrets: vec![key.clone()],
            basic: None,
        }
    }

    fn teach(&self, scrubber: &Scrubber) {
        for secret in &self.secrets {
            scrubber.learn(secret);
        }
        if let Some((user, password)) = &self.basic {
            scrubber.learn_basic(user.expose(), password.expose());
        }
    }
}

fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// A field of a form body; a secret one is scrubbed from server text like a credential.
#[derive(Clone)]
pub enum FormValue {
    Plain(String),
    Secret(Secret),
}

impl FormValue {
    fn expose(&self) -> &str {
        match self {
            FormValue::Plain(value) => value,
            FormValue::Secret(secret) => secret.expose(),
        }
    }
}

/// What a request carries.
#[derive(Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    /// Bytes of a given content type (a JSON document).
    Bytes {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
    /// `application/x-www-form-urlencoded` (an OAuth token grant).
    Form(Vec<(&'static str, FormValue)>),
}

/// One request, kept whole so that it can be resent.
pub struct Request<'a> {
    pub method: Method,
    /// As it goes out; it never carries credentials (connectors refuse URLs with user info).
    pub url: String,
    pub auth: Option<&'a Authorization>,
    pub headers: HeaderMap,
    pub body: Body,
    pub resend: Resend,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: impl Into<String>, resend: Resend) -> Request<'a> {
        Request {
            method,
            url: url.into(),
            auth: None,
            headers: HeaderMap::new(),
            body: Body::Empty,
            resend,
        }
    }

    pub fn auth(mut self, auth: &'a Authorization) -> Request<'a> {
        self.auth = Some(auth);
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request<'a> {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, body: Body) -> Request<'a> {
        self.body = body;
        self
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// The URL the request was sent to.
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    scrubber: Arc<Scrubber>,
}

/// A 2xx answer whose body is not the JSON it should be. The message quotes the body,
/// scrubbed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBody(pub String);

impl Reply {
    pub fn json(&self) -> Result<Value, InvalidBody> {
        serde_json::from_slice(&self.body).map_err(|e| {
            InvalidBody(self.scrubber.scrub(&format!(
                "HTTP {} with a body that is not JSON ({e}): {}",
                self.status.as_u16(),
                quote_body(&self.body)
            )))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the answer carries a `Link` header at all (whatever its relations).
    pub fn has_link_header(&self) -> bool {
        self.headers.contains_key(header::LINK)
    }

    /// Whether the body is empty (or only whitespace), as a 204 is.
    pub fn is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }
}

/// Why a request failed, after any retries. Never holds a secret: server text is scrubbed.
#[derive(Debug)]
pub enum Failure {
    /// A non-2xx answer.
    Status {
        status: u16,
        /// Seconds to wait before retrying, from `Retry-After`.
        retry_after: Option<u64>,
        /// The body as text, scrubbed.
        body: String,
        retries: u32,
    },
    /// No answer: connection refused or dropped, timeout. The message is scrubbed.
    Transport { message: String, retries: u32 },
    /// The request could not be built (a header value it cannot carry); nothing was sent.
    Request(String),
}

impl std::fmt::Display for Failure {
    /// A line for logs; connectors word their own errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { status, body, .. } => {
                write!(f, "HTTP {status}")?;
                let quoted = quote_body(body.as_bytes());
                if !quoted.is_empty() {
                    write!(f, ": {quoted}")?;
                }
                Ok(())
            }
            Failure::Transport { message, .. } => f.write_str(message),
            Failure::Request(message) => write!(f, "cannot build the request: {message}"),
        }
    }
}

impl Failure {
    /// Worth retrying: 429, 5xx, timeouts and dropped connections.
    pub fn is_transient(&self) -> bool {
        match self {
            // 501 Not Implemented and 505 are the server's final word: asking again gets the
            // same answer, only later.
            Failure::Status { status, .. } => {
                *status == 429 || (*status >= 500 && !matches!(*status, 501 | 505))
            }
            Failure::Transport { .. } => true,
            Failure::Request(_) => false,
        }
    }

    /// 429 and 503 say the server did not act on the request.
    pub fn was_not_processed(&self) -> bool {
        matches!(
            self,
            Failure::Status {
                status: 429 | 503,
                ..
            }
        )
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn retried(self, count: u32) -> Failure {
        match self {
            Failure::Status {
                status,
                retry_after,
                body,
                ..
            } => Failure::Status {
                status,
                retry_after,
                body,
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

/// A blocking HTTP client for one connector. Shared by the connector's threads.
#[derive(Debug)]
pub struct HttpClient {
    lanes: Lanes,
    role: Role,
    timeout_secs: u64,
    pacer: Option<Pacer>,
    /// How many requests may be in flight at once (`limit.rs`).
    admission: Admission,
    scrubber: Arc<Scrubber>,
}

impl HttpClient {
    /// Builds the client; sends nothing yet.
    pub fn new(settings: Settings) -> Result<HttpClient, SetupError> {
        let Settings {
            role,
            http,
            accept,
            pacer,
            secrets,
        } = settings;
        let scrubber = Arc::new(Scrubber::new());
        for secret in secrets {
            scrubber.learn(secret);
        }
        let timeout_secs = http.timeout_secs.max(1);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        let recipe = Recipe {
            headers,
            timeout: Duration::from_secs(timeout_secs),
            ca_certs: match &http.ca_file {
                Some(ca_file) => read_ca_file(&ca_file.value)?,
                None => Vec::new(),
            },
            proxy: proxy(http, &scrubber)?,
        };
        // The first lane is built now: a setting reqwest refuses fails here, before any read.
        let first = recipe
            .lane()
            .map_err(|e| SetupError::Invalid(scrubber.scrub(&e)))?;
        Ok(HttpClient {
            lanes: Lanes {
                recipe,
                idle: Mutex::new(vec![first]),
            },
            role,
            timeout_secs,
            pacer,
            admission: Admission::new(format!("the {}", role.as_str())),
            scrubber,
        })
    }

    /// Server text can echo a request back; no secret may reach an error through it.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// Sends a request, retrying transient failures by the policy; `Ok` only for a 2xx answer.
    pub fn send(&self, request: &Request) -> Result<Reply, Failure> {
        let mut retries = 0;
        loop {
            let failure = match self.attempt(request) {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            let Some(wait) = retry_wait(&failure, request.resend, retries, Jitter::random()) else {
                return Err(failure.retried(retries));
            };
            retries += 1;
            // The URL itself may be a secret (a webhook's token is in its path).
            log::warn!(
                "{} {}: {failure}; retry {retries} of {} in {:.1} s",
                request.method,
                self.scrub(&request.url),
                retries_allowed(&failure),
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
        }
    }

    /// One HTTP exchange, let through by the admission (fewer at once after overload
    /// answers) and paced by the rate limit.
    fn attempt(&self, request: &Request) -> Result<Reply, Failure> {
        let lane = self
            .lanes
            .take()
            .map_err(|e| Failure::Request(self.scrub(&e)))?;
        let builder = match self.build(&lane.client, request) {
            Ok(builder) => builder,
            Err(failure) => {
                self.lanes.put_back(lane);
                return Err(failure);
            }
        };
        let ticket = self.admission.enter();
        if let Some(pacer) = &self.pacer {
            pacer.wait(&request.url);
        }
        // A dropped connection ends the ticket saying nothing about the load.
        let (status, headers, body) = lane
            .runtime
            .block_on(async {
                let response = builder.send().await?;
                let (status, headers) = (response.status(), response.headers().clone());
                Ok((status, headers, response.bytes().await?))
            })
            .map_err(|e: reqwest::Error| self.transport_failure(&e))?;
        self.lanes.put_back(lane);
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match status.as_u16() {
            429 => ticket.overloaded(429, retry_after),
            503 if retry_after.is_some() => ticket.overloaded(503, retry_after),
            _ => ticket.answered(),
        }
        let body = body.to_vec();
        log::debug!("{} {} -> {}", request.method, request.url, status.as_u16());
        if status.is_success() {
            return Ok(Reply {
                status,
                url: request.url.clone(),
                headers,
                body,
                scrubber: Arc::clone(&self.scrubber),
            });
        }
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
            body: self.scrub(&String::from_utf8_lossy(&body)),
            retries: 0,
        })
    }

    fn build(&self, client: &Client, request: &Request) -> Result<RequestBuilder, Failure> {
        let mut builder = client
            .request(request.method.clone(), &request.url)
            .headers(request.headers.clone());
        if let Some(auth) = request.auth {
            // Learned before it is sent: whatever comes back may echo it.
            auth.teach(&self.scrubber);
            let mut value = HeaderValue::from_str(auth.header.expose()).map_err(|_| {
                Failure::Request(
                    "the credentials hold characters an HTTP header cannot carry".into(),
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header(auth.name.clone(), value);
        }
        match &request.body {
            Body::Empty => {}
            Body::Bytes {
                content_type,
                bytes,
            } => {
                builder = builder
                    .header(header::CONTENT_TYPE, *content_type)
                    .body(bytes.clone());
            }
            Body::Form(fields) => {
                for (_, value) in fields {
                    if let FormValue::Secret(secret) = value {
                        self.scrubber.learn(secret);
                    }
                }
                let pairs: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.expose())).collect();
                builder = builder.form(&pairs);
            }
        }
        Ok(builder)
    }

    fn transport_failure(&self, err: &reqwest::Error) -> Failure {
        if err.is_builder() {
            return Failure::Request(self.scrub(&error_chain(err)));
        }
        let role = self.role.as_str();
        let message = if err.is_timeout() {
            format!(
                "no answer within {} s (raise `timeout` in the {role} config if the {role} is slow)",
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
}

/// The lanes of a client: one per thread sending at the same moment, each taken for one
/// exchange and put back. A lane's connections live on its runtime, which runs only while a
/// thread is inside `block_on` on it, so a lane is never shared: another thread checking out
/// one of its pooled connections would wait on a runtime nobody drives.
struct Lanes {
    recipe: Recipe,
    idle: Mutex<Vec<Lane>>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lanes")
    }
}

impl Lanes {
    /// An idle lane, or a new one when every lane is busy (as many as threads send at once).
    fn take(&self) -> Result<Lane, String> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(lane) => Ok(lane),
            None => self.recipe.lane(),
        }
    }

    /// A lane whose exchange ended in an answer; one whose exchange failed in transport is
    /// dropped with its connections, which the failure may have left half-used.
    fn put_back(&self, lane: Lane) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lane);
    }
}

struct Lane {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

/// What every lane's client is built from.
struct Recipe {
    headers: HeaderMap,
    timeout: Duration,
    ca_certs: Vec<reqwest::Certificate>,
    proxy: Option<reqwest::Proxy>,
}

impl Recipe {
    /// A new lane, or why there is none (a message not yet scrubbed).
    fn lane(&self) -> Result<Lane, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: cannot start its runtime: {e}"))?;
        let mut builder = Client::builder()
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .default_headers(self.headers.clone())
            .timeout(self.timeout);
        if !self.ca_certs.is_empty() {
            builder = builder.tls_certs_merge(self.ca_certs.clone());
        }
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        // Built inside the runtime: the connector's resolver and timers belong to it.
        let client = {
            let _entered = runtime.enter();
            builder
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?
        };
        Ok(Lane { runtime, client })
    }
}

/// The configured proxy, with its basic auth as a sensitive header (never in the proxy URL,
/// where reqwest would put `Proxy::basic_auth` and errors could print it).
fn proxy(http: &HttpOptions, scrubber: &Scrubber) -> Result<Option<reqwest::Proxy>, SetupError> {
    let Some(address) = &http.proxy else {
        if http.proxy_user.is_some() || http.proxy_password.is_some() {
            return Err(SetupError::Invalid(
                "proxy-user and proxy-password need a `proxy`".into(),
            ));
        }
        return Ok(None);
    };
    let address = address.value.trim();
    let url = Url::parse(address).map_err(|e| {
        // A value that does not parse may still hold credentials: not quoted then.
        if address.contains('@') {
            SetupError::Invalid(format!("the proxy is not a URL: {e}"))
        } else {
            SetupError::Invalid(format!("proxy {address:?} is not a URL: {e}"))
        }
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SetupError::Invalid(
            "the proxy url carries credentials: put them in proxy-user and proxy-password instead"
                .into(),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SetupError::Invalid(format!(
            "proxy {address:?} must start with http:// (or https://)"
        )));
    }
    let mut proxy = reqwest::Proxy::all(url.as_str())
        .map_err(|e| SetupError::Invalid(format!("proxy {address:?}: {}", error_chain(&e))))?;
    let password = match &http.proxy_password {
        Some(password) => Some(
            password
                .value
                .resolve()
                .map_err(SetupError::ProxyPassword)?,
        ),
        None => None,
    };
    if let Some(user) = &http.proxy_user {
        let password = password.unwrap_or_else(|| Secret::new(String::new()));
        scrubber.learn(&password);
        scrubber.learn_basic(&user.value, password.expose());
        let mut value = HeaderValue::from_str(&basic_header(&user.value, password.expose()))
            .map_err(|_| {
                SetupError::Invalid(
                    "proxy-user and proxy-password hold characters an HTTP header cannot carry"
                        .into(),
                )
            })?;
        value.set_sensitive(true);
        proxy = proxy.custom_http_auth(value);
    } else if password.is_some() {
        return Err(SetupError::Invalid(
            "proxy-password needs a proxy-user".into(),
        ));
    }
    Ok(Some(proxy))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, SetupError> {
    let pem = std::fs::read(path)
        .map_err(|e| SetupError::Invalid(format!("cannot read ca-file {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        SetupError::Invalid(format!("ca-file {}: {}", path.display(), error_chain(&e)))
    })?;
    if certs.is_empty() {
        return Err(SetupError::Invalid(format!(
            "ca-file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Spanned;
    use crate::secret::SecretRef;

    fn options() -> HttpOptions {
        HttpOptions {
            timeout_secs: 5,
            ..HttpOptions::default()
        }
    }

    fn client(http: &HttpOptions, secrets: &[Secret]) -> Result<HttpClient, SetupError> {
        HttpClient::new(Settings {
            role: Role::Source,
            http,
            accept: "application/json",
            pacer: None,
            secrets,
        })
    }

    fn spanned<T>(value: T) -> Spanned<T> {
        Spanned::new(value, (0, 0).into())
    }

    #[test]
    fn credentials_are_learned_when_sent() {
        let client = client(&options(), &[Secret::new("config-secret".into())]).expect("client");
        let token = Secret::new("issued-token-1".into());
        let auth = Authorization::bearer(&token);
        assert_eq!(client.scrub("issued-token-1"), "issued-token-1");
        let request = Request::new(Method::GET, "http://127.0.0.1:1/x", Resend::Safe).auth(&auth);
        let lane = client.lanes.take().expect("lane");
        let _ = client.build(&lane.client, &request).expect("builds");
        assert_eq!(
            client.scrub("x issued-token-1 config-secret"),
            "x <redacted> <redacted>"
        );
        assert!(!format!("{auth:?} {client:?}").contains("issued"));
    }

    #[test]
    fn a_key_as_user_is_scrubbed_with_its_base64() {
        let client = client(&options(), &[]).expect("client");
        let key = Secret::new("k3y-0123456789".into());
        let auth = Authorization::key_as_user(&key, "X");
        let request = Request::new(Method::GET, "http://127.0.0.1:1/x", Resend::Safe).auth(&auth);
        let lane = client.lanes.take().expect("lane");
        let _ = client.build(&lane.client, &request).expect("builds");
        let header = basic_header("k3y-0123456789", "X");
        assert_eq!(client.scrub(&header), "Basic <redacted>");
        // The public password alone is no secret, and short: left alone inside words.
        assert_eq!(client.scrub("X-Request-Id"), "X-Request-Id");
    }

    #[test]
    fn proxy_settings_are_checked() {
        let with = |proxy: &str, user: Option<&str>| HttpOptions {
            proxy: Some(spanned(proxy.to_string())),
            proxy_user: user.map(|u| spanned(u.to_string())),
            ..options()
        };
        assert!(client(&with("http://127.0.0.1:3128", None), &[]).is_ok());
        assert!(client(&with("http://127.0.0.1:3128", Some("sync")), &[]).is_ok());
        let err = client(&with("http://sync:hunter2@127.0.0.1:3128", None), &[])
            .expect_err("credentials in the URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = client(&with("ftp://127.0.0.1", None), &[]).expect_err("scheme");
        assert!(err.to_string().contains("http://"), "{err}");
        let missing = HttpOptions {
            proxy_password: Some(spanned(SecretRef::Env(
                "ROSTER_TEST_NO_SUCH_VARIABLE_9".into(),
            ))),
            ..with("http://127.0.0.1:3128", Some("sync"))
        };
        let err = client(&missing, &[]).expect_err("missing password");
        assert!(matches!(err, SetupError::ProxyPassword(_)), "{err}");
        assert!(err.to_string().starts_with("proxy-password: "), "{err}");
        let orphan = HttpOptions {
            proxy_user: Some(spanned("sync".into())),
            ..options()
        };
        assert!(client(&orphan, &[]).is_err());
    }

    #[test]
    fn failures_for_logs_quote_the_scrubbed_body() {
        let failure = Failure::Status {
            status: 502,
            retry_after: None,
            body: " <html>Bad gateway</html> ".into(),
            retries: 0,
        };
        assert_eq!(failure.to_string(), "HTTP 502: <html>Bad gateway</html>");
        let bare = Failure::Status {
            status: 500,
            retry_after: None,
            body: String::new(),
            retries: 0,
        };
        assert_eq!(bare.to_string(), "HTTP 500");
    }
}
