//! Reading groups from LDAP: groupOfNames and groupOfUniqueNames (`member` /
//! `uniqueMember`, DNs) and posixGroup (`memberUid`, usernames).
//!
//! Same connection rules as the user read (one connection, TLS, bind, one paged search per
//! base DN, referrals followed with `follow-referrals`, an error for a read that did not
//! finish), with the `group` block's base DNs and
//! filter. With `nested #true`, a member that is a group outside the group `base-dn` (a
//! team kept in another OU) is looked up and stands for its members, so that it is neither
//! lost nor taken for a missing user. The member attributes become `MemberRef`s here, DNs in canonical form, so nothing
//! after the connector needs to know which attribute a member came from.

use std::collections::{HashMap, HashSet};

use ldap3::{LdapConn, LdapError, Scope, SearchEntry};

use crate::model::MemberRef;
use crate::model::{GroupQuery, GroupRecord, canonical_dn, strip_unique_id};
use crate::source::SourceError;

use super::{LdapDirectory, record_from_entry};

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
        if !query.nested {
            return self.read_all(&bases, &query.filter, &attrs, &mut |record| {
                sink(group_record(record, &query.attrs))
            });
        }
        let mut groups = Vec::new();
        let count = self.read_all(&bases, &query.filter, &attrs, &mut |record| {
            groups.push(group_record(record, &query.attrs))
        })?;
        let outside = self.groups_outside(&groups, &query.filter)?;
        for mut group in groups {
            group.members = with_outside_members(group.members, &outside);
            sink(group);
        }
        Ok(count)
    }

    /// With `nested #true`: the member groups that lie outside the group `base-dn`, found by
    /// a base-scope search of each member DN that is neither a group already read nor under
    /// a user `base-dn` (people are looked up by nobody: they are matched as they are), with
    /// the group filter; transitively, each DN once. Returns each such group's DN (canonical)
    /// and its own members. A DN that is no entry, or no group, is left as it is: counted as
    /// ignored later, like any member that is no synced user.
    fn groups_outside(
        &self,
        groups: &[GroupRecord],
        filter: &str,
    ) -> Result<HashMap<String, Vec<MemberRef>>, SourceError> {
        let known: HashSet<String> = groups
            .iter()
            .map(|g| canonical_dn(&g.record.origin))
            .collect();
        let user_bases: Vec<String> = self
            .config
            .base_dns
            .iter()
            .map(|b| canonical_dn(&b.value))
            .collect();
        let candidate = |dn: &str| {
            !known.contains(dn)
                && !user_bases
                    .iter()
                    .any(|base| dn == base || dn.ends_with(&format!(",{base}")))
        };
        let mut queue: Vec<String> = groups
            .iter()
            .flat_map(|g| &g.members)
            .filter_map(|m| match m {
                MemberRef::Origin(dn) if candidate(dn) => Some(dn.clone()),
                _ => None,
            })
            .collect();
        let mut outside: HashMap<String, Vec<MemberRef>> = HashMap::new();
        if queue.is_empty() {
            return Ok(outside);
        }
        let mut looked_up: HashSet<String> = HashSet::new();
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        while let Some(dn) = queue.pop() {
            if !looked_up.insert(dn.clone()) {
                continue;
            }
            if looked_up.len() > MAX_OUTSIDE_LOOKUPS {
                return Err(SourceError::Search {
                    url: server.url.clone(),
                    base: dn,
                    read: groups.len() as u64,
                    message: format!(
                        "more than {MAX_OUTSIDE_LOOKUPS} member DNs outside the group and user                          base-dn were looked up as nested groups: add their base to the group                          block's base-dn"
                    ),
                });
            }
            let Some(members) = self.group_at(&mut conn, &server.url, &dn, filter)? else {
                continue;
            };
            log::info!("{dn}: a member group outside the group base-dn, followed (nested)");
            queue.extend(members.iter().filter_map(|m| match m {
                MemberRef::Origin(member) if candidate(member) => Some(member.clone()),
                _ => None,
            }));
            outside.insert(dn, members);
        }
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        Ok(outside)
    }

    /// The members of the group at `dn`, if `dn` is an entry the group filter selects.
    fn group_at(
        &self,
        conn: &mut LdapConn,
        url: &str,
        dn: &str,
        filter: &str,
    ) -> Result<Option<Vec<MemberRef>>, SourceError> {
        conn.with_timeout(self.timeout());
        let result = conn
            .search(
                dn,
                Scope::Base,
                filter,
                vec![MEMBER, UNIQUE_MEMBER, MEMBER_UID],
            )
            .map_err(|e| self.lookup_error(url, dn, &e))?;
        let entries = match result.success() {
            Ok((entries, _)) => entries,
            // No such entry (a dangling member), or one the bind may not see.
            Err(LdapError::LdapResult { result }) if matches!(result.rc, 32 | 10 | 50) => {
                return Ok(None);
            }
            Err(e) => return Err(self.lookup_error(url, dn, &e)),
        };
        Ok(entries
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate())
            .map(|entry| {
                group_record(record_from_entry(SearchEntry::construct(entry)), &[]).members
            }))
    }

    fn lookup_error(&self, url: &str, dn: &str, err: &LdapError) -> SourceError {
        SourceError::Search {
            url: url.to_string(),
            base: dn.to_string(),
            read: 0,
            message: format!(
                "looking up a member as a nested group: {}",
                self.describe_transport_error(err)
            ),
        }
    }
}

/// Most member DNs outside every base looked up as nested groups in one read.
const MAX_OUTSIDE_LOOKUPS: usize = 10_000;

/// `members`, with each reference to a group outside the base replaced by that group's
/// members, transitively (each outside group once).
fn with_outside_members(
    members: Vec<MemberRef>,
    outside: &HashMap<String, Vec<MemberRef>>,
) -> Vec<MemberRef> {
    if outside.is_empty() {
        return members;
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut seen_groups = HashSet::new();
    let mut stack: Vec<MemberRef> = members.into_iter().rev().collect();
    while let Some(member) = stack.pop() {
        match &member {
            MemberRef::Origin(dn) if outside.contains_key(dn) => {
                if seen_groups.insert(dn.clone()) {
                    stack.extend(outside[dn].iter().rev().cloned());
                }
            }
            _ => {
                if seen.insert(member.clone()) {
                    out.push(member);
                }
            }
        }
    }
    out
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
    fn outside_groups_stand_for_their_members_transitively_and_cycles_end() {
        let dn = |s: &str| MemberRef::Origin(s.to_string());
        let outside = HashMap::from([
            ("cn=a,ou=t".to_string(), vec![dn("uid=x"), dn("cn=b,ou=t")]),
            ("cn=b,ou=t".to_string(), vec![dn("uid=y"), dn("cn=a,ou=t")]),
        ]);
        let members = with_outside_members(
            vec![dn("uid=x"), dn("cn=a,ou=t"), dn("cn=inside,ou=groups")],
            &outside,
        );
        assert_eq!(
            members,
            [dn("uid=x"), dn("uid=y"), dn("cn=inside,ou=groups")],
            "each member once, inside groups left to settle"
        );
    }

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
