//! Local doubles of the REST directories roster reads, ServiceNow's Table API and Freshservice's
//! API v2, since no vendor server can run here. Each follows the vendor's documented behaviour
//! (see shared/CONNECTORS.md): ServiceNow's offset paging with the limit applied before ACLs
//! (short and even empty pages in the middle), `Link` and `X-Total-Count` headers, encoded
//! queries, the OAuth token endpoint (form-encoded only, `expires_in`, refresh grants);
//! Freshservice's `per_page`/`page` paging with a `Link` header only while more pages follow,
//! and basic auth with the API key as the user and `X` as the password. Both can be told to
//! answer 429 with `Retry-After`, 500 in the middle of paging (once or always), and 401 for
//! wrong credentials; ServiceNow also to drop rows from its last page while `X-Total-Count`
//! still counts them (the short read of issue 11.5).
//!
//! `HttpDouble` is the server underneath: HTTP/1.1 on a loopback port, one request per
//! connection, on its own thread, stopped when dropped (and after `MAX_REQUESTS` at most).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{Value, json};

/// A double serves at most this many requests, so a client stuck in a loop cannot keep a
/// test running.
const MAX_REQUESTS: usize = 2000;

/// A request as the double received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as sent (a binary upload).
    pub bytes: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> HashMap<String, String> {
        decode_pairs(&self.body).into_iter().collect()
    }
}

/// An answer: status, headers, body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// An HTTP/1.1 server on 127.0.0.1, answering every request with `handler`.
pub struct HttpDouble {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl HttpDouble {
    pub fn start(mut handler: impl FnMut(&Request) -> Response + Send + 'static) -> HttpDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_log) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_REQUESTS) {
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let response = handler(&request);
                thread_log.lock().expect("request log").push(request);
                let _ = write_response(stream, &response);
            }
        });
        HttpDouble {
            url: format!("http://{addr}"),
            addr,
            stop,
            thread: Some(thread),
            log,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("request log").clone()
    }
}

impl Drop for HttpDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let super::http::RawRequest {
        method,
        target,
        headers,
        body,
        bytes,
    } = super::http::read_request(stream)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), decode_pairs(query)),
        None => (target, Vec::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
        bytes,
        at: Instant::now(),
    })
}

/// `a=1&b=x%20y` → pairs, decoded the way servers decode forms and queries (`+` is a space).
fn decode_pairs(text: &str) -> Vec<(String, String)> {
    Url::parse(&format!("http://double/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn write_response(stream: TcpStream, response: &Response) -> std::io::Result<()> {
    super::http::write_response(stream, response.status, &response.headers, &response.body)
}

/// The `Authorization` value of HTTP basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Fails (500) a page `times` times before answering it; `u32::MAX` means always.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// ServiceNow: the `sysparm_offset`; Freshservice: the `page`.
    pub at: u64,
    pub times: u32,
}

// ---------------------------------------------------------------------------------------------
// ServiceNow

/// What a ServiceNow double holds and how it misbehaves.
pub struct ServiceNowSetup {
    /// `sys_user` rows: objects of strings, as the Table API returns them.
    pub users: Vec<Value>,
    /// sys_ids of users the integration account's ACLs hide. They still count for
    /// `sysparm_limit`, `sysparm_offset` and `X-Total-Count`.
    pub hidden: HashSet<String>,
    pub groups: Vec<Value>,
    pub memberships: Vec<Value>,
    /// `sys_user_has_role` rows (see `sn_role`).
    pub role_grants: Vec<Value>,
    /// Fails this `sysparm_offset` of `sys_user_has_role`, every time.
    pub role_fault: Option<u64>,
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued access tokens, in seconds; expired tokens are refused (401).
    pub token_lifetime: u64,
    pub link_header: bool,
    pub total_count: bool,
    /// Answer the first `sys_user` request with 429 and `Retry-After: 1`.
    pub rate_limit_once: bool,
    pub fault: Option<Fault>,
    /// Fails this `sysparm_offset` of `sys_user_grmember` (a group read failing mid-paging).
    pub member_fault: Option<Fault>,
    /// Refuse every `refresh_token` grant.
    pub refuse_refresh: bool,
    /// Write next links with this origin instead of the double's own.
    pub link_origin: Option<String>,
    /// Leave this many rows out of the last `sys_user` page, while `X-Total-Count` and the
    /// links still count them.
    pub drop_from_last_page: usize,
}

impl Default for ServiceNowSetup {
    fn default() -> Self {
        ServiceNowSetup {
            users: Vec::new(),
            hidden: HashSet::new(),
            groups: Vec::new(),
            memberships: Vec::new(),
            role_grants: Vec::new(),
            role_fault: None,
            username: "roster.sync".into(),
            password: "sn-password-8c1f".into(),
            client_id: "3f2a9c0d".into(),
            client_secret: "sn-client-secret-77ab".into(),
            token_lifetime: 1800,
            link_header: true,
            total_count: true,
            rate_limit_once: false,
            fault: None,
            member_fault: None,
            refuse_refresh: false,
            link_origin: None,
            drop_from_last_page: 0,
        }
    }
}

/// A `sys_user` row with the fields the tests map.
pub fn sn_user(sys_id: &str, user_name: &str, name: &str, active: bool) -> Value {
    json!({
        "sys_id": sys_id,
        "user_name": user_name,
        "name": name,
        "email": format!("{user_name}@example.com"),
        "phone": "+1 555 0100",
        "mobile_phone": "",
        "title": "Engineer",
        "active": active.to_string(),
        "failed_attempts": "0",
        "sys_updated_on": SN_LONG_AGO,
    })
}

/// A `sys_user_has_role` row: the user's sys_id, the role's name as the dot-walked
/// `role.name` field, and the grant's state (`active`, `requested`, `pending_delete`).
pub fn sn_role(sys_id: &str, user: &str, role: &str, state: &str) -> Value {
    json!({
        "sys_id": sys_id,
        "user": user,
        "role.name": role,
        "role": format!("role-{role}"),
        "state": state,
        "inherited": "false",
    })
}

/// The `sys_updated_on` of rows made by `sn_user`: long before any test.
pub const SN_LONG_AGO: &str = "2024-01-02 03:04:05";

/// Now as the Table API writes `sys_updated_on`: `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn sn_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

struct ServiceNowState {
    setup: ServiceNowSetup,
    base: String,
    /// Access token → when it stops being valid.
    tokens: HashMap<String, Instant>,
    refresh_tokens: HashSet<String>,
    issued: u64,
    grants: Vec<String>,
    rate_limited: bool,
    faults_left: u32,
}

/// A ServiceNow instance double.
pub struct ServiceNow {
    pub http: HttpDouble,
    state: Arc<Mutex<ServiceNowState>>,
}

impl ServiceNow {
    pub fn start(setup: ServiceNowSetup) -> ServiceNow {
        let faults_left = setup.fault.map_or(0, |f| f.times);
        let state = Arc::new(Mutex::new(ServiceNowState {
            setup,
            base: String::new(),
            tokens: HashMap::new(),
            refresh_tokens: HashSet::new(),
            issued: 0,
            grants: Vec::new(),
            rate_limited: false,
            faults_left,
        }));
        let handler_state = state.clone();
        let http = HttpDouble::start(move |request| {
            handler_state
                .lock()
                .expect("ServiceNow state")
                .answer(request)
        });
        state.lock().expect("ServiceNow state").base = http.url.clone();
        ServiceNow { http, state }
    }

    pub fn url(&self) -> &str {
        &self.http.url
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    /// The `sys_user` table requests, in order.
    pub fn user_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/api/now/table/sys_user")
            .collect()
    }

    /// From now on, leaves `rows` rows out of the last `sys_user` page (see
    /// `ServiceNowSetup::drop_from_last_page`).
    pub fn drop_from_last_page(&self, rows: usize) {
        self.state
            .lock()
            .expect("ServiceNow state")
            .setup
            .drop_from_last_page = rows;
    }

    /// Changes fields of the `sys_user` row `sys_id` (adding it if there is none), as an
    /// update on the instance does: `sys_updated_on` becomes now.
    pub fn change_user(&self, sys_id: &str, fields: &[(&str, &str)]) {
        let mut state = self.state.lock().expect("ServiceNow state");
        let users = &mut state.setup.users;
        let at = match users.iter().position(|u| u["sys_id"] == sys_id) {
            Some(at) => at,
            None => {
                users.push(json!({ "sys_id": sys_id }));
                users.len() - 1
            }
        };
        for (name, value) in fields {
            users[at][*name] = Value::String(value.to_string());
        }
        users[at]["sys_updated_on"] = Value::String(sn_now());
    }

    /// Deletes the `sys_user` row `sys_id` outright (no row is left to find by time).
    pub fn delete_user(&self, sys_id: &str) {
        let mut state = self.state.lock().expect("ServiceNow state");
        state.setup.users.retain(|u| u["sys_id"] != sys_id);
    }

    /// Revokes every access token issued so far (refresh tokens stay good).
    pub fn revoke_access_tokens(&self) {
        self.state.lock().expect("ServiceNow state").tokens.clear();
    }

    /// The grant types asked of the token endpoint, in order (refused ones too).
    pub fn grants(&self) -> Vec<String> {
        self.state.lock().expect("ServiceNow state").grants.clone()
    }
}

impl ServiceNowState {
    fn answer(&mut self, request: &Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/oauth_token.do") => self.token(request),
            ("GET", path) => match path.strip_prefix("/api/now/table/") {
                Some(table) if !table.contains('/') => self.table(table, request),
                _ => sn_error(400, "Invalid resource", path),
            },
            _ => sn_error(405, "Method not Supported", &request.path),
        }
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(value) = request.header("authorization") else {
            return false;
        };
        if value == basic_auth(&self.setup.username, &self.setup.password) {
            return true;
        }
        match value.strip_prefix("Bearer ") {
            Some(token) => self
                .tokens
                .get(token)
                .is_some_and(|expires| Instant::now() < *expires),
            None => false,
        }
    }

    fn token(&mut self, request: &Request) -> Response {
        let form_encoded = request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !form_encoded {
            return Response::json(
                400,
                json!({"error": "invalid_request", "error_description": "form-encoded body required"}),
            );
        }
        let form = request.form();
        let get = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
        let grant = get("grant_type").to_string();
        self.grants.push(grant.clone());
        let refused = || {
            Response::json(
                401,
                json!({"error_description": "access_denied", "error": "server_error"}),
            )
        };
        if get("client_id") != self.setup.client_id
            || get("client_secret") != self.setup.client_secret
        {
            return refused();
        }
        let refresh_token = match grant.as_str() {
            "password" => {
                if get("username") != self.setup.username || get("password") != self.setup.password
                {
                    return refused();
                }
                self.issued += 1;
                let refresh = format!("refresh-{}", self.issued);
                self.refresh_tokens.insert(refresh.clone());
                refresh
            }
            "refresh_token" => {
                let refresh = get("refresh_token").to_string();
                if self.setup.refuse_refresh || !self.refresh_tokens.contains(&refresh) {
                    return refused();
                }
                refresh
            }
            _ => {
                return Response::json(
                    400,
                    json!({"error": "unsupported_grant_type", "error_description": "unsupported grant"}),
                );
            }
        };
        self.issued += 1;
        let access = format!("access-{}", self.issued);
        self.tokens.insert(
            access.clone(),
            Instant::now() + Duration::from_secs(self.setup.token_lifetime),
        );
        Response::json(
            200,
            json!({
                "access_token": access,
                "refresh_token": refresh_token,
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": self.setup.token_lifetime,
            }),
        )
    }

    fn table(&mut self, table: &str, request: &Request) -> Response {
        if !self.authorized(request) {
            return sn_error(
                401,
                "User Not Authenticated",
                "Required to provide Auth information",
            );
        }
        let rows = match table {
            "sys_user" => &self.setup.users,
            "sys_user_group" => &self.setup.groups,
            "sys_user_grmember" => &self.setup.memberships,
            "sys_user_has_role" => &self.setup.role_grants,
            _ => return sn_error(400, "Invalid table", table),
        };
        let number = |name: &str, default: u64| {
            request
                .param(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let (limit, offset) = (number("sysparm_limit", 10000), number("sysparm_offset", 0));
        if table == "sys_user_has_role" && self.setup.role_fault == Some(offset) {
            return sn_error(500, "Internal server error", "a node went away");
        }
        if table == "sys_user_grmember"
            && self
                .setup
                .member_fault
                .is_some_and(|fault| fault.at == offset)
        {
            return sn_error(500, "Internal server error", "a node went away");
        }
        if table == "sys_user" {
            if self.setup.rate_limit_once && !self.rate_limited {
                self.rate_limited = true;
                return sn_error(429, "Rate limit exceeded", "try again later")
                    .header("Retry-After", "1");
            }
            if let Some(fault) = self.setup.fault {
                if fault.at == offset && self.faults_left > 0 {
                    self.faults_left = self.faults_left.saturating_sub(1);
                    return sn_error(500, "Internal server error", "a node went away");
                }
            }
        }
        let matching = match query_rows(rows, request.param("sysparm_query").unwrap_or("")) {
            Ok(rows) => rows,
            Err(why) => return sn_error(400, "Invalid query", &why),
        };
        let total = matching.len() as u64;
        let fields: Option<Vec<&str>> = request
            .param("sysparm_fields")
            .map(|f| f.split(',').collect());
        // The limit is applied first, the ACLs after: pages come back short.
        let mut page: Vec<Value> = matching
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .filter(|row| {
                !row["sys_id"]
                    .as_str()
                    .is_some_and(|id| self.setup.hidden.contains(id))
            })
            .map(|row| project(row, fields.as_deref()))
            .collect();
        if table == "sys_user" && offset + limit >= total {
            let keep = page.len().saturating_sub(self.setup.drop_from_last_page);
            page.truncate(keep);
        }
        let mut response = Response::json(200, json!({ "result": page }));
        if self.setup.total_count {
            response = response.header("X-Total-Count", total.to_string());
        }
        if self.setup.link_header {
            response = response.header("Link", self.links(request, limit, offset, total));
        }
        response
    }

    /// first, prev, next (while rows follow) and last, as the instance writes them.
    fn links(&self, request: &Request, limit: u64, offset: u64, total: u64) -> String {
        let origin = self.setup.link_origin.as_deref().unwrap_or(&self.base);
        let at = |offset: i64| {
            let mut url =
                Url::parse(&format!("{origin}{}", request.path)).expect("a URL for the link");
            {
                let mut pairs = url.query_pairs_mut();
                for (name, value) in &request.query {
                    if name != "sysparm_offset" {
                        pairs.append_pair(name, value);
                    }
                }
                pairs.append_pair("sysparm_offset", &offset.to_string());
            }
            url.to_string()
        };
        let limit_i = limit.max(1) as i64;
        let offset_i = offset as i64;
        let last = (total.saturating_sub(1) as i64 / limit_i) * limit_i;
        let mut links = vec![
            format!("<{}>;rel=\"first\"", at(0)),
            format!("<{}>;rel=\"prev\"", at(offset_i - limit_i)),
        ];
        if offset + limit < total {
            links.push(format!("<{}>;rel=\"next\"", at(offset_i + limit_i)));
        }
        links.push(format!("<{}>;rel=\"last\"", at(last)));
        links.join(",")
    }
}

/// Rows matching an encoded query: `field=value` terms joined by `^`, and `ORDERBYfield`.
fn query_rows(rows: &[Value], query: &str) -> Result<Vec<Value>, String> {
    let mut matching: Vec<Value> = rows.to_vec();
    let mut order: Option<String> = None;
    for term in query.split('^').filter(|t| !t.is_empty()) {
        if let Some(field) = term.strip_prefix("ORDERBY") {
            order = Some(field.to_string());
        } else if let Some((field, value)) = term.split_once(">=") {
            // Date-times in the internal format compare as text, as the instance compares
            // them as times (in UTC: the double's integration account has no time zone).
            if field.ends_with(['!', '<', '>']) || !field.ends_with("_on") {
                return Err(format!("the double does not support {term:?}"));
            }
            matching.retain(|row| row[field].as_str().is_some_and(|v| v >= value));
        } else if let Some((field, value)) = term.split_once('=') {
            if field.ends_with(['!', '<', '>']) {
                return Err(format!("the double does not support {term:?}"));
            }
            matching.retain(|row| row[field].as_str() == Some(value));
        } else {
            return Err(format!("the double does not support {term:?}"));
        }
    }
    if let Some(field) = order {
        matching.sort_by(|a, b| a[&field].as_str().cmp(&b[&field].as_str()));
    }
    Ok(matching)
}

/// The row with only `fields` (those it has), or whole.
fn project(row: &Value, fields: Option<&[&str]>) -> Value {
    match (fields, row.as_object()) {
        (Some(fields), Some(object)) => Value::Object(
            object
                .iter()
                .filter(|(name, _)| fields.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        ),
        _ => row.clone(),
    }
}

fn sn_error(status: u16, message: &str, detail: &str) -> Response {
    Response::json(
        status,
        json!({"error": {"message": message, "detail": detail}, "status": "failure"}),
    )
}

// ---------------------------------------------------------------------------------------------
// Freshservice

/// What a Freshservice double holds and how it misbehaves.
pub struct FreshserviceSetup {
    pub requesters: Vec<Value>,
    pub agents: Vec<Value>,
    /// Requester groups and the requester ids in each.
    pub groups: Vec<(Value, Vec<u64>)>,
    pub api_key: String,
    /// Answer the first list request with 429 and `Retry-After: 1`.
    pub rate_limit_once: bool,
    /// Fails this page of `/api/v2/requesters`.
    pub fault: Option<Fault>,
    /// Send `Link` headers (Freshservice does; turned off to test the empty-page rule).
    pub link_header: bool,
}

impl Default for FreshserviceSetup {
    fn default() -> Self {
        FreshserviceSetup {
            requesters: Vec::new(),
            agents: Vec::new(),
            groups: Vec::new(),
            api_key: "fs-api-key-5d2e9b".into(),
            rate_limit_once: false,
            fault: None,
            link_header: true,
        }
    }
}

/// A requester as API v2 returns it.
pub fn fs_requester(id: u64, first: &str, last: &str, active: bool) -> Value {
    let login = first.to_lowercase();
    json!({
        "id": id,
        "first_name": first,
        "last_name": last,
        "job_title": "Analyst",
        "primary_email": format!("{login}@example.com"),
        "secondary_emails": [format!("{login}@example.org")],
        "work_phone_number": "+1 555 0200",
        "mobile_phone_number": null,
        "department_ids": [],
        "active": active,
        "is_agent": false,
        "custom_fields": {"cost_center": "CC-7"},
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:05Z",
    })
}

/// An agent as API v2 returns it (its address is `email`).
pub fn fs_agent(id: u64, first: &str, active: bool) -> Value {
    json!({
        "id": id,
        "first_name": first,
        "last_name": "Agent",
        "email": format!("{}@example.com", first.to_lowercase()),
        "active": active,
        "occasional": false,
        "updated_at": "2024-01-02T03:04:05Z",
    })
}

struct FreshserviceState {
    setup: FreshserviceSetup,
    base: String,
    rate_limited: bool,
    faults_left: u32,
}

/// A Freshservice helpdesk double.
pub struct Freshservice {
    pub http: HttpDouble,
    state: Arc<Mutex<FreshserviceState>>,
}

impl Freshservice {
    pub fn start(setup: FreshserviceSetup) -> Freshservice {
        let faults_left = setup.fault.map_or(0, |f| f.times);
        let state = Arc::new(Mutex::new(FreshserviceState {
            setup,
            base: String::new(),
            rate_limited: false,
            faults_left,
        }));
        let handler_state = state.clone();
        let http = HttpDouble::start(move |request| {
            handler_state
                .lock()
                .expect("Freshservice state")
                .answer(request)
        });
        state.lock().expect("Freshservice state").base = http.url.clone();
        Freshservice { http, state }
    }

    /// Changes fields of requester `id` (adding it if there is none), as an update in the
    /// helpdesk does: `updated_at` becomes now.
    pub fn change_requester(&self, id: u64, fields: &[(&str, Value)]) {
        let mut state = self.state.lock().expect("Freshservice state");
        let people = &mut state.setup.requesters;
        let at = match people.iter().position(|r| r["id"].as_u64() == Some(id)) {
            Some(at) => at,
            None => {
                people.push(json!({ "id": id, "active": true }));
                people.len() - 1
            }
        };
        for (name, value) in fields {
            people[at][*name] = value.clone();
        }
        people[at]["updated_at"] =
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }

    pub fn url(&self) -> &str {
        &self.http.url
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }
}

impl FreshserviceState {
    fn answer(&mut self, request: &Request) -> Response {
        if request.header("authorization") != Some(&basic_auth(&self.setup.api_key, "X")) {
            return Response::json(
                401,
                json!({"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}),
            );
        }
        if self.setup.rate_limit_once && !self.rate_limited {
            self.rate_limited = true;
            return Response::json(
                429,
                json!({"message": "You have exceeded the limit of requests per minute"}),
            )
            .header("Retry-After", "1");
        }
        let per_page = request
            .param("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = request
            .param("page")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        let path = request.path.trim_end_matches('/');
        let (key, items): (&str, Vec<Value>) = match path {
            "/api/v2/requesters" => {
                if let Some(fault) = self.setup.fault {
                    if fault.at == page && self.faults_left > 0 {
                        self.faults_left = self.faults_left.saturating_sub(1);
                        return Response::json(500, json!({"message": "Internal server error"}));
                    }
                }
                ("requesters", self.setup.requesters.clone())
            }
            "/api/v2/agents" => ("agents", self.setup.agents.clone()),
            "/api/v2/requester_groups" => (
                "requester_groups",
                self.setup.groups.iter().map(|(g, _)| g.clone()).collect(),
            ),
            other => match members_of(other) {
                Some(id) => {
                    let Some((_, members)) = self
                        .setup
                        .groups
                        .iter()
                        .find(|(g, _)| g["id"].as_u64() == Some(id))
                    else {
                        return Response::json(404, json!({"message": "Record not found"}));
                    };
                    let people = self
                        .setup
                        .requesters
                        .iter()
                        .filter(|r| r["id"].as_u64().is_some_and(|rid| members.contains(&rid)))
                        .cloned()
                        .collect();
                    ("requesters", people)
                }
                None => return Response::json(404, json!({"message": "Not found"})),
            },
        };
        // `updated_since`: the lists of people take it, an ISO 8601 time; people updated at
        // or after it are listed. A value that is not a time is a validation error.
        let items = match request.param("updated_since") {
            None => items,
            Some(since) => {
                let Ok(since) = chrono::DateTime::parse_from_rfc3339(since) else {
                    return Response::json(
                        400,
                        json!({"description": "Validation failed", "errors": [
                            {"field": "updated_since", "message": "It should be a valid date-time", "code": "invalid_value"}
                        ]}),
                    );
                };
                items
                    .into_iter()
                    .filter(|item| {
                        item["updated_at"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .is_some_and(|t| t >= since)
                    })
                    .collect()
            }
        };
        let start = (page as usize - 1) * per_page;
        let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
        let mut response = Response::json(200, json!({ key: slice }));
        if self.setup.link_header && start + per_page < items.len() {
            // The next link keeps the request's other parameters (a filter too).
            let mut next = Url::parse(&format!("{}{path}", self.base)).expect("a URL for the link");
            {
                let mut pairs = next.query_pairs_mut();
                for (name, value) in &request.query {
                    if name != "page" && name != "per_page" {
                        pairs.append_pair(name, value);
                    }
                }
                pairs
                    .append_pair("per_page", &per_page.to_string())
                    .append_pair("page", &(page + 1).to_string());
            }
            response = response.header("Link", format!("<{next}>; rel=\"next\""));
        }
        response
    }
}

/// `/api/v2/requester_groups/{id}/members` → the id.
fn members_of(path: &str) -> Option<u64> {
    path.strip_prefix("/api/v2/requester_groups/")?
        .strip_suffix("/members")?
        .parse()
        .ok()
}
