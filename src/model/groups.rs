//! Groups in roster's own terms. A source group names its members by reference (a source
//! record's origin, or a username), because the source says who is in a group before anyone
//! knows which records become synced users; the target group names its members by the
//! target's user ids. `membership` resolves the one, the planner compares with the other.

use serde::{Deserialize, Serialize};

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
}
