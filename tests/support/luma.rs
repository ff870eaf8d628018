//! A local double of Luma's bulk upload, which cannot run here.
//!
//! The seed documents it only as: log in at the auth API, `POST /public/tenant/login` with
//! `username`, `password` and `subDomain`, which gives a token and the tenant id; upload the
//! bulk-upload workbook (the template's sheet and header row) to the export API,
//! `POST /tenant/{tenantId}/contact/upload`; the answer is XML with errors and warnings per
//! record. The double does that and no more, with the assumptions the README's "Luma notes"
//! list: a JSON login answered `{"token", "tenantId"}` or 401 `{"message"}`; the token in
//! `x-access-token`; the workbook as the multipart part `file`; the answer
//! `<uploadResult><errors><error row="N">…</error></errors><warnings><warning row="N">…
//! </warning></warnings></uploadResult>`, rows numbered as in the sheet (the header is row 1);
//! contacts upserted by their `Username` column. A row without a username or with an email
//! without `@` is refused; a test can make it refuse or warn about a username.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use calamine::{Reader, Xlsx};
use serde_json::{Value, json};

use super::vendors::{HttpDouble, Request, Response};

pub const USERNAME: &str = "roster@example.com";
pub const SUB_DOMAIN: &str = "acme";
pub const TENANT: &str = "5f1e0c2a9b7d";
pub const SHEET: &str = "Contacts";
/// The template's header row.
pub const COLUMNS: &[&str] = &["Username", "Name", "Email", "Phone", "Department"];

#[derive(Debug, Default)]
struct Tenant {
    password: String,
    tokens: Vec<String>,
    /// Contacts by username: column → value.
    contacts: BTreeMap<String, BTreeMap<String, String>>,
    uploads: u32,
    logins: u32,
    /// Usernames whose rows are refused, with the message.
    refuse: BTreeMap<String, String>,
    /// Usernames whose rows get a warning.
    warn: BTreeMap<String, String>,
}

pub struct LumaDouble {
    pub http: HttpDouble,
    pub password: String,
    /// `http://127.0.0.1:PORT` (the config's `url`).
    pub url: String,
    tenant: Arc<Mutex<Tenant>>,
}

impl LumaDouble {
    pub fn start() -> LumaDouble {
        let password = "luma-secret-pw-81f3".to_string();
        let tenant = Arc::new(Mutex::new(Tenant {
            password: password.clone(),
            ..Tenant::default()
        }));
        let shared = tenant.clone();
        let http = HttpDouble::start(move |request| {
            let mut tenant = shared.lock().expect("tenant");
            handle(&mut tenant, request)
        });
        LumaDouble {
            url: http.url.clone(),
            http,
            password,
            tenant,
        }
    }

    /// The contact with `username`, column → value.
    pub fn contact(&self, username: &str) -> Option<BTreeMap<String, String>> {
        self.lock().contacts.get(username).cloned()
    }

    pub fn contacts(&self) -> Vec<String> {
        self.lock().contacts.keys().cloned().collect()
    }

    pub fn uploads(&self) -> u32 {
        self.lock().uploads
    }

    pub fn logins(&self) -> u32 {
        self.lock().logins
    }

    /// Rows with this username are refused with `message`.
    pub fn refuse(&self, username: &str, message: &str) {
        self.lock()
            .refuse
            .insert(username.to_string(), message.to_string());
    }

    pub fn accept(&self, username: &str) {
        self.lock().refuse.remove(username);
    }

    /// Rows with this username are taken with the warning `message`.
    pub fn warn(&self, username: &str, message: &str) {
        self.lock()
            .warn
            .insert(username.to_string(), message.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tenant> {
        self.tenant.lock().expect("tenant")
    }
}

/// Writes the bulk-upload template (sheet `Contacts`, the header row `columns`) to `path`.
pub fn write_template(path: &std::path::Path, sheet: &str, columns: &[&str]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet().set_name(sheet).expect("sheet name");
    for (c, name) in columns.iter().enumerate() {
        ws.write_string(0, c as u16, *name).expect("header cell");
    }
    book.save(path).expect("save the template");
}

fn handle(tenant: &mut Tenant, request: &Request) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/public/tenant/login") => login(tenant, request),
        ("POST", path) if path.starts_with("/tenant/") && path.ends_with("/contact/upload") => {
            let id = &path["/tenant/".len()..path.len() - "/contact/upload".len()];
            upload(tenant, id, request)
        }
        _ => Response::json(404, json!({"message": "Not found"})),
    }
}

fn login(tenant: &mut Tenant, request: &Request) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&request.body) else {
        return Response::json(400, json!({"message": "Invalid JSON"}));
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    if field("username") != USERNAME
        || field("password") != tenant.password
        || field("subDomain") != SUB_DOMAIN
    {
        return Response::json(401, json!({"message": "Invalid username or password"}));
    }
    tenant.logins += 1;
    let token = format!("tok-{}-{}", tenant.logins, TENANT);
    tenant.tokens.push(token.clone());
    Response::json(200, json!({"token": token, "tenantId": TENANT}))
}

fn xml(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body,
    }
}

fn upload(tenant: &mut Tenant, id: &str, request: &Request) -> Response {
    let token = request.header("x-access-token").unwrap_or_default();
    if !tenant.tokens.iter().any(|t| t == token) {
        return Response::json(401, json!({"message": "Unauthorized"}));
    }
    if id != TENANT {
        return Response::json(403, json!({"message": "Forbidden"}));
    }
    let Some(file) = file_part(request) else {
        return xml(
            400,
            "<uploadResult><errors><error>no file in the upload</error></errors></uploadResult>"
                .into(),
        );
    };
    let Ok(mut book) = Xlsx::new(Cursor::new(file)) else {
        return xml(
            400,
            "<uploadResult><errors><error>the file is not a workbook</error></errors></uploadResult>".into(),
        );
    };
    let Ok(range) = book.worksheet_range(SHEET) else {
        return xml(
            400,
            format!(
                "<uploadResult><errors><error>no sheet {SHEET}</error></errors></uploadResult>"
            ),
        );
    };
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    if header != COLUMNS {
        return xml(
            400,
            format!(
                "<uploadResult><errors><error>the header row is not the template's: {}</error></errors></uploadResult>",
                header.join(",")
            ),
        );
    }
    tenant.uploads += 1;
    let (mut errors, mut warnings) = (String::new(), String::new());
    for (i, row) in rows.enumerate() {
        let number = i + 2;
        let cells: BTreeMap<String, String> = header
            .iter()
            .cloned()
            .zip(row.iter().map(|c| c.to_string()))
            .collect();
        let username = cells.get("Username").cloned().unwrap_or_default();
        let email = cells.get("Email").cloned().unwrap_or_default();
        let refusal = if username.is_empty() {
            Some("Username is required".to_string())
        } else if !email.is_empty() && !email.contains('@') {
            Some(format!("Invalid email address {email}"))
        } else {
            tenant.refuse.get(&username).cloned()
        };
        if let Some(message) = refusal {
            errors.push_str(&format!("<error row=\"{number}\">{message}</error>"));
            continue;
        }
        if let Some(message) = tenant.warn.get(&username) {
            warnings.push_str(&format!("<warning row=\"{number}\">{message}</warning>"));
        }
        tenant.contacts.insert(username, cells);
    }
    xml(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><uploadResult><errors>{errors}</errors><warnings>{warnings}</warnings></uploadResult>"
        ),
    )
}

/// The body of the multipart part named `file`.
fn file_part(request: &Request) -> Option<Vec<u8>> {
    let content_type = request.header("content-type")?;
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let body = &request.bytes;
    let positions: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let split = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&part[..split]);
        if !headers.contains("name=\"file\"") {
            continue;
        }
        let content = &part[split + 4..];
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        return Some(content.to_vec());
    }
    None
}
