//! The LoginTC Admin API as a target: one domain of a LoginTC organization.
//!
//! LoginTC keeps users in the organization and lets domains (a VPN, a website) take some of
//! them as members, each with a token. roster's target is the domain: its members are the
//! accounts, listed with `GET /domains/{d}/users?page=N`. The User Sync Tool's semantics,
//! which its users expect, map onto the seam like this:
//! - add: create the user in the organization unless one of that username exists (then it
//!   is adopted), add it to the domain, and issue a token per `token-mode`;
//! - update: name and email (`PUT /users/{id}`; LoginTC does not rename users);
//! - remove: out of the domain (`DELETE /domains/{d}/users/{id}`, which revokes the token),
//!   the user kept in the organization;
//! - delete: out of the domain, then out of the organization (`DELETE /users/{id}`).
//!
//! `PUT /domains/{d}/users` (replace the whole membership) is never used: it removes every
//! member not listed, hand-added ones included. LoginTC has no externalId, no versions and
//! no active flag: ownership is in roster's store, staleness compares content digests.
//! Requests go through `src/http` (retries, `Retry-After`, pacing, proxy, scrubbing).

use std::collections::HashSet;
use std::sync::OnceLock;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Credential, RemovalWords, StatusMeaning, Target, TargetError, UserUpdate};
use crate::config::{LoginTcTarget, TokenMode};
use crate::http::{
    self, Authorization, Body, HttpClient, Pacer, Reply, Request, Resend, Role, Settings,
    SetupError,
};
use crate::model::{Capabilities, DesiredUser, TargetUser};
use crate::secret::Secret;

/// LoginTC's media type, for `Accept` and `Content-Type`.
const MEDIA_TYPE: &str = "application/vnd.logintc.v1+json";
/// Pages of members read before giving up on a server whose paging never ends.
const MAX_PAGES: u64 = 1_000_000;

/// One LoginTC domain, through the Admin API.
#[derive(Debug)]
pub struct LoginTc {
    /// `https://HOST/api`, no trailing slash.
    api: String,
    domain: String,
    token_mode: TokenMode,
    http: HttpClient,
    auth: Authorization,
    /// The domain's name, read with the listing, for the plan's words.
    domain_name: OnceLock<String>,
}

impl LoginTc {
    /// Reads the key and builds the HTTP client; does not connect yet.
    pub fn new(config: &LoginTcTarget) -> Result<Self, TargetError> {
        let pacer = config
            .rate_limit
            .map(Pacer::new)
            .transpose()
            .map_err(TargetError::Setup)?;
        let key = config.api_key.value.resolve()?;
        let header = Secret::new(format!("LoginTC key=\"{}\"", key.expose()));
        let http = HttpClient::new(Settings {
            role: Role::Target,
            http: &config.http,
            accept: MEDIA_TYPE,
            pacer,
            secrets: std::slice::from_ref(&key),
        })
        .map_err(|e| match e {
            SetupError::ProxyPassword(_) => TargetError::Setup(e.to_string()),
            SetupError::Invalid(message) => TargetError::Setup(message),
        })?;
        Ok(LoginTc {
            api: config.url.value.trim_end_matches('/').to_string(),
            domain: config.domain.value.clone(),
            token_mode: config.token_mode,
            http,
            auth: Authorization::custom(header, &key),
            domain_name: OnceLock::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    fn domain_path(&self) -> String {
        format!("/domains/{}", self.domain)
    }

    /// `/domains/{d}/users/{id}`; ids come from the server and are checked before they go
    /// into a path.
    fn member_path(&self, id: &str) -> Result<String, TargetError> {
        check_id(id)?;
        Ok(format!("{}/users/{id}", self.domain_path()))
    }

    /// Sends one request; `Ok` only for a 2xx answer.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        resend: Resend,
    ) -> Result<Reply, TargetError> {
        let url = self.url(path);
        let mut request = Request::new(method.clone(), url.clone(), resend).auth(&self.auth);
        if let Some(body) = body {
            request = request.body(Body::Bytes {
                content_type: MEDIA_TYPE,
                bytes: body.to_string().into_bytes(),
            });
        }
        self.http
            .send(&request)
            .map_err(|failure| self.target_error(&method, &url, failure))
    }

    fn json(&self, method: &Method, reply: &Reply) -> Result<Value, TargetError> {
        super::reply_json(method, reply)
    }

    /// A failure in LoginTC's terms: its error body is `{"errors":[{"code","message"}]}`.
    fn target_error(&self, method: &Method, url: &str, failure: http::Failure) -> TargetError {
        TargetError::from_http(
            method.to_string(),
            url.to_string(),
            failure,
            |_, body| {
                let (code, detail) = error_body(body);
                (code, detail.map(|d| self.http.scrub(&d)))
            },
            |status, _| match status {
                401 | 403 => Some(StatusMeaning::Unauthorized(Credential::LoginTcKey)),
                409 => Some(StatusMeaning::Conflict),
                _ => None,
            },
        )
    }

    /// `GET /domains/{d}`: the domain exists (its name is kept for the plan's words). An
    /// unknown domain is a setup error before anything is read or planned.
    fn check_domain(&self) -> Result<(), TargetError> {
        let path = self.domain_path();
        match self.send(Method::GET, &path, None, Resend::Safe) {
            Ok(reply) => {
                let body = self.json(&Method::GET, &reply)?;
                let name = body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(&self.domain)
                    .to_string();
                let _ = self.domain_name.set(name);
                Ok(())
            }
            Err(e) if e.is_not_found() => Err(TargetError::Setup(format!(
                "the LoginTC domain {} does not exist at {} (GET {} answered HTTP 404): \
                 check `domain` in target \"logintc\"",
                self.domain,
                self.api,
                self.url(&path)
            ))),
            Err(e) => Err(e),
        }
    }

    /// The organization's user of that username, in or out of the domain.
    fn org_user(&self, username: &str) -> Result<Option<LoginTcUser>, TargetError> {
        let path = format!("/users?username={}", encode(username));
        match self.send(Method::GET, &path, None, Resend::Safe) {
            Ok(reply) => {
                let body = self.json(&Method::GET, &reply)?;
                // Some answers wrap one user in a list; take the one with this username.
                let candidates = match body {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for item in &candidates {
                    let user = LoginTcUser::parse(item).map_err(|m| self.invalid(&path, m))?;
                    if user.username.to_lowercase() == username.to_lowercase() {
                        return Ok(Some(user));
                    }
                }
                Ok(None)
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn org_user_by_id(&self, id: &str) -> Result<Option<LoginTcUser>, TargetError> {
        check_id(id)?;
        let path = format!("/users/{id}");
        match self.send(Method::GET, &path, None, Resend::Safe) {
            Ok(reply) => {
                let body = self.json(&Method::GET, &reply)?;
                LoginTcUser::parse(&body)
                    .map(Some)
                    .map_err(|m| self.invalid(&path, m))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes `user` a member of the domain with a token as `token-mode` says.
    fn join_domain(&self, id: &str) -> Result<(), TargetError> {
        let member = self.member_path(id)?;
        // Adding a member twice changes nothing: safe to resend.
        self.send(Method::PUT, &member, None, Resend::Safe)?;
        if self.token_mode == TokenMode::None {
            return Ok(());
        }
        // As documented: no body ("Content-Length: 0"). "Does nothing if the token is
        // already active or not yet loaded": safe to resend.
        self.send(Method::PUT, &format!("{member}/token"), None, Resend::Safe)?;
        Ok(())
    }

    fn invalid(&self, path: &str, message: String) -> TargetError {
        TargetError::InvalidResponse {
            method: "GET".into(),
            url: self.url(path),
            message,
        }
    }

    fn domain_label(&self) -> String {
        self.domain_name
            .get()
            .cloned()
            .unwrap_or_else(|| self.domain.clone())
    }
}

impl Target for LoginTc {
    fn describe(&self) -> String {
        self.url(&self.domain_path())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOGINTC
    }

    fn removal_words(&self) -> RemovalWords {
        let domain = self.domain_label();
        RemovalWords {
            remove: Some(format!("leaves domain {domain}, token revoked")),
            delete: Some(format!(
                "leaves domain {domain}, token revoked, deleted from the organization"
            )),
        }
    }

    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        self.check_domain()?;
        let mut seen: HashSet<String> = HashSet::new();
        for page in 1..=MAX_PAGES {
            let path = format!("{}/users?page={page}", self.domain_path());
            let reply = self.send(Method::GET, &path, None, Resend::Safe)?;
            let body = self.json(&Method::GET, &reply)?;
            let items = match &body {
                Value::Array(items) => items.as_slice(),
                other => other
                    .get("users")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .ok_or_else(|| self.invalid(&path, "expected a list of users".into()))?,
            };
            if items.is_empty() {
                return Ok(seen.len() as u64);
            }
            let mut new = 0;
            for item in items {
                let user = LoginTcUser::parse(item).map_err(|m| self.invalid(&path, m))?;
                if seen.insert(user.id.clone()) {
                    new += 1;
                    sink(user.into_target());
                }
            }
            if new == 0 {
                return Err(self.invalid(
                    &path,
                    format!("page {page} repeats members already listed (does the server ignore `page`?)"),
                ));
            }
        }
        Err(TargetError::InvalidResponse {
            method: "GET".into(),
            url: self.url(&format!("{}/users", self.domain_path())),
            message: format!("more than {MAX_PAGES} pages of members"),
        })
    }

    /// A member of the domain; `None` when the user is gone or no longer in the domain.
    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError> {
        Ok(self
            .org_user_by_id(id)?
            .filter(|u| u.domains.contains(&self.domain))
            .map(LoginTcUser::into_target))
    }

    /// A member of the domain with that username (an organization user outside the domain
    /// is not an account of this target: an add takes it in).
    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError> {
        Ok(self
            .org_user(username)?
            .filter(|u| u.domains.contains(&self.domain))
            .map(LoginTcUser::into_target))
    }

    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
        // Looked up first, always: a create whose answer was lost (a killed apply, a dropped
        // connection) left the user in the organization, and a second POST would be refused
        // or, worse, make a second one.
        let existing = self.org_user(&user.username)?;
        if let Some(found) = &existing
            && found.domains.contains(&self.domain)
        {
            return Err(TargetError::Conflict {
                method: "PUT".into(),
                url: self.url(&self.member_path(&found.id)?),
                status: 409,
                detail: Some(format!(
                    "{} is a member of domain {} already",
                    found.username,
                    self.domain_label()
                )),
            });
        }
        let name = user.name.clone().unwrap_or_else(|| user.username.clone());
        let created = match existing {
            Some(found) => {
                log::info!(
                    "add {}: the organization has this user already; adopting it into domain {}",
                    user.username,
                    self.domain_label()
                );
                let wanted = (Some(&name), user.email.as_ref());
                if (found.name.as_ref(), found.email.as_ref()) != wanted {
                    let body = update_body(Some(&name), user.email.as_deref());
                    self.send(
                        Method::PUT,
                        &format!("/users/{}", found.id),
                        Some(&body),
                        Resend::Safe,
                    )?;
                }
                LoginTcUser {
                    name: Some(name),
                    email: user.email.clone().or(found.email),
                    ..found
                }
            }
            None => {
                let body = json!({
                    "username": user.username,
                    "name": name,
                    "email": user.email.clone().unwrap_or_default(),
                });
                match self.send(Method::POST, "/users", Some(&body), Resend::OnlyUnprocessed) {
                    Ok(reply) => {
                        let value = self.json(&Method::POST, &reply)?;
                        LoginTcUser::parse(&value).map_err(|m| self.invalid("/users", m))?
                    }
                    // Made meanwhile (another run, or our own lost answer): take it.
                    Err(e) if e.is_conflict() => self.org_user(&user.username)?.ok_or(e)?,
                    Err(e) => return Err(e),
                }
            }
        };
        self.join_domain(&created.id)?;
        Ok(created.into_target())
    }

    fn update_user(
        &self,
        id: &str,
        _version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        check_id(id)?;
        if let Some(username) = &update.username {
            return Err(TargetError::Unsupported(format!(
                "LoginTC does not rename users (to {username}): a user's username is fixed once created"
            )));
        }
        // externalId (adoption) is kept in roster's store, `active` does not exist here.
        if update.name.is_none() && update.email.is_none() {
            return Ok(None);
        }
        let body = update_body(update.name.as_ref(), update.email.as_deref());
        self.send(
            Method::PUT,
            &format!("/users/{id}"),
            Some(&body),
            Resend::Safe,
        )?;
        Ok(None)
    }

    fn remove_user(&self, id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        let member = self.member_path(id)?;
        match self.send(Method::DELETE, &member, None, Resend::Safe) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete_user(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        self.remove_user(id, version)?;
        match self.send(Method::DELETE, &format!("/users/{id}"), None, Resend::Safe) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn update_body(name: Option<&String>, email: Option<&str>) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(name) = name {
        body.insert("name".into(), json!(name));
    }
    if let Some(email) = email {
        body.insert("email".into(), json!(email));
    }
    Value::Object(body)
}

/// A user as LoginTC answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginTcUser {
    id: String,
    username: String,
    name: Option<String>,
    email: Option<String>,
    /// The ids of the domains it is a member of.
    domains: Vec<String>,
}

impl LoginTcUser {
    fn parse(value: &Value) -> Result<LoginTcUser, String> {
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_string);
        let id = text("id").ok_or("a user without an id")?;
        check_id(&id).map_err(|e| e.to_string())?;
        let username = text("username").ok_or_else(|| format!("user {id} has no username"))?;
        let domains = match value.get("domains") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|d| d.as_str().or_else(|| d.get("id").and_then(Value::as_str)))
                .map(str::to_ascii_lowercase)
                .collect(),
            _ => Vec::new(),
        };
        Ok(LoginTcUser {
            id,
            username,
            name: text("name").filter(|n| !n.is_empty()),
            email: text("email").filter(|e| !e.is_empty()),
            domains,
        })
    }

    fn into_target(self) -> TargetUser {
        TargetUser {
            id: self.id,
            external_id: None,
            username: self.username,
            name: self.name,
            email: self.email,
            // A domain member is in service: LoginTC has no active flag.
            active: true,
            ..TargetUser::default()
        }
    }
}

/// LoginTC ids are 40 hexadecimal characters; anything else never goes into a path.
fn check_id(id: &str) -> Result<(), TargetError> {
    if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(TargetError::InvalidResponse {
            method: "-".into(),
            url: "-".into(),
            message: format!(
                "{:?} is not a LoginTC id (40 hexadecimal characters)",
                id.chars().take(60).collect::<String>()
            ),
        })
    }
}

/// `{"errors":[{"code":"...","message":"..."}]}` → (code, message) of the first error.
fn error_body(body: &str) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return (
            None,
            (!text.is_empty()).then(|| http::quote_body(text.as_bytes())),
        );
    };
    let first = value
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first());
    let field = |name: &str| {
        first
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (field("code"), field("message"))
}

/// A query value, percent-encoded.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_with_their_domains() {
        let value = json!({
            "id": "8c184f495a5b7b6e9ed732f2ce3c67e310806f38",
            "username": "john.doe", "name": "John Doe", "email": "john.doe@example.com",
            "domains": ["9120580E94F134CB7C9F27CD1E43DBC82980E152"]
        });
        let user = LoginTcUser::parse(&value).expect("user");
        assert_eq!(user.domains, ["9120580e94f134cb7c9f27cd1e43dbc82980e152"]);
        assert_eq!(
            user.clone().into_target().email.as_deref(),
            Some("john.doe@example.com")
        );
        let bad = json!({ "id": "../../users", "username": "x" });
        assert!(
            LoginTcUser::parse(&bad).is_err(),
            "an id that is not 40 hex never reaches a path"
        );
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let (code, message) =
            error_body(r#"{"errors":[{"code":"api.error.notfound.user","message":"No user"}]}"#);
        assert_eq!(code.as_deref(), Some("api.error.notfound.user"));
        assert_eq!(message.as_deref(), Some("No user"));
        assert_eq!(error_body("").1, None);
    }
}
