//! A local double of the Cherwell Service Management REST API, as its documentation describes
//! it: `POST /CherwellAPI/token` (form-encoded password grant with the REST API client key;
//! `access_token`, `expires_in`, `refresh_token`; 400 `invalid_grant` on bad credentials) and
//! `POST /CherwellAPI/api/V1/getsearchresults` (Bearer token, 401 "Authorization has been
//! denied for this request." without a valid one; `busObId`, `filters` by `fieldId`,
//! `pageNumber` from 1, `pageSize`; `businessObjects[]` with `fields[]` of `{name, value,
//! fieldId, displayName}` and `totalRows`; a 200 with `hasError` for a search it cannot run).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::vendors::{HttpDouble, Request, Response};

pub const BUS_OB_ID: &str = "9343f8800b8ca5cd0ed0574e5a9bfa5b";
pub const CLIENT_ID: &str = "0c8a5a7e-5b1c-4d1e-9a8b-3f00c0ffee00";
pub const USERNAME: &str = "roster.sync";
pub const PASSWORD: &str = "cw-password-51f0";

/// Field ids of the customer business object, as Cherwell names them (`FI:` ids).
pub const FIELD_STATUS: &str = "93dada9f640056ce1dc67b4d4bb801f69104894dc8";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CherwellFault {
    #[default]
    None,
    /// `totalRows` one more than the rows it holds.
    TotalTooHigh,
    /// The second page comes back empty.
    EmptySecondPage,
    /// The first token is refused from the second page on (revoked).
    RevokeFirstToken,
    /// The second page is a 200 with `hasError`.
    ErrorOnSecondPage,
}

pub struct CherwellSetup {
    /// (recId, login, first name, email, status)
    pub customers: Vec<(String, String, String, String, String)>,
    pub fault: CherwellFault,
}

pub fn customer(
    rec: &str,
    login: &str,
    first: &str,
    status: &str,
) -> (String, String, String, String, String) {
    (
        rec.into(),
        login.into(),
        first.into(),
        format!("{login}@example.com"),
        status.into(),
    )
}

pub struct CherwellDouble {
    pub double: HttpDouble,
    issued: Arc<Mutex<u32>>,
}

impl CherwellDouble {
    pub fn start(setup: CherwellSetup) -> CherwellDouble {
        let issued = Arc::new(Mutex::new(0));
        let counter = issued.clone();
        let double = HttpDouble::start(move |r| answer(&setup, &counter, r));
        CherwellDouble { double, issued }
    }

    /// The API root, as configured: `http://127.0.0.1:P/CherwellAPI`.
    pub fn url(&self) -> String {
        format!("{}/CherwellAPI", self.double.url)
    }

    pub fn searches(&self) -> Vec<Value> {
        self.double
            .requests()
            .iter()
            .filter(|r| r.path == "/CherwellAPI/api/V1/getsearchresults")
            .map(|r| serde_json::from_str(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    pub fn tokens_issued(&self) -> u32 {
        *self.issued.lock().expect("tokens")
    }
}

fn answer(setup: &CherwellSetup, issued: &Mutex<u32>, request: &Request) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/CherwellAPI/token") => token(issued, request),
        ("POST", "/CherwellAPI/api/V1/getsearchresults") => search(setup, issued, request),
        _ => Response::json(404, json!({"Message": "No HTTP resource was found"})),
    }
}

fn token(issued: &Mutex<u32>, request: &Request) -> Response {
    let form = request.form();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "password" || get("client_id") != CLIENT_ID {
        return Response::json(
            400,
            json!({"error": "invalid_client_id", "error_description": "client_id is not valid"}),
        );
    }
    if get("username") != USERNAME || get("password") != PASSWORD {
        return Response::json(
            400,
            json!({"error": "invalid_grant", "error_description": "BADCREDENTIALS"}),
        );
    }
    let mut n = issued.lock().expect("tokens");
    *n += 1;
    Response::json(
        200,
        json!({
            "access_token": format!("cw-token-{n}"),
            "token_type": "bearer",
            "expires_in": 1199,
            "refresh_token": format!("cw-refresh-{n}"),
            "as:client_id": CLIENT_ID,
            "username": USERNAME,
            ".issued": "Mon, 17 June 2019 15:31:39 GMT",
            ".expires": "Mon, 17 June 2019 15:51:39 GMT",
        }),
    )
}

fn search(setup: &CherwellSetup, issued: &Mutex<u32>, request: &Request) -> Response {
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    let page = body["pageNumber"].as_u64().unwrap_or(1).max(1) as usize;
    let size = body["pageSize"].as_u64().unwrap_or(200).max(1) as usize;
    let token = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    let count = *issued.lock().expect("tokens");
    let known = token
        .strip_prefix("cw-token-")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n >= 1 && n <= count);
    let revoked =
        setup.fault == CherwellFault::RevokeFirstToken && token == "cw-token-1" && page > 1;
    if !known || revoked {
        return Response::json(
            401,
            json!({"Message": "Authorization has been denied for this request."}),
        );
    }
    if body["busObId"].as_str() != Some(BUS_OB_ID) {
        return Response::json(
            200,
            json!({"businessObjects": [], "totalRows": 0, "hasError": true,
                   "errorCode": "RECORDNOTFOUND", "errorMessage": "Business object definition not found"}),
        );
    }
    if setup.fault == CherwellFault::ErrorOnSecondPage && page == 2 {
        return Response::json(
            200,
            json!({"businessObjects": [], "totalRows": 0, "hasError": true,
                   "errorCode": "GENERALFAILURE", "errorMessage": "Search timed out"}),
        );
    }
    let status_filter: Vec<&str> = body["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["fieldId"] == FIELD_STATUS && f["operator"] == "eq")
        .filter_map(|f| f["value"].as_str())
        .collect();
    let matching: Vec<_> = setup
        .customers
        .iter()
        .filter(|c| status_filter.is_empty() || status_filter.contains(&c.4.as_str()))
        .collect();
    let mut rows: Vec<Value> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|(rec, login, first, email, status)| {
            json!({
                "busObId": BUS_OB_ID,
                "busObPublicId": login,
                "busObRecId": rec,
                "fields": [
                    {"dirty": false, "displayName": "Login ID", "fieldId": "FI:1", "html": null, "name": "LoginID", "value": login},
                    {"dirty": false, "displayName": "First Name", "fieldId": "FI:2", "html": null, "name": "FirstName", "value": first},
                    {"dirty": false, "displayName": "Email", "fieldId": "FI:3", "html": null, "name": "Email", "value": email},
                    {"dirty": false, "displayName": "Status", "fieldId": FIELD_STATUS, "html": null, "name": "Status", "value": status},
                    {"dirty": false, "displayName": "Cell Phone", "fieldId": "FI:5", "html": null, "name": "CellPhone", "value": ""},
                ],
                "links": [],
                "errorCode": null,
                "errorMessage": null,
                "hasError": false,
            })
        })
        .collect();
    if setup.fault == CherwellFault::EmptySecondPage && page == 2 {
        rows.clear();
    }
    let extra = usize::from(setup.fault == CherwellFault::TotalTooHigh);
    Response::json(
        200,
        json!({
            "businessObjects": rows,
            "hasPrompts": false,
            "links": [],
            "prompts": [],
            "searchResultsFields": [],
            "simpleResultsListItems": [],
            "totalRows": matching.len() + extra,
            "errorCode": null,
            "errorMessage": null,
            "hasError": false,
        }),
    )
}
