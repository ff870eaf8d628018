//! Change tracking for LDAP: the cookie, the filter it adds, the server identity a cookie is
//! only good for, and on Active Directory the deleted objects a read reports.
//!
//! Two kinds of cookie, by what the server offers:
//!
//! - **`modifyTimestamp`** (OpenLDAP and any other LDAP server): the highest `modifyTimestamp`
//!   a read saw. The next read asks for `modifyTimestamp>=` it: `>=`, not `>`, because the
//!   attribute has one-second resolution and an entry changed in the same second as the
//!   newest one seen, after the read passed it, would otherwise never be read. Reading that
//!   second's entries twice costs nothing: the store replaces a record by its key (an
//!   idempotent upsert). Deletes leave no entry to find by timestamp: an incremental read by
//!   `modifyTimestamp` sees none, and removes nothing (the next complete read does).
//! - **`uSNChanged`** (Active Directory, recognised by its rootDSE: `dsServiceName` and
//!   `highestCommittedUSN`): the DC's `highestCommittedUSN` read *before* the read starts,
//!   with the DC it belongs to (`dsServiceName`, `invocationId`). The next read asks for
//!   `uSNChanged>=` it plus one. Update sequence numbers are per DC and per database
//!   (`invocationId` changes when a DC is restored), so a cookie from another DC or another
//!   invocation is refused and the read must be complete; the identity check refuses it
//!   first. A change committed while the read runs has a higher USN than the cookie, so it
//!   is read (again) next time. Deleted objects are tombstones under `CN=Deleted Objects`
//!   of the domain, kept `tombstoneLifetime` (180 days by default) and visible with the
//!   Show Deleted control: each `isDeleted=TRUE` user tombstone with `uSNChanged` past the
//!   cookie becomes a delete signal for its former DN (its RDN before the `\0ADEL:` mark,
//!   under `lastKnownParent`). A cookie older than the tombstone lifetime can miss deletes:
//!   run a complete read more often than that.
//!
//! A timestamp is the server's own clock, and a USN its own counter, so a cookie is good
//! only on the server that wrote it: the identity is the URL, the `entryUUID` (AD:
//! `objectGUID`) of each base entry, and on Active Directory the DC's `dsServiceName` and
//! `invocationId`.

use std::time::Duration;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{LdapConn, Scope, SearchEntry};

use crate::model::SourceRecord;

/// The attribute asked for on every tracked read (lowercase, as records carry names).
pub(super) const MODIFY_TIMESTAMP: &str = "modifytimestamp";

/// How a `modifyTimestamp` cookie starts; what follows is a GeneralizedTime.
const PREFIX: &str = "ldap-modify-timestamp:";

/// How an Active Directory `uSNChanged` cookie starts; what follows is
/// `USN:invocationId:dsServiceName` (the DN last, since a DN may hold any character).
const USN_PREFIX: &str = "ldap-ad-usn:";

/// The Show Deleted control (LDAP_SERVER_SHOW_DELETED_OID): tombstones become visible.
const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";

/// Where an incremental read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cookie {
    /// The newest `modifyTimestamp` a read saw: `YYYYMMDDHHMMSS` (UTC).
    Timestamp(String),
    /// An AD DC's position when a read started.
    Usn(UsnPosition),
}

/// A domain controller's `highestCommittedUSN`, and which DC and database it counts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UsnPosition {
    pub(super) usn: u64,
    pub(super) invocation_id: String,
    pub(super) service: String,
}

impl Cookie {
    /// A cookie as stored; an error says why it cannot be one.
    pub(super) fn parse(text: &str) -> Result<Cookie, String> {
        if let Some(rest) = text.strip_prefix(USN_PREFIX) {
            let mut parts = rest.splitn(3, ':');
            let (usn, invocation_id, service) = (parts.next(), parts.next(), parts.next());
            let usn = usn
                .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|u| u.parse::<u64>().ok())
                .ok_or_else(|| format!("the cookie's USN in {rest:?} is not a number"))?;
            let invocation_id = invocation_id
                .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| format!("the cookie {rest:?} has no invocationId"))?;
            let service = service
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the cookie {rest:?} names no DC (dsServiceName)"))?;
            return Ok(Cookie::Usn(UsnPosition {
                usn,
                invocation_id: invocation_id.to_string(),
                service: service.to_string(),
            }));
        }
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            "the cookie was not written by an LDAP modifyTimestamp or AD uSNChanged read"
                .to_string()
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
        (digits.bytes().all(|b| b.is_ascii_digit()) && valid_rest)
            .then(|| Cookie::Timestamp(digits.to_string()))
    }

    /// `filter` narrowed to the entries changed at or after the cookie's second, or (AD)
    /// after the cookie's USN.
    pub(super) fn filter(&self, filter: &str) -> String {
        let filter = filter.trim();
        let filter = if filter.starts_with('(') {
            filter.to_string()
        } else {
            format!("({filter})")
        };
        match self {
            Cookie::Timestamp(digits) => format!("(&{filter}(modifyTimestamp>={digits}Z))"),
            Cookie::Usn(p) => format!("(&{filter}(uSNChanged>={}))", p.usn.saturating_add(1)),
        }
    }
}

impl std::fmt::Display for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cookie::Timestamp(digits) => write!(f, "{PREFIX}{digits}Z"),
            Cookie::Usn(p) => write!(f, "{USN_PREFIX}{}:{}:{}", p.usn, p.invocation_id, p.service),
        }
    }
}

/// What an Active Directory DC's rootDSE says at the start of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AdRoot {
    pub(super) position: UsnPosition,
    /// `defaultNamingContext`: the domain whose `CN=Deleted Objects` holds its tombstones.
    pub(super) domain: Option<String>,
}

/// The DC's position, if the server is Active Directory (its rootDSE has `dsServiceName`
/// and `highestCommittedUSN`, and its NTDS Settings object an `invocationId`); `None` for
/// any other server.
pub(super) fn ad_root(conn: &mut LdapConn, timeout: Duration) -> Result<Option<AdRoot>, String> {
    let root = base_entry(
        conn,
        "",
        &[
            "dsServiceName",
            "highestCommittedUSN",
            "defaultNamingContext",
        ],
        timeout,
    )?;
    let Some(root) = root else { return Ok(None) };
    let (Some(service), Some(usn)) = (
        first(&root, "dsservicename"),
        first(&root, "highestcommittedusn"),
    ) else {
        return Ok(None);
    };
    let usn = usn
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("the rootDSE's highestCommittedUSN {usn:?} is not a number"))?;
    let ntds = base_entry(conn, &service, &["invocationId"], timeout)?;
    let Some(invocation_id) = ntds.as_ref().and_then(|e| first_hex(e, "invocationid")) else {
        return Ok(None);
    };
    Ok(Some(AdRoot {
        position: UsnPosition {
            usn,
            invocation_id,
            service,
        },
        domain: first(&root, "defaultnamingcontext"),
    }))
}

/// The attribute that names an AD object for good, whatever its DN.
pub(super) const OBJECT_GUID: &str = "objectguid";

/// The former DNs of the user objects deleted from `domain` after `since`, each with its
/// `objectGUID` (rendered as the main read renders it, lowercase), as read from
/// the tombstones in its `CN=Deleted Objects` with the Show Deleted control, kept only
/// where the former parent is under one of `bases`. Paged like the main search (pages of
/// `page_size`): an AD DC answers at most MaxPageSize (1000) entries to a search without
/// paging, and a day's deletions in a large domain can be more.
pub(super) fn deleted_since(
    conn: &mut LdapConn,
    domain: &str,
    since: &UsnPosition,
    bases: &[&str],
    timeout: Duration,
    page_size: u32,
) -> Result<Vec<(String, Option<String>)>, String> {
    let container = format!("CN=Deleted Objects,{domain}");
    let filter = format!(
        "(&(isDeleted=TRUE)(objectClass=user)(uSNChanged>={}))",
        since.usn.saturating_add(1)
    );
    conn.with_timeout(timeout);
    // The paging adapter keeps the controls set here on every page it asks for.
    conn.with_controls(RawControl {
        ctype: SHOW_DELETED_OID.to_string(),
        crit: true,
        val: None,
    });
    let page_size = i32::try_from(page_size.max(1)).unwrap_or(i32::MAX);
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(PagedResults::new(page_size))];
    let mut stream = conn
        .streaming_search_with(
            adapters,
            &container,
            Scope::OneLevel,
            &filter,
            vec!["lastKnownParent", "objectGUID"],
        )
        .map_err(|e| e.to_string())?;
    let mut origins = Vec::new();
    loop {
        let entry = match stream.next() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => return Err(format!("reading {container}: {e}")),
        };
        if entry.is_ref() || entry.is_intermediate() {
            continue;
        }
        let entry = SearchEntry::construct(entry);
        let parent = first(&entry, "lastknownparent");
        // Rendered as the main read renders a record's (`record_from_entry`).
        let guid = first_bytes(&entry, OBJECT_GUID)
            .map(|bytes| super::render_binary(OBJECT_GUID, bytes).to_lowercase());
        match parent.and_then(|p| former_dn(&entry.dn, &p)) {
            Some(dn) if bases.iter().any(|b| under(&dn, b)) => origins.push((dn, guid)),
            Some(_) => {}
            None => log::debug!("tombstone {} names no former place", entry.dn),
        }
    }
    // Every page must have ended well: a failed page is deletes not seen.
    stream
        .result()
        .success()
        .map_err(|e| format!("reading {container}: {e}"))?;
    Ok(origins)
}

/// The DN a tombstone had: its RDN up to AD's `\0ADEL:` mark, under `parent`.
fn former_dn(tombstone: &str, parent: &str) -> Option<String> {
    let rdn = tombstone.split_once(",CN=Deleted Objects,")?.0;
    let rdn = rdn.split_once("\\0ADEL:").map_or(rdn, |(name, _)| name);
    let rdn = rdn.split_once('\n').map_or(rdn, |(name, _)| name);
    (!rdn.is_empty()).then(|| format!("{rdn},{parent}"))
}

/// Whether `dn` is `base` or below it (DNs compared without regard to case).
fn under(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn.to_ascii_lowercase(), base.to_ascii_lowercase());
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// The newest `modifyTimestamp` among the records of a read.
#[derive(Debug, Default)]
pub(super) struct Newest(Option<String>);

impl Newest {
    pub(super) fn see(&mut self, record: &SourceRecord) {
        let stamps = record.attrs.get(MODIFY_TIMESTAMP).into_iter().flatten();
        for stamp in stamps {
            match Cookie::from_generalized_time(stamp) {
                Some(Cookie::Timestamp(c)) if self.0.as_ref().is_none_or(|n| c > *n) => {
                    self.0 = Some(c)
                }
                Some(_) => {}
                None => log::debug!(
                    "{}: modifyTimestamp {stamp:?} is not a GeneralizedTime",
                    record.origin
                ),
            }
        }
    }

    pub(super) fn cookie(self) -> Option<Cookie> {
        self.0.map(Cookie::Timestamp)
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

/// The first value of `name` as lowercase hex of its bytes (`first_bytes`).
fn first_hex(entry: &SearchEntry, name: &str) -> Option<String> {
    first_bytes(entry, name).map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The bytes of the first value of `name`, however ldap3 gave it: 16 random bytes (a GUID)
/// are sometimes valid UTF-8, and then arrive as text.
fn first_bytes<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e [u8]> {
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(Vec::as_slice)
        .or_else(|| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first())
                .map(String::as_bytes)
        })
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

    #[test]
    fn an_ad_cookie_holds_the_dc_and_reads_the_next_usn_on() {
        let text = "ldap-ad-usn:4002:a1b2c3:CN=NTDS Settings,CN=DC1,CN=Servers,DC=x";
        let cookie = Cookie::parse(text).expect("an AD cookie");
        assert_eq!(cookie.to_string(), text);
        let Cookie::Usn(p) = &cookie else {
            panic!("not a USN cookie")
        };
        assert_eq!((p.usn, p.invocation_id.as_str()), (4002, "a1b2c3"));
        assert_eq!(p.service, "CN=NTDS Settings,CN=DC1,CN=Servers,DC=x");
        assert_eq!(
            cookie.filter("(objectClass=user)"),
            "(&(objectClass=user)(uSNChanged>=4003))",
            "the cookie's own USN was read already"
        );
        for bad in [
            "ldap-ad-usn:",
            "ldap-ad-usn:12",
            "ldap-ad-usn:x:ab:CN=a",
            "ldap-ad-usn:12:zz:CN=a",
            "ldap-ad-usn:12:ab:",
            "ldap-ad-usn:-1:ab:CN=a",
        ] {
            assert!(Cookie::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_tombstone_names_the_dn_it_had() {
        assert_eq!(
            former_dn(
                "CN=Carol White\\0ADEL:66fa2874-6c7f-49b7-bf72-155e528a4a17,CN=Deleted Objects,DC=samba,DC=test",
                "CN=Users,DC=samba,DC=test"
            )
            .as_deref(),
            Some("CN=Carol White,CN=Users,DC=samba,DC=test")
        );
        assert_eq!(former_dn("CN=x,DC=samba,DC=test", "CN=Users"), None);
        assert!(under("CN=a,CN=Users,DC=X", "cn=users,dc=x"));
        assert!(!under("CN=a,CN=Userz,DC=X", "cn=users,dc=x"));
    }
}
