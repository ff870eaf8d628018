//! Any JSON API as a source of users (`source "rest"`), for the ITSM tools and HR systems
//! roster has no connector of its own for.
//!
//! The config describes the API instead of code: the endpoint and its query parameters, how
//! to authenticate (basic, bearer token, an API key in a named header, or the OAuth 2.0
//! client credentials grant), how it pages, and JSON Pointers (RFC 6901, `serde_json`'s
//! `Value::pointer`) to the records and, when the API states one, to the total.
//!
//! **When the read ends**, by paging style:
//! - `none`: after the one answer.
//! - `offset`: the offset advances by the records received (not by `page-size`, which a
//!   server may cap lower), and the read ends at an empty page, or once the offset reaches a
//!   stated total.
//! - `page`: page numbers count up from `first`; the read ends at an empty page, or once the
//!   records read reach a stated total.
//! - `cursor` / `next-link`: the value at the `next` pointer of each answer is the next
//!   cursor / URL; a missing, `null` or empty one ends the read.
//! - `link-header`: the `Link: <...>; rel="next"` header; none ends the read.
//!
//! A short page never ends the read (servers cap page sizes), only an empty one or the
//! API's own "no next". Next links are followed on the endpoint's origin only, so that no
//! answer can send the credentials elsewhere.
//!
//! **Completeness, as for the other REST sources**: any failed page, an answer that is not
//! JSON, a records pointer that does not name an array (or an array holding something other
//! than objects), a total pointer configured but absent from the first answer, a page or
//! cursor asked for twice (the API is looping), and a read that ends with fewer records than
//! the largest total any page stated (an empty page before the total, or records lost) are
//! `SourceError::Incomplete`: nothing is planned from part of a read.
//!
//! **Values**: each record's fields become attributes, nested objects flattened with dots
//! (`{"manager": {"email": "x"}}` is `manager.email`), every element of an array one value
//! (objects in an array flattened under the same name, so `emails[].value` is the
//! multi-valued `emails.value`), numbers and booleans as text, `null` not at all. Names are
//! folded to lowercase like every source's. A record's origin is the last segment of the
//! endpoint's path and the value at the `id` pointer (`people/42`), or its position.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::HeaderName;
use serde_json::{Map, Value};

use crate::config::{RestApiSource, RestAuth, RestPaging};
use crate::http::{Authorization, FormValue, Pacer, TokenAnswer};
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::rest::{Failure, Reply, RestClient, endpoint_url, push_json};
use super::{Source, SourceError};

/// Objects nested deeper than this are not flattened further.
const MAX_DEPTH: usize = 16;

/// Pages in a row without a record, in the cursor styles, before the read is called a loop.
const MAX_EMPTY_PAGES: u32 = 100;

/// A JSON API, read as `source "rest"` describes it.
pub struct RestApi {
    config: RestApiSource,
    session: Option<Session>,
}

struct Session {
    client: RestClient,
    endpoint: Url,
    auth: Credential,
}

enum Credential {
    None,
    Fixed(Authorization),
    OAuth(OAuthClient),
}

/// The client credentials grant, its token kept until shortly before it runs out.
struct OAuthClient {
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    token: Option<(Secret, Instant)>,
}

/// Where the next page is.
enum Cursor {
    Offset(u64),
    Page(u64),
    Value(String),
    Url(Url),
}

impl RestApi {
    /// Keeps the settings; nothing is resolved or contacted until the first read.
    pub fn new(config: RestApiSource) -> Self {
        RestApi {
            config,
            session: None,
        }
    }

    fn session(&mut self) -> Result<&mut Session, SourceError> {
        if self.session.is_none() {
            self.session = Some(Session::open(&self.config)?);
        }
        self.session
            .as_mut()
            .ok_or_else(|| SourceError::Setup("the REST session was not set up".into()))
    }
}

impl Source for RestApi {
    fn describe(&self) -> String {
        self.config.url.value.clone()
    }

    fn read_users(
        &mut self,
        _attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let config = self.config.clone();
        let session = self.session()?;
        let collection = session
            .endpoint
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
            .unwrap_or("records")
            .to_string();
        let mut url = session.page_url(&config, None)?;
        let mut requested: HashSet<String> = HashSet::new();
        let mut read = 0u64;
        let mut stated: Option<u64> = None;
        let mut first = true;
        let mut empty_in_a_row = 0u32;
        let mut cursor = match config.paging {
            RestPaging::Offset { .. } => Some(Cursor::Offset(0)),
            RestPaging::Page { first, .. } => Some(Cursor::Page(first)),
            _ => None,
        };
        loop {
            let incomplete = |url: &Url, read: u64, message: String| SourceError::Incomplete {
                url: url.to_string(),
                read,
                message,
            };
            if !requested.insert(url.to_string()) {
                return Err(incomplete(
                    &url,
                    read,
                    "this page was asked for before: the API's paging loops, so the read \
                     cannot be known to be whole"
                        .into(),
                ));
            }
            let reply = session.get(&url, read)?;
            let body = reply
                .json()
                .map_err(|f| incomplete(&url, read, Failure::from(f).to_string()))?;
            let records = records_at(&body, &config.records.value)
                .map_err(|message| incomplete(&url, read, message))?;
            if let Some(pointer) = &config.total {
                match total_at(&body, &pointer.value) {
                    Ok(Some(total)) => stated = stated.max(Some(total)),
                    Ok(None) if first => {
                        return Err(incomplete(
                            &url,
                            read,
                            format!(
                                "the answer has no total at {:?} (`total`), so the read cannot \
                                 be checked: fix the pointer, or remove `total`",
                                pointer.value
                            ),
                        ));
                    }
                    Ok(None) => {}
                    Err(message) => return Err(incomplete(&url, read, message)),
                }
            }
            first = false;
            let count = records.len() as u64;
            for record in records {
                read += 1;
                let origin = match config.id.as_ref().and_then(|p| text_at(record, &p.value)) {
                    Some(id) => format!("{collection}/{id}"),
                    None => format!("{collection} (record {read})"),
                };
                let mut out = SourceRecord::new(origin);
                flatten(&mut out, "", record, 0);
                sink(out);
            }
            empty_in_a_row = if count == 0 { empty_in_a_row + 1 } else { 0 };
            cursor = match (&config.paging, cursor) {
                (RestPaging::None, _) => None,
                (RestPaging::Offset { .. }, Some(Cursor::Offset(offset))) => {
                    let offset = offset + count;
                    (count > 0 && stated.is_none_or(|t| offset < t))
                        .then_some(Cursor::Offset(offset))
                }
                (RestPaging::Page { .. }, Some(Cursor::Page(page))) => {
                    (count > 0 && stated.is_none_or(|t| read < t)).then_some(Cursor::Page(page + 1))
                }
                (RestPaging::Cursor { next, .. }, _) => {
                    text_at_value(body.pointer(next)).map(Cursor::Value)
                }
                (RestPaging::NextLink { next, .. }, _) => match text_at_value(body.pointer(next)) {
                    Some(link) => Some(Cursor::Url(
                        session
                            .client
                            .follow(&reply.url, &link)
                            .map_err(|f| incomplete(&url, read, f.to_string()))?,
                    )),
                    None => None,
                },
                (RestPaging::LinkHeader { .. }, _) => session
                    .client
                    .next_link(&reply)
                    .map_err(|f| incomplete(&url, read, f.to_string()))?
                    .map(Cursor::Url),
                (_, other) => other,
            };
            let Some(next) = &cursor else {
                break;
            };
            if empty_in_a_row >= MAX_EMPTY_PAGES {
                return Err(incomplete(
                    &url,
                    read,
                    format!(
                        "{MAX_EMPTY_PAGES} pages in a row held no record but pointed to another: \
                         the API's paging does not end"
                    ),
                ));
            }
            url = session.page_url(&config, Some(next))?;
        }
        if let Some(total) = stated.filter(|total| read < *total) {
            return Err(SourceError::Incomplete {
                url: url.to_string(),
                read,
                message: format!(
                    "the API stated {total} records (at {:?}) but sent {read} before its pages \
                     ended: {} records were lost on the way or are hidden from this account. \
                     Run again; if it persists, check the account's rights and the paging \
                     settings",
                    config.total.as_ref().map_or("", |p| p.value.as_str()),
                    total - read
                ),
            });
        }
        log::debug!("read {read} records from {}", config.url.value);
        Ok(read)
    }
}

impl Session {
    fn open(config: &RestApiSource) -> Result<Session, SourceError> {
        let credential = |what: &'static str| move |error| SourceError::Credential { what, error };
        let mut secrets = Vec::new();
        let auth = match &config.auth {
            RestAuth::None => Credential::None,
            RestAuth::Basic { user, password } => {
                let password = password.value.resolve().map_err(credential("password"))?;
                secrets.push(password.clone());
                Credential::Fixed(Authorization::basic(&user.value, &password))
            }
            RestAuth::Bearer { token } => {
                let token = token.value.resolve().map_err(credential("token"))?;
                secrets.push(token.clone());
                Credential::Fixed(Authorization::bearer(&token))
            }
            RestAuth::ApiKey { header, key } => {
                let key = key.value.resolve().map_err(credential("API key"))?;
                secrets.push(key.clone());
                let name = HeaderName::from_bytes(header.value.as_bytes()).map_err(|_| {
                    SourceError::Setup(format!("{:?} is not an HTTP header name", header.value))
                })?;
                Credential::Fixed(Authorization::in_header(name, &key))
            }
            RestAuth::OAuth(oauth) => {
                let client_secret = oauth
                    .client_secret
                    .value
                    .resolve()
                    .map_err(credential("client-secret"))?;
                secrets.push(client_secret.clone());
                Credential::OAuth(OAuthClient {
                    token_url: endpoint_url(&oauth.token_url.value)?,
                    client_id: oauth.client_id.value.clone(),
                    client_secret,
                    scope: oauth.scope.clone(),
                    token: None,
                })
            }
        };
        let pacer = match config.rate_limit {
            Some(per_second) => Some(Pacer::new(per_second).map_err(SourceError::Setup)?),
            None => None,
        };
        let client = RestClient::paced(&config.url.value, &config.http, pacer, &secrets)?;
        Ok(Session {
            client,
            endpoint: endpoint_url(&config.url.value)?,
            auth,
        })
    }

    /// The URL of a page: the endpoint with the `param`s and the paging style's parameters,
    /// or a next link as the API gave it.
    fn page_url(
        &self,
        config: &RestApiSource,
        cursor: Option<&Cursor>,
    ) -> Result<Url, SourceError> {
        if let Some(Cursor::Url(url)) = cursor {
            return Ok(url.clone());
        }
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in &config.params {
                query.append_pair(name, value);
            }
            let size = config.page_size.to_string();
            match (&config.paging, cursor) {
                (RestPaging::None, _) => {}
                (RestPaging::Offset { offset, limit }, at) => {
                    let at = match at {
                        Some(Cursor::Offset(at)) => *at,
                        _ => 0,
                    };
                    query.append_pair(offset, &at.to_string());
                    query.append_pair(limit, &size);
                }
                (
                    RestPaging::Page {
                        page,
                        size: name,
                        first,
                    },
                    at,
                ) => {
                    let at = match at {
                        Some(Cursor::Page(at)) => *at,
                        _ => *first,
                    };
                    query.append_pair(page, &at.to_string());
                    query.append_pair(name, &size);
                }
                (
                    RestPaging::Cursor {
                        param, size: name, ..
                    },
                    at,
                ) => {
                    if let Some(name) = name {
                        query.append_pair(name, &size);
                    }
                    if let Some(Cursor::Value(value)) = at {
                        query.append_pair(param, value);
                    }
                }
                (
                    RestPaging::NextLink { size: name, .. } | RestPaging::LinkHeader { size: name },
                    _,
                ) => {
                    if let Some(name) = name {
                        query.append_pair(name, &size);
                    }
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// One page; with OAuth, a 401 gets one new token and one retry.
    fn get(&mut self, url: &Url, read: u64) -> Result<Reply, SourceError> {
        let answer = match &self.auth {
            Credential::None => self.client.get_as(url, None),
            Credential::Fixed(auth) => self.client.get_as(url, Some(auth)),
            Credential::OAuth(_) => {
                let token = self.access_token(read, false)?;
                match self
                    .client
                    .get_as(url, Some(&Authorization::bearer(&token)))
                {
                    Err(Failure::Refused { status: 401, .. }) => {
                        log::info!("{url}: the access token was refused; getting a new one");
                        let token = self.access_token(read, true)?;
                        self.client
                            .get_as(url, Some(&Authorization::bearer(&token)))
                    }
                    other => other,
                }
            }
        };
        answer.map_err(|failure| match failure {
            Failure::Refused { status, detail } => SourceError::Refused {
                url: url.to_string(),
                status,
                message: refusal_hint(&self.auth, status, detail.as_deref()),
            },
            failure => SourceError::Incomplete {
                url: url.to_string(),
                read,
                message: failure.to_string(),
            },
        })
    }

    /// The cached token, or a new client credentials grant (always, when `renew`).
    fn access_token(&mut self, read: u64, renew: bool) -> Result<Secret, SourceError> {
        let Credential::OAuth(oauth) = &mut self.auth else {
            return Err(SourceError::Setup("OAuth is not configured".into()));
        };
        if let Some((token, renew_at)) = &oauth.token {
            if !renew && Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let mut form = vec![
            ("grant_type", FormValue::Plain("client_credentials".into())),
            ("client_id", FormValue::Plain(oauth.client_id.clone())),
            (
                "client_secret",
                FormValue::Secret(oauth.client_secret.clone()),
            ),
        ];
        if let Some(scope) = &oauth.scope {
            form.push(("scope", FormValue::Plain(scope.clone())));
        }
        let token_url = oauth.token_url.clone();
        let granted = self
            .client
            .post_form(&token_url, form)
            .and_then(|reply| token_of(&reply));
        let answer = granted.map_err(|failure| match failure {
            Failure::Refused { status, detail }
            | Failure::Status {
                status: status @ 400,
                detail,
                ..
            } => SourceError::Refused {
                url: token_url.to_string(),
                status,
                message: format!(
                    "{}the token endpoint refused the client credentials grant: check \
                     client-id, client-secret and scope",
                    detail
                        .map(|d| format!("the server said: {d}; "))
                        .unwrap_or_default()
                ),
            },
            other => SourceError::Incomplete {
                url: token_url.to_string(),
                read,
                message: format!("getting an OAuth access token: {other}"),
            },
        })?;
        if let Credential::OAuth(oauth) = &mut self.auth {
            oauth.token = Some((answer.access.clone(), answer.renew_at()));
        }
        Ok(answer.access)
    }
}

/// The access token and its lifetime (`expires_in`, an hour when not said).
fn token_of(reply: &Reply) -> Result<TokenAnswer, Failure> {
    TokenAnswer::parse(&reply.json()?, Duration::from_secs(3600))
        .map_err(|message| Failure::Invalid(message.into()))
}

fn refusal_hint(auth: &Credential, status: u16, detail: Option<&str>) -> String {
    let said = detail
        .map(|d| format!("the API said: {d}; "))
        .unwrap_or_default();
    let what = match auth {
        Credential::None => "the API wants credentials: add an `auth` block",
        Credential::Fixed(_) if status == 403 => {
            "the credentials were accepted but may not read this endpoint: give the account \
             read rights"
        }
        Credential::Fixed(_) => "check the credentials in the `auth` block",
        Credential::OAuth(_) if status == 403 => {
            "the token was accepted but may not read this endpoint: check the client's rights \
             and `scope`"
        }
        Credential::OAuth(_) => "a fresh access token was refused too: check the client's rights",
    };
    format!("{said}{what}")
}

/// The records array at `pointer`; each record an object.
fn records_at<'v>(body: &'v Value, pointer: &str) -> Result<Vec<&'v Map<String, Value>>, String> {
    let items = match body.pointer(pointer) {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "the answer holds {} at {pointer:?} (`records`), not an array of records",
                json_kind(other)
            ));
        }
        None => {
            return Err(format!(
                "the answer has nothing at {pointer:?} (`records`): fix the pointer to the \
                 array of records"
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_object().ok_or_else(|| {
                format!(
                    "record {i} at {pointer:?} is {}, not an object",
                    json_kind(item)
                )
            })
        })
        .collect()
}

/// The stated total: a whole number, or a string of one. `Ok(None)` when absent or `null`.
fn total_at(body: &Value, pointer: &str) -> Result<Option<u64>, String> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(format!(
            "the total at {pointer:?} (`total`) is {}, not a whole number",
            json_kind(other)
        )),
    }
}

fn text_at(record: &Map<String, Value>, pointer: &str) -> Option<String> {
    // A pointer into a record: the record as a value, without copying it.
    let (first, rest) = match pointer.strip_prefix('/')?.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (pointer.strip_prefix('/')?, None),
    };
    let key = first.replace("~1", "/").replace("~0", "~");
    let value = record.get(&key)?;
    match rest {
        Some(rest) => text_at_value(value.pointer(&format!("/{rest}"))),
        None => text_at_value(Some(value)),
    }
}

/// A scalar as text; `null`, an empty string, an object or an array as nothing.
fn text_at_value(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A record's fields as attributes: nested objects by dotted names, arrays as many values.
fn flatten(record: &mut SourceRecord, prefix: &str, object: &Map<String, Value>, depth: usize) {
    for (name, value) in object {
        let name = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        flatten_value(record, &name, value, depth);
    }
}

fn flatten_value(record: &mut SourceRecord, name: &str, value: &Value, depth: usize) {
    if depth >= MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(object) => flatten(record, name, object, depth + 1),
        Value::Array(items) => {
            for item in items {
                flatten_value(record, name, item, depth + 1);
            }
        }
        scalar => push_json(record, name, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_are_flattened_with_dots() {
        let row = json!({
            "id": 42,
            "name": {"given": "Ann", "family": "Lee"},
            "emails": [{"value": "ann@example.com", "type": "work"}, {"value": "a@example.org"}],
            "groups": ["staff", "vpn"],
            "manager": null,
            "active": true,
        });
        let mut record = SourceRecord::new("people/42");
        flatten(&mut record, "", row.as_object().expect("object"), 0);
        assert_eq!(record.values("id"), ["42"]);
        assert_eq!(record.values("name.given"), ["Ann"]);
        assert_eq!(record.values("Name.Family"), ["Lee"]);
        assert_eq!(
            record.values("emails.value"),
            ["ann@example.com", "a@example.org"]
        );
        assert_eq!(record.values("emails.type"), ["work"]);
        assert_eq!(record.values("groups"), ["staff", "vpn"]);
        assert_eq!(record.values("active"), ["true"]);
        assert!(!record.attrs.contains_key("manager"));
    }

    #[test]
    fn records_and_totals_are_found_by_pointer_or_refused() {
        let body = json!({"data": {"items": [{"id": 1}], "total": "7"}, "bad": [1], "n": 1.5});
        assert_eq!(records_at(&body, "/data/items").expect("records").len(), 1);
        assert_eq!(
            records_at(&body, "/data").expect_err("an object"),
            "the answer holds an object at \"/data\" (`records`), not an array of records"
        );
        assert!(
            records_at(&body, "/bad")
                .expect_err("a number")
                .contains("record 0 at \"/bad\" is a number, not an object")
        );
        assert!(
            records_at(&body, "/nothing")
                .expect_err("absent")
                .contains("nothing at \"/nothing\"")
        );
        assert_eq!(total_at(&body, "/data/total"), Ok(Some(7)));
        assert_eq!(total_at(&body, "/absent"), Ok(None));
        assert!(total_at(&body, "/n").is_err());
        let top = json!([{"id": "a"}]);
        assert_eq!(records_at(&top, "").expect("the whole body").len(), 1);
    }

    #[test]
    fn ids_are_read_by_pointer_inside_a_record() {
        let row = json!({"id": 7, "meta": {"uid": "u-1"}, "a/b": "slash"});
        let row = row.as_object().expect("object");
        assert_eq!(text_at(row, "/id").as_deref(), Some("7"));
        assert_eq!(text_at(row, "/meta/uid").as_deref(), Some("u-1"));
        assert_eq!(text_at(row, "/a~1b").as_deref(), Some("slash"));
        assert_eq!(text_at(row, "/meta"), None);
    }
}
