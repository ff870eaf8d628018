//! A real SMTP server (Python's aiosmtpd, from the test venv) and a local HTTP receiver for
//! webhooks: what the notification tests send to.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{RawRequest, read_request, write_response};

/// The venv's python, beside the scim2-server the tests already use.
fn python() -> PathBuf {
    let scim = super::scim::scim2_server_binary();
    scim.parent()
        .map(|bin| bin.join("python"))
        .unwrap_or_else(|| "python3".into())
}

/// How the SMTP server is run.
#[derive(Default)]
pub struct SmtpOptions<'a> {
    /// STARTTLS required, with this certificate and key.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// SMTP AUTH required, with this user and password.
    pub auth: Option<(&'a str, &'a str)>,
}

pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    pub fn start(options: SmtpOptions) -> SmtpServer {
        let port = free_port();
        let maildir = tempfile::tempdir().expect("maildir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .arg(port.to_string())
            .arg(maildir.path());
        if let Some((cert, key)) = options.tls {
            command.arg("--tls").arg(cert).arg(key);
        }
        if let Some((user, password)) = options.auth {
            command.args(["--auth", user, password]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (is it in the venv? `make venv`)");
        let server = SmtpServer {
            port,
            maildir,
            child,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the SMTP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.maildir.path())
            .expect("read maildir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "json").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, p)| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read mail"))
                    .expect("mail JSON")
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local HTTP server that answers every request with `status` and keeps the requests.
pub struct WebhookReceiver {
    pub url_base: String,
    requests: Arc<Mutex<Vec<RawRequest>>>,
}

impl WebhookReceiver {
    pub fn start(status: u16) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url_base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("address").port()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = read_request(&stream) {
                    kept.lock().expect("requests").push(request);
                }
                let _ = write_response(stream, status, &[], if status < 300 { "ok" } else { "no" });
            }
        });
        WebhookReceiver { url_base, requests }
    }

    /// The JSON bodies received so far, with the path each was posted to.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .map(|r| {
                (
                    r.target.clone(),
                    serde_json::from_str(&r.body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("address")
        .port()
}
