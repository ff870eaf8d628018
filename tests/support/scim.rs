//! Test harness for the SCIM target: a real `scim2-server` (PyPI) started per test, and a
//! scripted HTTP double for the failures a real server does not produce on demand
//! (a 500 once, a 429 with `Retry-After`, a body that is not JSON).
//!
//! The helpers talk to the server with plain reqwest, not with roster's `ScimService`, so
//! that a test checks the service against what the server really holds.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a freshly started server may take to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_FILE: &str = "scim2-server.log";

/// A running scim2-server on a loopback port, stopped when dropped.
pub struct ScimServer {
    /// The API root, `http://127.0.0.1:PORT/v2`.
    pub url: String,
    pub token: String,
    child: Child,
    /// Holds the server's log file.
    dir: tempfile::TempDir,
    client: reqwest::blocking::Client,
}

/// The scim2-server binary: `$ROSTER_SCIM2_SERVER`, else the repository's `.venv`.
pub fn scim2_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ROSTER_SCIM2_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/scim2-server");
    if venv.exists() {
        return venv;
    }
    panic!(
        "scim2-server not found at {}: run `make venv` (or set ROSTER_SCIM2_SERVER to the binary)",
        venv.display()
    );
}

impl ScimServer {
    /// Starts a server with a random token and waits until it answers.
    pub fn start() -> ScimServer {
        ScimServer::start_with_config(None)
    }

    /// Starts a server announcing `config` as its `/ServiceProviderConfig` (and keeping to
    /// it: scim2-server enforces the Bulk limits it announces), or its own default.
    pub fn start_with_config(config: Option<&Value>) -> ScimServer {
        let binary = scim2_server_binary();
        let token = random_token();
        let mut last_output = String::new();
        // The port is free when asked; another process may take it before the server binds
        // it, in which case the server exits and we try another one.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let log = std::fs::File::create(dir.path().join(LOG_FILE)).expect("server log file");
            let port = free_port();
            let mut command = Command::new(&binary);
            command.args(["--port", &port.to_string(), "--bearer-token", &token]);
            if let Some(config) = config {
                let path = dir.path().join("service-provider-config.json");
                std::fs::write(&path, config.to_string()).expect("config file");
                command.arg("--service-provider-config").arg(path);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut server = ScimServer {
                url: format!("http://127.0.0.1:{port}/v2"),
                token: token.clone(),
                child,
                dir,
                client: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("HTTP client"),
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(true) => last_output = server.log(),
                Err(false) => {
                    panic!(
                        "scim2-server did not answer within {STARTUP_TIMEOUT:?}; its output:\n{}",
                        server.log()
                    )
                }
            }
        }
        panic!("scim2-server exited at start three times; its last output:\n{last_output}");
    }

    /// `Err(true)` when the process exited, `Err(false)` on timeout. Ready means our token
    /// lists users: scim2-server answers `/ServiceProviderConfig` without one, so a probe
    /// there could be answered by another test's server that took the port first.
    fn wait_until_ready(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(true);
            }
            let answer = self
                .client
                .get(format!("{}/Users?count=1", self.url))
                .bearer_auth(&self.token)
                .send();
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(false)
    }

    /// The server's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// How many `METHOD /v2/PATH` requests (query left out) the server's log shows so far.
    pub fn requests_logged(&self, method: &str, path: &str) -> usize {
        let line = format!("\"{method} /v2/{path} HTTP");
        let with_query = format!("\"{method} /v2/{path}?");
        self.log()
            .lines()
            .filter(|l| l.contains(&line) || l.contains(&with_query))
            .count()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/scim+json")
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder, what: &str) -> Value {
        let response = request.send().unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(status.is_success(), "{what}: HTTP {status}: {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON answer")
        }
    }

    /// Every User resource, all pages.
    pub fn users(&self) -> Vec<Value> {
        let mut users = Vec::new();
        loop {
            let path = format!("/Users?startIndex={}&count=100", users.len() + 1);
            let page = self.send(self.request(reqwest::Method::GET, &path), "list users");
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().expect("totalResults") as usize;
            if resources.is_empty() {
                return users;
            }
            users.extend(resources);
            if users.len() >= total {
                return users;
            }
        }
    }

    /// Every Group resource, all pages.
    pub fn groups(&self) -> Vec<Value> {
        let mut groups = Vec::new();
        loop {
            let path = format!("/Groups?startIndex={}&count=100", groups.len() + 1);
            let page = self.send(self.request(reqwest::Method::GET, &path), "list groups");
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().expect("totalResults") as usize;
            if resources.is_empty() {
                return groups;
            }
            groups.extend(resources);
            if groups.len() >= total {
                return groups;
            }
        }
    }

    pub fn user_by_username(&self, name: &str) -> Option<Value> {
        self.users().into_iter().find(|u| {
            u["userName"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    pub fn user(&self, id: &str) -> Value {
        self.send(
            self.request(reqwest::Method::GET, &format!("/Users/{id}")),
            "get user",
        )
    }

    /// Creates a user as someone other than roster would (`schemas` is added when missing).
    pub fn create_user(&self, mut body: Value) -> Value {
        if body.get("schemas").is_none() {
            body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
        }
        self.send(
            self.request(reqwest::Method::POST, "/Users")
                .body(body.to_string()),
            "create user",
        )
    }

    /// Applies PATCH operations, e.g. `json!([{"op": "replace", "path": "title", "value": "x"}])`.
    pub fn patch_user(&self, id: &str, ops: Value) {
        let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops });
        self.send(
            self.request(reqwest::Method::PATCH, &format!("/Users/{id}"))
                .body(body.to_string()),
            "patch user",
        );
    }

    pub fn delete_user(&self, id: &str) {
        self.send(
            self.request(reqwest::Method::DELETE, &format!("/Users/{id}")),
            "delete user",
        );
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("local address").port()
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A canned answer: status, headers, body.
pub type Scripted = (u16, Vec<(String, String)>, String);

/// A request the scripted server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The requests a scripted server received, in order.
#[derive(Clone, Default)]
pub struct Requests(Arc<Mutex<Vec<Received>>>);

impl Requests {
    pub fn all(&self) -> Vec<Received> {
        self.0.lock().expect("requests lock").clone()
    }
}

/// An HTTP/1.1 server on a loopback port answering each connection with the next canned
/// answer (`Connection: close`, so one request per connection). Returns the base URL and the
/// record of requests. After the last answer it stops listening: further requests fail to
/// connect. The thread is detached; it ends with the script or with the test process.
pub fn scripted_server(responses: Vec<Scripted>) -> (String, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let requests = Requests::default();
    let record = requests.clone();
    let _thread: JoinHandle<()> = std::thread::spawn(move || {
        for (status, headers, body) in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            match read_request(&stream) {
                Some(received) => record.0.lock().expect("requests lock").push(received),
                None => continue,
            }
            let _ = write_response(stream, status, &headers, &body);
        }
    });
    (url, requests)
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let raw = super::http::read_request(stream)?;
    Some(Received {
        method: raw.method,
        target: raw.target,
        headers: raw.headers,
        body: raw.body,
        at: Instant::now(),
    })
}

/// Answers as a SCIM server would: a body without a type is `application/scim+json`.
fn write_response(
    stream: TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut headers = headers.to_vec();
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.insert(0, ("Content-Type".into(), "application/scim+json".into()));
    }
    super::http::write_response(stream, status, &headers, body)
}
