//! RFC 4533 content synchronization (`syncrepl`, slapd's `syncprov` overlay): the values the
//! server answers a refreshOnly search with, read with `lber` by hand, and what a finished
//! refresh may be taken to mean.
//!
//! `sync_read` drives the search and hands the values here; this is the part that must
//! never be wrong, kept apart so that it is tested on its own. ldap3 0.12 has parsers for
//! these values, but they `panic!` on a value they do not expect, and a value is the server's
//! (or anyone's on the path's) to choose: here every malformed value is an error, never a
//! panic, and nesting is bounded before `lber` (which recurses) sees the bytes.
//!
//! **What a refresh means.** A refresh with a cookie ends in one of two ways (RFC 4533 §3.3):
//! a *delete phase*, where the server names what was deleted (entries in state `delete`,
//! `syncIdSet` with `refreshDeletes` TRUE, `refreshDelete`), or a *present phase*, where the
//! server names what is still there and the client is to delete everything else. roster
//! never does the latter: an incremental read removes nothing by absence, so a present phase
//! (or a `syncDone` without `refreshDeletes`) makes `Refresh::finish` say that a complete read
//! is needed instead, and the deletes it did name are not used.

// lber, as ldap3 re-exports it.
use ldap3::asn1::{PL, StructureTag, TagClass, parse_tag};

/// The control of a sync request (RFC 4533 §2.2), for a search.
pub(super) const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
/// The control on each entry of a refresh.
pub(super) const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// The control on the search's final result.
pub(super) const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// The intermediate response of a refresh.
pub(super) const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";

/// Deepest nesting of any value here: `syncIdSet` [3] → SET OF → OCTET STRING.
const MAX_DEPTH: usize = 3;

// Universal tag numbers (X.690).
const BOOLEAN: u64 = 1;
const OCTET_STRING: u64 = 4;
const ENUMERATED: u64 = 10;
const SEQUENCE: u64 = 16;
const SET: u64 = 17;

/// An `entryUUID` as the protocol carries it: 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SyncUuid(pub [u8; 16]);

impl std::fmt::Display for SyncUuid {
    /// The RFC 4122 text form, as slapd shows `entryUUID`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The state of an entry in a refresh (`syncStateValue.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// `syncStateValue` (RFC 4533 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyncState {
    pub state: EntryState,
    pub uuid: SyncUuid,
    pub cookie: Option<Vec<u8>>,
}

/// `syncDoneValue` (RFC 4533 §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

/// `syncInfoValue` (RFC 4533 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<SyncUuid>,
    },
}

/// One BER value, whole (nothing may follow it), nested no deeper than `MAX_DEPTH`.
fn value(bytes: &[u8], what: &str) -> Result<StructureTag, String> {
    check_nesting(bytes, 0).map_err(|why| format!("{what}: {why}"))?;
    match parse_tag(bytes) {
        Ok(([], tag)) => Ok(tag),
        Ok((rest, _)) => Err(format!("{what}: {} bytes after the value", rest.len())),
        Err(_) => Err(format!("{what}: not a BER value")),
    }
}

/// Walks the TLV headers (bounded recursion) before `lber` parses recursively.
fn check_nesting(mut bytes: &[u8], depth: usize) -> Result<(), String> {
    while let Some((&first, rest)) = bytes.split_first() {
        if first & 0x1f == 0x1f {
            return Err("a high tag number, which no sync value has".into());
        }
        let (&len0, rest) = rest.split_first().ok_or("a value cut after its tag")?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("a length that is indefinite, too large or cut".into());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(format!(
                "a value of {len} bytes with only {} left",
                rest.len()
            ));
        }
        let (content, after) = rest.split_at(len);
        if first & 0x20 != 0 {
            if depth >= MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH}"));
            }
            check_nesting(content, depth + 1)?;
        }
        bytes = after;
    }
    Ok(())
}

fn is_universal(tag: &StructureTag, id: u64) -> bool {
    tag.class == TagClass::Universal && tag.id == id
}

fn primitive(tag: StructureTag, what: &str) -> Result<Vec<u8>, String> {
    match tag.payload {
        PL::P(bytes) => Ok(bytes),
        PL::C(_) => Err(format!("{what} is constructed, not a primitive value")),
    }
}

fn constructed(tag: StructureTag, what: &str) -> Result<Vec<StructureTag>, String> {
    match tag.payload {
        PL::C(items) => Ok(items),
        PL::P(_) => Err(format!("{what} is primitive, not a sequence")),
    }
}

fn boolean(tag: StructureTag, what: &str) -> Result<bool, String> {
    match primitive(tag, what)?.as_slice() {
        [b] => Ok(*b != 0),
        _ => Err(format!("{what} is not a one-byte BOOLEAN")),
    }
}

fn uuid(bytes: Vec<u8>, what: &str) -> Result<SyncUuid, String> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(SyncUuid)
        .map_err(|_| format!("{what} is {} bytes, not a 16-byte UUID", bytes.len()))
}

/// A value's leading cookie and flag, and the elements after them.
type CookieAndFlag = (Option<Vec<u8>>, bool, Vec<StructureTag>);

/// `cookie OPTIONAL, flag BOOLEAN DEFAULT default`, the shape of most sync values.
fn cookie_and_flag(
    items: Vec<StructureTag>,
    default: bool,
    what: &str,
) -> Result<CookieAndFlag, String> {
    let mut items = items.into_iter().peekable();
    let cookie = match items.peek() {
        Some(t) if is_universal(t, OCTET_STRING) => items
            .next()
            .map(|t| primitive(t, &format!("{what}'s cookie")))
            .transpose()?,
        _ => None,
    };
    let flag = match items.peek() {
        Some(t) if is_universal(t, BOOLEAN) => match items.next() {
            Some(t) => boolean(t, &format!("{what}'s flag"))?,
            None => default,
        },
        _ => default,
    };
    Ok((cookie, flag, items.collect()))
}

impl SyncState {
    pub(super) fn parse(bytes: &[u8]) -> Result<SyncState, String> {
        let what = "syncStateValue";
        let tag = value(bytes, what)?;
        if !is_universal(&tag, SEQUENCE) {
            return Err(format!("{what} is not a SEQUENCE"));
        }
        let mut items = constructed(tag, what)?.into_iter();
        let state = match items.next() {
            Some(t) if is_universal(&t, ENUMERATED) => {
                match primitive(t, "the state")?.as_slice() {
                    [0] => EntryState::Present,
                    [1] => EntryState::Add,
                    [2] => EntryState::Modify,
                    [3] => EntryState::Delete,
                    other => return Err(format!("{what}: unknown state {other:?}")),
                }
            }
            _ => return Err(format!("{what} does not start with an ENUMERATED state")),
        };
        let uuid = match items.next() {
            Some(t) if is_universal(&t, OCTET_STRING) => {
                uuid(primitive(t, "the entryUUID")?, "the entryUUID")?
            }
            _ => return Err(format!("{what} has no entryUUID")),
        };
        let cookie = match items.next() {
            Some(t) if is_universal(&t, OCTET_STRING) => Some(primitive(t, "the cookie")?),
            Some(_) => return Err(format!("{what}: the third element is not a cookie")),
            None => None,
        };
        if items.next().is_some() {
            return Err(format!("{what} has more than three elements"));
        }
        Ok(SyncState {
            state,
            uuid,
            cookie,
        })
    }
}

impl SyncDone {
    pub(super) fn parse(bytes: &[u8]) -> Result<SyncDone, String> {
        let what = "syncDoneValue";
        let tag = value(bytes, what)?;
        if !is_universal(&tag, SEQUENCE) {
            return Err(format!("{what} is not a SEQUENCE"));
        }
        let (cookie, refresh_deletes, rest) =
            cookie_and_flag(constructed(tag, what)?, false, what)?;
        if !rest.is_empty() {
            return Err(format!("{what} has elements it should not have"));
        }
        Ok(SyncDone {
            cookie,
            refresh_deletes,
        })
    }
}

impl SyncInfo {
    pub(super) fn parse(bytes: &[u8]) -> Result<SyncInfo, String> {
        let what = "syncInfoValue";
        let tag = value(bytes, what)?;
        if tag.class != TagClass::Context {
            return Err(format!("{what} is not a context-specific choice"));
        }
        let id = tag.id;
        if id == 0 {
            return Ok(SyncInfo::NewCookie(primitive(tag, "newcookie")?));
        }
        let items = constructed(tag, what)?;
        match id {
            1 | 2 => {
                let name = if id == 1 {
                    "refreshDelete"
                } else {
                    "refreshPresent"
                };
                let (cookie, refresh_done, rest) = cookie_and_flag(items, true, name)?;
                if !rest.is_empty() {
                    return Err(format!("{name} has elements it should not have"));
                }
                Ok(if id == 1 {
                    SyncInfo::RefreshDelete {
                        cookie,
                        refresh_done,
                    }
                } else {
                    SyncInfo::RefreshPresent {
                        cookie,
                        refresh_done,
                    }
                })
            }
            3 => {
                let (cookie, refresh_deletes, rest) = cookie_and_flag(items, false, "syncIdSet")?;
                let mut rest = rest.into_iter();
                let set = match (rest.next(), rest.next()) {
                    (Some(set), None) if is_universal(&set, SET) => set,
                    _ => return Err("syncIdSet has no SET of UUIDs".into()),
                };
                let uuids = constructed(set, "syncIdSet's UUIDs")?
                    .into_iter()
                    .map(|t| {
                        if !is_universal(&t, OCTET_STRING) {
                            return Err("an element of syncUUIDs is not an OCTET STRING".into());
                        }
                        uuid(primitive(t, "a syncUUID")?, "a syncUUID")
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(SyncInfo::IdSet {
                    cookie,
                    refresh_deletes,
                    uuids,
                })
            }
            other => Err(format!("{what}: unknown choice [{other}]")),
        }
    }
}

/// What a finished refresh may be taken to mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefreshOutcome {
    /// A delete phase: these entries were deleted; the entries read are the changes.
    Changes {
        deleted: Vec<SyncUuid>,
        cookie: Option<Vec<u8>>,
    },
    /// The server answered with a present phase (its session log does not reach back to the
    /// cookie): what it did not name is *not* deleted by that; a complete read is needed.
    NeedsCompleteRead { why: String },
}

/// The sync values of one refreshOnly search, gathered as they arrive.
#[derive(Debug, Default)]
pub(super) struct Refresh {
    deleted: Vec<SyncUuid>,
    cookie: Option<Vec<u8>>,
    present_phase: bool,
}

impl Refresh {
    /// The state control of an entry. Returns the state, for the caller to hand on adds and
    /// modifies as records (a `delete` entry is noted here).
    pub(super) fn entry(&mut self, state: SyncState) -> EntryState {
        match state.state {
            EntryState::Delete => self.deleted.push(state.uuid),
            EntryState::Present => self.present_phase = true,
            EntryState::Add | EntryState::Modify => {}
        }
        if state.cookie.is_some() {
            self.cookie = state.cookie;
        }
        state.state
    }

    /// An intermediate `syncInfo` message.
    pub(super) fn info(&mut self, info: SyncInfo) {
        let cookie = match info {
            SyncInfo::NewCookie(cookie) => Some(cookie),
            SyncInfo::RefreshDelete { cookie, .. } => cookie,
            SyncInfo::RefreshPresent { cookie, .. } => {
                self.present_phase = true;
                cookie
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            } => {
                if refresh_deletes {
                    self.deleted.extend(uuids);
                } else {
                    self.present_phase = true;
                }
                cookie
            }
        };
        if cookie.is_some() {
            self.cookie = cookie;
        }
    }

    /// The search's `syncDone`: a delete phase, or a complete read needed.
    pub(super) fn finish(mut self, done: SyncDone) -> RefreshOutcome {
        if done.cookie.is_some() {
            self.cookie = done.cookie;
        }
        if self.present_phase || !done.refresh_deletes {
            return RefreshOutcome::NeedsCompleteRead {
                why: "the server answered the content sync with a present phase (its session \
                      log does not reach back to the cookie): what it did not name is not \
                      taken as deleted"
                    .into(),
            };
        }
        RefreshOutcome::Changes {
            deleted: self.deleted,
            cookie: self.cookie,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: [u8; 16] = [1; 16];
    const U2: [u8; 16] = [2; 16];

    /// A TLV with a short length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(content.len()).expect("short")];
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn octets(bytes: &[u8]) -> Vec<u8> {
        tlv(0x04, bytes)
    }

    #[test]
    fn sync_state_values_parse() {
        let value = seq(&[tlv(0x0a, &[3]), octets(&U1), octets(b"csn=1")]);
        assert_eq!(
            SyncState::parse(&value),
            Ok(SyncState {
                state: EntryState::Delete,
                uuid: SyncUuid(U1),
                cookie: Some(b"csn=1".to_vec()),
            })
        );
        let value = seq(&[tlv(0x0a, &[2]), octets(&U2)]);
        let state = SyncState::parse(&value).expect("a state");
        assert_eq!((state.state, state.cookie), (EntryState::Modify, None));
        assert_eq!(
            SyncUuid(U1).to_string(),
            "01010101-0101-0101-0101-010101010101"
        );
    }

    #[test]
    fn sync_done_and_info_values_parse() {
        assert_eq!(
            SyncDone::parse(&seq(&[octets(b"c"), tlv(0x01, &[0xff])])),
            Ok(SyncDone {
                cookie: Some(b"c".to_vec()),
                refresh_deletes: true
            })
        );
        assert_eq!(
            SyncDone::parse(&seq(&[])),
            Ok(SyncDone {
                cookie: None,
                refresh_deletes: false
            })
        );
        assert_eq!(
            SyncInfo::parse(&tlv(0x80, b"new")),
            Ok(SyncInfo::NewCookie(b"new".to_vec()))
        );
        assert_eq!(
            SyncInfo::parse(&tlv(0xa1, &[])),
            Ok(SyncInfo::RefreshDelete {
                cookie: None,
                refresh_done: true
            })
        );
        assert_eq!(
            SyncInfo::parse(&tlv(0xa2, &octets(b"k"))),
            Ok(SyncInfo::RefreshPresent {
                cookie: Some(b"k".to_vec()),
                refresh_done: true
            })
        );
        let set = tlv(0x31, &[octets(&U1), octets(&U2)].concat());
        assert_eq!(
            SyncInfo::parse(&tlv(0xa3, &[tlv(0x01, &[1]), set].concat())),
            Ok(SyncInfo::IdSet {
                cookie: None,
                refresh_deletes: true,
                uuids: vec![SyncUuid(U1), SyncUuid(U2)],
            })
        );
    }

    #[test]
    fn malformed_values_are_errors_never_panics() {
        let good_state = seq(&[tlv(0x0a, &[1]), octets(&U1)]);
        let mut deep = octets(&U1);
        for _ in 0..10_000 {
            deep = {
                let mut out = vec![0x30, 0x84];
                out.extend_from_slice(&u32::try_from(deep.len()).expect("len").to_be_bytes());
                out.extend_from_slice(&deep);
                out
            };
        }
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            vec![0x30, 0x05, 0x0a],
            vec![0x30, 0x80, 0x00, 0x00],
            vec![0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            vec![0x1f, 0x81, 0x00],
            good_state[..good_state.len() - 1].to_vec(),
            [good_state.clone(), vec![0x00]].concat(),
            seq(&[tlv(0x0a, &[7]), octets(&U1)]),
            seq(&[tlv(0x0a, &[1]), octets(&U1[..15])]),
            seq(&[tlv(0x0a, &[1])]),
            seq(&[octets(&U1)]),
            seq(&[tlv(0x0a, &[1]), octets(&U1), tlv(0x01, &[1])]),
            seq(&[tlv(0x0a, &[1]), octets(&U1), octets(b"c"), octets(b"d")]),
            tlv(0x31, &[tlv(0x0a, &[1]), octets(&U1)].concat()),
            tlv(0x2a, &[]),
            deep,
        ];
        for bytes in &bad {
            assert!(SyncState::parse(bytes).is_err(), "state {bytes:02x?}");
            assert!(SyncInfo::parse(bytes).is_err(), "info {bytes:02x?}");
        }
        for bytes in [
            octets(b"c"),
            seq(&[tlv(0x01, &[1, 1])]),
            seq(&[octets(b"c"), tlv(0x01, &[1]), octets(b"x")]),
            tlv(0x04, &[]),
        ] {
            assert!(SyncDone::parse(&bytes).is_err(), "done {bytes:02x?}");
        }
        for bytes in [
            tlv(0xa0, &[]),
            tlv(0x81, &[]),
            tlv(0xa4, &[]),
            tlv(0xa3, &tlv(0x01, &[1])),
            tlv(0xa3, &tlv(0x31, &octets(&U1[..3]))),
            tlv(0xa3, &tlv(0x31, &tlv(0x02, &[1]))),
            tlv(0xa1, &[octets(b"c"), octets(b"d")].concat()),
        ] {
            assert!(SyncInfo::parse(&bytes).is_err(), "info {bytes:02x?}");
        }
    }

    #[test]
    fn explicit_deletes_are_changes_and_a_present_phase_never_is() {
        let mut refresh = Refresh::default();
        refresh.entry(SyncState {
            state: EntryState::Modify,
            uuid: SyncUuid(U2),
            cookie: None,
        });
        refresh.info(SyncInfo::IdSet {
            cookie: Some(b"c1".to_vec()),
            refresh_deletes: true,
            uuids: vec![SyncUuid(U1)],
        });
        assert_eq!(
            refresh.finish(SyncDone {
                cookie: Some(b"c2".to_vec()),
                refresh_deletes: true
            }),
            RefreshOutcome::Changes {
                deleted: vec![SyncUuid(U1)],
                cookie: Some(b"c2".to_vec())
            }
        );

        type Step = Box<dyn Fn(&mut Refresh)>;
        let presents: Vec<Step> = vec![
            Box::new(|r| {
                r.entry(SyncState {
                    state: EntryState::Present,
                    uuid: SyncUuid(U1),
                    cookie: None,
                });
            }),
            Box::new(|r| {
                r.info(SyncInfo::RefreshPresent {
                    cookie: None,
                    refresh_done: true,
                })
            }),
            Box::new(|r| {
                r.info(SyncInfo::IdSet {
                    cookie: None,
                    refresh_deletes: false,
                    uuids: vec![SyncUuid(U1)],
                })
            }),
        ];
        for present in presents {
            let mut refresh = Refresh::default();
            present(&mut refresh);
            assert!(matches!(
                refresh.finish(SyncDone {
                    cookie: None,
                    refresh_deletes: true
                }),
                RefreshOutcome::NeedsCompleteRead { .. }
            ));
        }
        // A syncDone without refreshDeletes: "delete what was not present" — never done.
        assert!(matches!(
            Refresh::default().finish(SyncDone {
                cookie: None,
                refresh_deletes: false
            }),
            RefreshOutcome::NeedsCompleteRead { .. }
        ));
    }
}
