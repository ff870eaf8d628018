//! The two sides of a sync, in roster's own terms: what the source wants (`DesiredUser`) and
//! what the target holds (`TargetUser`). Connectors convert to and from these; the store keeps
//! them; the planner compares them. Nothing here knows about LDAP, SCIM or SQL.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A record exactly as a source returned it: attribute names folded to lowercase, every
/// value a string (binary values are rendered by the connector, e.g. AD's objectGUID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRecord {
    /// Where the record came from, for error messages and rejects (an LDAP DN, a file line).
    pub origin: String,
    pub attrs: BTreeMap<String, Vec<String>>,
    /// The source has this account out of service (an Active Directory account disabled or
    /// expired, kept with `disabled "inactive"`): it is synced as an inactive account.
    pub out_of_service: bool,
    /// The source's own stable id of the record, when a delete may later name it by that id
    /// alone (LDAP content sync: the `entryUUID`); kept in the store with the origin.
    pub source_id: Option<String>,
}

impl SourceRecord {
    pub fn new(origin: impl Into<String>) -> Self {
        SourceRecord {
            origin: origin.into(),
            attrs: BTreeMap::new(),
            out_of_service: false,
            source_id: None,
        }
    }

    /// Adds values under `name` (case-insensitive, as LDAP attribute names are).
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        let left = with_lowercase(name, |name| match self.attrs.get_mut(name) {
            Some(values) => {
                values.push(value);
                None
            }
            None => Some((name.to_string(), value)),
        });
        if let Some((name, value)) = left {
            self.attrs.insert(name, vec![value]);
        }
    }

    /// Adds every value in `values` under `name` (case-insensitive), taking the name as it
    /// is when it is lowercase already.
    pub fn extend(&mut self, mut name: String, values: Vec<String>) {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.make_ascii_lowercase();
        }
        self.attrs.entry(name).or_default().extend(values);
    }

    /// All values of an attribute; empty when the record does not carry it.
    pub fn values(&self, name: &str) -> &[String] {
        with_lowercase(name, |name| self.attrs.get(name)).map_or(&[], Vec::as_slice)
    }

    /// The first value, if any.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).first().map(String::as_str)
    }
}

/// Calls `f` with `name` in ASCII lowercase, without allocating for a name that is
/// lowercase already or short (every lookup of a mapped attribute goes through here, once
/// per record, and configs spell names as `entryUUID`).
fn with_lowercase<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(name);
    }
    let mut buf = [0u8; 64];
    match buf.get_mut(..name.len()) {
        Some(short) => {
            short.copy_from_slice(name.as_bytes());
            short.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid.
            match std::str::from_utf8(short) {
                Ok(lower) => f(lower),
                Err(_) => f(&name.to_ascii_lowercase()),
            }
        }
        None => f(&name.to_ascii_lowercase()),
    }
}

/// What a mapped field asks of the target: a value, or to clear what is stored.
/// A field the source record does not carry is simply absent (target left unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "op", content = "value")]
pub enum FieldValue {
    Set(String),
    Clear,
}

/// A user as the source wants it in the target, after mapping, defaults and validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredUser {
    /// Stable identity (SCIM externalId).
    pub key: String,
    pub username: String,
    /// `None`: the source does not say; the target value is left as it is.
    pub name: Option<String>,
    pub email: Option<String>,
    /// Work phones, in source order. Additive: the target keeps phones not listed here.
    pub phones: Vec<String>,
    /// Other target fields (aliases, `attribute ... to=`), by target field name.
    pub fields: BTreeMap<String, FieldValue>,
    /// Whether the account should be active in the target. `false` for an account the source
    /// has out of service but still lists (`disabled "inactive"`). Left out of the JSON when
    /// true, so digests of active users are what they were before the field existed.
    #[serde(default = "active_default", skip_serializing_if = "is_active")]
    pub active: bool,
}

impl Default for DesiredUser {
    fn default() -> Self {
        DesiredUser {
            key: String::new(),
            username: String::new(),
            name: None,
            email: None,
            phones: Vec::new(),
            fields: BTreeMap::new(),
            active: true,
        }
    }
}

fn active_default() -> bool {
    true
}

fn is_active(active: &bool) -> bool {
    *active
}

/// A user as the target holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    /// The target's own id (SCIM `id`).
    pub id: String,
    /// roster's key, when roster manages the account (SCIM externalId).
    pub external_id: Option<String>,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phones: Vec<String>,
    /// Values of the target fields roster maps (`DesiredUser::fields`), by field name.
    pub fields: BTreeMap<String, String>,
    pub active: bool,
    /// The target's version of the object (SCIM `meta.version`, an ETag), when it has one.
    pub version: Option<String>,
    /// The owner (a config's `owner` name) the target itself records with the account, on
    /// a target that keeps one (SCIM: in the externalId, `roster:OWNER:KEY`). `None`: the
    /// target records none (an account written before owners were, or a target without
    /// externalIds, whose owners are in the state store). Left out of the JSON when `None`,
    /// so content digests of such accounts are what they were before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl TargetUser {
    /// Only accounts carrying an externalId are roster's to update, remove or delete.
    pub fn is_managed(&self) -> bool {
        self.external_id.is_some()
    }

    /// A digest of the account's content (not its version), to tell whether it changed where
    /// the target keeps no versions.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        // The JSON of the account without its version, serialised from borrowed fields (no
        // copy of the account): the same bytes as `TargetUser { version: None, ..clone }`.
        let content = TargetContent {
            id: &self.id,
            external_id: self.external_id.as_deref(),
            username: &self.username,
            name: self.name.as_deref(),
            email: self.email.as_deref(),
            phones: &self.phones,
            fields: &self.fields,
            active: self.active,
            version: None,
            owner: self.owner.as_deref(),
        };
        // Plain strings, vectors and maps: serialising them cannot fail.
        let json = serde_json::to_vec(&content).unwrap_or_default();
        hex(&Sha256::digest(json))
    }
}

/// `TargetUser`'s JSON shape, borrowed: what its content digest is taken of. Field for
/// field and attribute for attribute the same as `TargetUser`, so the digest is unchanged.
#[derive(Serialize)]
struct TargetContent<'a> {
    id: &'a str,
    external_id: Option<&'a str>,
    username: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    phones: &'a [String],
    fields: &'a BTreeMap<String, String>,
    active: bool,
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

/// Lowercase hex of `bytes` (digests), without a formatter call per byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A source record that was not used, and why. Nothing disappears silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub origin: String,
    pub key: Option<String>,
    pub username: Option<String>,
    pub reason: String,
}

/// Phone numbers are compared without spaces, dashes, dots and brackets.
pub fn phone_digits(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '[' | ']' | '\t'))
        .collect()
}

// Groups: their own file, since a config without group sync never uses them.
mod capabilities;
mod dn;
mod groups;
mod pairs;
pub use capabilities::Capabilities;
pub use dn::{canonical_dn, strip_unique_id};
pub use groups::{
    GroupQuery, GroupRecord, MemberRef, ResolvedGroup, SourceGroup, TargetGroup, UserRefs,
};
pub use pairs::{
    DesiredGroup, GroupPair, MatchedBy, MemberChange, MemberPair, Pair, TargetGroupState,
};

/// A managed account missing from the source, as the store keeps it between runs: since
/// when, and in how many runs in a row. The grace period (`remove-after`) and the drip order
/// (`over-cap "drip"`: missing longest first) are measured on it. Keyed by the account's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingMark {
    /// The first run that missed it.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Runs in a row that missed it, this one included once the planner has counted it.
    pub runs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn attribute_names_are_case_insensitive_however_long_and_however_added() {
        let long = format!("x{}", "A".repeat(80));
        let mut record = SourceRecord::new("uid=ada");
        record.push("entryUUID", "1");
        record.push("entryuuid", "2");
        record.extend("CN".to_string(), vec!["Ada".to_string()]);
        record.extend("cn".to_string(), vec!["Ada L".to_string()]);
        record.push(&long, "long");
        assert_eq!(record.values("ENTRYUUID"), ["1", "2"]);
        assert_eq!(record.values("entryuuid"), ["1", "2"]);
        assert_eq!(record.values("Cn"), ["Ada", "Ada L"]);
        assert_eq!(record.values(&long.to_lowercase()), ["long"]);
        assert_eq!(record.first(&long), Some("long"));
        assert!(record.values("mail").is_empty());
        let names: Vec<&str> = record.attrs.keys().map(String::as_str).collect();
        assert!(
            names.iter().all(|n| *n == n.to_ascii_lowercase()),
            "{names:?}"
        );
    }

    /// The digest as it was first written: the JSON of a copy without its version.
    fn digest_of_a_copy(user: &TargetUser) -> String {
        let content = TargetUser {
            version: None,
            ..user.clone()
        };
        let json = serde_json::to_vec(&content).expect("json");
        Sha256::digest(json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn target_digests_are_those_of_the_account_without_its_version() {
        let plain = TargetUser {
            id: "t1".into(),
            username: "alice".into(),
            active: true,
            ..TargetUser::default()
        };
        let full = TargetUser {
            id: "t2".into(),
            external_id: Some("k2".into()),
            username: "bob".into(),
            name: Some("Bob \"B\" Jones".into()),
            email: Some("bob@example.com".into()),
            phones: vec!["+1 555 0101".into(), "+1 555 0102".into()],
            fields: BTreeMap::from([("title".to_string(), "Ops\nlead".to_string())]),
            active: false,
            version: Some("W/\"3\"".into()),
            owner: Some("hr".into()),
        };
        for user in [&plain, &full] {
            assert_eq!(user.digest(), digest_of_a_copy(user));
        }
        let other_version = TargetUser {
            version: Some("W/\"4\"".into()),
            ..full.clone()
        };
        assert_eq!(other_version.digest(), full.digest());
        assert_ne!(plain.digest(), full.digest());
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0a, 0xab, 0xff]), "000aabff");
        assert_eq!(hex(&[]), "");
    }
}
