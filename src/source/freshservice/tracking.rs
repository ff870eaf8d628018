//! Change tracking for Freshservice by `updated_at`: the cookie, the `updated_since` filter
//! of the requester and agent lists, and the delete signals an incremental read can give.
//!
//! **The cookie** is the newest `updated_at` a read saw, in UTC. The next read asks each list
//! for `updated_since` one second before it: the field has one-second resolution, and whether
//! the filter means "after" or "at or after", a person changed in the cookie's own second
//! after the read passed them is read again rather than lost. Reading them again changes
//! nothing: the store replaces a record by its origin (an idempotent upsert). An instance that
//! ignored the filter would hand over every record: more work, never a wrong plan.
//!
//! **Deletes.** A changed person whose `active` is `false` (deactivated) is an explicit delete
//! signal, as a complete read leaves deactivated people out. A person deleted outright (or a
//! deactivation the filtered list does not show) leaves nothing to find by time: only a
//! complete read sees them gone.
//!
//! **Identity.** The helpdesk URL: a cookie is the helpdesk's own clock.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::{FreshserviceHelpdesk, record_from, text};
use crate::source::{SourceChange, SourceError, TrackedRead};

/// How a cookie of this kind starts; what follows is an RFC 3339 time in UTC.
const PREFIX: &str = "freshservice-updated-at:";

/// The newest `updated_at` a read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Cookie(DateTime<Utc>);

impl Cookie {
    /// A cookie as stored; an error says why it cannot be one.
    pub(super) fn parse(text: &str) -> Result<Cookie, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            "the cookie was not written by a Freshservice updated_at read".to_string()
        })?;
        Cookie::from_field(rest)
            .ok_or_else(|| format!("the cookie's time {rest:?} is not an RFC 3339 time"))
    }

    /// An `updated_at` value (`2024-01-02T03:04:05Z`, or with an offset), if it is one.
    fn from_field(value: &str) -> Option<Cookie> {
        DateTime::parse_from_rfc3339(value.trim())
            .ok()
            .map(|t| Cookie(t.with_timezone(&Utc)))
    }

    /// The `updated_since` value of an incremental read (see the module doc).
    fn updated_since(&self) -> String {
        (self.0 - Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl std::fmt::Display for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}",
            self.0.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// The newest `updated_at` among items.
#[derive(Debug, Default)]
struct Newest(Option<Cookie>);

impl Newest {
    fn see(&mut self, item: &Map<String, Value>) {
        let Some(value) = item.get("updated_at").and_then(Value::as_str) else {
            return;
        };
        match Cookie::from_field(value) {
            Some(c) if self.0.is_none_or(|n| c > n) => self.0 = Some(c),
            Some(_) => {}
            None => log::debug!("updated_at {value:?} is not an RFC 3339 time"),
        }
    }
}

impl FreshserviceHelpdesk {
    /// The helpdesk URL (see the module doc).
    pub(super) fn tracked_identity(&self) -> String {
        self.config.url.value.clone()
    }

    /// A tracked read (see the module doc): every active person of the `include` lists when
    /// `since` is `None`, otherwise those changed since the cookie, the deactivated ones among
    /// them as delete signals.
    pub(super) fn read_changes(
        &mut self,
        since: Option<&str>,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        let since = since
            .map(Cookie::parse)
            .transpose()
            .map_err(SourceError::Unsupported)?;
        let lists = self.config.include.clone();
        let session = self.session()?;
        let mut newest = Newest::default();
        let (mut records, mut deleted) = (0, 0);
        for list in lists {
            let name = list.as_str();
            let path = match &since {
                Some(cookie) => format!("api/v2/{name}?updated_since={}", cookie.updated_since()),
                None => format!("api/v2/{name}"),
            };
            let mut inactive = 0u64;
            session.read_list(&path, name, &mut |item| {
                newest.see(item);
                if item.get("active") != Some(&Value::Bool(false)) {
                    sink(SourceChange::Record(record_from(list, item)));
                    records += 1;
                } else if since.is_some() {
                    match text(item, "id") {
                        Some(id) => {
                            sink(SourceChange::Deleted {
                                origin: format!("{name}/{id}"),
                                id: None,
                            });
                            deleted += 1;
                        }
                        None => log::warn!("{name}: a deactivated person without id is skipped"),
                    }
                } else {
                    inactive += 1;
                }
            })?;
            if inactive > 0 {
                log::info!("left out {inactive} deactivated {name}");
            }
        }
        let cookie = match (newest.0, since) {
            (Some(n), Some(s)) => Some(n.max(s)),
            (n, s) => n.or(s),
        };
        Ok(TrackedRead {
            records,
            deleted,
            cookie: cookie.map(|c| c.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_reads_back_in_utc_and_asks_from_the_second_before() {
        let cookie = Cookie::from_field("2024-03-02T15:50:30+05:30").expect("a time");
        let text = cookie.to_string();
        assert_eq!(text, "freshservice-updated-at:2024-03-02T10:20:30Z");
        assert_eq!(Cookie::parse(&text), Ok(cookie));
        assert_eq!(cookie.updated_since(), "2024-03-02T10:20:29Z");
    }

    #[test]
    fn damaged_or_foreign_cookies_are_refused_with_a_reason() {
        for bad in [
            "",
            "2024-03-02T10:20:30Z",
            "freshservice-updated-at:",
            "freshservice-updated-at:2024-03-02",
            "freshservice-updated-at:2024-03-02T10:20:30Z&page=9",
            "servicenow-sys-updated-on:2024-03-02 10:20:30",
        ] {
            assert!(Cookie::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_newest_time_wins_and_bad_values_are_ignored() {
        let mut newest = Newest::default();
        for value in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:07Z",
            "garbage",
            "2024-01-02T03:04:06Z",
        ] {
            let item = serde_json::json!({ "updated_at": value });
            newest.see(item.as_object().expect("object"));
        }
        assert_eq!(
            newest.0.map(|c| c.to_string()).as_deref(),
            Some("freshservice-updated-at:2024-01-02T03:04:07Z")
        );
    }
}
