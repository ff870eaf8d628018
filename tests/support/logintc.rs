//! A local double of the LoginTC Admin REST API (cloud, v1), which cannot run here.
//!
//! It follows the vendor's documented behaviour (https://www.logintc.com/docs/rest-api/ and
//! the official clients): everything under `/api/`; `Authorization: LoginTC key="<key>"`,
//! 401 otherwise; errors as `{"errors":[{"code","message"}]}`; users with 40-hex ids and a
//! username, name and email of 1 to 128 characters (400 otherwise, 409 for a username that
//! exists); `GET /users?username=` answering the user or 404; users listing the domains they
//! are in; domain membership added with `PUT /domains/{d}/users/{u}` and removed with
//! `DELETE` (which revokes the token); members listed page by page (`?page=N` from 1, an
//! empty page after the last); tokens issued `pending` with a 10-character activation code;
//! 404 for unknown ids. It can be told to answer 429 with `Retry-After`, and to hold back the
//! answer of a user create after making the user (a lost answer, a killed apply).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::vendors::{HttpDouble, Request, Response};

pub const DOMAIN: &str = "9120580e94f134cb7c9f27cd1e43dbc82980e152";
pub const DOMAIN_NAME: &str = "Office VPN";

/// A token of a domain member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub state: String,
    pub code: String,
    /// Whether the request that issued it had a body (the documented call has none).
    pub body_sent: bool,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Default)]
struct Domain {
    name: String,
    members: BTreeSet<String>,
    tokens: BTreeMap<String, Token>,
}

#[derive(Debug, Default)]
struct Org {
    users: BTreeMap<String, User>,
    domains: BTreeMap<String, Domain>,
    next: u64,
    /// Answer this many requests with 429 and `Retry-After: 1`.
    throttle: u32,
    /// Make this user, then hold the answer back for this long.
    stall_create: Option<(String, Duration)>,
    /// Whether `PUT /domains/{d}/users` (replace the whole membership) was ever called.
    bulk_replace_called: bool,
}

pub struct LoginTcDouble {
    pub http: HttpDouble,
    pub key: String,
    /// `http://127.0.0.1:PORT` (the config's `url`).
    pub url: String,
    org: Arc<Mutex<Org>>,
}

/// Members per page of `GET /domains/{d}/users`: small, so that paging is exercised.
const PAGE_SIZE: usize = 2;

impl LoginTcDouble {
    pub fn start() -> LoginTcDouble {
        let key = "k".repeat(32) + &"7".repeat(32);
        let org = Arc::new(Mutex::new(Org::default()));
        org.lock().expect("org").domains.insert(
            DOMAIN.into(),
            Domain {
                name: DOMAIN_NAME.into(),
                ..Domain::default()
            },
        );
        let (handler_org, handler_key) = (org.clone(), key.clone());
        let http = HttpDouble::start(move |request| {
            let stall = {
                let mut org = handler_org.lock().expect("org");
                let response = handle(&mut org, &handler_key, request);
                let stall = match (
                    &org.stall_create,
                    request.method.as_str(),
                    request.path.as_str(),
                ) {
                    (Some((username, wait)), "POST", "/api/users")
                        if response.status == 200
                            && request.body.contains(&format!("\"{username}\"")) =>
                    {
                        Some(*wait)
                    }
                    _ => None,
                };
                if stall.is_some() {
                    org.stall_create = None;
                }
                (response, stall)
            };
            if let Some(wait) = stall.1 {
                std::thread::sleep(wait);
            }
            stall.0
        });
        let url = http.url.clone();
        LoginTcDouble {
            http,
            key,
            url,
            org,
        }
    }

    /// A user someone created in LoginTC Admin by hand (not in any domain).
    pub fn add_org_user(&self, username: &str, name: &str, email: &str) -> String {
        let mut org = self.org.lock().expect("org");
        new_user(&mut org, username, name, email)
    }

    /// A domain member someone added by hand.
    pub fn add_member(&self, username: &str, name: &str, email: &str) -> String {
        let mut org = self.org.lock().expect("org");
        let id = new_user(&mut org, username, name, email);
        org.domains
            .get_mut(DOMAIN)
            .expect("domain")
            .members
            .insert(id.clone());
        id
    }

    /// The domain's members' usernames, sorted.
    pub fn members(&self) -> Vec<String> {
        let org = self.org.lock().expect("org");
        let mut names: Vec<String> = org.domains[DOMAIN]
            .members
            .iter()
            .filter_map(|id| org.users.get(id).map(|u| u.username.clone()))
            .collect();
        names.sort();
        names
    }

    /// The organization's users' usernames, sorted (with repeats, if any were made twice).
    pub fn org_usernames(&self) -> Vec<String> {
        let org = self.org.lock().expect("org");
        let mut names: Vec<String> = org.users.values().map(|u| u.username.clone()).collect();
        names.sort();
        names
    }

    pub fn user(&self, username: &str) -> Option<User> {
        let org = self.org.lock().expect("org");
        org.users.values().find(|u| u.username == username).cloned()
    }

    pub fn token(&self, username: &str) -> Option<Token> {
        let org = self.org.lock().expect("org");
        let user = org.users.values().find(|u| u.username == username)?;
        org.domains[DOMAIN].tokens.get(&user.id).cloned()
    }

    /// Changes a user as an admin would in LoginTC Admin.
    pub fn set_email(&self, username: &str, email: &str) {
        let mut org = self.org.lock().expect("org");
        if let Some(user) = org.users.values_mut().find(|u| u.username == username) {
            user.email = email.into();
        }
    }

    pub fn throttle(&self, requests: u32) {
        self.org.lock().expect("org").throttle = requests;
    }

    pub fn stall_create(&self, username: &str, wait: Duration) {
        self.org.lock().expect("org").stall_create = Some((username.into(), wait));
    }

    pub fn bulk_replace_called(&self) -> bool {
        self.org.lock().expect("org").bulk_replace_called
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }
}

fn new_user(org: &mut Org, username: &str, name: &str, email: &str) -> String {
    org.next += 1;
    let id = format!("{:040x}", 0xabc0_0000_u64 + org.next);
    org.users.insert(
        id.clone(),
        User {
            id: id.clone(),
            username: username.into(),
            name: name.into(),
            email: email.into(),
        },
    );
    id
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        json!({ "errors": [{ "code": code, "message": message }] }),
    )
}

fn user_json(org: &Org, user: &User) -> Value {
    let domains: Vec<&String> = org
        .domains
        .iter()
        .filter(|(_, d)| d.members.contains(&user.id))
        .map(|(id, _)| id)
        .collect();
    json!({
        "id": user.id, "username": user.username, "name": user.name, "email": user.email,
        "domains": domains,
    })
}

fn ok(body: Value) -> Response {
    Response::json(200, body)
}

fn empty() -> Response {
    Response {
        status: 200,
        headers: Vec::new(),
        body: String::new(),
    }
}

/// 1 to 128 characters, as the Users page says of username and name.
fn valid_text(value: Option<&str>) -> bool {
    value.is_some_and(|v| (1..=128).contains(&v.chars().count()))
}

fn valid_email(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let mut parts = v.split('@');
        matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && b.contains('.'))
            && v.chars().count() <= 128
    })
}

fn handle(org: &mut Org, key: &str, request: &Request) -> Response {
    if org.throttle > 0 {
        org.throttle -= 1;
        return error(429, "api.error.ratelimit", "Too many requests").header("Retry-After", "1");
    }
    let expected = format!("LoginTC key=\"{key}\"");
    if request.header("authorization") != Some(expected.as_str()) {
        return error(401, "api.error.unauthorized", "Invalid API key");
    }
    let Some(path) = request.path.strip_prefix("/api/") else {
        return error(404, "api.error.notfound", "Not found");
    };
    let parts: Vec<&str> = path.split('/').collect();
    let body = || serde_json::from_str::<Value>(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["ping"]) => ok(json!({ "status": "OK" })),
        ("POST", ["users"]) => {
            let body = body();
            let field = |name: &str| body.get(name).and_then(Value::as_str);
            if !valid_text(field("username")) || !valid_text(field("name")) {
                return error(
                    400,
                    "api.error.invalid.user",
                    "username and name are 1 to 128 characters",
                );
            }
            if !valid_email(field("email")) {
                return error(
                    400,
                    "api.error.invalid.email",
                    "A valid email address is required",
                );
            }
            let username = field("username").unwrap_or_default();
            if org.users.values().any(|u| u.username == username) {
                return error(
                    409,
                    "api.error.conflict.user",
                    "A user with this username already exists",
                );
            }
            let id = new_user(
                org,
                username,
                field("name").unwrap_or_default(),
                field("email").unwrap_or_default(),
            );
            let user = org.users[&id].clone();
            ok(user_json(org, &user))
        }
        ("GET", ["users"]) => {
            let Some(username) = request.param("username") else {
                return error(400, "api.error.invalid", "username is required");
            };
            match org.users.values().find(|u| u.username == username).cloned() {
                Some(user) => ok(user_json(org, &user)),
                None => error(404, "api.error.notfound.user", "No such user"),
            }
        }
        (method, ["users", id]) => {
            let Some(user) = org.users.get(*id).cloned() else {
                return error(404, "api.error.notfound.user", "No such user");
            };
            match method {
                "GET" => ok(user_json(org, &user)),
                "PUT" => {
                    let body = body();
                    if body.get("username").is_some() {
                        return error(
                            400,
                            "api.error.invalid.username",
                            "Updating the username is not permitted",
                        );
                    }
                    let name = body.get("name").and_then(Value::as_str);
                    let email = body.get("email").and_then(Value::as_str);
                    if (name.is_some() && !valid_text(name))
                        || (email.is_some() && !valid_email(email))
                    {
                        return error(400, "api.error.invalid.user", "Invalid name or email");
                    }
                    let previous = user_json(org, &user);
                    let stored = org.users.get_mut(*id).expect("user");
                    if let Some(name) = name {
                        stored.name = name.into();
                    }
                    if let Some(email) = email {
                        stored.email = email.into();
                    }
                    ok(previous)
                }
                "DELETE" => {
                    org.users.remove(*id);
                    for domain in org.domains.values_mut() {
                        domain.members.remove(*id);
                        domain.tokens.remove(*id);
                    }
                    empty()
                }
                _ => error(405, "api.error.method", "Method not allowed"),
            }
        }
        (method, ["domains", d, rest @ ..]) => {
            if !org.domains.contains_key(*d) {
                return error(404, "api.error.notfound.domain", "No such domain");
            }
            domain_route(org, d, method, rest, request)
        }
        _ => error(404, "api.error.notfound", "Not found"),
    }
}

fn domain_route(
    org: &mut Org,
    d: &str,
    method: &str,
    rest: &[&str],
    request: &Request,
) -> Response {
    match (method, rest) {
        ("GET", []) => {
            let domain = &org.domains[d];
            ok(json!({ "id": d, "name": domain.name, "type": "RADIUS", "keyType": "PIN" }))
        }
        ("GET", ["users"]) => {
            let page: usize = request
                .param("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            if page == 0 {
                return error(400, "api.error.invalid.page", "page starts at 1");
            }
            let members: Vec<User> = org.domains[d]
                .members
                .iter()
                .filter_map(|id| org.users.get(id).cloned())
                .collect();
            let slice: Vec<Value> = members
                .iter()
                .skip((page - 1) * PAGE_SIZE)
                .take(PAGE_SIZE)
                .map(|u| user_json(org, u))
                .collect();
            ok(Value::Array(slice))
        }
        ("PUT", ["users"]) => {
            // Replaces the whole membership: roster must never call it.
            org.bulk_replace_called = true;
            org.domains.get_mut(d).expect("domain").members.clear();
            empty()
        }
        (method, ["users", uid, tail @ ..]) => {
            if !org.users.contains_key(*uid) {
                return error(404, "api.error.notfound.user", "No such user");
            }
            let domain = org.domains.get_mut(d).expect("domain");
            match (method, tail) {
                ("GET", []) if domain.members.contains(*uid) => ok(json!({ "id": uid })),
                ("PUT", []) => {
                    domain.members.insert(uid.to_string());
                    empty()
                }
                ("DELETE", []) => {
                    if !domain.members.remove(*uid) {
                        return error(
                            404,
                            "api.error.notfound.domainuser",
                            "User is not a member of the domain",
                        );
                    }
                    // Leaving the domain revokes the token.
                    domain.tokens.remove(*uid);
                    empty()
                }
                (_, ["token"]) if !domain.members.contains(*uid) => error(
                    404,
                    "api.error.notfound.domainuser",
                    "User is not a member of the domain",
                ),
                ("PUT", ["token"]) => {
                    // Documented with no body ("Content-Length: 0"): what a client sends
                    // anyway is kept, for tests to see that roster sends nothing invented.
                    let sent = !request.body.trim().is_empty();
                    let n = domain.tokens.len() + 1;
                    let token = domain.tokens.entry(uid.to_string()).or_insert(Token {
                        state: "pending".into(),
                        code: format!("{:010}", 1_000_000_000_u64 + n as u64)[..10].to_string(),
                        body_sent: sent,
                    });
                    ok(json!({ "state": token.state, "code": token.code }))
                }
                ("GET", ["token"]) => match domain.tokens.get(*uid) {
                    Some(t) => ok(json!({ "state": t.state, "code": t.code })),
                    None => error(404, "api.error.notfound.token", "No token"),
                },
                ("DELETE", ["token"]) => {
                    domain.tokens.remove(*uid);
                    empty()
                }
                _ => error(
                    404,
                    "api.error.notfound.domainuser",
                    "User is not a member of the domain",
                ),
            }
        }
        _ => error(404, "api.error.notfound", "Not found"),
    }
}
