//! The benchmark's own tools (`make bench`, `scripts/bench.sh`), built as an example so that
//! nothing here is part of the product: `cargo build --release --example bench`.
//!
//! - `bench scim --port P --token T [--max-results N]`: a fast in-memory SCIM 2.0 service
//!   provider. scim2-server is the correctness reference, but it is Python, and a benchmark
//!   whose target side is Python measures Python. This one answers what roster sends the way
//!   RFC 7644 says, with the JSON shapes scim2-server uses: `/ServiceProviderConfig` (with
//!   `filter.maxResults`), `GET /Users` and `/Groups` paged by `startIndex`/`count` (a `count`
//!   above maxResults is cut to it, as RFC 7644 §3.4.2.4 allows), filters `attr eq "value"`
//!   (userName and displayName case-insensitive, externalId exact, joined by `and`) and
//!   `meta.lastModified gt "time"` (an incremental target read's filter), POST with
//!   409 `uniqueness`, GET, PATCH (add/replace/remove, dotted paths, `members` value paths),
//!   PUT, DELETE, `meta.version` with ETag and If-Match → 412, `meta.lastModified` set by
//!   every create and change. HTTP/1.1 with keep-alive, one
//!   thread per connection, a read-write lock over the store. It counts the requests of
//!   every second (a sliding second ending at each arrival): `GET /bench/max-per-second`
//!   answers `{"max": N}`, the most any one second held, for the script's rate-limit check.
//! - `bench create --url U --token T --users N --concurrency C`: the minimal client roster's
//!   apply is measured against: C threads, each on one keep-alive connection, POSTing the same
//!   user bodies roster sends; prints creates per second.
//! - `bench page --url U --token T --count C`: pages `GET /Users` with `count=C` (the largest
//!   page the target accepts) and prints how many users it saw: the target-side floor of the
//!   no-change plan, alongside `curl` in the script.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("scim") => serve(&Args(&args[1..])),
        Some("create") => create_users(&Args(&args[1..])),
        Some("page") => page_users(&Args(&args[1..])),
        _ => Err("usage: bench scim|create|page --help".to_string()),
    };
    if let Err(message) = result {
        eprintln!("bench: {message}");
        std::process::exit(1);
    }
}

/// `--name value` pairs.
struct Args<'a>(&'a [String]);

impl Args<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required"))
    }

    fn number(&self, name: &str, default: Option<u64>) -> Result<u64, String> {
        match (self.get(name), default) {
            (Some(v), _) => v
                .parse()
                .map_err(|_| format!("{name} {v:?} is not a whole number")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("{name} is required")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1, the little of it the two sides need.

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            etag: None,
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    fn empty(status: u16) -> Response {
        Response {
            status,
            etag: None,
            body: Vec::new(),
        }
    }
}

/// One request from a keep-alive connection; `None` at its end or on garbage.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), decode_query(query)),
        None => (target, Vec::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn decode_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn write_response(stream: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    if !response.body.is_empty() {
        head.push_str("Content-Type: application/scim+json\r\n");
    }
    if let Some(etag) = &response.etag {
        head.push_str(&format!("ETag: {etag}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

// ---------------------------------------------------------------------------------------
// The SCIM service provider.

/// One collection (`Users` or `Groups`): resources in creation order, with the indexes the
/// filters roster sends need, so that nothing scans the collection but a listing.
#[derive(Default)]
struct Collection {
    order: Vec<String>,
    resources: HashMap<String, Value>,
    /// Lowercased userName / displayName → id (case-insensitive by RFC 7643).
    by_name: HashMap<String, String>,
    by_external_id: HashMap<String, String>,
    /// (`meta.lastModified` in microseconds, id), for `meta.lastModified gt` listings.
    by_modified: BTreeSet<(i64, String)>,
}

impl Collection {
    fn index(&mut self, unique: &str, id: &str, resource: &Value) {
        if let Some(name) = resource.get(unique).and_then(Value::as_str) {
            self.by_name.insert(name.to_lowercase(), id.to_string());
        }
        if let Some(key) = resource.get("externalId").and_then(Value::as_str) {
            self.by_external_id.insert(key.to_string(), id.to_string());
        }
    }

    fn unindex(&mut self, unique: &str, resource: &Value) {
        if let Some(name) = resource.get(unique).and_then(Value::as_str) {
            self.by_name.remove(&name.to_lowercase());
        }
        if let Some(key) = resource.get("externalId").and_then(Value::as_str) {
            self.by_external_id.remove(key);
        }
    }

    /// Stamps `meta.lastModified` with the time now and indexes it, in place of the
    /// stamp the resource had.
    fn touch(&mut self, id: &str, resource: &mut Value) {
        if let Some(before) = last_modified(resource) {
            self.by_modified.remove(&(before, id.to_string()));
        }
        let now = Utc::now();
        resource["meta"]["lastModified"] = json!(now.to_rfc3339_opts(SecondsFormat::Micros, true));
        self.by_modified
            .insert((now.timestamp_micros(), id.to_string()));
    }
}

/// A resource's `meta.lastModified`, in microseconds.
fn last_modified(resource: &Value) -> Option<i64> {
    let text = resource["meta"]["lastModified"].as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

struct Provider {
    token: String,
    max_results: usize,
    users: RwLock<Collection>,
    groups: RwLock<Collection>,
    next: AtomicU64,
    arrivals: Mutex<Arrivals>,
}

/// The double's own count of requests a second: the arrivals of the last second, and the
/// most any one second held (`GET /bench/max-per-second`).
#[derive(Default)]
struct Arrivals {
    last_second: VecDeque<Instant>,
    most: usize,
}

impl Arrivals {
    fn arrived(&mut self, at: Instant) {
        while self
            .last_second
            .front()
            .is_some_and(|&first| at.duration_since(first) >= Duration::from_secs(1))
        {
            self.last_second.pop_front();
        }
        self.last_second.push_back(at);
        self.most = self.most.max(self.last_second.len());
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let port = args.number("--port", Some(0))?;
    let provider = Arc::new(Provider {
        token: args.required("--token")?.to_string(),
        max_results: args.number("--max-results", Some(1000))? as usize,
        users: RwLock::default(),
        groups: RwLock::default(),
        next: AtomicU64::new(0),
        arrivals: Mutex::default(),
    });
    let listener = TcpListener::bind(("127.0.0.1", port as u16)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("http://{addr}/scim/v2");
    std::io::stdout().flush().ok();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let provider = provider.clone();
        std::thread::spawn(move || connection(&provider, stream));
    }
    Ok(())
}

fn connection(provider: &Provider, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let response = handle(provider, &request);
        if write_response(&mut writer, &response).is_err() {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

fn error(status: u16, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    Response::json(status, &body)
}

fn answer(status: u16, resource: &Value) -> Response {
    let mut response = Response::json(status, resource);
    response.etag = resource["meta"]["version"].as_str().map(str::to_string);
    response
}

fn handle(provider: &Provider, request: &Request) -> Response {
    let arrivals = || provider.arrivals.lock().unwrap_or_else(|p| p.into_inner());
    if request.path == "/bench/max-per-second" {
        return Response::json(200, &json!({ "max": arrivals().most }));
    }
    arrivals().arrived(Instant::now());
    let expected = format!("Bearer {}", provider.token);
    if request.header("authorization") != Some(expected.as_str()) {
        return error(401, None, "unauthorized");
    }
    let Some(path) = request.path.strip_prefix("/scim/v2/") else {
        return error(404, None, "not found");
    };
    let (endpoint, id) = match path.split_once('/') {
        Some((e, id)) => (e, Some(id.to_string())),
        None => (path, None),
    };
    let (collection, unique) = match endpoint {
        "ServiceProviderConfig" => return Response::json(200, &spc(provider.max_results)),
        "Users" => (&provider.users, "userName"),
        "Groups" => (&provider.groups, "displayName"),
        _ => return error(404, None, "not found"),
    };
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let read = || collection.read().unwrap_or_else(|p| p.into_inner());
    let write = || collection.write().unwrap_or_else(|p| p.into_inner());
    match (request.method.as_str(), id) {
        ("GET", None) => list(provider, &read(), unique, request),
        ("GET", Some(id)) => match read().resources.get(&id) {
            Some(r) => answer(200, r),
            None => error(404, None, "no such resource"),
        },
        ("POST", None) => {
            let n = provider.next.fetch_add(1, Ordering::Relaxed) + 1;
            create(&mut write(), unique, endpoint, body, n)
        }
        ("PATCH", Some(id)) => change(&mut write(), unique, &id, request, |r| patch(r, &body)),
        ("PUT", Some(id)) => change(&mut write(), unique, &id, request, |r| {
            let mut new = body.clone();
            new["id"] = r["id"].clone();
            new["meta"] = r["meta"].clone();
            *r = new;
            Ok(())
        }),
        ("DELETE", Some(id)) => {
            let mut c = write();
            match c.resources.remove(&id) {
                Some(r) => {
                    c.unindex(unique, &r);
                    if let Some(at) = last_modified(&r) {
                        c.by_modified.remove(&(at, id.clone()));
                    }
                    c.order.retain(|o| o != &id);
                    Response::empty(204)
                }
                None => error(404, None, "no such resource"),
            }
        }
        _ => error(405, None, "method not allowed"),
    }
}

fn spc(max_results: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer", "description": "bearer token"}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "/ServiceProviderConfig"},
    })
}

/// One term of a filter: `attr eq "value"`, or `meta.lastModified gt "time"`.
struct Term {
    attr: String,
    /// `gt`: `value` is a time, and only `meta.lastModified` is compared so.
    after: bool,
    value: String,
}

/// `a eq "x" and b eq "y"` → [a = x, b = y]; `meta.lastModified gt "T"` too; anything
/// else is refused (400).
fn parse_filter(filter: &str) -> Result<Vec<Term>, Response> {
    let refused = |detail: &str| error(400, Some("invalidFilter"), detail);
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    loop {
        let (attr, after) = rest
            .split_once(' ')
            .ok_or_else(|| refused("cannot parse"))?;
        let (op, after) = after
            .trim_start()
            .split_once(' ')
            .ok_or_else(|| refused("cannot parse"))?;
        let gt = op.eq_ignore_ascii_case("gt");
        if gt && !attr.eq_ignore_ascii_case("meta.lastModified") {
            return Err(refused("gt is supported on meta.lastModified only"));
        }
        if !gt && !op.eq_ignore_ascii_case("eq") {
            return Err(refused("only eq (and meta.lastModified gt) is supported"));
        }
        // The value is a JSON string: read exactly one.
        let mut values =
            serde_json::Deserializer::from_str(after.trim_start()).into_iter::<Value>();
        let value = match values.next() {
            Some(Ok(Value::String(v))) => v,
            _ => return Err(refused("the value is not a string")),
        };
        let consumed = values.byte_offset();
        if gt && DateTime::parse_from_rfc3339(&value).is_err() {
            return Err(refused("meta.lastModified gt takes an RFC 3339 time"));
        }
        terms.push(Term {
            attr: attr.to_string(),
            after: gt,
            value,
        });
        rest = after.trim_start()[consumed..].trim_start();
        if rest.is_empty() {
            return Ok(terms);
        }
        rest = rest
            .strip_prefix("and ")
            .or_else(|| rest.strip_prefix("AND "))
            .ok_or_else(|| refused("only eq joined by and is supported"))?;
    }
}

fn matches(resource: &Value, term: &Term) -> bool {
    let (attr, value) = (term.attr.as_str(), term.value.as_str());
    if term.after {
        let since = DateTime::parse_from_rfc3339(value).map(|t| t.timestamp_micros());
        return last_modified(resource)
            .zip(since.ok())
            .is_some_and(|(m, s)| m > s);
    }
    let have = match attr.split_once('.') {
        Some((parent, child)) => resource.get(parent).and_then(|p| p.get(child)),
        None => resource.get(attr),
    };
    let have = have.and_then(Value::as_str);
    match attr {
        "externalId" | "id" => have == Some(value),
        _ => have.is_some_and(|h| h.eq_ignore_ascii_case(value)),
    }
}

fn list(provider: &Provider, c: &Collection, unique: &str, request: &Request) -> Response {
    let start = request
        .param("startIndex")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let count = request
        .param("count")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100)
        .min(provider.max_results);
    let (total, page): (usize, Vec<&Value>) = match request.param("filter") {
        None => (
            c.order.len(),
            c.order
                .iter()
                .skip(start - 1)
                .take(count)
                .filter_map(|id| c.resources.get(id))
                .collect(),
        ),
        Some(filter) => {
            let terms = match parse_filter(filter) {
                Ok(t) => t,
                Err(refusal) => return refusal,
            };
            // An indexed first term narrows to one candidate (or, `gt`, to the resources
            // modified since); otherwise every resource.
            let Term { attr, value, after } = &terms[0];
            if *after && terms.len() == 1 {
                // `meta.lastModified gt` alone: the index is the answer, in its order, with
                // no resource looked at but the page's (an incremental read of a million
                // accounts pages through all of them).
                let since = DateTime::parse_from_rfc3339(value)
                    .map(|t| t.timestamp_micros())
                    .unwrap_or(i64::MAX);
                let range = || {
                    c.by_modified
                        .range((since.saturating_add(1), String::new())..)
                };
                let page = range()
                    .skip(start - 1)
                    .take(count)
                    .filter_map(|(_, id)| c.resources.get(id))
                    .collect();
                return list_response(range().count(), start, page);
            }
            let candidates: Vec<&Value> = if *after {
                let since = DateTime::parse_from_rfc3339(value)
                    .map(|t| t.timestamp_micros())
                    .unwrap_or(i64::MAX);
                c.by_modified
                    .range((since.saturating_add(1), String::new())..)
                    .filter_map(|(_, id)| c.resources.get(id))
                    .collect()
            } else if attr.eq_ignore_ascii_case(unique) {
                c.by_name
                    .get(&value.to_lowercase())
                    .and_then(|id| c.resources.get(id))
                    .into_iter()
                    .collect()
            } else if attr == "externalId" {
                c.by_external_id
                    .get(value)
                    .and_then(|id| c.resources.get(id))
                    .into_iter()
                    .collect()
            } else {
                c.order
                    .iter()
                    .filter_map(|id| c.resources.get(id))
                    .collect()
            };
            let all: Vec<&Value> = candidates
                .into_iter()
                .filter(|r| terms.iter().all(|t| matches(r, t)))
                .collect();
            let total = all.len();
            (total, all.into_iter().skip(start - 1).take(count).collect())
        }
    };
    list_response(total, start, page)
}

fn list_response(total: usize, start: usize, page: Vec<&Value>) -> Response {
    Response::json(
        200,
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

fn create(c: &mut Collection, unique: &str, endpoint: &str, mut body: Value, n: u64) -> Response {
    let Some(name) = body
        .get(unique)
        .and_then(Value::as_str)
        .map(str::to_lowercase)
    else {
        return error(400, Some("invalidValue"), &format!("{unique} is required"));
    };
    if c.by_name.contains_key(&name) {
        return error(409, Some("uniqueness"), &format!("{unique} is taken"));
    }
    let id = format!("{n:08x}-bench-{n}");
    body["id"] = json!(id);
    body["meta"] = json!({
        "resourceType": &endpoint[..endpoint.len() - 1],
        "location": format!("/{endpoint}/{id}"),
        "version": "W/\"1\"",
    });
    c.touch(&id, &mut body);
    c.index(unique, &id, &body);
    c.order.push(id.clone());
    let response = answer(201, &body);
    c.resources.insert(id, body);
    response
}

/// A conditional change: If-Match must match the version; the version goes up by one.
fn change(
    c: &mut Collection,
    unique: &str,
    id: &str,
    request: &Request,
    apply: impl FnOnce(&mut Value) -> Result<(), Response>,
) -> Response {
    let Some(current) = c.resources.get(id).cloned() else {
        return error(404, None, "no such resource");
    };
    let version = current["meta"]["version"]
        .as_str()
        .unwrap_or("W/\"1\"")
        .to_string();
    if let Some(expected) = request.header("if-match")
        && expected != version
    {
        return error(412, None, "version mismatch");
    }
    let mut resource = current.clone();
    if let Err(refusal) = apply(&mut resource) {
        return refusal;
    }
    if let Some(name) = resource.get(unique).and_then(Value::as_str)
        && c.by_name
            .get(&name.to_lowercase())
            .is_some_and(|other| other != id)
    {
        return error(409, Some("uniqueness"), &format!("{unique} is taken"));
    }
    let n: u64 = version
        .trim_start_matches("W/\"")
        .trim_end_matches('"')
        .parse()
        .unwrap_or(1);
    resource["meta"]["version"] = json!(format!("W/\"{}\"", n + 1));
    c.touch(id, &mut resource);
    c.unindex(unique, &current);
    c.index(unique, id, &resource);
    let response = answer(200, &resource);
    c.resources.insert(id.to_string(), resource);
    response
}

fn patch(resource: &mut Value, body: &Value) -> Result<(), Response> {
    let ops = body["Operations"].as_array().cloned().unwrap_or_default();
    let Some(object) = resource.as_object_mut() else {
        return Err(error(500, None, "not an object"));
    };
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("").to_ascii_lowercase();
        let path = op["path"].as_str().unwrap_or("").to_string();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        if let Some(filter) = path
            .strip_prefix("members[")
            .and_then(|p| p.strip_suffix(']'))
        {
            let terms = parse_filter(filter)?;
            let members = list_at(object, "members");
            let before = members.len();
            members.retain(|m| !terms.iter().all(|t| matches(m, t)));
            if members.len() == before {
                return Err(error(400, Some("noTarget"), "no such member"));
            }
            continue;
        }
        match (kind.as_str(), path.as_str()) {
            ("add", "members" | "phoneNumbers" | "emails") => {
                let list = list_at(object, &path);
                for m in value.as_array().cloned().unwrap_or_default() {
                    if !list.iter().any(|x| x["value"] == m["value"]) {
                        list.push(m);
                    }
                }
            }
            ("remove", "members") if value.is_array() => {
                let gone: Vec<Value> = value
                    .as_array()
                    .map(|l| l.iter().map(|m| m["value"].clone()).collect())
                    .unwrap_or_default();
                list_at(object, "members").retain(|m| !gone.contains(&m["value"]));
            }
            ("replace" | "add", "") => {
                if let Some(values) = value.as_object() {
                    for (k, v) in values {
                        object.insert(k.clone(), v.clone());
                    }
                }
            }
            ("replace" | "add", path) => set(object, path, value),
            ("remove", path) => remove(object, path),
            _ => return Err(error(400, Some("invalidSyntax"), "unknown operation")),
        }
    }
    Ok(())
}

fn list_at<'m>(object: &'m mut Map<String, Value>, name: &str) -> &'m mut Vec<Value> {
    let entry = object.entry(name).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    match entry {
        Value::Array(list) => list,
        _ => unreachable!("made an array just above"),
    }
}

/// Sets `a`, `a.b`, or `urn:...:Schema:a`.
fn set(object: &mut Map<String, Value>, path: &str, value: Value) {
    let (parent, child) = split_path(path);
    match parent {
        Some(parent) => {
            let entry = object.entry(parent).or_insert_with(|| json!({}));
            if let Some(inner) = entry.as_object_mut() {
                inner.insert(child.to_string(), value);
            }
        }
        None => {
            object.insert(child.to_string(), value);
        }
    }
}

fn remove(object: &mut Map<String, Value>, path: &str) {
    match split_path(path) {
        (Some(parent), child) => {
            if let Some(inner) = object.get_mut(parent).and_then(Value::as_object_mut) {
                inner.remove(child);
            }
        }
        (None, child) => {
            object.remove(child);
        }
    }
}

/// `urn:...:User:employeeNumber` → (urn, employeeNumber); `name.givenName` → (name,
/// givenName); `title` → (None, title).
fn split_path(path: &str) -> (Option<&str>, &str) {
    if path.starts_with("urn:")
        && let Some(i) = path.rfind(':')
    {
        return (Some(&path[..i]), &path[i + 1..]);
    }
    match path.split_once('.') {
        Some((parent, child)) => (Some(parent), child),
        None => (None, path),
    }
}

// ---------------------------------------------------------------------------------------
// The minimal clients.

/// `http://host:port/path` → ("host:port", "/path").
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Ok((host.to_string(), path.trim_end_matches('/').to_string()))
}

/// A keep-alive connection that sends one request at a time and reads its answer.
struct Client {
    host: String,
    auth: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(host: &str, token: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Client {
            host: host.to_string(),
            auth: format!("Bearer {token}"),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a request; returns the status and the body.
    fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: application/scim+json\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.auth,
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .and_then(|()| self.writer.write_all(body))
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader
                .read_line(&mut header)
                .map_err(|e| e.to_string())?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

/// The body roster sends for `people_ldif`'s user `i` (scripts/servers.sh).
fn user_body(i: u64) -> Vec<u8> {
    let uid = format!("user{i:06}");
    serde_json::to_vec(&json!({
        "externalId": format!("bench-{i:06}-0000-0000-0000-000000000000"),
        "userName": uid,
        "displayName": format!("User {i:06}"),
        "emails": [{"value": format!("{uid}@example.com"), "type": "work", "primary": true}],
        "phoneNumbers": [{"value": format!("+1 555 {:04}", i % 10000), "type": "work"}],
        "active": true,
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    }))
    .unwrap_or_default()
}

fn create_users(args: &Args) -> Result<(), String> {
    let (host, base) = split_url(args.required("--url")?)?;
    let token = args.required("--token")?.to_string();
    let users = args.number("--users", None)?;
    let concurrency = args.number("--concurrency", Some(4))?.max(1);
    let next = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (host, base, token, next) =
                (host.clone(), base.clone(), token.clone(), next.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut client = Client::connect(&host, &token)?;
                let path = format!("{base}/Users");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i > users {
                        return Ok(());
                    }
                    let (status, body) = client.send("POST", &path, &user_body(i))?;
                    // What roster does with an answer: read it as JSON.
                    let _: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                    if status != 201 {
                        return Err(format!("POST {path}: status {status}"));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a worker panicked")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{users} creates in {seconds:.3} s: {:.1} creates/s",
        users as f64 / seconds
    );
    Ok(())
}

fn page_users(args: &Args) -> Result<(), String> {
    let (host, base) = split_url(args.required("--url")?)?;
    let token = args.required("--token")?;
    let count = args.number("--count", Some(1000))?;
    let mut client = Client::connect(&host, token)?;
    let (mut start, mut seen) = (1u64, 0u64);
    loop {
        let path = format!("{base}/Users?startIndex={start}&count={count}");
        let (status, body) = client.send("GET", &path, b"")?;
        if status != 200 {
            return Err(format!("GET {path}: status {status}"));
        }
        let page: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let n = page["Resources"].as_array().map_or(0, Vec::len) as u64;
        let total = page["totalResults"].as_u64().unwrap_or(0);
        seen += n;
        if n == 0 || seen >= total {
            break;
        }
        start += n;
    }
    println!("{seen}");
    Ok(())
}
