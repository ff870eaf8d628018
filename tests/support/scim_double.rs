//! A small in-memory SCIM 2.0 service provider with switches for the documented quirks of
//! real providers (shared/CONNECTORS.md, "Real SCIM providers"), since AWS IAM Identity
//! Center, Entra ID or Okta cannot run here. Without quirks it behaves like RFC 7644 says:
//! filters `attr eq "value"` (userName and displayName case-insensitive, externalId exact),
//! `startIndex`/`count` paging, PATCH add/replace/remove with value paths, PUT, DELETE,
//! 409 `uniqueness` on duplicate userName/displayName, `meta.version` and `ETag` with
//! If-Match → 412, and 400 `noTarget` for a value-path removal that matches nothing.
//!
//! The quirks (each a field of `Quirks`):
//! - `filters`: honoured, ignored (everything is answered), empty (nothing is answered),
//!   refused (400 `invalidFilter`); `or` is always refused (400), as AWS does.
//! - `spc`: the `/ServiceProviderConfig` document, or `None` for a 404.
//! - `value_paths_refused`: `members[value eq "…"]` → 400 `invalidPath`.
//! - `patch_not_implemented`: PATCH → 501 with an empty body (PUT works).
//! - `patch_partial`: PATCH of `displayName` or `externalId` → 501 with an empty body, other
//!   operations (members, active) work.
//! - `ignore_active`: `active` is accepted and dropped.
//! - `fold_usernames`: userName is stored lowercased.
//! - `versions`: `false` for a provider without versions (no meta.version, no ETag).
//! - `no_members_in_answers`: Groups answers carry no `members` (AWS); `members eq "id"`
//!   filters answer the groups of a member, and 404 for an id no user has (AWS).
//! - `max_count`: a `count` above it is refused (400), as AWS refuses more than 100.
//! - `bulk`: `/Bulk` (RFC 7644 §3.7), POSTs to `/Users` only, and its failures on demand
//!   (see `BulkQuirks`). Served only when the `spc` says `bulk.supported` (else 501); its
//!   `maxOperations` and `maxPayloadSize` are enforced with 413, as RFC 7644 §3.7.4 says.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::vendors::{HttpDouble, Request, Response};

pub const TOKEN: &str = "double-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filters {
    #[default]
    Honoured,
    Ignored,
    Empty,
    Refused,
}

#[derive(Debug, Clone)]
pub struct Quirks {
    pub filters: Filters,
    pub spc: Option<Value>,
    pub value_paths_refused: bool,
    pub patch_not_implemented: bool,
    pub patch_partial: bool,
    pub ignore_active: bool,
    pub fold_usernames: bool,
    pub versions: bool,
    pub no_members_in_answers: bool,
    pub max_count: Option<usize>,
    pub bulk: BulkQuirks,
}

/// How the double's `/Bulk` misbehaves.
#[derive(Debug, Clone, Default)]
pub struct BulkQuirks {
    /// Operations creating these usernames are answered with this status (and no account).
    pub refuse: Vec<(String, u16)>,
    /// A request of more operations than this is answered 413, whatever `maxOperations`
    /// says (a provider whose real limit is below the one it advertises).
    pub too_large_above: Option<usize>,
    /// The Bulk request of this number (1 for the first) is carried out, then answered 500.
    pub fail_after_processing: Option<usize>,
}

/// A ServiceProviderConfig document that advertises Bulk.
pub fn spc_with_bulk(max_operations: usize, max_payload: usize) -> Value {
    let mut doc = spc(true, true);
    doc["bulk"] = json!({
        "supported": true,
        "maxOperations": max_operations,
        "maxPayloadSize": max_payload,
    });
    doc
}

impl Default for Quirks {
    fn default() -> Quirks {
        Quirks {
            filters: Filters::Honoured,
            spc: Some(spc(true, true)),
            value_paths_refused: false,
            patch_not_implemented: false,
            patch_partial: false,
            ignore_active: false,
            fold_usernames: false,
            versions: true,
            no_members_in_answers: false,
            max_count: None,
            bulk: BulkQuirks::default(),
        }
    }
}

impl Quirks {
    /// AWS IAM Identity Center as documented: no `or`, groups listed without members, at
    /// most 100 a page, no versions.
    pub fn aws() -> Quirks {
        Quirks {
            no_members_in_answers: true,
            max_count: Some(100),
            versions: false,
            ..Quirks::default()
        }
    }
}

/// A ServiceProviderConfig document.
pub fn spc(filter: bool, patch: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": patch},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": filter, "maxResults": 100},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
    })
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    next: u64,
    /// Bulk requests received.
    bulk_requests: usize,
}

/// The double, running on a loopback port; stopped when dropped.
pub struct ScimDouble {
    /// The API root, `http://127.0.0.1:PORT/scim/v2`.
    pub url: String,
    http: HttpDouble,
    state: Arc<Mutex<State>>,
}

impl ScimDouble {
    pub fn start(quirks: Quirks) -> ScimDouble {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let http = HttpDouble::start(move |request| {
            let mut state = shared.lock().expect("double state");
            handle(&mut state, &quirks, request)
        });
        ScimDouble {
            url: format!("{}/scim/v2", http.url),
            http,
            state,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }

    /// Adds a user or group as someone would by hand; returns its id.
    pub fn insert(&self, endpoint: &str, mut resource: Value) -> String {
        let mut state = self.state.lock().expect("double state");
        state.next += 1;
        let id = format!("id-{}", state.next);
        resource["id"] = json!(id);
        resource["meta"] = json!({"version": "W/\"1\""});
        collection(&mut state, endpoint).insert(id.clone(), resource);
        id
    }

    pub fn users(&self) -> Vec<Value> {
        self.state
            .lock()
            .expect("double state")
            .users
            .values()
            .cloned()
            .collect()
    }

    pub fn groups(&self) -> Vec<Value> {
        self.state
            .lock()
            .expect("double state")
            .groups
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, endpoint: &str, id: &str) -> Option<Value> {
        let mut state = self.state.lock().expect("double state");
        collection(&mut state, endpoint).get(id).cloned()
    }
}

fn collection<'s>(state: &'s mut State, endpoint: &str) -> &'s mut BTreeMap<String, Value> {
    if endpoint == "Groups" {
        &mut state.groups
    } else {
        &mut state.users
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
    Response::json(status, body)
}

fn empty(status: u16) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: String::new(),
    }
}

/// The resource as answered: without members when the quirk says so, the version as ETag.
fn answer(status: u16, quirks: &Quirks, endpoint: &str, resource: &Value) -> Response {
    let shown = shown(quirks, endpoint, resource);
    let mut response = Response::json(status, shown);
    if let Some(v) = resource["meta"]["version"]
        .as_str()
        .filter(|_| quirks.versions)
    {
        response = response.header("ETag", v);
    }
    response
}

fn shown(quirks: &Quirks, endpoint: &str, resource: &Value) -> Value {
    let mut shown = resource.clone();
    if let Some(object) = shown.as_object_mut() {
        if !quirks.versions {
            object.remove("meta");
        }
        if endpoint == "Groups" && quirks.no_members_in_answers {
            object.remove("members");
        }
    }
    shown
}

fn handle(state: &mut State, quirks: &Quirks, request: &Request) -> Response {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return error(401, None, "unauthorized");
    }
    let Some(path) = request.path.strip_prefix("/scim/v2/") else {
        return error(404, None, "not found");
    };
    let (endpoint, id) = match path.split_once('/') {
        Some((e, id)) => (e, Some(id.to_string())),
        None => (path, None),
    };
    if endpoint == "ServiceProviderConfig" {
        return match &quirks.spc {
            Some(doc) => Response::json(200, doc.clone()),
            None => error(404, None, "no ServiceProviderConfig here"),
        };
    }
    if endpoint == "Bulk" && request.method == "POST" {
        return bulk(state, quirks, request);
    }
    if endpoint != "Users" && endpoint != "Groups" {
        return error(404, None, "not found");
    }
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    match (request.method.as_str(), id) {
        ("GET", None) => list(state, quirks, endpoint, request),
        ("GET", Some(id)) => match collection(state, endpoint).get(&id) {
            Some(r) => answer(200, quirks, endpoint, r),
            None => error(404, None, "no such resource"),
        },
        ("POST", None) => create(state, quirks, endpoint, body),
        ("PATCH", Some(id)) => {
            let naming = body["Operations"].as_array().is_some_and(|ops| {
                ops.iter()
                    .any(|op| matches!(op["path"].as_str(), Some("displayName" | "externalId")))
            });
            if quirks.patch_not_implemented || (quirks.patch_partial && naming) {
                return empty(501);
            }
            change(state, quirks, endpoint, &id, request, |resource| {
                patch(resource, quirks, &body)
            })
        }
        ("PUT", Some(id)) => change(state, quirks, endpoint, &id, request, |resource| {
            let mut new = body.clone();
            new["id"] = resource["id"].clone();
            new["meta"] = resource["meta"].clone();
            if quirks.ignore_active {
                new["active"] = resource.get("active").cloned().unwrap_or(json!(true));
            }
            if quirks.fold_usernames
                && let Some(u) = new["userName"].as_str().map(str::to_lowercase)
            {
                new["userName"] = json!(u);
            }
            *resource = new;
            Ok(())
        }),
        ("DELETE", Some(id)) => match collection(state, endpoint).remove(&id) {
            Some(_) => empty(204),
            None => error(404, None, "no such resource"),
        },
        _ => error(405, None, "method not allowed"),
    }
}

/// `attr eq "value"` → (attr, value); anything else is refused.
fn parse_filter(filter: &str) -> Result<(String, String), Response> {
    if filter.contains(" or ") || filter.contains(" OR ") {
        return Err(error(
            400,
            Some("invalidFilter"),
            "only eq joined by and is supported",
        ));
    }
    let mut parts = filter.splitn(3, ' ');
    let (Some(attr), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(error(400, Some("invalidFilter"), "cannot parse the filter"));
    };
    let value: String = serde_json::from_str(value)
        .map_err(|_| error(400, Some("invalidFilter"), "the value is not a string"))?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(error(400, Some("invalidFilter"), "only eq"));
    }
    Ok((attr.to_string(), value))
}

fn matches(resource: &Value, attr: &str, value: &str) -> bool {
    if attr == "members" || attr == "members.value" {
        return resource["members"]
            .as_array()
            .is_some_and(|list| list.iter().any(|m| m["value"].as_str() == Some(value)));
    }
    let have = resource.get(attr).and_then(Value::as_str);
    match attr {
        "externalId" => have == Some(value),
        _ => have.is_some_and(|h| h.eq_ignore_ascii_case(value)),
    }
}

fn list(state: &mut State, quirks: &Quirks, endpoint: &str, request: &Request) -> Response {
    let count = request
        .param("count")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100);
    if quirks.max_count.is_some_and(|max| count > max) {
        return error(400, Some("invalidValue"), "count is out of range");
    }
    let no_such_member = match request.param("filter").map(parse_filter) {
        Some(Ok((attr, value))) if attr == "members" && quirks.no_members_in_answers => {
            !state.users.contains_key(&value)
        }
        _ => false,
    };
    if no_such_member {
        return error(404, None, "ResourceNotFoundException: no such member");
    }
    let all: Vec<&Value> = collection(state, endpoint).values().collect();
    let selected: Vec<&Value> = match request.param("filter") {
        None => all,
        // A provider that ignores filters does not read them either.
        Some(_) if quirks.filters == Filters::Ignored => all,
        Some(filter) => {
            let (attr, value) = match parse_filter(filter) {
                Ok(f) => f,
                Err(refusal) => return refusal,
            };
            match quirks.filters {
                Filters::Honoured => all
                    .into_iter()
                    .filter(|r| matches(r, &attr, &value))
                    .collect(),
                Filters::Ignored => all,
                Filters::Empty => Vec::new(),
                Filters::Refused => {
                    return error(400, Some("invalidFilter"), "filtering is not supported");
                }
            }
        }
    };
    let start = request
        .param("startIndex")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let page: Vec<Value> = selected
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|r| shown(quirks, endpoint, r))
        .collect();
    Response::json(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": selected.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

fn create(state: &mut State, quirks: &Quirks, endpoint: &str, mut body: Value) -> Response {
    let unique = if endpoint == "Users" {
        "userName"
    } else {
        "displayName"
    };
    let Some(value) = body.get(unique).and_then(Value::as_str).map(str::to_string) else {
        return error(400, Some("invalidValue"), &format!("{unique} is required"));
    };
    if collection(state, endpoint)
        .values()
        .any(|r| matches(r, unique, &value))
    {
        return error(
            409,
            Some("uniqueness"),
            &format!("{unique} {value} is taken"),
        );
    }
    if quirks.fold_usernames && endpoint == "Users" {
        body["userName"] = json!(value.to_lowercase());
    }
    if quirks.ignore_active && endpoint == "Users" {
        body["active"] = json!(true);
    }
    state.next += 1;
    let id = format!("id-{}", state.next);
    body["id"] = json!(id);
    body["meta"] = json!({"version": "W/\"1\""});
    collection(state, endpoint).insert(id, body.clone());
    answer(201, quirks, endpoint, &body)
}

/// A conditional change: If-Match must match the version; the version goes up by one.
fn change(
    state: &mut State,
    quirks: &Quirks,
    endpoint: &str,
    id: &str,
    request: &Request,
    apply: impl FnOnce(&mut Value) -> Result<(), Response>,
) -> Response {
    let Some(current) = collection(state, endpoint).get(id).cloned() else {
        return error(404, None, "no such resource");
    };
    let version = current["meta"]["version"]
        .as_str()
        .unwrap_or("W/\"1\"")
        .to_string();
    if quirks.versions
        && let Some(expected) = request.header("if-match")
        && expected != version
    {
        return error(412, None, "version mismatch");
    }
    let mut resource = current;
    if let Err(refusal) = apply(&mut resource) {
        return refusal;
    }
    let n: u64 = version
        .trim_start_matches("W/\"")
        .trim_end_matches('"')
        .parse()
        .unwrap_or(1);
    resource["meta"] = json!({"version": format!("W/\"{}\"", n + 1)});
    collection(state, endpoint).insert(id.to_string(), resource.clone());
    answer(200, quirks, endpoint, &resource)
}

fn patch(resource: &mut Value, quirks: &Quirks, body: &Value) -> Result<(), Response> {
    let ops = body["Operations"].as_array().cloned().unwrap_or_default();
    // Atomic: work on a copy.
    let mut work = resource.clone();
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("").to_ascii_lowercase();
        let path = op["path"].as_str().unwrap_or("").to_string();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        let Some(object) = work.as_object_mut() else {
            return Err(error(500, None, "not an object"));
        };
        if let Some(filter) = path
            .strip_prefix("members[")
            .and_then(|p| p.strip_suffix(']'))
        {
            if quirks.value_paths_refused {
                return Err(error(
                    400,
                    Some("invalidPath"),
                    "value paths are not supported",
                ));
            }
            let (_, id) = parse_filter(filter)?;
            let members = member_list(object);
            let before = members.len();
            members.retain(|m| m["value"].as_str() != Some(id.as_str()));
            if members.len() == before {
                return Err(error(400, Some("noTarget"), "no such member"));
            }
            continue;
        }
        match (kind.as_str(), path.as_str()) {
            ("add", "members") => {
                let members = member_list(object);
                for m in value.as_array().cloned().unwrap_or_default() {
                    if !members.iter().any(|x| x["value"] == m["value"]) {
                        members.push(m);
                    }
                }
            }
            ("remove", "members") => {
                let gone: Vec<Value> = value
                    .as_array()
                    .map(|l| l.iter().map(|m| m["value"].clone()).collect())
                    .unwrap_or_default();
                member_list(object).retain(|m| !gone.contains(&m["value"]));
            }
            ("add", "phoneNumbers") => {
                let entry = object.entry("phoneNumbers").or_insert_with(|| json!([]));
                if let (Some(list), Some(new)) = (entry.as_array_mut(), value.as_array()) {
                    list.extend(new.iter().cloned());
                }
            }
            ("replace" | "add", "active") if quirks.ignore_active => {}
            ("replace" | "add", "userName") if quirks.fold_usernames => {
                let folded = value.as_str().unwrap_or("").to_lowercase();
                object.insert("userName".into(), json!(folded));
            }
            ("replace" | "add", path) => set(object, path, value),
            ("remove", path) => {
                object.remove(path);
            }
            _ => return Err(error(400, Some("invalidSyntax"), "unknown operation")),
        }
    }
    *resource = work;
    Ok(())
}

fn member_list(object: &mut Map<String, Value>) -> &mut Vec<Value> {
    let entry = object.entry("members").or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    entry.as_array_mut().expect("made an array just above")
}

/// Sets `a` or `a.b`.
fn set(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        Some((parent, child)) => {
            let entry = object.entry(parent).or_insert_with(|| json!({}));
            if let Some(inner) = entry.as_object_mut() {
                inner.insert(child.to_string(), value);
            }
        }
        None => {
            object.insert(path.to_string(), value);
        }
    }
}

/// `POST /Bulk`: each operation a create of a user, answered per operation.
fn bulk(state: &mut State, quirks: &Quirks, request: &Request) -> Response {
    let advertised = quirks.spc.as_ref().map(|doc| &doc["bulk"]);
    if advertised.is_none_or(|b| b["supported"] != json!(true)) {
        return empty(501);
    }
    let limit = |name: &str| {
        advertised
            .and_then(|b| b[name].as_u64())
            .map_or(usize::MAX, |n| n as usize)
    };
    if request.bytes.len() > limit("maxPayloadSize") {
        return error(413, None, "the payload exceeds the maxPayloadSize");
    }
    let body: Value = match serde_json::from_str(&request.body) {
        Ok(body) => body,
        Err(_) => return error(400, Some("invalidSyntax"), "not JSON"),
    };
    let operations = body["Operations"].as_array().cloned().unwrap_or_default();
    if operations.len() > limit("maxOperations")
        || quirks
            .bulk
            .too_large_above
            .is_some_and(|n| operations.len() > n)
    {
        return error(413, None, "too many operations");
    }
    state.bulk_requests += 1;
    let host = request.header("host").unwrap_or("127.0.0.1").to_string();
    let mut results = Vec::new();
    for operation in operations {
        let bulk_id = operation["bulkId"].clone();
        if operation["method"] != "POST" || operation["path"] != "/Users" {
            results.push(json!({
                "method": operation["method"], "bulkId": bulk_id, "status": "400",
                "response": {"status": "400", "detail": "the double creates users only"},
            }));
            continue;
        }
        let data = operation["data"].clone();
        let username = data["userName"].as_str().unwrap_or_default().to_string();
        let refused = quirks.bulk.refuse.iter().find(|(u, _)| *u == username);
        let answer = match refused {
            Some((_, status)) => error(*status, None, &format!("{username} is refused here")),
            None => create(state, quirks, "Users", data),
        };
        let response: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let mut result = json!({
            "method": "POST",
            "bulkId": bulk_id,
            "status": answer.status.to_string(),
        });
        match response["id"].as_str().filter(|_| answer.status == 201) {
            Some(id) => {
                result["location"] = json!(format!("http://{host}/scim/v2/Users/{id}"));
                result["response"] = response.clone();
            }
            None => result["response"] = response,
        }
        results.push(result);
    }
    if quirks.bulk.fail_after_processing == Some(state.bulk_requests) {
        return error(500, None, "the server failed after doing the work");
    }
    Response::json(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
            "Operations": results,
        }),
    )
}
