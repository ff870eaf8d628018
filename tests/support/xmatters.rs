//! A local double of the xMatters REST API v1 (`/api/xm/1/`), which cannot run here.
//!
//! It follows the vendor's documented behaviour (help.xmatters.com/xmapi): HTTP basic auth
//! or an OAuth bearer token from `POST /api/xm/1/oauth2/token` (password grant with
//! `client_id`, then `refresh_token` grants; tokens expire after `expires_in`), 401
//! otherwise; errors as `{"code", "reason", "message"}`; people listed with `offset` /
//! `limit` (at most 1000) as `{count, total, data, links}`, with `embed=roles,devices`;
//! `GET /people/{id or targetName}`; `POST /people` creating a person (targetName, firstName,
//! lastName and at least one known role required; `licenseType` FULL_USER or
//! STAKEHOLDER_USER; 409 for a targetName that exists) or, with `id`, modifying one;
//! `DELETE /people/{id}`; devices created and modified with `POST /devices` (EMAIL with an
//! `emailAddress`, VOICE with an E.164 `phoneNumber`, one name per owner) and listed with
//! `GET /people/{id}/devices`. It can be told to answer API requests (not token grants) with 429 and `Retry-After`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::vendors::{HttpDouble, Request, Response, basic_auth};

pub const USERNAME: &str = "roster.sync";
pub const CLIENT_ID: &str = "3a1f9b0c-roster-client";
/// The roles the instance knows.
pub const ROLES: &[&str] = &["Standard User", "Group Supervisor", "Full Access User"];

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub device_type: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Person {
    pub id: String,
    pub target_name: String,
    pub first_name: String,
    pub last_name: String,
    pub status: String,
    pub roles: Vec<String>,
    pub license_type: String,
    pub site: String,
    pub language: String,
    pub timezone: String,
    pub external_key: Option<String>,
    pub externally_owned: bool,
}

#[derive(Debug, Default)]
struct Instance {
    people: BTreeMap<String, Person>,
    devices: BTreeMap<String, Device>,
    next: u64,
    password: String,
    /// Each access token, and when it runs out (milliseconds since the epoch).
    tokens: BTreeMap<String, u64>,
    refresh_tokens: Vec<String>,
    /// Seconds a new access token lives.
    expires_in: u64,
    /// Answer this many requests with 429 and `Retry-After: 1`.
    throttle: u32,
    grants: Vec<String>,
}

pub struct XMattersDouble {
    pub http: HttpDouble,
    pub password: String,
    /// `http://127.0.0.1:PORT` (the config's `url`).
    pub url: String,
    instance: Arc<Mutex<Instance>>,
}

/// The page size the double uses when `limit` is missing.
const DEFAULT_LIMIT: usize = 100;

impl XMattersDouble {
    pub fn start() -> XMattersDouble {
        let password = "xm-sync-password-7781".to_string();
        let instance = Arc::new(Mutex::new(Instance {
            password: password.clone(),
            expires_in: 900,
            ..Instance::default()
        }));
        let handler_instance = instance.clone();
        let http = HttpDouble::start(move |request| {
            let mut instance = handler_instance.lock().expect("instance");
            handle(&mut instance, request)
        });
        let url = http.url.clone();
        XMattersDouble {
            http,
            password,
            url,
            instance,
        }
    }

    /// A person someone created in xMatters by hand (no externalKey).
    pub fn add_person(&self, target_name: &str, first: &str, last: &str) -> String {
        let mut instance = self.instance.lock().expect("instance");
        let id = new_id(&mut instance);
        instance.people.insert(
            id.clone(),
            Person {
                id: id.clone(),
                target_name: target_name.into(),
                first_name: first.into(),
                last_name: last.into(),
                status: "ACTIVE".into(),
                roles: vec!["Standard User".into()],
                license_type: "FULL_USER".into(),
                site: "Default Site".into(),
                language: "en".into(),
                timezone: "US/Eastern".into(),
                ..Person::default()
            },
        );
        id
    }

    pub fn person(&self, target_name: &str) -> Option<Person> {
        let instance = self.instance.lock().expect("instance");
        instance
            .people
            .values()
            .find(|p| p.target_name == target_name)
            .cloned()
    }

    pub fn target_names(&self) -> Vec<String> {
        let instance = self.instance.lock().expect("instance");
        let mut names: Vec<String> = instance
            .people
            .values()
            .map(|p| p.target_name.clone())
            .collect();
        names.sort();
        names
    }

    /// The devices of the person with that targetName, by device name.
    pub fn devices(&self, target_name: &str) -> BTreeMap<String, Device> {
        let instance = self.instance.lock().expect("instance");
        let Some(person) = instance
            .people
            .values()
            .find(|p| p.target_name == target_name)
        else {
            return BTreeMap::new();
        };
        instance
            .devices
            .values()
            .filter(|d| d.owner == person.id)
            .map(|d| (d.name.clone(), d.clone()))
            .collect()
    }

    pub fn throttle(&self, requests: u32) {
        self.instance.lock().expect("instance").throttle = requests;
    }

    /// Access tokens from now on live this many seconds.
    pub fn expire_tokens_after(&self, seconds: u64) {
        self.instance.lock().expect("instance").expires_in = seconds;
    }

    /// Every token request's grant type, in order.
    pub fn grants(&self) -> Vec<String> {
        self.instance.lock().expect("instance").grants.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    /// The requests that changed something (POST and DELETE, token grants left out).
    pub fn writes(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/oauth2/token"))
            .collect()
    }
}

fn new_id(instance: &mut Instance) -> String {
    instance.next += 1;
    format!("00000000-0000-4000-8000-{:012x}", instance.next)
}

fn error(status: u16, reason: &str, message: &str) -> Response {
    Response::json(
        status,
        json!({ "code": status, "reason": reason, "message": message }),
    )
}

/// Milliseconds, not seconds: with whole seconds a token granted late in one would run out
/// at the next, a moment later (a test's one-second tokens were refused as soon as issued).
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn authorized(instance: &Instance, request: &Request) -> bool {
    let Some(header) = request.header("authorization") else {
        return false;
    };
    if header == basic_auth(USERNAME, &instance.password) {
        return true;
    }
    header
        .strip_prefix("Bearer ")
        .and_then(|t| instance.tokens.get(t))
        .is_some_and(|&expires| now_millis() < expires)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn token_grant(instance: &mut Instance, request: &Request) -> Response {
    let form = request.form();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    instance.grants.push(grant.clone());
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return error(401, "Unauthorized", "Invalid client id");
    }
    match grant.as_str() {
        "password" => {
            let ok = form.get("username").map(String::as_str) == Some(USERNAME)
                && form.get("password") == Some(&instance.password);
            if !ok {
                return error(401, "Unauthorized", "Invalid username or password");
            }
        }
        "refresh_token" => {
            let given = form.get("refresh_token").cloned().unwrap_or_default();
            if !instance.refresh_tokens.contains(&given) {
                return error(401, "Unauthorized", "Invalid refresh token");
            }
        }
        _ => return error(400, "Bad Request", "Unsupported grant_type"),
    }
    let n = instance.tokens.len() + 1;
    let access = format!("xm-access-token-{n:04}");
    let refresh = format!("xm-refresh-token-{n:04}");
    let expires_in = instance.expires_in;
    instance
        .tokens
        .insert(access.clone(), now_millis() + expires_in * 1000);
    instance.refresh_tokens.push(refresh.clone());
    Response::json(
        200,
        json!({
            "access_token": access, "token_type": "bearer",
            "refresh_token": refresh, "expires_in": expires_in,
        }),
    )
}

fn person_json(instance: &Instance, person: &Person, embed: &str) -> Value {
    let mut value = json!({
        "id": person.id, "targetName": person.target_name, "recipientType": "PERSON",
        "firstName": person.first_name, "lastName": person.last_name,
        "status": person.status, "licenseType": person.license_type,
        "language": person.language, "timezone": person.timezone, "webLogin": person.target_name,
        "site": { "id": "site-1", "name": person.site, "links": { "self": "/api/xm/1/sites/site-1" } },
        "externallyOwned": person.externally_owned,
        "links": { "self": format!("/api/xm/1/people/{}", person.id) },
    });
    if let Some(key) = &person.external_key {
        value["externalKey"] = json!(key);
    }
    if embed.split(',').any(|e| e == "roles") {
        let roles: Vec<Value> = person
            .roles
            .iter()
            .map(|r| json!({ "id": format!("role-{r}"), "name": r }))
            .collect();
        value["roles"] = json!({ "count": roles.len(), "total": roles.len(), "data": roles });
    }
    if embed.split(',').any(|e| e == "devices") {
        let devices = devices_of(instance, &person.id);
        value["devices"] =
            json!({ "count": devices.len(), "total": devices.len(), "data": devices });
    }
    value
}

fn devices_of(instance: &Instance, owner: &str) -> Vec<Value> {
    instance
        .devices
        .values()
        .filter(|d| d.owner == owner)
        .map(device_json)
        .collect()
}

fn device_json(device: &Device) -> Value {
    let mut value = json!({
        "id": device.id, "name": device.name, "deviceType": device.device_type,
        "owner": { "id": device.owner }, "recipientType": "DEVICE", "status": "ACTIVE",
    });
    if let Some(email) = &device.email {
        value["emailAddress"] = json!(email);
    }
    if let Some(phone) = &device.phone {
        value["phoneNumber"] = json!(phone);
    }
    value
}

fn handle(instance: &mut Instance, request: &Request) -> Response {
    let Some(path) = request.path.strip_prefix("/api/xm/1/") else {
        return error(404, "Not Found", "Not found");
    };
    if (request.method.as_str(), path) == ("POST", "oauth2/token") {
        return token_grant(instance, request);
    }
    if instance.throttle > 0 {
        instance.throttle -= 1;
        return error(429, "Too Many Requests", "Rate limit exceeded").header("Retry-After", "1");
    }
    if !authorized(instance, request) {
        return error(401, "Unauthorized", "Authentication failed");
    }
    let parts: Vec<String> = path.split('/').map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let embed = request.param("embed").unwrap_or("").to_string();
    let body = || serde_json::from_str::<Value>(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["people"]) => list_people(instance, request, &embed),
        ("POST", ["people"]) => {
            let body = body();
            match body.get("id").and_then(Value::as_str) {
                Some(id) => modify_person(instance, id, &body),
                None => create_person(instance, &body),
            }
        }
        ("GET", ["people", who]) => match find(instance, who) {
            Some(person) => Response::json(200, person_json(instance, &person, &embed)),
            None => error(
                404,
                "Not Found",
                &format!("Could not find a person with id {who}"),
            ),
        },
        ("DELETE", ["people", id]) => match instance.people.remove(*id) {
            Some(person) => {
                instance.devices.retain(|_, d| d.owner != person.id);
                Response::json(200, person_json(instance, &person, ""))
            }
            None => error(
                404,
                "Not Found",
                &format!("Could not find a person with id {id}"),
            ),
        },
        ("GET", ["people", who, "devices"]) => match find(instance, who) {
            Some(person) => {
                let devices = devices_of(instance, &person.id);
                Response::json(
                    200,
                    json!({ "count": devices.len(), "total": devices.len(), "data": devices }),
                )
            }
            None => error(
                404,
                "Not Found",
                &format!("Could not find a person with id {who}"),
            ),
        },
        ("POST", ["devices"]) => device_post(instance, &body()),
        _ => error(404, "Not Found", "Not found"),
    }
}

fn find(instance: &Instance, who: &str) -> Option<Person> {
    instance
        .people
        .get(who)
        .or_else(|| {
            instance
                .people
                .values()
                .find(|p| p.target_name.eq_ignore_ascii_case(who))
        })
        .cloned()
}

fn list_people(instance: &Instance, request: &Request, embed: &str) -> Response {
    let offset: usize = request
        .param("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let limit: usize = request
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > 1000 {
        return error(400, "Bad Request", "limit must be between 1 and 1000");
    }
    let total = instance.people.len();
    let data: Vec<Value> = instance
        .people
        .values()
        .skip(offset)
        .take(limit)
        .map(|p| person_json(instance, p, embed))
        .collect();
    let mut links = json!({ "self": format!("/api/xm/1/people?offset={offset}&limit={limit}") });
    if offset + data.len() < total {
        links["next"] = json!(format!(
            "/api/xm/1/people?offset={}&limit={limit}",
            offset + data.len()
        ));
    }
    Response::json(
        200,
        json!({ "count": data.len(), "total": total, "data": data, "links": links }),
    )
}

/// Checks and applies the person fields of a create or modify body.
fn set_fields(person: &mut Person, body: &Value) -> Result<(), Response> {
    let text = |f: &str| body.get(f).and_then(Value::as_str).map(str::to_string);
    if let Some(v) = text("targetName") {
        person.target_name = v;
    }
    if let Some(v) = text("firstName") {
        person.first_name = v;
    }
    if let Some(v) = text("lastName") {
        person.last_name = v;
    }
    if let Some(v) = text("status") {
        if !matches!(v.as_str(), "ACTIVE" | "INACTIVE") {
            return Err(error(400, "Bad Request", &format!("Invalid status: {v}")));
        }
        person.status = v;
    }
    if let Some(v) = text("licenseType") {
        if !matches!(v.as_str(), "FULL_USER" | "STAKEHOLDER_USER") {
            return Err(error(
                400,
                "Bad Request",
                &format!("Invalid licenseType: {v}. Valid values are FULL_USER, STAKEHOLDER_USER"),
            ));
        }
        person.license_type = v;
    }
    for (field, slot) in [
        ("site", &mut person.site),
        ("language", &mut person.language),
        ("timezone", &mut person.timezone),
    ] {
        if let Some(v) = text(field) {
            *slot = v;
        }
    }
    if let Some(roles) = body.get("roles") {
        let roles: Vec<String> = roles
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(unknown) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
            return Err(error(
                400,
                "Bad Request",
                &format!("Unknown role: {unknown}"),
            ));
        }
        person.roles = roles;
    }
    if let Some(v) = text("externalKey") {
        person.external_key = Some(v);
    }
    if let Some(v) = body.get("externallyOwned").and_then(Value::as_bool) {
        person.externally_owned = v;
    }
    Ok(())
}

fn create_person(instance: &mut Instance, body: &Value) -> Response {
    let mut person = Person {
        status: "ACTIVE".into(),
        license_type: "FULL_USER".into(),
        site: "Default Site".into(),
        language: "en".into(),
        timezone: "US/Eastern".into(),
        ..Person::default()
    };
    if let Err(response) = set_fields(&mut person, body) {
        return response;
    }
    if person.target_name.is_empty() || person.first_name.is_empty() || person.last_name.is_empty()
    {
        return error(
            400,
            "Bad Request",
            "targetName, firstName and lastName are required",
        );
    }
    if person.roles.is_empty() {
        return error(400, "Bad Request", "A person must have at least one role");
    }
    if instance
        .people
        .values()
        .any(|p| p.target_name.eq_ignore_ascii_case(&person.target_name))
    {
        return error(
            409,
            "Conflict",
            &format!(
                "A person with targetName {} already exists",
                person.target_name
            ),
        );
    }
    person.id = new_id(instance);
    instance.people.insert(person.id.clone(), person.clone());
    Response::json(201, person_json(instance, &person, "roles"))
}

fn modify_person(instance: &mut Instance, id: &str, body: &Value) -> Response {
    let Some(mut person) = instance.people.get(id).cloned() else {
        return error(
            404,
            "Not Found",
            &format!("Could not find a person with id {id}"),
        );
    };
    if let Err(response) = set_fields(&mut person, body) {
        return response;
    }
    let clash = instance
        .people
        .values()
        .any(|p| p.id != id && p.target_name.eq_ignore_ascii_case(&person.target_name));
    if clash {
        return error(
            409,
            "Conflict",
            "A person with that targetName already exists",
        );
    }
    instance.people.insert(id.to_string(), person.clone());
    Response::json(200, person_json(instance, &person, "roles"))
}

fn is_e164(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn device_post(instance: &mut Instance, body: &Value) -> Response {
    let text = |f: &str| body.get(f).and_then(Value::as_str).map(str::to_string);
    if let Some(id) = text("id") {
        let Some(device) = instance.devices.get_mut(&id) else {
            return error(
                404,
                "Not Found",
                &format!("Could not find a device with id {id}"),
            );
        };
        if let Some(email) = text("emailAddress") {
            device.email = Some(email);
        }
        if let Some(phone) = text("phoneNumber") {
            if !is_e164(&phone) {
                return error(400, "Bad Request", "phoneNumber must be in E.164 format");
            }
            device.phone = Some(phone);
        }
        let device = device.clone();
        return Response::json(200, device_json(&device));
    }
    let (Some(device_type), Some(owner), Some(name)) =
        (text("deviceType"), text("owner"), text("name"))
    else {
        return error(
            400,
            "Bad Request",
            "deviceType, owner and name are required",
        );
    };
    if !instance.people.contains_key(&owner) {
        return error(400, "Bad Request", &format!("Unknown owner {owner}"));
    }
    let (email, phone) = (text("emailAddress"), text("phoneNumber"));
    match device_type.as_str() {
        "EMAIL" if email.is_some() => {}
        "VOICE" | "TEXT_PHONE" if phone.as_deref().is_some_and(is_e164) => {}
        "VOICE" | "TEXT_PHONE" => {
            return error(400, "Bad Request", "phoneNumber must be in E.164 format");
        }
        _ => return error(400, "Bad Request", "Invalid device"),
    }
    if instance
        .devices
        .values()
        .any(|d| d.owner == owner && d.name == name)
    {
        return error(
            409,
            "Conflict",
            &format!("The person already has a device named {name}"),
        );
    }
    let id = new_id(instance);
    let device = Device {
        id: id.clone(),
        owner,
        name,
        device_type,
        email,
        phone,
    };
    instance.devices.insert(id, device.clone());
    Response::json(201, device_json(&device))
}
