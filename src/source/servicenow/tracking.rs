//! Change tracking for ServiceNow by `sys_updated_on`: the cookie, the queries it adds, and
//! the delete signals an incremental read can honestly give.
//!
//! **The cookie** is the newest `sys_updated_on` a read saw (the Table API's internal value,
//! `YYYY-MM-DD HH:MM:SS` in UTC). The next read asks for `sys_updated_on>=` it, less
//! `OVERLAP`: `>=` because the field has one-second resolution (a row changed in the cookie's
//! own second after the read passed it would otherwise be lost), and the overlap because an
//! encoded query's date-time literal may be read in the integration account's time zone
//! (at most 14 hours from UTC) and a read that takes a while can be passed by a change it did
//! not see. Rows read again change nothing: the store replaces a record by its origin (an
//! idempotent upsert). Pages are ordered by `sys_id`, not by `sys_updated_on`: a row changed
//! while the read pages through would move to the end of an order by time and shift every
//! later row one offset back (one skipped); in `sys_id` order a row only ever joins the
//! selection, which can only read a row twice.
//!
//! **Deletes.** An incremental read first lists every row changed since the cookie
//! (`sys_id` and `sys_updated_on` only, whatever the configured `query`), then the rows that
//! also match the `query`, with the mapping's fields. A row that changed and no longer
//! matches (the default `active=true` and a user deactivated, or any other way out of the
//! query) is an explicit delete signal: the instance says that row changed, and that it is not
//! among the users now. The cookie comes from the first list only, so a row that leaves the
//! query between the two lists is listed again next time. A `sys_user` row deleted outright
//! leaves nothing to find by time: only a complete read sees it gone.
//!
//! **Identity.** The instance URL and the table: a cookie is the instance's own clock.

use std::collections::HashSet;

use chrono::{Duration, NaiveDateTime};
use serde_json::{Map, Value};

use super::{ServiceNowInstance, TableQuery, text};
use crate::model::SourceRecord;
use crate::source::rest::push_json;
use crate::source::{SourceChange, SourceError, TrackedRead};

/// The field every tracked read asks for.
pub(super) const UPDATED_ON: &str = "sys_updated_on";

/// How a cookie of this kind starts; what follows is a `sys_updated_on` value.
const PREFIX: &str = "servicenow-sys-updated-on:";

/// The Table API's internal date-time format (UTC).
const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// How far before the cookie an incremental read starts (see the module doc).
const OVERLAP_HOURS: i64 = 24;

/// The newest `sys_updated_on` a read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Cookie(NaiveDateTime);

impl Cookie {
    /// A cookie as stored; an error says why it cannot be one.
    pub(super) fn parse(text: &str) -> Result<Cookie, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            "the cookie was not written by a ServiceNow sys_updated_on read".to_string()
        })?;
        Cookie::from_field(rest).ok_or_else(|| {
            format!("the cookie's time {rest:?} is not a date-time like 2024-01-02 03:04:05")
        })
    }

    /// A `sys_updated_on` value, if it is one.
    fn from_field(value: &str) -> Option<Cookie> {
        NaiveDateTime::parse_from_str(value.trim(), FORMAT)
            .ok()
            .map(Cookie)
    }

    /// The encoded-query term of an incremental read: changed at or after the cookie, less
    /// the overlap.
    fn term(&self) -> String {
        let from = self.0 - Duration::hours(OVERLAP_HOURS);
        format!("{UPDATED_ON}>={}", from.format(FORMAT))
    }
}

impl std::fmt::Display for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}", self.0.format(FORMAT))
    }
}

/// `query` with `term` added to each of its `^NQ` clauses (`^NQ` ORs whole clauses, so a
/// term appended once would narrow only the last one); `term` alone for an empty query.
fn narrowed(query: &str, term: &str) -> String {
    let clauses: Vec<String> = query
        .split("^NQ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| format!("{c}^{term}"))
        .collect();
    if clauses.is_empty() {
        term.to_string()
    } else {
        clauses.join("^NQ")
    }
}

/// The newest `sys_updated_on` among rows.
#[derive(Debug, Default)]
struct Newest(Option<Cookie>);

impl Newest {
    fn see(&mut self, row: &Map<String, Value>) {
        let Some(value) = text(row, UPDATED_ON) else {
            return;
        };
        match Cookie::from_field(&value) {
            Some(c) if self.0.is_none_or(|n| c > n) => self.0 = Some(c),
            Some(_) => {}
            None => log::debug!("sys_updated_on {value:?} is not a date-time"),
        }
    }
}

/// The record of a `sys_user` row, as `read_users` makes it.
fn record_of(row: &Map<String, Value>, row_number: u64) -> SourceRecord {
    let origin = match text(row, "sys_id") {
        Some(sys_id) => format!("sys_user/{sys_id}"),
        None => format!("sys_user (row {row_number}, no sys_id)"),
    };
    let mut record = SourceRecord::new(origin);
    for (name, value) in row {
        push_json(&mut record, name, value);
    }
    record
}

impl ServiceNowInstance {
    /// The URL and the table (see the module doc).
    pub(super) fn tracked_identity(&self) -> String {
        format!("{} table=sys_user", self.config.url.value)
    }

    /// A tracked read (see the module doc): every row of `query` when `since` is `None`,
    /// otherwise the rows changed since the cookie, and the changed rows that left the query
    /// as delete signals.
    pub(super) fn read_changes(
        &mut self,
        attrs: &[String],
        since: Option<&str>,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        let since = since
            .map(Cookie::parse)
            .transpose()
            .map_err(SourceError::Unsupported)?;
        let query = self.config.query.value.clone();
        let mut fields = vec!["sys_id".to_string()];
        fields.extend(
            attrs
                .iter()
                .filter(|a| *a != "sys_id" && *a != UPDATED_ON)
                .cloned(),
        );
        fields.push(UPDATED_ON.to_string());
        let session = self.session()?;

        let Some(since) = since else {
            let mut newest = Newest::default();
            let mut row_number = 0u64;
            let records = session.read_table(
                &TableQuery {
                    table: "sys_user",
                    query: &query,
                    fields: &fields,
                },
                &mut |row| {
                    row_number += 1;
                    newest.see(row);
                    sink(SourceChange::Record(record_of(row, row_number)));
                },
            )?;
            return Ok(TrackedRead {
                records,
                deleted: 0,
                cookie: newest.0.map(|c| c.to_string()),
            });
        };

        // Every row changed since the cookie, in or out of the query; the cookie moves on
        // from these only.
        let term = since.term();
        let mut changed: Vec<String> = Vec::new();
        let mut newest = Newest::default();
        let id_fields = ["sys_id".to_string(), UPDATED_ON.to_string()];
        session.read_table(
            &TableQuery {
                table: "sys_user",
                query: &term,
                fields: &id_fields,
            },
            &mut |row| {
                newest.see(row);
                match text(row, "sys_id") {
                    Some(sys_id) => changed.push(sys_id),
                    None => log::warn!("sys_user: a changed row without sys_id is skipped"),
                }
            },
        )?;

        // The changed rows the query selects now.
        let mut matching: HashSet<String> = HashSet::new();
        let mut row_number = 0u64;
        let records = session.read_table(
            &TableQuery {
                table: "sys_user",
                query: &narrowed(&query, &term),
                fields: &fields,
            },
            &mut |row| {
                row_number += 1;
                if let Some(sys_id) = text(row, "sys_id") {
                    matching.insert(sys_id);
                }
                sink(SourceChange::Record(record_of(row, row_number)));
            },
        )?;

        let mut deleted = 0;
        for sys_id in changed.into_iter().filter(|id| !matching.contains(id)) {
            log::debug!("sys_user/{sys_id} changed and is no longer selected by the query");
            sink(SourceChange::Deleted {
                origin: format!("sys_user/{sys_id}"),
                id: None,
            });
            deleted += 1;
        }
        let cookie = newest.0.map_or(since, |n| n.max(since));
        Ok(TrackedRead {
            records,
            deleted,
            cookie: Some(cookie.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_reads_back_and_starts_a_day_early_at_or_after_the_second() {
        let cookie = Cookie::from_field("2024-03-02 10:20:30").expect("a date-time");
        let text = cookie.to_string();
        assert_eq!(text, "servicenow-sys-updated-on:2024-03-02 10:20:30");
        assert_eq!(Cookie::parse(&text), Ok(cookie));
        assert_eq!(cookie.term(), "sys_updated_on>=2024-03-01 10:20:30");
    }

    #[test]
    fn damaged_or_foreign_cookies_are_refused_with_a_reason() {
        for bad in [
            "",
            "2024-03-02 10:20:30",
            "servicenow-sys-updated-on:",
            "servicenow-sys-updated-on:2024-03-02",
            "servicenow-sys-updated-on:2024-13-02 10:20:30",
            "servicenow-sys-updated-on:2024-03-02 10:20:30^ORactive=false",
            "ldap-modify-timestamp:20240102030405Z",
        ] {
            assert!(Cookie::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_term_narrows_every_clause_of_the_query() {
        let term = "sys_updated_on>=2024-03-01 10:20:30";
        assert_eq!(narrowed("", term), term);
        assert_eq!(
            narrowed("active=true", term),
            "active=true^sys_updated_on>=2024-03-01 10:20:30"
        );
        assert_eq!(
            narrowed("active=true^ORvip=true^NQdepartment=IT", term),
            "active=true^ORvip=true^sys_updated_on>=2024-03-01 10:20:30\
             ^NQdepartment=IT^sys_updated_on>=2024-03-01 10:20:30"
        );
    }

    #[test]
    fn the_newest_time_wins_and_bad_values_are_ignored() {
        let mut newest = Newest::default();
        for value in [
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:07",
            "garbage",
            "2024-01-02 03:04:06",
        ] {
            let row = serde_json::json!({ "sys_updated_on": value });
            newest.see(row.as_object().expect("object"));
        }
        assert_eq!(
            newest.0.map(|c| c.to_string()).as_deref(),
            Some("servicenow-sys-updated-on:2024-01-02 03:04:07")
        );
    }
}
