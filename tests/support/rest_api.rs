//! A local double of "some other JSON API" for `source "rest"`: a people endpoint that pages in
//! any of the styles real APIs use (offset/limit, page numbers, a cursor or a next link in the
//! body, a `Link` header), caps the page size below what it is asked for (as real APIs do),
//! states a total in `meta.total`, and authenticates in one of the usual ways (basic, bearer,
//! an API key header, OAuth 2.0 client credentials with tokens it can revoke). Faults make it
//! behave the ways that must fail a read: a total larger than what it sends, a cursor that
//! loops, an empty page before the end, an answer that is not JSON, records that are not an
//! array.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::vendors::{HttpDouble, Request, Response, basic_auth};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    None,
    Offset,
    Page,
    Cursor,
    NextLink,
    LinkHeader,
}

#[derive(Debug, Clone)]
pub enum ApiAuth {
    None,
    Basic(String, String),
    Bearer(String),
    ApiKey(String, String),
    /// Client id, secret, scope required (if any); tokens issued are `token-N`.
    OAuth(String, String, Option<String>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApiFault {
    #[default]
    None,
    /// `meta.total` says two more than the records it holds.
    TotalTooHigh,
    /// The third page's cursor / link / offset points back at the first page.
    Loop,
    /// The second page is empty (and the rest follow as if it were not).
    EmptySecondPage,
    /// The second page is HTML.
    NotJson,
    /// `data` is an object on the second page.
    NotAnArray,
    /// The first token issued is refused at the second page (revoked): one new token fixes it.
    RevokeFirstToken,
}

pub struct ApiSetup {
    pub people: Vec<Value>,
    pub style: Style,
    /// The most records a page holds, whatever the client asks for.
    pub cap: usize,
    pub total: bool,
    pub auth: ApiAuth,
    pub fault: ApiFault,
}

impl Default for ApiSetup {
    fn default() -> Self {
        ApiSetup {
            people: Vec::new(),
            style: Style::Offset,
            cap: 2,
            total: true,
            auth: ApiAuth::None,
            fault: ApiFault::None,
        }
    }
}

/// A person as the API returns one: nested name, emails as objects, a manager reference.
pub fn person(id: u64, given: &str, family: &str) -> Value {
    let lower = given.to_lowercase();
    json!({
        "id": id,
        "login": lower,
        "name": {"given": given, "family": family},
        "emails": [{"value": format!("{lower}@example.com"), "primary": true}],
        "department": null,
        "active": true,
    })
}

pub struct RestApiDouble {
    pub double: HttpDouble,
    issued: Arc<Mutex<u32>>,
}

impl RestApiDouble {
    pub fn start(setup: ApiSetup) -> RestApiDouble {
        let issued = Arc::new(Mutex::new(0u32));
        let counter = issued.clone();
        let double = HttpDouble::start(move |request| answer(&setup, &counter, request));
        RestApiDouble { double, issued }
    }

    /// The people endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}/api/v2/people", self.double.url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.double.url)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.double.requests()
    }

    pub fn page_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/api/v2/people")
            .collect()
    }

    pub fn tokens_issued(&self) -> u32 {
        *self.issued.lock().expect("token count")
    }
}

fn unauthorized() -> Response {
    Response::json(
        401,
        json!({"error": "unauthorized", "message": "bad credentials"}),
    )
}

fn answer(setup: &ApiSetup, issued: &Mutex<u32>, request: &Request) -> Response {
    if request.path == "/oauth/token" {
        return grant(setup, issued, request);
    }
    if request.path != "/api/v2/people" || request.method != "GET" {
        return Response::json(404, json!({"message": "no such endpoint"}));
    }
    let authorized = match &setup.auth {
        ApiAuth::None => true,
        ApiAuth::Basic(user, password) => {
            request.header("authorization") == Some(basic_auth(user, password).as_str())
        }
        ApiAuth::Bearer(token) => {
            request.header("authorization") == Some(format!("Bearer {token}").as_str())
        }
        ApiAuth::ApiKey(header, key) => request.header(header) == Some(key.as_str()),
        ApiAuth::OAuth(..) => {
            let token = request
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .unwrap_or("");
            let count = *issued.lock().expect("token count");
            let known = token
                .strip_prefix("token-")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 1 && n <= count);
            let revoked = setup.fault == ApiFault::RevokeFirstToken && token == "token-1";
            // The first token works for the first page only.
            let first_page = page_index(setup, request) == 0;
            known && (first_page || !revoked)
        }
    };
    if !authorized {
        return unauthorized();
    }
    let index = page_index(setup, request);
    let cap = setup.cap.max(1);
    let asked = match setup.style {
        Style::Offset => request.param("limit"),
        Style::Page => request.param("per_page"),
        _ => request.param("limit"),
    }
    .and_then(|v| v.parse::<usize>().ok())
    .unwrap_or(cap);
    let size = asked.min(cap);
    let start = match setup.style {
        Style::Offset => request
            .param("offset")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0),
        Style::None => 0,
        _ => index * size,
    };
    let all = if setup.style == Style::None {
        setup.people.len()
    } else {
        size
    };
    let mut page: Vec<Value> = setup.people.iter().skip(start).take(all).cloned().collect();
    if setup.fault == ApiFault::EmptySecondPage && index == 1 {
        page.clear();
    }
    if setup.fault == ApiFault::NotJson && index == 1 {
        return Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: "<html>Maintenance</html>".into(),
        };
    }
    let end = start + all;
    let more = end < setup.people.len();
    // The page after this one, as the style names it.
    let next_index = if setup.fault == ApiFault::Loop && index == 2 {
        0
    } else {
        index + 1
    };
    let cursor = format!("c{next_index}");
    let next_link = match setup.style {
        Style::LinkHeader | Style::NextLink => {
            Some(format!("/api/v2/people?limit={size}&cursor={cursor}"))
        }
        _ => None,
    };
    let mut meta = serde_json::Map::new();
    if setup.total {
        let extra = if setup.fault == ApiFault::TotalTooHigh {
            2
        } else {
            0
        };
        meta.insert("total".into(), json!(setup.people.len() + extra));
    }
    if setup.style == Style::Cursor {
        meta.insert(
            "next_cursor".into(),
            if more { json!(cursor) } else { Value::Null },
        );
    }
    let data = if setup.fault == ApiFault::NotAnArray && index == 1 {
        json!({"items": page})
    } else {
        json!(page)
    };
    let mut body = json!({"data": data, "meta": meta});
    if setup.style == Style::NextLink {
        body["links"] = json!({"next": if more { json!(next_link) } else { Value::Null }});
    }
    let mut response = Response::json(200, body);
    if let (Style::LinkHeader, true, Some(link)) = (setup.style, more, next_link) {
        response = response.header("Link", format!("<{link}>; rel=\"next\""));
    }
    response
}

/// Which page a request asks for (0-based), in the style's own terms.
fn page_index(setup: &ApiSetup, request: &Request) -> usize {
    let cap = setup.cap.max(1);
    match setup.style {
        Style::Offset => {
            let offset = request
                .param("offset")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            offset / cap
        }
        Style::Page => request
            .param("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .saturating_sub(1),
        _ => request
            .param("cursor")
            .and_then(|c| c.strip_prefix('c'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

fn grant(setup: &ApiSetup, issued: &Mutex<u32>, request: &Request) -> Response {
    let ApiAuth::OAuth(id, secret, scope) = &setup.auth else {
        return Response::json(404, json!({"message": "no OAuth here"}));
    };
    let form = request.form();
    let ok = request.method == "POST"
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id") == Some(id)
        && form.get("client_secret") == Some(secret)
        && scope.as_ref().is_none_or(|s| form.get("scope") == Some(s));
    if !ok {
        return Response::json(
            401,
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        );
    }
    let mut count = issued.lock().expect("token count");
    *count += 1;
    Response::json(
        200,
        json!({"access_token": format!("token-{count}"), "token_type": "Bearer", "expires_in": 3600}),
    )
}
