//! The LDAP tracked read by RFC 4533 content sync (slapd's `syncprov` overlay), used when
//! the root DSE lists the Sync Request control and every base answers it with a cookie;
//! otherwise the read tracks `modifyTimestamp` (`tracking`).
//!
//! A complete read first takes one cookie per base DN (a refreshOnly, base-scope search of
//! the base entry), then reads everything as usual, paged: what changes during the read is
//! read again next time, which changes nothing. Every record carries its `entryUUID` as its
//! source id, which the store keeps with the DN, because a delete arrives as an entryUUID only.
//!
//! An incremental read sends each base's cookie in a refreshOnly Sync Request (reloadHint
//! false), **without paging**: slapd answers a sync request with the paged-results control by
//! ending the refresh after the first page (tried with slapd 2.5/2.6), so paging would lose
//! entries. Adds and modifies are records; the explicit deletes (`Refresh::finish`) are delete
//! signals. A present phase, `e-syncRefreshRequired` (4096), a cookie the server drops or
//! no Sync Done at all all end in `SourceError::NeedsCompleteRead`: nothing is ever removed
//! for being absent. An entry that changed so that it no longer matches the filter is not
//! reported by a refreshOnly search: it stays until the next complete read.

use ldap3::asn1::PL;
use ldap3::controls::{RawControl, RefreshMode, SyncRequest};
use ldap3::{LdapConn, Scope, SearchEntry};

use super::content_sync::{
    EntryState, Refresh, RefreshOutcome, SYNC_DONE_OID, SYNC_INFO_OID, SYNC_REQUEST_OID,
    SYNC_STATE_OID, SyncDone, SyncInfo, SyncState,
};
use super::{LdapDirectory, Server};
use crate::model::SourceRecord;
use crate::source::{SourceChange, SourceError};

/// How a cookie of this kind starts.
const PREFIX: &str = "ldap-content-sync:";
/// The attribute every record of a content-sync read carries (lowercase).
pub(super) const ENTRY_UUID: &str = "entryuuid";
/// The result code of `e-syncRefreshRequired` (RFC 4533 §3.4).
const REFRESH_REQUIRED: u32 = 4096;

/// One server cookie per base DN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyncCookie {
    pub bases: Vec<(String, Vec<u8>)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

impl SyncCookie {
    pub(super) fn is_one(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// A cookie as stored: `ldap-content-sync:` then `hex(base)=hex(cookie)` per base, `,`
    /// between. Each server cookie must name a CSN (slapd takes a cookie it cannot read for
    /// none at all, and would answer with everything and no deletes).
    pub(super) fn parse(text: &str) -> Result<SyncCookie, String> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or("the cookie was not written by an LDAP content-sync read")?;
        let bases = rest
            .split(',')
            .map(|part| {
                let (base, cookie) = part
                    .split_once('=')
                    .ok_or("a part of the cookie has no `=`")?;
                let base = unhex(base)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or("a base DN in the cookie is not hex of UTF-8")?;
                let cookie = unhex(cookie).ok_or("a server cookie is not hex")?;
                let names_csn = String::from_utf8_lossy(&cookie).contains("csn=");
                if !names_csn {
                    return Err(format!("the server cookie for {base} names no CSN"));
                }
                Ok((base, cookie))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SyncCookie { bases })
    }

    fn for_base(&self, base: &str) -> Option<&[u8]> {
        self.bases
            .iter()
            .find(|(b, _)| b == base)
            .map(|(_, c)| c.as_slice())
    }
}

impl std::fmt::Display for SyncCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .bases
            .iter()
            .map(|(base, cookie)| format!("{}={}", hex(base.as_bytes()), hex(cookie)))
            .collect();
        write!(f, "{PREFIX}{}", parts.join(","))
    }
}

fn sync_request(cookie: Option<Vec<u8>>) -> RawControl {
    RawControl::from(SyncRequest {
        mode: RefreshMode::RefreshOnly,
        cookie,
        reload_hint: false,
    })
}

/// The `entryUUID` of a record, as its source id.
pub(super) fn mark(record: &mut SourceRecord) {
    record.source_id = record
        .attrs
        .get(ENTRY_UUID)
        .and_then(|v| v.first())
        .map(|u| u.to_lowercase());
}

impl LdapDirectory {
    /// Whether the root DSE lists the Sync Request control.
    pub(super) fn offers_content_sync(&self, conn: &mut LdapConn) -> Result<bool, String> {
        conn.with_timeout(self.timeout());
        let result = conn
            .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
            .map_err(|e| self.describe_transport_error(&e))?;
        let (entries, _) = result
            .success()
            .map_err(|e| self.describe_transport_error(&e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .any(|e| {
                e.attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("supportedcontrol"))
                    .flat_map(|(_, v)| v)
                    .any(|oid| oid == SYNC_REQUEST_OID)
            }))
    }

    /// One cookie per base, taken before a complete read; `None` when a base does not
    /// answer with one (the overlay is not on its database).
    pub(super) fn take_cookies(
        &self,
        conn: &mut LdapConn,
        bases: &[&str],
    ) -> Result<Option<SyncCookie>, String> {
        let mut out = Vec::new();
        for base in bases {
            conn.with_timeout(self.timeout());
            conn.with_controls(sync_request(None));
            let result = conn
                .search(base, Scope::Base, "(objectClass=*)", vec!["1.1"])
                .map_err(|e| self.describe_transport_error(&e))?;
            let (_, result) = result
                .success()
                .map_err(|e| self.describe_transport_error(&e))?;
            let done = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == SYNC_DONE_OID)
                .and_then(|c| c.1.val.as_deref())
                .map(SyncDone::parse)
                .transpose()?;
            match done.and_then(|d| d.cookie).filter(|c| !c.is_empty()) {
                Some(cookie) => out.push((base.to_string(), cookie)),
                None => {
                    log::info!("{base} answers no content-sync cookie: tracking modifyTimestamp");
                    return Ok(None);
                }
            }
        }
        Ok(Some(SyncCookie { bases: out }))
    }

    /// The changes since `since` under every base, handed to `sink`; the cookie the next
    /// read starts from.
    pub(super) fn read_changes(
        &self,
        conn: &mut LdapConn,
        server: &Server,
        bases: &[&str],
        attrs: &[String],
        since: &SyncCookie,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<(u64, u64, SyncCookie), SourceError> {
        let (mut records, mut deletes, mut next) = (0, 0, Vec::new());
        for base in bases {
            let failed = |read: u64, message: String| SourceError::Search {
                url: server.url.clone(),
                base: base.to_string(),
                read,
                message,
            };
            let cookie = since.for_base(base).ok_or_else(|| {
                SourceError::NeedsCompleteRead(format!("the cookie has none for the base {base}"))
            })?;
            conn.with_timeout(self.timeout());
            conn.with_controls(sync_request(Some(cookie.to_vec())));
            let mut stream = conn
                .streaming_search(
                    base,
                    Scope::Subtree,
                    &self.config.filter.value,
                    attrs.to_vec(),
                )
                .map_err(|e| failed(records, self.describe_transport_error(&e)))?;
            let mut refresh = Refresh::default();
            loop {
                match stream.next() {
                    Ok(Some(entry)) if entry.is_intermediate() => {
                        if let Some(value) = intermediate_value(&entry.0, SYNC_INFO_OID) {
                            let info = SyncInfo::parse(&value).map_err(|m| failed(records, m))?;
                            refresh.info(info);
                        }
                    }
                    Ok(Some(entry)) if entry.is_ref() => {
                        log::debug!("a referral under {base} in a content sync: not followed")
                    }
                    Ok(Some(entry)) => {
                        let state = entry
                            .1
                            .iter()
                            .find(|c| c.1.ctype == SYNC_STATE_OID)
                            .and_then(|c| c.1.val.as_deref())
                            .ok_or_else(|| {
                                failed(records, "an entry came without a Sync State".into())
                            })?;
                        let state = SyncState::parse(state).map_err(|m| failed(records, m))?;
                        if let EntryState::Add | EntryState::Modify = refresh.entry(state)
                            && let Some(mut record) =
                                self.account_record(SearchEntry::construct(entry))
                        {
                            mark(&mut record);
                            sink(SourceChange::Record(record));
                            records += 1;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(failed(records, self.describe_transport_error(&e))),
                }
            }
            let result = stream.result();
            match result.rc {
                0 => {}
                REFRESH_REQUIRED => {
                    return Err(SourceError::NeedsCompleteRead(format!(
                        "the server asks for a full refresh of {base} (e-syncRefreshRequired): \
                         its session log does not reach back to the cookie"
                    )));
                }
                _ => return Err(failed(records, super::describe_search_result(&result))),
            }
            let done = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == SYNC_DONE_OID)
                .and_then(|c| c.1.val.as_deref())
                .ok_or_else(|| {
                    SourceError::NeedsCompleteRead(format!(
                        "the server answered the content sync of {base} without a Sync Done"
                    ))
                })?;
            let done = SyncDone::parse(done).map_err(|m| failed(records, m))?;
            match refresh.finish(done) {
                RefreshOutcome::NeedsCompleteRead { why } => {
                    return Err(SourceError::NeedsCompleteRead(format!("{base}: {why}")));
                }
                RefreshOutcome::Changes { deleted, cookie } => {
                    let cookie = match cookie {
                        Some(c) if c.is_empty() => {
                            return Err(SourceError::NeedsCompleteRead(format!(
                                "the server did not take the cookie for {base}"
                            )));
                        }
                        Some(c) => c,
                        // Nothing changed: the next read starts where this one did.
                        None => cookie_of(since, base),
                    };
                    for uuid in deleted {
                        sink(SourceChange::DeletedId {
                            id: uuid.to_string(),
                        });
                        deletes += 1;
                    }
                    next.push((base.to_string(), cookie));
                }
            }
        }
        Ok((records, deletes, SyncCookie { bases: next }))
    }
}

fn cookie_of(since: &SyncCookie, base: &str) -> Vec<u8> {
    since.for_base(base).map(<[u8]>::to_vec).unwrap_or_default()
}

/// The value of an intermediate response named `oid` (`[0]` responseName, `[1]` value).
fn intermediate_value(tag: &ldap3::asn1::StructureTag, oid: &str) -> Option<Vec<u8>> {
    let PL::C(items) = &tag.payload else {
        return None;
    };
    let name = items
        .iter()
        .find(|t| t.id == 0)
        .and_then(|t| match &t.payload {
            PL::P(b) => Some(b.as_slice()),
            PL::C(_) => None,
        });
    if name != Some(oid.as_bytes()) {
        return None;
    }
    items
        .iter()
        .find(|t| t.id == 1)
        .and_then(|t| match &t.payload {
            PL::P(b) => Some(b.clone()),
            PL::C(_) => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intermediate_value_is_taken_only_from_a_sync_info_message() {
        use ldap3::asn1::{StructureTag, TagClass};
        let prim = |id: u64, bytes: &[u8]| StructureTag {
            class: TagClass::Context,
            id,
            payload: PL::P(bytes.to_vec()),
        };
        let message = |items: Vec<StructureTag>| StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(items),
        };
        let info = message(vec![prim(0, SYNC_INFO_OID.as_bytes()), prim(1, b"v")]);
        assert_eq!(
            intermediate_value(&info, SYNC_INFO_OID),
            Some(b"v".to_vec())
        );
        let other = message(vec![prim(0, b"1.2.3"), prim(1, b"v")]);
        assert_eq!(intermediate_value(&other, SYNC_INFO_OID), None);
        let no_value = message(vec![prim(0, SYNC_INFO_OID.as_bytes())]);
        assert_eq!(intermediate_value(&no_value, SYNC_INFO_OID), None);
        assert_eq!(intermediate_value(&prim(25, b"x"), SYNC_INFO_OID), None);
    }

    #[test]
    fn cookies_read_back_and_damaged_ones_are_refused() {
        let cookie = SyncCookie {
            bases: vec![
                (
                    "ou=People,dc=example,dc=com".into(),
                    b"rid=000,csn=2026".to_vec(),
                ),
                ("ou=B,dc=example,dc=com".into(), b"csn=1".to_vec()),
            ],
        };
        let text = cookie.to_string();
        assert!(SyncCookie::is_one(&text));
        assert_eq!(SyncCookie::parse(&text), Ok(cookie));
        for bad in [
            "ldap-modify-timestamp:20240102030405Z",
            "ldap-content-sync:",
            "ldap-content-sync:6f75=",
            "ldap-content-sync:6f75=67617262616765",
            "ldap-content-sync:zz=63736e3d31",
            "ldap-content-sync:6f75=6373e",
        ] {
            assert!(SyncCookie::parse(bad).is_err(), "{bad:?}");
        }
    }
}
