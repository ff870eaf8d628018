//! Source groups, from the records a source returned to the members roster syncs.
//!
//! Three pure steps, each a function of plain values:
//! 1. `GroupMapper::map`: a group record becomes a `SourceGroup` (key and name from the
//!    `group` block's attributes) or a `Reject` that says why not.
//! 2. `settle`: groups that share a key or a name are rejected (the target could not tell
//!    them apart), and with `nested #true` a member that is itself a group is replaced by
//!    that group's members, transitively. A cycle (A in B in A) cannot loop: each group is
//!    visited once per flattening, the cycle is reported, and every group in it ends with
//!    the members of all of them.
//! 3. `resolve`: member references become the keys of synced users, by DN (canonical form)
//!    or by username. References that name no synced user (people outside the user search,
//!    rejected records, groups when `nested #false`) are ignored and counted.
//!
//! `GroupIndex` answers "is this user in the group named X?" for `role ... in-group=`,
//! which the mapping evaluates while users are read; the groups are read first for that.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::config::{GroupMapping, GroupScope};
use crate::model::{GroupQuery, GroupRecord, MemberRef, Reject, SourceGroup, canonical_dn};
pub use crate::model::{ResolvedGroup, UserRefs};

/// The group half of the mapping: which attributes give a group's key and name.
#[derive(Debug, Clone)]
pub struct GroupMapper {
    key: String,
    name: String,
}

impl GroupMapper {
    pub fn new(mapping: &GroupMapping) -> GroupMapper {
        GroupMapper {
            key: mapping.key.value.clone(),
            name: mapping.name.value.clone(),
        }
    }

    /// What to ask the source for.
    pub fn query(&self, mapping: &GroupMapping) -> GroupQuery {
        let mut attrs = vec![self.key.to_ascii_lowercase()];
        if !attrs.contains(&self.name.to_ascii_lowercase()) {
            attrs.push(self.name.to_ascii_lowercase());
        }
        let mut query = GroupQuery {
            attrs,
            nested: mapping.nested,
            ..GroupQuery::default()
        };
        match &mapping.scope {
            GroupScope::Directory { base_dns, filter } => {
                query.base_dns = base_dns.iter().map(|d| d.value.clone()).collect();
                query.filter = filter.value.clone();
            }
            GroupScope::ServiceNow { query: table_query } => {
                query.query = table_query.value.clone();
            }
            GroupScope::Freshservice => {}
        }
        query
    }

    pub fn map(&self, group: GroupRecord) -> Result<SourceGroup, Reject> {
        let record = &group.record;
        let reject = |key: Option<&str>, reason: String| Reject {
            origin: record.origin.clone(),
            key: key.map(str::to_string),
            username: None,
            reason,
        };
        let Some(key) = record
            .first(&self.key)
            .map(str::trim)
            .filter(|k| !k.is_empty())
        else {
            return Err(reject(
                None,
                format!(
                    "group without a key: attribute {} is missing or empty",
                    self.key
                ),
            ));
        };
        let Some(name) = record
            .first(&self.name)
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return Err(reject(
                Some(key),
                format!(
                    "group without a name: attribute {} is missing or empty",
                    self.name
                ),
            ));
        };
        Ok(SourceGroup {
            origin: record.origin.clone(),
            key: key.to_string(),
            name: name.to_string(),
            members: group.members,
        })
    }
}

/// The source's groups, ready to resolve: clashing groups rejected, nested ones flattened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettledGroups {
    /// Each group's members: no duplicates; with `nested`, no references to other groups.
    pub groups: Vec<SourceGroup>,
    pub rejects: Vec<Reject>,
    /// The cycles met while flattening, each as the names of its groups in order.
    pub cycles: Vec<Vec<String>>,
}

/// Rejects groups that clash and, with `nested`, flattens groups in groups.
pub fn settle(groups: Vec<SourceGroup>, nested: bool) -> SettledGroups {
    let (groups, rejects) = reject_clashes(groups);
    let by_origin: HashMap<String, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (canonical_dn(&g.origin), i))
        .collect();
    // Which members of each group are groups (by index), and which are not.
    let edges: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .filter_map(|m| match m {
                    MemberRef::Origin(dn) => by_origin.get(dn).copied(),
                    MemberRef::Username(_) | MemberRef::Record(_) => None,
                })
                .collect()
        })
        .collect();
    let cycles = if nested {
        find_cycles(&edges)
            .into_iter()
            .map(|cycle| cycle.iter().map(|&i| groups[i].name.clone()).collect())
            .collect()
    } else {
        Vec::new()
    };
    let flattened = groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let reach: Vec<usize> = if nested {
                reachable(i, &edges)
            } else {
                vec![i]
            };
            let mut seen = HashSet::new();
            let members = reach
                .iter()
                .flat_map(|&g| &groups[g].members)
                .filter(|m| {
                    // Nested groups stand for their members; a group whose members were not
                    // taken in (nested off) stays a reference and is counted as ignored later.
                    !nested || !matches!(m, MemberRef::Origin(dn) if by_origin.contains_key(dn))
                })
                .filter(|m| seen.insert(*m))
                .cloned()
                .collect();
            SourceGroup {
                members,
                ..group.clone()
            }
        })
        .collect();
    SettledGroups {
        groups: flattened,
        rejects,
        cycles,
    }
}

/// Groups sharing a key or a name (case-insensitively, as targets compare displayName) are
/// all rejected: which one is meant cannot be known, and a rejected group is never deleted.
fn reject_clashes(groups: Vec<SourceGroup>) -> (Vec<SourceGroup>, Vec<Reject>) {
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for g in &groups {
        *keys.entry(g.key.clone()).or_default() += 1;
        *names.entry(g.name.to_lowercase()).or_default() += 1;
    }
    let mut kept = Vec::new();
    let mut rejects = Vec::new();
    for g in groups {
        let reason = if keys[&g.key] > 1 {
            Some(format!(
                "duplicate group key {}: another group has the same key",
                g.key
            ))
        } else if names[&g.name.to_lowercase()] > 1 {
            Some(format!(
                "duplicate group name {}: groups with different keys have the same name",
                g.name
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => rejects.push(Reject {
                origin: g.origin,
                key: Some(g.key),
                username: None,
                reason,
            }),
            None => kept.push(g),
        }
    }
    (kept, rejects)
}

/// Every group reachable from `start` through group members, `start` first; each once,
/// so a cycle ends the walk instead of repeating it.
fn reachable(start: usize, edges: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; edges.len()];
    let mut order = vec![start];
    seen[start] = true;
    let mut i = 0;
    while let Some(&g) = order.get(i) {
        for &next in &edges[g] {
            if !seen[next] {
                seen[next] = true;
                order.push(next);
            }
        }
        i += 1;
    }
    order
}

/// The cycles of the group graph, each once (as the groups on it, from the one met first),
/// by a depth-first search that records every edge back into the current path.
fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashSet<BTreeSet<usize>> = HashSet::new();
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // An explicit stack of (group, next edge to follow): no recursion depth limit.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnPath;
        while let Some(top) = path.last_mut() {
            let (g, next) = *top;
            if let Some(&to) = edges[g].get(next) {
                top.1 += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnPath;
                        path.push((to, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(p, _)| p == to).unwrap_or(0);
                        let cycle: Vec<usize> = path[from..].iter().map(|&(p, _)| p).collect();
                        if seen.insert(cycle.iter().copied().collect()) {
                            cycles.push(cycle);
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[g] = Mark::Done;
                path.pop();
            }
        }
    }
    cycles
}

/// "Is this user in the group named X?", for `role ... in-group=`. Group names compare
/// case-insensitively; members by canonical DN or lowercased username.
#[derive(Debug, Clone, Default)]
pub struct GroupIndex {
    members: HashMap<String, HashSet<MemberRef>>,
}

impl GroupIndex {
    pub fn new(groups: &[SourceGroup]) -> GroupIndex {
        GroupIndex {
            members: groups
                .iter()
                .map(|g| (g.name.to_lowercase(), g.members.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Whether the user read from `origin` with `username` is a member of `group`.
    pub fn contains(&self, group: &str, origin: &str, username: &str) -> bool {
        self.members.get(&group.to_lowercase()).is_some_and(|m| {
            m.contains(&MemberRef::Origin(canonical_dn(origin)))
                || m.contains(&MemberRef::Record(origin.to_string()))
                || m.contains(&MemberRef::Username(username.to_lowercase()))
        })
    }
}

/// Resolves each group's member references to synced users.
pub fn resolve(groups: &[SourceGroup], users: &UserRefs) -> Vec<ResolvedGroup> {
    groups
        .iter()
        .map(|g| {
            let mut members = BTreeSet::new();
            let mut ignored = 0;
            for m in &g.members {
                match users.key_of(m) {
                    Some(key) => {
                        members.insert(key.to_string());
                    }
                    None => ignored += 1,
                }
            }
            ResolvedGroup {
                key: g.key.clone(),
                name: g.name.clone(),
                origin: g.origin.clone(),
                members: members.into_iter().collect(),
                ignored,
                all_users: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(cn: &str) -> String {
        format!("cn={cn},ou=Groups,dc=x")
    }

    fn group(name: &str, members: &[&str]) -> SourceGroup {
        SourceGroup {
            origin: dn(name),
            key: format!("k-{name}"),
            name: name.into(),
            members: members
                .iter()
                .map(|m| match m.strip_prefix('@') {
                    Some(g) => MemberRef::Origin(canonical_dn(&dn(g))),
                    None => MemberRef::Username((*m).into()),
                })
                .collect(),
        }
    }

    fn names(groups: &SettledGroups) -> Vec<(String, Vec<String>)> {
        groups
            .groups
            .iter()
            .map(|g| {
                let mut members: Vec<String> = g
                    .members
                    .iter()
                    .map(|m| match m {
                        MemberRef::Username(u) => u.clone(),
                        MemberRef::Origin(o) => format!("@{o}"),
                        MemberRef::Record(r) => format!("#{r}"),
                    })
                    .collect();
                members.sort();
                (g.name.clone(), members)
            })
            .collect()
    }

    #[test]
    fn nested_groups_are_flattened_only_when_asked() {
        let groups = vec![
            group("All", &["a", "@Eng"]),
            group("Eng", &["b", "@Ops"]),
            group("Ops", &["c", "b"]),
        ];
        let flat = settle(groups.clone(), true);
        assert_eq!(
            names(&flat),
            [
                ("All".into(), vec!["a".into(), "b".into(), "c".into()]),
                ("Eng".into(), vec!["b".into(), "c".into()]),
                ("Ops".into(), vec!["b".into(), "c".into()]),
            ]
        );
        assert!(flat.cycles.is_empty());
        let kept = settle(groups, false);
        assert_eq!(
            kept.groups[0].members[1],
            MemberRef::Origin("cn=eng,ou=groups,dc=x".into()),
            "a group reference stays (to be counted as ignored)"
        );
    }

    #[test]
    fn a_cycle_is_reported_once_and_still_flattened() {
        let groups = vec![
            group("A", &["a", "@B"]),
            group("B", &["b", "@C"]),
            group("C", &["c", "@A"]),
            group("Self", &["s", "@Self"]),
        ];
        let flat = settle(groups, true);
        assert_eq!(
            flat.cycles,
            [
                vec!["A".to_string(), "B".into(), "C".into()],
                vec!["Self".into()]
            ]
        );
        for (name, members) in names(&flat).into_iter().take(3) {
            assert_eq!(members, ["a", "b", "c"], "{name}");
        }
        assert_eq!(names(&flat)[3].1, ["s"]);
    }

    #[test]
    fn clashing_groups_are_all_rejected() {
        let mut twin = group("sales", &[]);
        twin.key = "k-other".into();
        twin.origin = "cn=sales,ou=Old,dc=x".into();
        let mut same_key = group("Ops", &[]);
        same_key.key = "k-Eng".into();
        let settled = settle(
            vec![
                group("Sales", &[]),
                twin,
                group("Eng", &[]),
                same_key,
                group("HR", &[]),
            ],
            false,
        );
        let kept: Vec<&str> = settled.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(kept, ["HR"]);
        let reasons: Vec<&str> = settled.rejects.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "duplicate group name Sales: groups with different keys have the same name",
                "duplicate group name sales: groups with different keys have the same name",
                "duplicate group key k-Eng: another group has the same key",
                "duplicate group key k-Eng: another group has the same key",
            ]
        );
    }

    #[test]
    fn members_resolve_by_dn_or_username_and_the_rest_are_counted() {
        let mut users = UserRefs::default();
        users.insert("k1", "uid=Alice,ou=People,dc=x", "alice");
        users.insert("k2", "uid=bob,ou=People,dc=x", "bob");
        let g = SourceGroup {
            origin: dn("G"),
            key: "g".into(),
            name: "G".into(),
            members: vec![
                MemberRef::Origin(canonical_dn("UID=alice, ou=people, dc=x")),
                MemberRef::Username("bob".into()),
                MemberRef::Origin(canonical_dn("uid=bob,ou=People,dc=x")),
                MemberRef::Origin(canonical_dn("uid=zed,ou=People,dc=x")),
                MemberRef::Username("nobody".into()),
            ],
        };
        let resolved = resolve(&[g], &users);
        assert_eq!(resolved[0].members, ["k1", "k2"]);
        assert_eq!(resolved[0].ignored, 2);
    }

    #[test]
    fn members_named_by_record_id_resolve_by_the_exact_origin() {
        let mut users = UserRefs::default();
        users.insert("a1", "sys_user/a1", "alice");
        users.insert("101", "requesters/101", "bob@example.com");
        assert_eq!(users.len(), 2);
        let g = SourceGroup {
            origin: "sys_user_group/g1".into(),
            key: "g1".into(),
            name: "G".into(),
            members: vec![
                MemberRef::Record("sys_user/a1".into()),
                MemberRef::Record("requesters/101".into()),
                MemberRef::Record("sys_user/zz".into()),
                MemberRef::Record("agents/101".into()),
            ],
        };
        let resolved = resolve(std::slice::from_ref(&g), &users);
        assert_eq!(resolved[0].members, ["101", "a1"]);
        assert_eq!(
            resolved[0].ignored, 2,
            "users that are not synced are counted"
        );
        let index = GroupIndex::new(&[g]);
        assert!(index.contains("g", "sys_user/a1", "alice"));
        assert!(!index.contains("g", "sys_user/b2", "bob"));
    }

    #[test]
    fn groups_are_mapped_from_their_attributes() {
        let mapping = GroupMapper {
            key: "entryUUID".into(),
            name: "cn".into(),
        };
        let mut record = crate::model::SourceRecord::new("cn=x,dc=x");
        record.push("entryUUID", "g1");
        let err = mapping
            .map(GroupRecord {
                record: record.clone(),
                members: vec![],
            })
            .expect_err("no name");
        assert!(
            err.reason.starts_with("group without a name"),
            "{}",
            err.reason
        );
        record.push("cn", " Sales ");
        let g = mapping
            .map(GroupRecord {
                record,
                members: vec![],
            })
            .expect("valid");
        assert_eq!((g.key.as_str(), g.name.as_str()), ("g1", "Sales"));
    }

    #[test]
    fn the_index_answers_in_group() {
        let index = GroupIndex::new(&[group("Admins", &["root"])]);
        assert!(index.contains("admins", "uid=root,dc=x", "Root"));
        assert!(!index.contains("Admins", "uid=other,dc=x", "other"));
        assert!(!index.contains("Nobody", "uid=root,dc=x", "root"));
    }
}
