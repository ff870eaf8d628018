//! Reading groups from LDAP: groupOfNames and groupOfUniqueNames (`member` /
//! `uniqueMember`, DNs) and posixGroup (`memberUid`, usernames).
//!
//! Same connection rules as the user read (one connection, TLS, bind, one paged search per
//! base DN, referrals followed with `follow-referrals`, an error for a read that did not
//! finish), with the `group` block's base DNs and
//! filter. The member attributes become `MemberRef`s here, DNs in canonical form, so nothing
//! after the connector needs to know which attribute a member came from.

use crate::model::MemberRef;
use crate::model::{GroupQuery, GroupRecord, canonical_dn, strip_unique_id};
use crate::source::SourceError;

use super::LdapDirectory;

/// Attributes that name members, lowercase.
const MEMBER: &str = "member";
const UNIQUE_MEMBER: &str = "uniquemember";
const MEMBER_UID: &str = "memberuid";

impl LdapDirectory {
    pub(super) fn read_group_entries(
        &mut self,
        query: &GroupQuery,
        sink: &mut dyn FnMut(GroupRecord),
    ) -> Result<u64, SourceError> {
        let mut attrs = query.attrs.clone();
        for member in [MEMBER, UNIQUE_MEMBER, MEMBER_UID] {
            if !attrs.iter().any(|a| a == member) {
                attrs.push(member.to_string());
            }
        }
        let bases: Vec<&str> = query.base_dns.iter().map(String::as_str).collect();
        self.read_all(&bases, &query.filter, &attrs, &mut |record| {
            sink(group_record(record, &query.attrs))
        })
    }
}

/// Splits a group entry into the attributes the mapping asked for and its member references.
fn group_record(mut record: crate::model::SourceRecord, wanted: &[String]) -> GroupRecord {
    let mut members = Vec::new();
    for value in record
        .values(MEMBER)
        .iter()
        .chain(record.values(UNIQUE_MEMBER))
    {
        let dn = strip_unique_id(value);
        if !dn.trim().is_empty() {
            members.push(MemberRef::Origin(canonical_dn(dn)));
        }
    }
    for uid in record.values(MEMBER_UID) {
        let uid = uid.trim();
        if !uid.is_empty() {
            members.push(MemberRef::Username(uid.to_lowercase()));
        }
    }
    // Member lists can be long: keep them once, as references, not also as attributes.
    record.attrs.retain(|name, _| wanted.contains(name));
    GroupRecord { record, members }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceRecord;

    #[test]
    fn members_of_every_kind_become_references() {
        let mut record = SourceRecord::new("cn=Sales,ou=Groups,dc=example,dc=com");
        record.push("cn", "Sales");
        record.push("entryUUID", "g-1");
        record.push("member", "uid=Alice,ou=People,dc=example,dc=com");
        record.push("uniqueMember", "uid=bob,ou=People,dc=example,dc=com#'01'B");
        record.push("memberUid", " Carol ");
        record.push("member", "");
        let group = group_record(record, &["cn".into(), "entryuuid".into()]);
        assert_eq!(
            group.members,
            [
                MemberRef::Origin("uid=alice,ou=people,dc=example,dc=com".into()),
                MemberRef::Origin("uid=bob,ou=people,dc=example,dc=com".into()),
                MemberRef::Username("carol".into()),
            ]
        );
        let names: Vec<&String> = group.record.attrs.keys().collect();
        assert_eq!(names, ["cn", "entryuuid"]);
    }
}
