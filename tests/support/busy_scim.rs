//! A SCIM double that sheds load, for the apply's adaptive concurrency and its rate limit.
//!
//! Unlike the scripted doubles (one connection at a time), it serves connections
//! concurrently, a thread each, keep-alive as reqwest pools them, so that requests really
//! are in flight together. Users only: `/ServiceProviderConfig`, listing by
//! `startIndex`/`count`, `userName eq "…"` filters, POST (409 `uniqueness` on a taken
//! userName), GET by id. With `max_in_flight`, a request that arrives while that many are
//! already being answered gets 429 (with `Retry-After` when `retry_after` is set), as a
//! provider that sheds load does. Every request is recorded: when it arrived (the double's
//! clock), how many were in flight with it, and the status it got.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "busy-token";

/// When the double refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shedding {
    /// More than this many requests at once: 429.
    pub max_in_flight: Option<usize>,
    /// `Retry-After` seconds on a 429.
    pub retry_after: Option<u64>,
    /// How long a create takes, so that requests overlap as they do on a real provider.
    pub create_takes: Duration,
}

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Requests in flight when it arrived, itself included.
    pub in_flight: usize,
    pub status: u16,
}

#[derive(Default)]
struct Users {
    by_id: BTreeMap<String, Value>,
    next: u64,
}

struct Shared {
    shedding: Shedding,
    in_flight: AtomicUsize,
    users: Mutex<Users>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
}

/// The double on a loopback port; stops accepting when dropped.
pub struct BusyScim {
    /// The API root, `http://127.0.0.1:PORT/scim/v2`.
    pub url: String,
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
}

impl BusyScim {
    pub fn start(shedding: Shedding) -> BusyScim {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            shedding,
            in_flight: AtomicUsize::new(0),
            users: Mutex::new(Users::default()),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || serve(&shared, stream));
            }
        });
        BusyScim {
            url: format!("http://{addr}/scim/v2"),
            shared,
            addr,
        }
    }

    /// Every request so far, in the order they were answered.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// The userNames the double holds, with how many accounts carry each.
    pub fn usernames(&self) -> BTreeMap<String, usize> {
        let users = self.shared.users.lock().expect("users");
        let mut names = BTreeMap::new();
        for user in users.by_id.values() {
            let name = user["userName"].as_str().unwrap_or_default().to_string();
            *names.entry(name).or_insert(0) += 1;
        }
        names
    }
}

impl Drop for BusyScim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The most requests that arrived within any one second (a half-open second from each
/// arrival).
pub fn most_in_one_second(seen: &[Seen]) -> usize {
    let mut at: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    at.sort();
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|&&t| t < at[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

struct Request {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn serve(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read(&mut reader) {
        let at = Instant::now();
        let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let (status, body, headers) = answer(shared, &request, in_flight);
        let (path, _) = request
            .target
            .split_once('?')
            .unwrap_or((&request.target, ""));
        shared.seen.lock().expect("seen").push(Seen {
            at,
            method: request.method.clone(),
            path: path.to_string(),
            in_flight,
            status,
        });
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if write(&mut writer, status, &headers, &body).is_err() {
            return;
        }
    }
}

fn read(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        authorization,
        body,
    })
}

fn write(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Status\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn error(status: u16, detail: &str) -> (u16, String, Vec<(&'static str, String)>) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail,
    });
    (status, body.to_string(), Vec::new())
}

fn answer(
    shared: &Shared,
    request: &Request,
    in_flight: usize,
) -> (u16, String, Vec<(&'static str, String)>) {
    if request.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return error(401, "unauthorized");
    }
    if shared
        .shedding
        .max_in_flight
        .is_some_and(|max| in_flight > max)
    {
        let (status, body, mut headers) = error(429, "too many requests at once");
        if let Some(secs) = shared.shedding.retry_after {
            headers.push(("Retry-After", secs.to_string()));
        }
        return (status, body, headers);
    }
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    };
    match (request.method.as_str(), path.strip_prefix("/scim/v2")) {
        ("GET", Some("/ServiceProviderConfig")) => {
            let spc = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": {"supported": true},
                "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": true, "maxResults": 100},
                "changePassword": {"supported": false},
                "sort": {"supported": false},
                "etag": {"supported": false},
            });
            (200, spc.to_string(), Vec::new())
        }
        ("GET", Some("/Users")) => {
            let users = shared.users.lock().expect("users");
            let wanted = param("filter").and_then(|f| {
                let value = f.strip_prefix("userName eq ")?;
                serde_json::from_str::<String>(value).ok()
            });
            let all: Vec<&Value> = users
                .by_id
                .values()
                .filter(|u| {
                    wanted.as_deref().is_none_or(|w| {
                        u["userName"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(w))
                    })
                })
                .collect();
            let start: usize = param("startIndex")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let count: usize = param("count")
                .and_then(|s| s.parse().ok())
                .unwrap_or(100)
                .min(100);
            let page: Vec<&Value> = all
                .iter()
                .skip(start.max(1) - 1)
                .take(count)
                .copied()
                .collect();
            let body = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": all.len(),
                "startIndex": start,
                "itemsPerPage": page.len(),
                "Resources": page,
            });
            (200, body.to_string(), Vec::new())
        }
        ("POST", Some("/Users")) => {
            std::thread::sleep(shared.shedding.create_takes);
            let Ok(mut user) = serde_json::from_slice::<Value>(&request.body) else {
                return error(400, "not JSON");
            };
            let name = user["userName"].as_str().unwrap_or_default().to_lowercase();
            let mut users = shared.users.lock().expect("users");
            let taken = users.by_id.values().any(|u| {
                u["userName"]
                    .as_str()
                    .is_some_and(|n| n.to_lowercase() == name)
            });
            if taken {
                let (_, body, headers) = error(409, "userName is taken");
                let mut body: Value = serde_json::from_str(&body).unwrap_or_default();
                body["scimType"] = json!("uniqueness");
                return (409, body.to_string(), headers);
            }
            users.next += 1;
            let id = format!("busy-{}", users.next);
            user["id"] = json!(id);
            user["meta"] = json!({"resourceType": "User", "location": format!("/Users/{id}")});
            users.by_id.insert(id, user.clone());
            (201, user.to_string(), Vec::new())
        }
        ("GET", Some(rest)) if rest.starts_with("/Users/") => {
            let users = shared.users.lock().expect("users");
            match users.by_id.get(&rest["/Users/".len()..]) {
                Some(user) => (200, user.to_string(), Vec::new()),
                None => error(404, "no such user"),
            }
        }
        _ => error(404, "not found"),
    }
}
