//! Cherwell Service Management as a source of users: the records of one business object
//! (such as "Customer - Internal") through the REST API's search.
//!
//! **Authentication** (Cherwell REST API, "Get Access Token"): `POST <api>/token`, form-encoded,
//! `grant_type=password` with the REST API client key (`client_id`), `username` and
//! `password`; the answer's `access_token` is sent as `Bearer` until shortly before its
//! `expires_in` (about 20 minutes), then a new grant is made. A 401 on a token that should
//! still be good (revoked, or the server restarted) gets one new token and one retry.
//!
//! **The search**: `POST <api>/api/V1/getsearchresults` with `{"busObId", "filters",
//! "includeAllFields": true, "pageNumber", "pageSize"}`; the answer holds
//! `businessObjects[]`, each with `busObRecId`, `busObPublicId` and `fields[]` of
//! `{name, value, ...}`, and `totalRows`, the rows the search matches. Page numbers start at
//! one. Cherwell may also answer 200 with `hasError: true` and an `errorMessage`: that is a
//! failed page.
//!
//! **Completeness**, as for the other REST sources: the read ends once the rows read reach
//! the largest `totalRows` any page stated; an answer without `totalRows`, an empty page
//! before it, an error answer, or anything that is not the documented JSON fails the read
//! (`SourceError::Incomplete`), and nothing is planned.
//!
//! **Values**: each field's `name` is the attribute (folded to lowercase like every source's),
//! its `value` the value (Cherwell sends every value as text; an empty text is an empty
//! value); `busObRecId` and `busObPublicId` are attributes too. A record's origin is
//! `<busObId>/<busObRecId>`.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{Map, Value, json};

use crate::config::CherwellSource;
use crate::http::{Authorization, FormValue, TokenAnswer};
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::rest::{Failure, Reply, RestClient};
use super::{Source, SourceError};

/// A Cherwell server, read through its REST API.
pub struct CherwellServer {
    config: CherwellSource,
    session: Option<Session>,
}

struct Session {
    client: RestClient,
    token_url: Url,
    search_url: Url,
    password: Secret,
    token: Option<(Secret, Instant)>,
}

impl CherwellServer {
    /// Keeps the settings; nothing is resolved or contacted until the first read.
    pub fn new(config: CherwellSource) -> Self {
        CherwellServer {
            config,
            session: None,
        }
    }
}

impl Source for CherwellServer {
    fn describe(&self) -> String {
        self.config.url.value.clone()
    }

    fn read_users(
        &mut self,
        _attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        if self.session.is_none() {
            self.session = Some(Session::open(&self.config)?);
        }
        let config = &self.config;
        let Some(session) = self.session.as_mut() else {
            return Err(SourceError::Setup(
                "the Cherwell session was not set up".into(),
            ));
        };
        let bus_ob_id = config.business_object.value.as_str();
        let filters: Vec<Value> = config
            .filters
            .iter()
            .map(|f| json!({"fieldId": f.field_id, "operator": f.operator, "value": f.value}))
            .collect();
        let mut read = 0u64;
        let mut stated: Option<u64> = None;
        let mut page = 1u64;
        loop {
            let body = json!({
                "busObId": bus_ob_id,
                "filters": filters,
                "includeAllFields": true,
                "pageNumber": page,
                "pageSize": config.page_size,
            });
            let at = format!("{} (page {page})", session.search_url);
            let reply = session.search(config, &body, read)?;
            let answer = reply
                .json()
                .map_err(|f| incomplete(&at, read, Failure::from(f).to_string()))?;
            if answer.get("hasError").and_then(Value::as_bool) == Some(true) {
                let said = answer
                    .get("errorMessage")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                return Err(incomplete(
                    &at,
                    read,
                    format!("the search failed: {}", session.client.scrub(said)),
                ));
            }
            let total = match answer.get("totalRows") {
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            }
            .ok_or_else(|| {
                incomplete(
                    &at,
                    read,
                    "a search answer without totalRows: the read cannot be checked".into(),
                )
            })?;
            stated = stated.max(Some(total));
            let Some(Value::Array(objects)) = answer.get("businessObjects") else {
                return Err(incomplete(
                    &at,
                    read,
                    "a search answer without a businessObjects list".into(),
                ));
            };
            for object in objects {
                let object = object.as_object().ok_or_else(|| {
                    incomplete(&at, read, "a business object that is not an object".into())
                })?;
                read += 1;
                sink(record_of(bus_ob_id, object, read).map_err(|m| incomplete(&at, read, m))?);
            }
            let largest = stated.unwrap_or(total);
            if read >= largest {
                break;
            }
            if objects.is_empty() {
                return Err(incomplete(
                    &at,
                    read,
                    format!(
                        "Cherwell counted {largest} rows for the search (totalRows) but sent {read} \
                     before an empty page: {} rows were lost or are hidden from {:?}. Run \
                     again; if it persists, check the account's security group rights on the \
                     business object",
                        largest - read,
                        config.username.value
                    ),
                ));
            }
            page += 1;
        }
        log::debug!("read {read} {bus_ob_id} records from {}", config.url.value);
        Ok(read)
    }
}

fn incomplete(url: &str, read: u64, message: String) -> SourceError {
    SourceError::Incomplete {
        url: url.to_string(),
        read,
        message,
    }
}

/// A business object as a record: its fields by name, its ids.
fn record_of(bus_ob_id: &str, object: &Map<String, Value>, n: u64) -> Result<SourceRecord, String> {
    let rec_id = object
        .get("busObRecId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let origin = if rec_id.is_empty() {
        format!("{bus_ob_id} (record {n}, no busObRecId)")
    } else {
        format!("{bus_ob_id}/{rec_id}")
    };
    let mut record = SourceRecord::new(origin);
    for id in ["busObRecId", "busObPublicId"] {
        if let Some(value) = object
            .get(id)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            record.push(id, value);
        }
    }
    let Some(Value::Array(fields)) = object.get("fields") else {
        return Err(format!("business object {n} has no fields list"));
    };
    for field in fields {
        let Some(name) = field
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return Err(format!("business object {n} has a field without a name"));
        };
        match field.get("value") {
            Some(Value::String(value)) => record.push(name, value.as_str()),
            Some(Value::Number(value)) => record.push(name, value.to_string()),
            Some(Value::Bool(value)) => record.push(name, value.to_string()),
            _ => {}
        }
    }
    Ok(record)
}

impl Session {
    fn open(config: &CherwellSource) -> Result<Session, SourceError> {
        let password =
            config
                .password
                .value
                .resolve()
                .map_err(|error| SourceError::Credential {
                    what: "Cherwell password",
                    error,
                })?;
        let client = RestClient::new(
            &config.url.value,
            &config.http,
            std::slice::from_ref(&password),
        )?;
        Ok(Session {
            token_url: client.url("token")?,
            search_url: client.url("api/V1/getsearchresults")?,
            client,
            password,
            token: None,
        })
    }

    /// One search page; a 401 gets one new token and one retry.
    fn search(
        &mut self,
        config: &CherwellSource,
        body: &Value,
        read: u64,
    ) -> Result<Reply, SourceError> {
        let token = self.access_token(config, read, false)?;
        let url = self.search_url.clone();
        let answer = match self
            .client
            .post_json_read(&url, &Authorization::bearer(&token), body)
        {
            Err(Failure::Refused { status: 401, .. }) => {
                log::info!("{url}: the access token was refused; getting a new one");
                let token = self.access_token(config, read, true)?;
                self.client
                    .post_json_read(&url, &Authorization::bearer(&token), body)
            }
            other => other,
        };
        answer.map_err(|failure| match failure {
            Failure::Refused { status, detail } => SourceError::Refused {
                url: url.to_string(),
                status,
                message: format!(
                    "{}a fresh token of {:?} was refused too: check the account's security \
                     group rights on the business object",
                    detail
                        .map(|d| format!("Cherwell said: {d}; "))
                        .unwrap_or_default(),
                    config.username.value
                ),
            },
            other => SourceError::Incomplete {
                url: url.to_string(),
                read,
                message: other.to_string(),
            },
        })
    }

    fn access_token(
        &mut self,
        config: &CherwellSource,
        read: u64,
        renew: bool,
    ) -> Result<Secret, SourceError> {
        if let Some((token, renew_at)) = &self.token {
            if !renew && Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let form = vec![
            ("grant_type", FormValue::Plain("password".into())),
            (
                "client_id",
                FormValue::Plain(config.client_id.value.clone()),
            ),
            ("username", FormValue::Plain(config.username.value.clone())),
            ("password", FormValue::Secret(self.password.clone())),
        ];
        let granted = self
            .client
            .post_form(&self.token_url, form)
            .and_then(|reply| token_of(&reply));
        let answer = granted.map_err(|failure| match failure {
            Failure::Refused { status, detail }
            | Failure::Status {
                status: status @ 400,
                detail,
                ..
            } => SourceError::Refused {
                url: self.token_url.to_string(),
                status,
                message: format!(
                    "{}the token endpoint refused the password grant: check client-id, username \
                     {:?} and the password",
                    detail
                        .map(|d| format!("Cherwell said: {d}; "))
                        .unwrap_or_default(),
                    config.username.value
                ),
            },
            other => SourceError::Incomplete {
                url: self.token_url.to_string(),
                read,
                message: format!("getting an access token: {other}"),
            },
        })?;
        self.token = Some((answer.access.clone(), answer.renew_at()));
        Ok(answer.access)
    }
}

/// The access token and its lifetime (`expires_in`; Cherwell's default 20 minutes when not
/// said).
fn token_of(reply: &Reply) -> Result<TokenAnswer, Failure> {
    TokenAnswer::parse(&reply.json()?, Duration::from_secs(1200))
        .map_err(|message| Failure::Invalid(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_objects_become_records_by_field_name() {
        let object = json!({
            "busObId": "9343f8800b8ca5cd0ed0574e5a9bfa5b",
            "busObPublicId": "ann.lee",
            "busObRecId": "94a1b2",
            "fields": [
                {"dirty": false, "displayName": "First Name", "fieldId": "f1", "name": "FirstName", "value": "Ann"},
                {"displayName": "Email", "fieldId": "f2", "name": "Email", "value": "ann@example.com"},
                {"displayName": "Phone", "fieldId": "f3", "name": "Phone", "value": ""},
                {"displayName": "Manager", "fieldId": "f4", "name": "Manager", "value": null},
            ],
        });
        let record = record_of("bo", object.as_object().expect("object"), 1).expect("record");
        assert_eq!(record.origin, "bo/94a1b2");
        assert_eq!(record.values("firstname"), ["Ann"]);
        assert_eq!(record.values("Email"), ["ann@example.com"]);
        assert_eq!(record.values("phone"), [""]);
        assert!(!record.attrs.contains_key("manager"));
        assert_eq!(record.values("busobpublicid"), ["ann.lee"]);
        let broken = json!({"busObRecId": "x", "fields": [{"value": "no name"}]});
        assert!(record_of("bo", broken.as_object().expect("object"), 2).is_err());
    }
}
