//! Luma as a target (`target "luma"`): contacts kept through Luma's bulk upload, as the Luma
//! Sync Utility does it.
//!
//! Luma gives no listing of contacts, so this is a batch target like the file target, and
//! reuses its staging (`file::Staging`): the contacts roster last uploaded are kept in the
//! state store and are the snapshot a plan diffs against; apply stages the changes and, at
//! `finish_apply`, writes every contact into a workbook with the bulk-upload template's
//! columns (`file::xlsx`) and uploads it once. The upload happens only when the plan has
//! changes. Luma answers with XML listing errors and warnings per row: a row it refused
//! fails that contact's action with Luma's message (and the contact goes back to what it
//! was in the kept state, so the next plan tries again); a warning is logged, the action
//! applied.
//!
//! Login (`POST {url}/public/tenant/login` with `username`, `password`, `subDomain`) happens
//! when the target is read, so wrong credentials stop `plan` before anything is written.
//! The seed documents little of the API; every assumption is listed in the README ("Luma
//! notes").

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use reqwest::Method;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::file::Staging;
use super::file::xlsx;
use super::{Credential, Finished, StatusMeaning, Target, TargetError, UserUpdate};
use crate::config::LumaTarget;
use crate::http::{self, Authorization, Body, HttpClient, Request, Resend, Role, Settings};
use crate::model::{Capabilities, DesiredUser, TargetUser};
use crate::secret::Secret;

/// The multipart boundary of the upload (checked not to occur in the workbook).
const BOUNDARY: &str = "roster-luma-bulk-upload-5f0c1e7a9b2d4c63";
const MULTIPART: &str = "multipart/form-data; boundary=roster-luma-bulk-upload-5f0c1e7a9b2d4c63";
const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// The header Luma's API takes its session token in.
const TOKEN_HEADER: &str = "x-access-token";

/// The header row of the template's sheet `sheet`: the columns of the upload. An error says
/// what is wrong (no file, not a workbook, no such sheet, no header).
pub fn template_columns(path: &Path, sheet: &str) -> Result<Vec<String>, String> {
    use calamine::{Reader, Xlsx, open_workbook};
    let shown = path.display();
    let mut book: Xlsx<_> = open_workbook(path)
        .map_err(|e| format!("the Luma template {shown} cannot be read as a workbook: {e}"))?;
    let names = book.sheet_names();
    if !names.iter().any(|n| n == sheet) {
        return Err(format!(
            "the Luma template {shown} has no sheet \"{sheet}\"; its sheets are: {}",
            names.join(", ")
        ));
    }
    let range = book
        .worksheet_range(sheet)
        .map_err(|e| format!("the sheet \"{sheet}\" of {shown} cannot be read: {e}"))?;
    let columns: Vec<String> = range
        .rows()
        .next()
        .map(|row| {
            row.iter()
                .map(|c| c.to_string().trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let columns: Vec<String> = match columns.iter().rposition(|c| !c.is_empty()) {
        Some(last) => columns[..=last].to_vec(),
        None => Vec::new(),
    };
    if columns.is_empty() {
        return Err(format!(
            "the sheet \"{sheet}\" of the Luma template {shown} has no header row"
        ));
    }
    Ok(columns)
}

/// What goes in one template column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Username,
    Name,
    Email,
    Phone,
    /// A field the mapping writes (`to=` this column).
    Field(String),
    /// A column roster does not write: left empty.
    Empty,
}

/// A logged-in session.
#[derive(Debug, Clone)]
struct Session {
    token: Secret,
    tenant: String,
}

/// A Luma tenant's contacts, through its bulk upload.
#[derive(Debug)]
pub struct Luma {
    url: String,
    username: String,
    password: Secret,
    sub_domain: String,
    template_name: String,
    sheet: String,
    header: Vec<String>,
    columns: Vec<Column>,
    http: HttpClient,
    session: Mutex<Option<Session>>,
    staging: Staging,
}

impl Luma {
    /// Reads the password and builds the client; does not log in yet. `kept` is the state
    /// store's copy of the contacts last uploaded.
    pub fn new(
        config: &LumaTarget,
        fields: Vec<String>,
        kept: Option<&str>,
    ) -> Result<Self, TargetError> {
        let password = config.password.value.resolve()?;
        let http = HttpClient::new(Settings {
            role: Role::Target,
            http: &config.http,
            accept: "application/json, application/xml, text/xml",
            pacer: None,
            secrets: std::slice::from_ref(&password),
        })
        .map_err(|e| TargetError::Setup(e.to_string()))?;
        let columns = config
            .columns
            .iter()
            .map(|header| {
                let is = |name: &str| header.eq_ignore_ascii_case(name);
                if is("username") {
                    Column::Username
                } else if is("name") {
                    Column::Name
                } else if is("email") {
                    Column::Email
                } else if is("phone") {
                    Column::Phone
                } else if let Some(f) = fields.iter().find(|f| f.eq_ignore_ascii_case(header)) {
                    Column::Field(f.clone())
                } else {
                    Column::Empty
                }
            })
            .collect();
        let label = format!("Luma {}", config.sub_domain.value);
        Ok(Luma {
            url: config.url.value.trim_end_matches('/').to_string(),
            username: config.username.value.clone(),
            password,
            sub_domain: config.sub_domain.value.clone(),
            template_name: config
                .template
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Template_for_Bulk_Upload.xlsx".into()),
            sheet: config.sheet.value.clone(),
            header: config.columns.clone(),
            columns,
            http,
            session: Mutex::new(None),
            staging: Staging::staging(Path::new(&label), fields, kept)?,
        })
    }

    fn target_error(&self, method: &str, url: &str, failure: http::Failure) -> TargetError {
        TargetError::from_http(
            method.to_string(),
            url.to_string(),
            failure,
            |_, body| {
                let text = body.trim();
                let detail = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| {
                        ["message", "error"]
                            .iter()
                            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
                    })
                    .or_else(|| (!text.is_empty()).then(|| http::quote_body(text.as_bytes())));
                (None, detail.map(|d| self.http.scrub(&d)))
            },
            |status, _| match status {
                401 | 403 => Some(StatusMeaning::Unauthorized(Credential::Luma)),
                _ => None,
            },
        )
    }

    /// The session, logging in the first time.
    fn session(&self) -> Result<Session, TargetError> {
        let mut cache = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = cache.as_ref() {
            return Ok(session.clone());
        }
        let url = format!("{}/public/tenant/login", self.url);
        let body = json!({
            "username": self.username,
            "password": self.password.expose(),
            "subDomain": self.sub_domain,
        });
        // A login changes nothing: safe to resend.
        let request = Request::new(Method::POST, url.clone(), Resend::Safe).body(Body::Bytes {
            content_type: "application/json",
            bytes: body.to_string().into_bytes(),
        });
        let reply = self
            .http
            .send(&request)
            .map_err(|f| self.target_error("POST", &url, f))?;
        let invalid = |message: &str| TargetError::InvalidResponse {
            method: "POST".into(),
            url: url.clone(),
            message: message.into(),
        };
        let answer = reply.json().map_err(|e| invalid(&e.0))?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("a login answer without token"))?;
        let tenant = answer
            .get("tenantId")
            .or_else(|| answer.get("tenant").and_then(|t| t.get("_id")))
            .or_else(|| answer.get("tenant"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("a login answer without tenantId"))?;
        let session = Session {
            token: Secret::new(token.to_string()),
            tenant: tenant.to_string(),
        };
        *cache = Some(session.clone());
        Ok(session)
    }

    /// The workbook: the template's header, one row per contact, in `rows`' order.
    fn workbook(&self, rows: &[TargetUser]) -> Result<Vec<u8>, TargetError> {
        let cells = |row: &TargetUser| -> Vec<String> {
            self.columns
                .iter()
                .map(|c| match c {
                    Column::Username => row.username.clone(),
                    Column::Name => row.name.clone().unwrap_or_default(),
                    Column::Email => row.email.clone().unwrap_or_default(),
                    Column::Phone => row.phones.first().cloned().unwrap_or_default(),
                    Column::Field(f) => row.fields.get(f).cloned().unwrap_or_default(),
                    Column::Empty => String::new(),
                })
                .collect()
        };
        let table = super::file::Table {
            header: self.header.clone(),
            rows: rows.iter().map(cells).collect(),
        };
        xlsx::write(&table, &self.sheet).map_err(TargetError::Setup)
    }

    /// Uploads the workbook; returns Luma's answer (XML).
    fn upload(&self, workbook: &[u8]) -> Result<String, TargetError> {
        if workbook
            .windows(BOUNDARY.len())
            .any(|w| w == BOUNDARY.as_bytes())
        {
            return Err(TargetError::Setup(
                "the workbook holds the multipart boundary; cannot upload it".into(),
            ));
        }
        let session = self.session()?;
        let url = format!(
            "{}/tenant/{}/contact/upload",
            self.url,
            percent_encoding::utf8_percent_encode(
                &session.tenant,
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let mut body = Vec::with_capacity(workbook.len() + 512);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {XLSX_TYPE}\r\n\r\n",
                self.template_name.replace('"', "")
            )
            .as_bytes(),
        );
        body.extend_from_slice(workbook);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let auth = Authorization::in_header(HeaderName::from_static(TOKEN_HEADER), &session.token);
        // Uploading again would upsert again: resent only when it was not processed.
        let request = Request::new(Method::POST, url.clone(), Resend::OnlyUnprocessed)
            .auth(&auth)
            .body(Body::Bytes {
                content_type: MULTIPART,
                bytes: body,
            });
        let reply = self
            .http
            .send(&request)
            .map_err(|f| self.target_error("POST", &url, f))?;
        Ok(String::from_utf8_lossy(&reply.body).into_owned())
    }

    fn refuse(&self, what: &str) -> TargetError {
        TargetError::Unsupported(format!(
            "{}: Luma's bulk upload adds and updates contacts; it cannot {what} one \
             (do it in Luma, and keep mode \"add-only\" for target \"luma\")",
            self.describe()
        ))
    }
}

/// Luma's answer to an upload, row by row (rows of the sheet: the header is row 1).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct UploadAnswer {
    pub errors: Vec<(Option<u32>, String)>,
    pub warnings: Vec<(Option<u32>, String)>,
}

/// Reads `<error row="N">message</error>` and `<warning row="N">message</warning>` elements
/// wherever they are in the answer. An answer that is not XML is an error.
pub(crate) fn parse_answer(text: &str) -> Result<UploadAnswer, String> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let mut answer = UploadAnswer::default();
    if text.trim().is_empty() {
        return Ok(answer);
    }
    let mut reader = Reader::from_str(text);
    let mut open: Option<(bool, Option<u32>, String)> = None;
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("the upload answer is not XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                let kind = match name.as_ref() {
                    b"error" => Some(true),
                    b"warning" => Some(false),
                    _ => None,
                };
                if let Some(is_error) = kind {
                    let row = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == b"row")
                        .and_then(|a| String::from_utf8_lossy(&a.value).trim().parse().ok());
                    open = Some((is_error, row, String::new()));
                }
            }
            Ok(Event::Text(t)) => {
                if let Some((_, _, message)) = open.as_mut() {
                    let piece = t.decode().map_err(|e| format!("the upload answer: {e}"))?;
                    message.push_str(&piece);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, _, message)) = open.as_mut() {
                    let name = String::from_utf8_lossy(&r);
                    message.push_str(match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Ok(Event::End(e)) => {
                if matches!(e.local_name().as_ref(), b"error" | b"warning")
                    && let Some((is_error, row, message)) = open.take()
                {
                    let message = message.trim().to_string();
                    if is_error {
                        answer.errors.push((row, message));
                    } else {
                        answer.warnings.push((row, message));
                    }
                }
            }
            Ok(_) => {}
        }
    }
    Ok(answer)
}

impl Target for Luma {
    fn describe(&self) -> String {
        format!("Luma {} ({})", self.sub_domain, self.url)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LUMA
    }

    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        // Logging in proves the credentials before a plan is made on them.
        self.session()?;
        self.staging.list_users(sink)
    }

    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError> {
        self.staging.get_user(id)
    }

    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError> {
        self.staging.find_user(username)
    }

    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
        self.staging.create_user(user)
    }

    fn update_user(
        &self,
        id: &str,
        version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        self.staging.update_user(id, version, update)
    }

    fn remove_user(&self, _id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        Err(self.refuse("deactivate"))
    }

    fn delete_user(&self, _id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        Err(self.refuse("delete"))
    }

    fn writes_at_finish(&self) -> bool {
        true
    }

    fn finish_apply(&self) -> Result<Finished, TargetError> {
        if !self.staging.has_changes() {
            return Ok(Finished::default());
        }
        let rows = self.staging.rows();
        let workbook = self.workbook(&rows)?;
        let text = self.upload(&workbook)?;
        let answer = parse_answer(&text).map_err(|message| TargetError::InvalidResponse {
            method: "POST".into(),
            url: format!("{}/tenant/…/contact/upload", self.url),
            message,
        })?;
        let account = |row: Option<u32>| {
            row.and_then(|r| r.checked_sub(2))
                .and_then(|i| rows.get(i as usize))
                .map(|r| r.id.clone())
        };
        let mut finished = Finished::default();
        let mut whole = Vec::new();
        for (row, message) in answer.errors {
            match account(row) {
                Some(id) => {
                    finished.refused.insert(id, message);
                }
                None => whole.push(message),
            }
        }
        if !whole.is_empty() {
            // An error naming no contact: the upload as a whole was refused.
            return Err(TargetError::Http {
                method: "POST".into(),
                url: format!("{}/tenant/…/contact/upload", self.url),
                status: 200,
                code: None,
                detail: Some(format!("Luma refused the upload: {}", whole.join("; "))),
                retry_after: None,
            });
        }
        for (row, message) in answer.warnings {
            match account(row) {
                Some(id) => {
                    finished.warnings.insert(id, message);
                }
                None => log::warn!("{}: the upload: {message}", self.describe()),
            }
        }
        let refused: BTreeSet<String> = finished.refused.keys().cloned().collect();
        finished.kept = Some(self.staging.settle(&refused)?);
        Ok(finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_errors_and_warnings_are_read_per_row() {
        let answer = parse_answer(
            r#"<?xml version="1.0"?><uploadResult><errors><error row="3">Invalid email &amp; phone</error></errors>
            <warnings><warning row="2">Phone number normalised</warning><warning>sheet has extra columns</warning></warnings></uploadResult>"#,
        )
        .expect("xml");
        assert_eq!(
            answer.errors,
            vec![(Some(3), "Invalid email & phone".to_string())]
        );
        assert_eq!(
            answer.warnings,
            vec![
                (Some(2), "Phone number normalised".to_string()),
                (None, "sheet has extra columns".to_string())
            ]
        );
        assert!(parse_answer("<a><b></a>").is_err());
        assert_eq!(parse_answer("").expect("empty"), UploadAnswer::default());
    }
}
