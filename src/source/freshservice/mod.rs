//! Freshservice as a source of users, through API v2 (`/api/v2/requesters`, `/api/v2/agents`).
//!
//! **Which users.** The lists named by `include` (requesters by default), in that order.
//! Records whose `active` is `false` (deactivated requesters, agents) are left out: a
//! deactivated person is not someone the target should have. Requesters carry their address
//! in `primary_email`, agents in `email`: a mapping that reads both lists names the one it
//! wants (or both lists are mapped by separate configs).
//!
//! **When the read ends.** Pages are asked for with `per_page` and `page` (from 1). The
//! `rel="next"` link of a `Link` header is the next page (only on the helpdesk's own origin).
//! Freshservice leaves the header out on the last page, so once an answer has carried a
//! `Link` header, an answer without a next link ends the list; an instance that never sends
//! one is read page after page until a page is empty. Any failure, at any page, is
//! `SourceError::Incomplete`: never a short successful read.
//!
//! **Authentication.** Basic auth with the API key as the user name and `X` as the password.
//!
//! **Values.** Top-level fields become attributes: strings as they are, numbers and booleans
//! as text, arrays of strings (`secondary_emails`) as several values, `null` not at all.
//! Objects are flattened one level, `custom_fields.cost_center`. The origin is
//! `requesters/<id>` or `agents/<id>`.
//!
//! **Groups.** `read_groups` reads every requester group (origin `requester_groups/<id>`) and
//! its members, as `MemberRef::Record`s `requesters/<id>`: the origin of the member's user
//! record. Members resolve to synced requesters; with `include "agents"` alone they are
//! ignored and counted.

use reqwest::Url;
use serde_json::{Map, Value};

use crate::config::{FreshserviceList, FreshserviceSource};
use crate::model::{MemberRef, SourceRecord};

use crate::http::Authorization;

use super::rest::{Failure, RestClient, push_json};
use super::{GroupQuery, GroupRecord, Source, SourceChange, SourceError, TrackedRead};

mod tracking;

/// The password Freshservice expects beside an API key.
const API_KEY_PASSWORD: &str = "X";

/// A Freshservice helpdesk, read through API v2.
pub struct FreshserviceHelpdesk {
    config: FreshserviceSource,
    session: Option<Session>,
}

struct Session {
    client: RestClient,
    /// The API key as the user, `X` as the password.
    auth: Authorization,
    page_size: u32,
}

impl FreshserviceHelpdesk {
    /// Keeps the settings; nothing is resolved or contacted until the first read.
    pub fn new(config: FreshserviceSource) -> Self {
        FreshserviceHelpdesk {
            config,
            session: None,
        }
    }

    fn session(&mut self) -> Result<&Session, SourceError> {
        if self.session.is_none() {
            let api_key =
                self.config
                    .api_key
                    .value
                    .resolve()
                    .map_err(|error| SourceError::Credential {
                        what: "Freshservice api-key",
                        error,
                    })?;
            let client = RestClient::new(
                &self.config.url.value,
                &self.config.http,
                std::slice::from_ref(&api_key),
            )?;
            self.session = Some(Session {
                client,
                auth: Authorization::key_as_user(&api_key, API_KEY_PASSWORD),
                page_size: self.config.page_size.clamp(1, 100),
            });
        }
        self.session
            .as_ref()
            .ok_or_else(|| SourceError::Setup("the Freshservice session was not set up".into()))
    }
}

impl Source for FreshserviceHelpdesk {
    fn describe(&self) -> String {
        self.config.url.value.clone()
    }

    /// `attrs` is not used: the API has no field selection, every field is read.
    fn read_users(
        &mut self,
        _attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let lists = self.config.include.clone();
        let session = self.session()?;
        let mut total = 0;
        for list in lists {
            let name = list.as_str();
            let mut inactive = 0u64;
            session.read_list(&format!("api/v2/{name}"), name, &mut |item| {
                if item.get("active") == Some(&Value::Bool(false)) {
                    inactive += 1;
                    return;
                }
                sink(record_from(list, item));
                total += 1;
            })?;
            if inactive > 0 {
                log::info!("left out {inactive} deactivated {name}");
            }
        }
        Ok(total)
    }

    /// Every requester group (origin `requester_groups/<id>`, its fields flattened like a
    /// requester's), with its members as `requesters/<id>` references: the origin of the
    /// member's user record. Nothing reaches `sink` until every list is read whole.
    fn read_groups(
        &mut self,
        _query: &GroupQuery,
        sink: &mut dyn FnMut(GroupRecord),
    ) -> Result<u64, SourceError> {
        let session = self.session()?;
        let mut groups: Vec<(String, GroupRecord)> = Vec::new();
        session.read_list("api/v2/requester_groups", "requester_groups", &mut |item| {
            let Some(id) = text(item, "id") else {
                log::warn!("requester_groups: a group without id is skipped");
                return;
            };
            let record = flatten(SourceRecord::new(format!("requester_groups/{id}")), item);
            groups.push((
                id,
                GroupRecord {
                    record,
                    members: Vec::new(),
                },
            ));
        })?;
        for (id, group) in &mut groups {
            let path = format!("api/v2/requester_groups/{id}/members");
            let members = &mut group.members;
            session.read_list(&path, "requesters", &mut |item| {
                if let Some(id) = text(item, "id") {
                    members.push(MemberRef::Record(format!(
                        "{}/{id}",
                        FreshserviceList::Requesters.as_str()
                    )));
                }
            })?;
        }
        let count = groups.len() as u64;
        for (_, group) in groups {
            sink(group);
        }
        Ok(count)
    }

    /// By `updated_at` (see `tracking`).
    fn tracks_changes(&self) -> bool {
        true
    }

    fn server_identity(&mut self) -> Result<String, SourceError> {
        Ok(self.tracked_identity())
    }

    fn check_cookie(&self, cookie: &str) -> Result<(), String> {
        tracking::Cookie::parse(cookie).map(|_| ())
    }

    /// `attrs` is not used: the API has no field selection, every field is read.
    fn read_tracked(
        &mut self,
        _attrs: &[String],
        since: Option<&str>,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        self.read_changes(since, sink)
    }
}

impl Session {
    /// Pages through one list (see the module doc for when it ends), handing each item under
    /// `key` to `on_item`. Returns the number of items.
    fn read_list(
        &self,
        path: &str,
        key: &str,
        on_item: &mut dyn FnMut(&Map<String, Value>),
    ) -> Result<u64, SourceError> {
        let mut page = 1u64;
        let mut url = self.page_url(path, page)?;
        let mut read = 0u64;
        let mut link_seen = false;
        loop {
            let incomplete = |url: &Url, read: u64, message: String| SourceError::Incomplete {
                url: url.to_string(),
                read,
                message,
            };
            let reply = match self.client.get(&url, &self.auth) {
                Ok(reply) => reply,
                Err(Failure::Refused { status, detail }) => {
                    return Err(SourceError::Refused {
                        url: url.to_string(),
                        status,
                        message: refusal_hint(status, detail.as_deref()),
                    });
                }
                Err(failure) => return Err(incomplete(&url, read, failure.to_string())),
            };
            let body = reply
                .json()
                .map_err(|f| incomplete(&url, read, Failure::from(f).to_string()))?;
            let Some(Value::Array(items)) = body.get(key) else {
                return Err(incomplete(
                    &url,
                    read,
                    format!("an answer without a `{key}` list"),
                ));
            };
            for item in items {
                let Some(item) = item.as_object() else {
                    return Err(incomplete(
                        &url,
                        read,
                        format!("an element of `{key}` is not an object"),
                    ));
                };
                on_item(item);
                read += 1;
            }
            link_seen |= reply.has_link_header();
            let next = match self
                .client
                .next_link(&reply)
                .map_err(|f| incomplete(&url, read, f.to_string()))?
            {
                Some(next) => Some(next),
                None if link_seen || items.is_empty() => None,
                None => {
                    page += 1;
                    Some(self.page_url(path, page)?)
                }
            };
            match next {
                Some(next) if next == url => {
                    return Err(incomplete(
                        &url,
                        read,
                        "the next-page link points to the page just read".to_string(),
                    ));
                }
                Some(next) => url = next,
                None => break,
            }
        }
        log::debug!("read {read} {key}");
        Ok(read)
    }

    fn page_url(&self, path: &str, page: u64) -> Result<Url, SourceError> {
        let mut url = self.client.url(path)?;
        url.query_pairs_mut()
            .append_pair("per_page", &self.page_size.to_string())
            .append_pair("page", &page.to_string());
        Ok(url)
    }
}

fn refusal_hint(status: u16, detail: Option<&str>) -> String {
    let said = detail
        .map(|d| format!("Freshservice said: {d}; "))
        .unwrap_or_default();
    if status == 403 {
        format!(
            "{said}the API key was accepted but its agent may not read this list: give the agent \
             a role that can view requesters and agents"
        )
    } else {
        format!(
            "{said}check api-key: Freshservice takes the API key as the user name and \"X\" as \
             the password"
        )
    }
}

/// A requester or agent as a record: top-level fields as attributes, objects one level deep.
fn record_from(list: FreshserviceList, item: &Map<String, Value>) -> SourceRecord {
    let origin = match text(item, "id") {
        Some(id) => format!("{}/{id}", list.as_str()),
        None => format!("{} (no id)", list.as_str()),
    };
    flatten(SourceRecord::new(origin), item)
}

/// Top-level fields as attributes, objects one level deep (`custom_fields.cost_center`).
fn flatten(mut record: SourceRecord, item: &Map<String, Value>) -> SourceRecord {
    for (name, value) in item {
        match value {
            Value::Object(fields) => {
                for (field, value) in fields {
                    push_json(&mut record, &format!("{name}.{field}"), value);
                }
            }
            value => push_json(&mut record, name, value),
        }
    }
    record
}

/// An id or name as text.
fn text(item: &Map<String, Value>, name: &str) -> Option<String> {
    match item.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requesters_are_flattened_into_records() {
        let item = serde_json::json!({
            "id": 21000418006u64,
            "first_name": "Andrea",
            "last_name": null,
            "primary_email": "andrea@example.com",
            "secondary_emails": ["a@example.org", "andrea@example.net"],
            "active": true,
            "department_ids": [],
            "custom_fields": {"cost_center": "42", "badge": 7, "nothing": null},
        });
        let record = record_from(
            FreshserviceList::Requesters,
            item.as_object().expect("object"),
        );
        assert_eq!(record.origin, "requesters/21000418006");
        assert_eq!(record.values("id"), ["21000418006"]);
        assert_eq!(record.values("first_name"), ["Andrea"]);
        assert!(!record.attrs.contains_key("last_name"));
        assert_eq!(
            record.values("secondary_emails"),
            ["a@example.org", "andrea@example.net"]
        );
        assert_eq!(record.values("active"), ["true"]);
        assert!(!record.attrs.contains_key("department_ids"));
        assert_eq!(record.values("custom_fields.cost_center"), ["42"]);
        assert_eq!(record.values("custom_fields.badge"), ["7"]);
        assert!(!record.attrs.contains_key("custom_fields.nothing"));
    }
}
