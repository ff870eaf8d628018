//! Change tracking for LDAP by `modifyTimestamp`: the cookie, the filter it adds, and the
//! server identity a cookie is only good for.
//!
//! The cookie is the highest `modifyTimestamp` a read saw. The next read asks for
//! `modifyTimestamp>=` it: `>=`, not `>`, because the attribute has one-second resolution and
//! an entry changed in the same second as the newest one seen, after the read passed it,
//! would otherwise never be read. Reading that second's entries twice costs nothing: the
//! store replaces a record by its key (an idempotent upsert).
//!
//! Deletes leave no entry to find by timestamp: an incremental read by `modifyTimestamp` sees
//! none, and removes nothing (the next complete read does). A timestamp is the server's own
//! clock, so a cookie is good only on the server that wrote it: the identity is the URL,
//! the `entryUUID` (AD: `objectGUID`) of each base entry, and on Active Directory the DC's
//! `dsServiceName` and `invocationId` (which changes when a DC is restored).

use std::time::Duration;

use ldap3::{LdapConn, Scope, SearchEntry};

use crate::model::SourceRecord;

/// The attribute asked for on every tracked read (lowercase, as records carry names).
pub(super) const MODIFY_TIMESTAMP: &str = "modifytimestamp";

/// How a cookie of this kind starts; what follows is a GeneralizedTime.
const PREFIX: &str = "ldap-modify-timestamp:";

/// The newest `modifyTimestamp` a read saw: `YYYYMMDDHHMMSS` (UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Cookie {
    digits: String,
}

impl Cookie {
    /// A cookie as stored; an error says why it cannot be one.
    pub(super) fn parse(text: &str) -> Result<Cookie, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            "the cookie was not written by an LDAP modifyTimestamp read".to_string()
        })?;
        Cookie::from_generalized_time(rest)
            .ok_or_else(|| format!("the cookie's time {rest:?} is not a GeneralizedTime"))
    }

    /// `20240102030405Z` or AD's `20240102030405.0Z`: the first 14 digits, if the value is one.
    fn from_generalized_time(value: &str) -> Option<Cookie> {
        let digits = value.get(..14)?;
        let rest = &value[14..];
        let valid_rest = rest == "Z"
            || rest
                .strip_prefix('.')
                .and_then(|r| r.strip_suffix('Z'))
                .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
        (digits.bytes().all(|b| b.is_ascii_digit()) && valid_rest).then(|| Cookie {
            digits: digits.to_string(),
        })
    }

    /// `filter` narrowed to the entries changed at or after the cookie's second.
    pub(super) fn filter(&self, filter: &str) -> String {
        let filter = filter.trim();
        let filter = if filter.starts_with('(') {
            filter.to_string()
        } else {
            format!("({filter})")
        };
        format!("(&{filter}(modifyTimestamp>={}Z))", self.digits)
    }
}

impl std::fmt::Display for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}Z", self.digits)
    }
}

/// The newest `modifyTimestamp` among the records of a read.
#[derive(Debug, Default)]
pub(super) struct Newest(Option<Cookie>);

impl Newest {
    pub(super) fn see(&mut self, record: &SourceRecord) {
        let stamps = record.attrs.get(MODIFY_TIMESTAMP).into_iter().flatten();
        for stamp in stamps {
            match Cookie::from_generalized_time(stamp) {
                Some(c) if self.0.as_ref().is_none_or(|n| c > *n) => self.0 = Some(c),
                Some(_) => {}
                None => log::debug!(
                    "{}: modifyTimestamp {stamp:?} is not a GeneralizedTime",
                    record.origin
                ),
            }
        }
    }

    pub(super) fn cookie(self) -> Option<Cookie> {
        self.0
    }
}

/// Who answers at `url`: the URL, each base entry's `entryUUID` or `objectGUID`, and on
/// Active Directory the DC's `dsServiceName` and `invocationId`.
pub(super) fn identity(
    conn: &mut LdapConn,
    url: &str,
    bases: &[String],
    timeout: Duration,
) -> Result<String, String> {
    let mut parts = vec![url.to_string()];
    let root = base_entry(conn, "", &["dsServiceName"], timeout)?;
    if let Some(service) = root.as_ref().and_then(|e| first(e, "dsservicename")) {
        parts.push(format!("dsServiceName={service}"));
        let ntds = base_entry(conn, &service, &["invocationId"], timeout)?;
        if let Some(id) = ntds.as_ref().and_then(|e| first(e, "invocationid")) {
            parts.push(format!("invocationId={id}"));
        }
    }
    for base in bases {
        let entry = base_entry(conn, base, &["entryUUID", "objectGUID"], timeout)?
            .ok_or_else(|| format!("the base {base} returned no entry"))?;
        let id = first(&entry, "entryuuid")
            .or_else(|| first(&entry, "objectguid"))
            .unwrap_or_default();
        parts.push(format!("{base}={id}"));
    }
    Ok(parts.join(" "))
}

/// The entry at `dn` (base scope), or `None` when the server has none to show.
fn base_entry(
    conn: &mut LdapConn,
    dn: &str,
    attrs: &[&str],
    timeout: Duration,
) -> Result<Option<SearchEntry>, String> {
    conn.with_timeout(timeout);
    let result = conn
        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .map_err(|e| e.to_string())?;
    match result.success() {
        Ok((entries, _)) => Ok(entries
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)),
        // No such object: an identity part the server does not have.
        Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The first value of `name` (lowercase), text or bytes as hex, whichever ldap3 gave.
fn first(entry: &SearchEntry, name: &str) -> Option<String> {
    let text = entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned());
    text.or_else(|| {
        entry
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_the_newest_timestamp_seen_and_reads_back() {
        let mut newest = Newest::default();
        for stamp in [
            "20240102030405Z",
            "20240102030407Z",
            "20240102030406Z",
            "garbage",
        ] {
            let mut record = SourceRecord::new("uid=x");
            record
                .attrs
                .insert(MODIFY_TIMESTAMP.into(), vec![stamp.to_string()]);
            newest.see(&record);
        }
        let cookie = newest.cookie().expect("a cookie");
        assert_eq!(cookie.to_string(), "ldap-modify-timestamp:20240102030407Z");
        assert_eq!(Cookie::parse(&cookie.to_string()), Ok(cookie.clone()));
        assert_eq!(
            cookie.filter("(objectClass=inetOrgPerson)"),
            "(&(objectClass=inetOrgPerson)(modifyTimestamp>=20240102030407Z))",
            "the same second is read again: >=, not >"
        );
        assert_eq!(
            cookie.filter("objectClass=person"),
            "(&(objectClass=person)(modifyTimestamp>=20240102030407Z))"
        );
    }

    #[test]
    fn active_directory_times_with_a_fraction_are_timestamps_too() {
        let ad = Cookie::from_generalized_time("20240102030405.0Z").expect("AD time");
        assert_eq!(ad.to_string(), "ldap-modify-timestamp:20240102030405Z");
    }

    #[test]
    fn damaged_or_foreign_cookies_are_refused_with_a_reason() {
        for bad in [
            "",
            "20240102030405Z",
            "ldap-modify-timestamp:",
            "ldap-modify-timestamp:2024010203040Z",
            "ldap-modify-timestamp:20240102030405",
            "ldap-modify-timestamp:2024010203040xZ",
            "ldap-modify-timestamp:20240102030405Z)(uid=*",
            "servicenow:2024-01-02 03:04:05",
        ] {
            assert!(Cookie::parse(bad).is_err(), "{bad:?}");
        }
    }
}
