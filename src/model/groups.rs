//! Groups in roster's own terms. A source group names its members by reference (a source
//! record's origin, or a username), because the source says who is in a group before anyone
//! knows which records become synced users; the target group names its members by the
//! target's user ids. `membership` resolves the one, the planner compares with the other.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::SourceRecord;
use super::dn::canonical_dn;

/// How a source group names one member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberRef {
    /// The member's origin (an LDAP DN), in the source's canonical form: for LDAP, a DN
    /// normalised by `source::canonical_dn`, so that it compares equal to the user's.
    Origin(String),
    /// A username (posixGroup `memberUid`), lowercased.
    Username(String),
    /// The origin of the member's user record exactly as the source wrote it, for sources
    /// whose groups list record ids: `sys_user/<sys_id>` (ServiceNow), `requesters/<id>`
    /// (Freshservice). Compared as is: ids are not DNs.
    Record(String),
}

/// A group as the source returned it, members not yet resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceGroup {
    /// Where it came from (an LDAP DN, as returned), for messages and rejects.
    pub origin: String,
    /// Stable identity (SCIM externalId of the target group).
    pub key: String,
    /// The group's name (SCIM displayName).
    pub name: String,
    pub members: Vec<MemberRef>,
}

/// A group as the target holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    /// The target's own id (SCIM `id`).
    pub id: String,
    /// roster's key, when roster manages the group (SCIM externalId).
    pub external_id: Option<String>,
    pub name: String,
    /// The target ids of its members (SCIM `members[].value`), users and anything else.
    pub members: Vec<String>,
    /// The target's version of the group (SCIM `meta.version`), when it has one.
    pub version: Option<String>,
}

impl TargetGroup {
    /// Only groups carrying an externalId are roster's to rename, change or delete.
    pub fn is_managed(&self) -> bool {
        self.external_id.is_some()
    }

    /// A digest of what roster plans on (id, key, name), to tell whether the group changed
    /// where the target keeps no versions. Members are left out: some targets list groups
    /// without them (AWS), and roster's own member changes are not drift.
    pub fn digest(&self) -> String {
        group_digest(&self.id, self.external_id.as_deref(), &self.name)
    }
}

/// The digest of `TargetGroup::digest`, also of the group's stored state.
pub fn group_digest(id: &str, external_id: Option<&str>, name: &str) -> String {
    use sha2::{Digest, Sha256};
    // Plain strings: serialising them cannot fail.
    let json = serde_json::to_vec(&(id, external_id, name)).unwrap_or_default();
    Sha256::digest(json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which entries are groups: from the `group` block. Each source reads the fields of its
/// kind (the config allows only those): LDAP `base_dns` and `filter`, ServiceNow `query`;
/// Freshservice reads every requester group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupQuery {
    pub base_dns: Vec<String>,
    pub filter: String,
    /// ServiceNow: the encoded query on `sys_user_group`.
    pub query: String,
    /// The attributes the group mapping needs besides the member attributes (lowercase).
    pub attrs: Vec<String>,
    /// `nested #true`: members that are groups count with their members. LDAP then also
    /// follows member groups that lie outside `base_dns`.
    pub nested: bool,
}

/// One group entry: its attributes (as `attrs` asked) and its members, as references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecord {
    pub record: SourceRecord,
    pub members: Vec<MemberRef>,
}

/// The synced users, by the references a group may name them with: the origin of their
/// record (as a canonical DN, and exactly as written, for sources whose members are record
/// ids) and their username.
#[derive(Debug, Clone, Default)]
pub struct UserRefs {
    keys: HashMap<MemberRef, String>,
    users: usize,
}

impl UserRefs {
    /// Adds a synced user: its key, where it was read from and its username.
    pub fn insert(&mut self, key: &str, origin: &str, username: &str) {
        self.users += 1;
        self.keys
            .insert(MemberRef::Origin(canonical_dn(origin)), key.to_string());
        self.keys
            .insert(MemberRef::Record(origin.to_string()), key.to_string());
        self.keys.insert(
            MemberRef::Username(username.to_lowercase()),
            key.to_string(),
        );
    }

    pub fn len(&self) -> usize {
        self.users
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of the synced user a group's member reference names, if any.
    pub fn key_of(&self, member: &MemberRef) -> Option<&str> {
        self.keys.get(member).map(String::as_str)
    }
}

/// A source group with its members as the keys of synced users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGroup {
    pub key: String,
    pub name: String,
    pub origin: String,
    /// Keys of synced users, sorted, each once.
    pub members: Vec<String>,
    /// Members that are not synced users.
    pub ignored: u64,
    /// The `group-all` group: every synced user is a member (the store fills them in).
    pub all_users: bool,
}
