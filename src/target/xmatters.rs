//! xMatters as a target: the people of an xMatters instance, through the REST API v1
//! (`https://HOST/api/xm/1/`), as xMatters' own ServiceNow data sync keeps them.
//!
//! People are listed with `GET /people?offset=&limit=&embed=roles,devices`, page by page
//! until `total` is seen (an early end is an error, not a short snapshot), created and
//! modified with `POST /people` (a modify carries the person's `id`), deleted with
//! `DELETE /people/{id}`. The seam:
//! - add: `POST /people` with `externalKey` = roster's key and `externallyOwned` true (the
//!   web UI then shows the person as synced), then an email device and phone devices;
//! - update: the changed person fields, the email device's address, new phone devices
//!   (phones are additive, as everywhere in roster: a device is never removed);
//! - remove: `status` INACTIVE, the person kept; delete: `DELETE /people/{id}`.
//!
//! Ownership is `externalKey`. roster's `name` is split into `firstName` / `lastName` (at the
//! last space; one word is both) unless the mapping names those fields itself; `roles` (a
//! comma-separated value, default "Standard User") and `licenseType` (`FULL_USER`,
//! `STAKEHOLDER_USER`) come from attributes or role rules. Authentication is basic, or OAuth
//! with `client-id`: a password grant at `POST /oauth2/token`, the token renewed shortly
//! before `expires_in` with the refresh token (a new password grant if that is refused), and
//! one new token and one retry after a 401. Errors are read from xMatters' error shape,
//! `{"code", "reason", "message"}`. Requests go through `src/http`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Credential, RemovalWords, StatusMeaning, Target, TargetError, UserUpdate};
use crate::config::XMattersTarget;
use crate::http::{
    self, Authorization, Body, FormValue, HttpClient, Pacer, Reply, Request, Resend, Role,
    Settings, SetupError, TokenAnswer,
};
use crate::model::{Capabilities, DesiredUser, FieldValue, TargetUser, phone_digits};
use crate::secret::Secret;

/// The person fields a mapping may write (`attribute ... to=`, `role ... to=`).
pub const XMATTERS_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "roles",
    "licenseType",
    "site",
    "language",
    "timezone",
    "webLogin",
];

/// The licence types xMatters knows.
pub const LICENSE_TYPES: &[&str] = &["FULL_USER", "STAKEHOLDER_USER"];

/// A person needs at least one role; the one xMatters gives ordinary users.
const DEFAULT_ROLE: &str = "Standard User";

/// The email device roster keeps.
const EMAIL_DEVICE: &str = "Work Email";

/// The names phone devices get, in order: a person's first phone is "Work Phone", and so on.
const PHONE_DEVICES: &[&str] = &["Work Phone", "Mobile Phone", "Home Phone"];

/// Pages read before giving up on a server whose paging never ends.
const MAX_PAGES: u64 = 1_000_000;

/// An xMatters instance's people.
#[derive(Debug)]
pub struct XMatters {
    /// `https://HOST/api/xm/1`, no trailing slash.
    api: String,
    username: String,
    password: Secret,
    client_id: Option<String>,
    http: HttpClient,
    basic: Authorization,
    token: Mutex<Option<Token>>,
    /// The person fields the mapping writes, reported with each person.
    fields: Vec<String>,
    page_size: u32,
}

#[derive(Debug, Clone)]
struct Token {
    access: Secret,
    refresh: Option<Secret>,
    renew_at: Instant,
}

impl XMatters {
    /// Reads the password and builds the HTTP client; does not connect yet.
    pub fn new(config: &XMattersTarget, fields: Vec<String>) -> Result<Self, TargetError> {
        let pacer = config
            .rate_limit
            .map(Pacer::new)
            .transpose()
            .map_err(TargetError::Setup)?;
        let password = config.password.value.resolve()?;
        let http = HttpClient::new(Settings {
            role: Role::Target,
            http: &config.http,
            accept: "application/json",
            pacer,
            secrets: std::slice::from_ref(&password),
        })
        .map_err(|e| match e {
            SetupError::ProxyPassword(_) => TargetError::Setup(e.to_string()),
            SetupError::Invalid(message) => TargetError::Setup(message),
        })?;
        Ok(XMatters {
            api: config.url.value.trim_end_matches('/').to_string(),
            username: config.username.value.clone(),
            basic: Authorization::basic(&config.username.value, &password),
            password,
            client_id: config.client_id.as_ref().map(|c| c.value.clone()),
            http,
            token: Mutex::new(None),
            fields,
            page_size: config.page_size,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// Sends one request with the credentials; `Ok` only for a 2xx answer. With OAuth, a
    /// 401 gets one new token and one retry.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        resend: Resend,
    ) -> Result<Reply, TargetError> {
        let url = self.url(path);
        let attempt = |auth: &Authorization| {
            let mut request = Request::new(method.clone(), url.clone(), resend).auth(auth);
            if let Some(body) = body {
                request = request.body(Body::Bytes {
                    content_type: "application/json",
                    bytes: body.to_string().into_bytes(),
                });
            }
            self.http.send(&request)
        };
        let answer = match &self.client_id {
            None => attempt(&self.basic),
            Some(_) => {
                let token = self.access_token(false)?;
                match attempt(&Authorization::bearer(&token)) {
                    Err(http::Failure::Status { status: 401, .. }) => {
                        log::info!("{url}: the access token was refused; getting a new one");
                        let token = self.access_token(true)?;
                        attempt(&Authorization::bearer(&token))
                    }
                    other => other,
                }
            }
        };
        answer.map_err(|failure| self.target_error(&method, &url, failure))
    }

    fn json(&self, method: &Method, reply: &Reply) -> Result<Value, TargetError> {
        super::reply_json(method, reply)
    }

    /// A failure in xMatters' terms: its error body is `{"code","reason","message"}`.
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
                401 | 403 => Some(StatusMeaning::Unauthorized(Credential::XMatters)),
                409 => Some(StatusMeaning::Conflict),
                _ => None,
            },
        )
    }

    /// A valid access token: the cached one, a refreshed one, or a new password grant.
    /// `renew` asks for a new one whatever the cache says (the last was refused).
    fn access_token(&self, renew: bool) -> Result<Secret, TargetError> {
        let mut cache = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = cache.as_ref()
            && !renew
            && Instant::now() < token.renew_at
        {
            return Ok(token.access.clone());
        }
        let refresh = cache.as_ref().and_then(|t| t.refresh.clone());
        if let Some(refresh) = refresh {
            match self.grant(Some(&refresh)) {
                Ok(token) => {
                    let access = token.access.clone();
                    *cache = Some(token);
                    return Ok(access);
                }
                Err(e) => log::info!(
                    "refreshing the xMatters access token failed ({e}); asking for a new one \
                     with the password grant"
                ),
            }
        }
        let token = self.grant(None)?;
        let access = token.access.clone();
        *cache = Some(token);
        Ok(access)
    }

    /// One token request at `/oauth2/token`: the password grant, or a refresh.
    fn grant(&self, refresh: Option<&Secret>) -> Result<Token, TargetError> {
        let client_id = self.client_id.clone().unwrap_or_default();
        let plain = |v: &str| FormValue::Plain(v.to_string());
        let mut form: Vec<(&'static str, FormValue)> = Vec::new();
        match refresh {
            Some(refresh) => {
                form.push(("grant_type", plain("refresh_token")));
                form.push(("refresh_token", FormValue::Secret(refresh.clone())));
            }
            None => {
                form.push(("grant_type", plain("password")));
                form.push(("username", plain(&self.username)));
                form.push(("password", FormValue::Secret(self.password.clone())));
            }
        }
        form.push(("client_id", plain(&client_id)));
        let url = self.url("/oauth2/token");
        // A token request changes nothing: safe to resend.
        let request = Request::new(Method::POST, url.clone(), Resend::Safe).body(Body::Form(form));
        let reply = self.http.send(&request).map_err(|failure| {
            match self.target_error(&Method::POST, &url, failure) {
                TargetError::Http {
                    status: 400,
                    detail,
                    method,
                    url,
                    ..
                }
                | TargetError::Unauthorized {
                    detail,
                    method,
                    url,
                    ..
                } => TargetError::Unauthorized {
                    method,
                    url,
                    status: 401,
                    detail: Some(format!(
                        "{}the token endpoint refused the grant: check client-id, username {:?} and the password",
                        detail.map(|d| format!("{d}; ")).unwrap_or_default(),
                        self.username
                    )),
                    who: Credential::XMatters,
                },
                other => other,
            }
        })?;
        let body = self.json(&Method::POST, &reply)?;
        // xMatters' default lifetime (15 minutes), should an answer not say.
        let answer = TokenAnswer::parse(&body, Duration::from_secs(900)).map_err(|message| {
            TargetError::InvalidResponse {
                method: "POST".into(),
                url: url.clone(),
                message: message.into(),
            }
        })?;
        Ok(Token {
            renew_at: answer.renew_at(),
            access: answer.access,
            // A refresh answer may leave the refresh token out: the old one still holds.
            refresh: answer.refresh.or_else(|| refresh.cloned()),
        })
    }

    fn invalid(&self, path: &str, message: impl Into<String>) -> TargetError {
        TargetError::InvalidResponse {
            method: "GET".into(),
            url: self.url(path),
            message: message.into(),
        }
    }

    /// A person with its roles and devices; `None` when xMatters has none by that id or
    /// targetName.
    fn person(&self, id_or_name: &str) -> Result<Option<Person>, TargetError> {
        let path = format!("/people/{}?embed=roles,devices", encode(id_or_name));
        match self.send(Method::GET, &path, None, Resend::Safe) {
            Ok(reply) => {
                let body = self.json(&Method::GET, &reply)?;
                let mut person = Person::parse(&body).map_err(|m| self.invalid(&path, m))?;
                self.complete_devices(&mut person)?;
                Ok(Some(person))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a person's devices whole when the embedded list was cut.
    fn complete_devices(&self, person: &mut Person) -> Result<(), TargetError> {
        if person.devices_complete {
            return Ok(());
        }
        person.devices = self.devices(&person.id)?;
        person.devices_complete = true;
        Ok(())
    }

    /// `GET /people/{id}/devices`.
    fn devices(&self, id: &str) -> Result<Vec<Device>, TargetError> {
        check_id(id)?;
        let path = format!("/people/{id}/devices");
        let reply = self.send(Method::GET, &path, None, Resend::Safe)?;
        let body = self.json(&Method::GET, &reply)?;
        let items = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| self.invalid(&path, "a device list without `data`"))?;
        Ok(items.iter().filter_map(Device::parse).collect())
    }

    /// The body of a person create or modify from what the mapping wants.
    fn person_fields(
        &self,
        body: &mut Map<String, Value>,
        name: Option<&str>,
        fields: &std::collections::BTreeMap<String, FieldValue>,
    ) {
        let explicit = |f: &str| fields.contains_key(f);
        if let Some(name) = name
            && !explicit("firstName")
            && !explicit("lastName")
        {
            let (first, last) = split_name(name);
            body.insert("firstName".into(), json!(first));
            body.insert("lastName".into(), json!(last));
        }
        for (field, value) in fields {
            let value = match value {
                FieldValue::Set(v) => v.clone(),
                // xMatters has no empty person fields: a cleared one is left as it is.
                FieldValue::Clear => continue,
            };
            let json = match field.as_str() {
                "roles" => json!(split_roles(&value)),
                _ => json!(value),
            };
            body.insert(field.clone(), json);
        }
    }

    /// Adds a phone device for each of `phones` the person does not have (by digits).
    fn add_phones(
        &self,
        id: &str,
        devices: &[Device],
        phones: &[String],
    ) -> Result<(), TargetError> {
        let mut taken: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
        let mut have: Vec<String> = devices
            .iter()
            .filter_map(|d| d.phone.as_deref().map(phone_digits))
            .collect();
        for phone in phones {
            let digits = phone_digits(phone);
            if have.contains(&digits) {
                continue;
            }
            let Some(name) = PHONE_DEVICES
                .iter()
                .find(|n| !taken.iter().any(|t| t == *n))
            else {
                return Err(TargetError::Unsupported(format!(
                    "the person {id} has a device of every phone device name roster uses ({}): \
                     phone {phone} is not added",
                    PHONE_DEVICES.join(", ")
                )));
            };
            let body = json!({
                "deviceType": "VOICE",
                "owner": id,
                "name": name,
                "phoneNumber": e164(phone),
            });
            self.send(
                Method::POST,
                "/devices",
                Some(&body),
                Resend::OnlyUnprocessed,
            )?;
            taken.push((*name).to_string());
            have.push(digits);
        }
        Ok(())
    }

    /// Sets the email device's address, creating the device when the person has none.
    fn set_email(&self, id: &str, devices: &[Device], email: &str) -> Result<(), TargetError> {
        let existing = email_device(devices);
        let body = match existing {
            Some(device) if device.email.as_deref() == Some(email) => return Ok(()),
            Some(device) => json!({ "id": device.id, "emailAddress": email }),
            None => json!({
                "deviceType": "EMAIL",
                "owner": id,
                "name": EMAIL_DEVICE,
                "emailAddress": email,
            }),
        };
        let resend = if existing.is_some() {
            Resend::Safe
        } else {
            Resend::OnlyUnprocessed
        };
        self.send(Method::POST, "/devices", Some(&body), resend)?;
        Ok(())
    }

    fn to_target(&self, person: Person) -> TargetUser {
        person.into_target(&self.fields)
    }
}

impl Target for XMatters {
    fn describe(&self) -> String {
        self.api.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::XMATTERS
    }

    fn removal_words(&self) -> RemovalWords {
        RemovalWords {
            remove: Some("status INACTIVE, kept in xMatters".into()),
            delete: Some("deleted from xMatters".into()),
        }
    }

    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        let mut offset: u64 = 0;
        let mut largest_total: u64 = 0;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let path = format!(
                "/people?offset={offset}&limit={}&embed=roles,devices",
                self.page_size
            );
            let reply = self.send(Method::GET, &path, None, Resend::Safe)?;
            let body = self.json(&Method::GET, &reply)?;
            let items = body
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| self.invalid(&path, "a page of people without `data`"))?;
            let total = body.get("total").and_then(Value::as_u64);
            largest_total = largest_total.max(total.unwrap_or(0));
            for item in items {
                let mut person = Person::parse(item).map_err(|m| self.invalid(&path, m))?;
                if !seen.insert(person.id.clone()) {
                    continue;
                }
                self.complete_devices(&mut person)?;
                sink(self.to_target(person));
            }
            offset += items.len() as u64;
            let read = seen.len() as u64;
            if items.is_empty() || total.is_some_and(|t| offset >= t) {
                if read < largest_total {
                    return Err(self.invalid(
                        &path,
                        format!(
                            "the listing ended after {read} people where xMatters said there are {largest_total}; \
                             planning on it would treat the rest as missing"
                        ),
                    ));
                }
                return Ok(read);
            }
        }
        Err(self.invalid("/people", format!("more than {MAX_PAGES} pages of people")))
    }

    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError> {
        check_id(id)?;
        Ok(self.person(id)?.map(|p| self.to_target(p)))
    }

    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError> {
        let lower = username.to_lowercase();
        Ok(self
            .person(username)?
            .filter(|p| p.target_name.to_lowercase() == lower)
            .map(|p| self.to_target(p)))
    }

    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
        let mut body = Map::new();
        body.insert("targetName".into(), json!(user.username));
        let name = user.name.as_deref().unwrap_or(&user.username);
        self.person_fields(&mut body, Some(name), &user.fields);
        body.entry("roles").or_insert_with(|| json!([DEFAULT_ROLE]));
        body.insert("externalKey".into(), json!(user.key));
        body.insert("externallyOwned".into(), json!(true));
        let status = if user.active { "ACTIVE" } else { "INACTIVE" };
        body.insert("status".into(), json!(status));
        let reply = self.send(
            Method::POST,
            "/people",
            Some(&Value::Object(body)),
            Resend::OnlyUnprocessed,
        )?;
        let value = self.json(&Method::POST, &reply)?;
        let person = Person::parse(&value).map_err(|m| self.invalid("/people", m))?;
        check_id(&person.id)?;
        if let Some(email) = &user.email {
            self.set_email(&person.id, &[], email)?;
        }
        self.add_phones(&person.id, &[], &user.phones)?;
        Ok(self
            .person(&person.id)?
            .map(|p| self.to_target(p))
            .unwrap_or_else(|| self.to_target(person)))
    }

    fn update_user(
        &self,
        id: &str,
        _version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        check_id(id)?;
        let mut body = Map::new();
        if let Some(username) = &update.username {
            body.insert("targetName".into(), json!(username));
        }
        self.person_fields(&mut body, update.name.as_deref(), &update.fields);
        if let Some(key) = &update.external_id {
            body.insert("externalKey".into(), json!(key));
            body.insert("externallyOwned".into(), json!(true));
        }
        if let Some(active) = update.active {
            body.insert(
                "status".into(),
                json!(if active { "ACTIVE" } else { "INACTIVE" }),
            );
        }
        if !body.is_empty() {
            body.insert("id".into(), json!(id));
            // A modify names the person: sending it twice changes nothing more.
            self.send(
                Method::POST,
                "/people",
                Some(&Value::Object(body)),
                Resend::Safe,
            )?;
        }
        if update.email.is_some() || !update.add_phones.is_empty() {
            let devices = self.devices(id)?;
            if let Some(email) = &update.email {
                self.set_email(id, &devices, email)?;
            }
            self.add_phones(id, &devices, &update.add_phones)?;
        }
        Ok(None)
    }

    fn remove_user(&self, id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        check_id(id)?;
        let body = json!({ "id": id, "status": "INACTIVE" });
        match self.send(Method::POST, "/people", Some(&body), Resend::Safe) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete_user(&self, id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        check_id(id)?;
        match self.send(Method::DELETE, &format!("/people/{id}"), None, Resend::Safe) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A person as xMatters answers it.
#[derive(Debug, Clone, Default)]
struct Person {
    id: String,
    target_name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    status: Option<String>,
    external_key: Option<String>,
    /// Person fields by their API names (licenseType, site's name, ...), as text.
    values: std::collections::BTreeMap<String, String>,
    roles: Vec<String>,
    devices: Vec<Device>,
    /// The embedded device list held every device (or there was none to embed).
    devices_complete: bool,
}

#[derive(Debug, Clone)]
struct Device {
    id: String,
    name: String,
    device_type: String,
    email: Option<String>,
    phone: Option<String>,
}

impl Device {
    fn parse(value: &Value) -> Option<Device> {
        let text = |f: &str| value.get(f).and_then(Value::as_str).map(str::to_string);
        Some(Device {
            id: text("id")?,
            name: text("name").unwrap_or_default(),
            device_type: text("deviceType").unwrap_or_default(),
            email: text("emailAddress"),
            phone: text("phoneNumber"),
        })
    }
}

/// The email device roster keeps: the one named "Work Email", else the first email device.
fn email_device(devices: &[Device]) -> Option<&Device> {
    let emails = || devices.iter().filter(|d| d.device_type == "EMAIL");
    emails()
        .find(|d| d.name == EMAIL_DEVICE)
        .or_else(|| emails().next())
}

impl Person {
    fn parse(value: &Value) -> Result<Person, String> {
        let text = |f: &str| {
            value
                .get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let id = text("id").ok_or("a person without an id")?;
        let target_name =
            text("targetName").ok_or_else(|| format!("person {id} has no targetName"))?;
        let mut values = std::collections::BTreeMap::new();
        for field in ["licenseType", "language", "timezone", "webLogin"] {
            if let Some(v) = text(field) {
                values.insert(field.to_string(), v);
            }
        }
        let site = value.get("site").and_then(|s| match s {
            Value::String(name) => Some(name.clone()),
            other => other
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        if let Some(site) = site {
            values.insert("site".into(), site);
        }
        let names = |v: Option<&Value>| -> Vec<Value> {
            match v {
                Some(Value::Array(items)) => items.clone(),
                Some(other) => other
                    .get("data")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let roles = names(value.get("roles"))
            .iter()
            .filter_map(|r| r.as_str().or_else(|| r.get("name").and_then(Value::as_str)))
            .map(str::to_string)
            .collect();
        let embedded = value.get("devices");
        let devices: Vec<Device> = names(embedded).iter().filter_map(Device::parse).collect();
        let devices_total = embedded
            .and_then(|d| d.get("total"))
            .and_then(Value::as_u64);
        Ok(Person {
            id,
            target_name,
            first_name: text("firstName"),
            last_name: text("lastName"),
            status: text("status"),
            external_key: text("externalKey"),
            values,
            roles,
            devices_complete: devices_total.is_none_or(|t| t as usize <= devices.len()),
            devices,
        })
    }

    fn into_target(self, fields: &[String]) -> TargetUser {
        let name = match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) if f == l => Some(f.clone()),
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        };
        let mut values = self.values.clone();
        if let Some(f) = &self.first_name {
            values.insert("firstName".into(), f.clone());
        }
        if let Some(l) = &self.last_name {
            values.insert("lastName".into(), l.clone());
        }
        if !self.roles.is_empty() {
            values.insert("roles".into(), self.roles.join(", "));
        }
        TargetUser {
            external_id: self.external_key.clone(),
            owner: None,
            username: self.target_name.clone(),
            name,
            email: email_device(&self.devices).and_then(|d| d.email.clone()),
            phones: self
                .devices
                .iter()
                .filter_map(|d| d.phone.clone())
                .collect(),
            fields: fields
                .iter()
                .filter_map(|f| values.get(f).map(|v| (f.clone(), v.clone())))
                .collect(),
            active: self.status.as_deref() != Some("INACTIVE"),
            version: None,
            id: self.id,
        }
    }
}

/// roster's `name` as xMatters' first and last name: split at the last space; one word is
/// both (xMatters requires both).
fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) if !first.trim().is_empty() => {
            (first.trim().to_string(), last.to_string())
        }
        _ => (name.to_string(), name.to_string()),
    }
}

/// A `roles` value: role names separated by commas.
fn split_roles(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// A phone number as xMatters takes it (E.164): the `+` and the digits.
fn e164(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

/// xMatters ids are UUIDs; anything else never goes into a path.
fn check_id(id: &str) -> Result<(), TargetError> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Ok(());
    }
    Err(TargetError::InvalidResponse {
        method: "-".into(),
        url: "-".into(),
        message: format!(
            "{:?} is not an xMatters id (a UUID)",
            id.chars().take(60).collect::<String>()
        ),
    })
}

/// `{"code": 400, "reason": "Bad Request", "message": "..."}` → (reason, message).
fn error_body(body: &str) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return (
            None,
            (!text.is_empty()).then(|| http::quote_body(text.as_bytes())),
        );
    };
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let message = field("message").or_else(|| field("error_description"));
    (field("reason").or_else(|| field("error")), message)
}

/// A path segment, percent-encoded.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_last_space_and_read_back_the_same() {
        for name in ["Alice Liddell", "Mary Ann Smith", "Cher"] {
            let (first, last) = split_name(name);
            let person = Person {
                id: "1".into(),
                target_name: "x".into(),
                first_name: Some(first),
                last_name: Some(last),
                ..Person::default()
            };
            assert_eq!(person.into_target(&[]).name.as_deref(), Some(name));
        }
    }

    #[test]
    fn people_parse_with_roles_site_and_devices() {
        let value = json!({
            "id": "4f0d0e8c-1b2c-4d5e-8f90-0a1b2c3d4e5f", "targetName": "alice",
            "firstName": "Alice", "lastName": "Liddell", "status": "ACTIVE",
            "externalKey": "k1", "licenseType": "FULL_USER",
            "site": {"id": "s1", "name": "Default Site"},
            "roles": {"count": 1, "total": 1, "data": [{"id": "r1", "name": "Standard User"}]},
            "devices": {"count": 2, "total": 2, "data": [
                {"id": "d1", "name": "Work Email", "deviceType": "EMAIL", "emailAddress": "a@example.com"},
                {"id": "d2", "name": "Work Phone", "deviceType": "VOICE", "phoneNumber": "+15550100"}
            ]}
        });
        let person = Person::parse(&value).expect("person");
        assert!(person.devices_complete);
        let fields = ["licenseType".to_string(), "site".into(), "roles".into()];
        let user = person.into_target(&fields);
        assert_eq!(user.external_id.as_deref(), Some("k1"));
        assert_eq!(user.email.as_deref(), Some("a@example.com"));
        assert_eq!(user.phones, ["+15550100"]);
        assert_eq!(user.fields["site"], "Default Site");
        assert_eq!(user.fields["roles"], "Standard User");
        assert!(user.active);
    }

    #[test]
    fn error_bodies_give_reason_and_message() {
        let (code, message) =
            error_body(r#"{"code":400,"reason":"Bad Request","message":"Invalid licenseType"}"#);
        assert_eq!(code.as_deref(), Some("Bad Request"));
        assert_eq!(message.as_deref(), Some("Invalid licenseType"));
        assert!(check_id("../people").is_err());
    }
}
