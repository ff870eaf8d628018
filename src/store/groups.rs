//! The group snapshots: loading them (one transaction) and pairing them for the group
//! planner (keyed joins in SQL).
//!
//! Memberships are compared as pairs of target ids. A desired member is a user key; the
//! user's target id is the one the user pairing found (`temp.pairs`, filled by
//! `for_each_pair`), so `group_pairs` must run after `for_each_pair` on the same store.
//! Only memberships present on one side are returned: a group's unchanged members never
//! leave SQLite.

use rusqlite::{Row, params};

use super::{Result, Store, StoreError};
use crate::model::{
    DesiredGroup, GroupPair, MatchedBy, MemberChange, MemberPair, Reject, ResolvedGroup,
    TargetGroup, TargetGroupState, UserRefs,
};

const REJECTED_USER: &str = "its source record was rejected (see `roster show`)";
const REJECTED_USERNAME: &str = "a rejected source record has its username (see `roster show`)";
const REJECTED_GROUP: &str = "its source entry was rejected (see `roster show`)";

/// What the group pairing found, for the planner.
#[derive(Debug, Clone, Default)]
pub struct GroupDiff {
    pub groups: Vec<GroupPair>,
    pub members: Vec<MemberPair>,
}

impl Store {
    /// The run's synced users, by the references a group may name them with.
    pub fn user_refs(&self, run_id: i64) -> Result<UserRefs> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, origin, username FROM desired_users WHERE run_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        let mut refs = UserRefs::default();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let get = |i: usize| -> Result<String> { row.get(i).map_err(|e| self.err(e)) };
            refs.insert(&get(0)?, &get(1)?, &get(2)?);
        }
        Ok(refs)
    }

    /// Stores the run's desired groups (with their members; a group with `all_users` gets
    /// every synced user), the target's groups, and the source groups that were rejected,
    /// in one transaction.
    pub fn load_groups(
        &self,
        run_id: i64,
        desired: &[ResolvedGroup],
        target: &[TargetGroup],
        rejects: &[Reject],
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let run = |sql: &str, values: &[&dyn rusqlite::ToSql]| {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute(values))
                .map_err(|e| self.err(e))
        };
        for g in desired {
            run(
                "INSERT INTO desired_groups (run_id, key, name, name_folded, origin, all_users, ignored)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run_id, g.key, g.name, g.name.to_lowercase(), g.origin, g.all_users, g.ignored],
            )?;
            for user in &g.members {
                run(
                    "INSERT OR IGNORE INTO desired_members (run_id, group_key, user_key) VALUES (?1, ?2, ?3)",
                    params![run_id, g.key, user],
                )?;
            }
            if g.all_users {
                run(
                    "INSERT OR IGNORE INTO desired_members (run_id, group_key, user_key)
                     SELECT run_id, ?2, key FROM desired_users WHERE run_id = ?1",
                    params![run_id, g.key],
                )?;
            }
        }
        for g in target {
            run(
                "INSERT OR REPLACE INTO target_groups (run_id, id, external_id, name, name_folded, version, members)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run_id, g.id, g.external_id, g.name, g.name.to_lowercase(), g.version, g.members.len()],
            )?;
            for member in &g.members {
                run(
                    "INSERT OR IGNORE INTO target_members (run_id, group_id, member_id) VALUES (?1, ?2, ?3)",
                    params![run_id, g.id, member],
                )?;
            }
        }
        for r in rejects {
            run(
                "INSERT INTO rejects (run_id, origin, key, username, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, r.origin, r.key, r.username, r.reason],
            )?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Pairs the run's desired and target groups and lists the memberships present on one
    /// side only. Groups match by key (externalId) first; then a desired group without a
    /// match takes the target group of the same name if that group is unmanaged, or carries
    /// a key no source group has (re-keyed). Needs `for_each_pair` to have run first.
    pub fn group_pairs(&self, run_id: i64) -> Result<GroupDiff> {
        let paired_users: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_temp_master WHERE name = 'pairs'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !paired_users {
            return Err(StoreError::Invalid {
                path: self.path.display().to_string(),
                message: "groups were paired before users (for_each_pair must run first)".into(),
            });
        }
        self.match_by_key_then_name(
            run_id,
            "group_pairs",
            "desired_groups",
            "target_groups",
            "name",
        )?;
        Ok(GroupDiff {
            groups: self.paired_groups(run_id)?,
            members: self.member_pairs(run_id)?,
        })
    }

    fn paired_groups(&self, run_id: i64) -> Result<Vec<GroupPair>> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.key, d.name, d.all_users, p.how,
                        t.id, t.external_id, t.name, t.version, t.members
                 FROM desired_groups d
                 LEFT JOIN temp.group_pairs p ON p.desired_key = d.key
                 LEFT JOIN target_groups t ON t.run_id = d.run_id AND t.id = p.target_id
                 WHERE d.run_id = ?1 ORDER BY d.key",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let pair = (|| -> rusqlite::Result<GroupPair> {
                let desired = DesiredGroup {
                    key: row.get(0)?,
                    name: row.get(1)?,
                    all_users: row.get(2)?,
                };
                let how: Option<String> = row.get(3)?;
                Ok(match how {
                    None => GroupPair::SourceOnly(desired),
                    Some(how) => GroupPair::Both {
                        desired,
                        target: target_group_from(row, 4)?,
                        matched_by: if how == "key" {
                            MatchedBy::Key
                        } else {
                            MatchedBy::Username
                        },
                    },
                })
            })()
            .map_err(|e| self.err(e))?;
            out.push(pair);
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT t.id, t.external_id, t.name, t.version, t.members,
                   CASE WHEN t.external_id IN (SELECT key FROM rejects WHERE run_id = ?1 AND key IS NOT NULL)
                     THEN '{REJECTED_GROUP}' END
                 FROM target_groups t
                 WHERE t.run_id = ?1 AND t.id NOT IN (SELECT target_id FROM temp.group_pairs)
                 ORDER BY t.id"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let pair = (|| -> rusqlite::Result<GroupPair> {
                Ok(GroupPair::TargetOnly {
                    target: target_group_from(row, 0)?,
                    protected: row.get(5)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            out.push(pair);
        }
        Ok(out)
    }

    /// Memberships in the source and not the target (with the ids known so far), then in
    /// the target and not the source (of paired groups only: a group gone from the source
    /// is deleted or left, never emptied).
    fn member_pairs(&self, run_id: i64) -> Result<Vec<MemberPair>> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.group_key, g.name, gp.target_id, gp.how = 'key', m.user_key, d.username, up.target_id
                 FROM desired_members m
                 JOIN desired_groups g ON g.run_id = m.run_id AND g.key = m.group_key
                 JOIN desired_users d ON d.run_id = m.run_id AND d.key = m.user_key
                 LEFT JOIN temp.group_pairs gp ON gp.desired_key = m.group_key
                 LEFT JOIN temp.pairs up ON up.desired_key = m.user_key
                 WHERE m.run_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM target_members tm
                                   WHERE tm.run_id = ?1 AND tm.group_id = gp.target_id AND tm.member_id = up.target_id)
                 ORDER BY m.group_key, m.user_key",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let pair = (|| -> rusqlite::Result<MemberPair> {
                Ok(MemberPair {
                    change: MemberChange::Join,
                    group_key: row.get(0)?,
                    group_name: row.get(1)?,
                    group_id: row.get(2)?,
                    group_managed: row.get::<_, Option<bool>>(3)?.unwrap_or(false),
                    user_key: row.get(4)?,
                    username: row.get(5)?,
                    user_id: row.get(6)?,
                    user_managed: true,
                    protected: None,
                })
            })()
            .map_err(|e| self.err(e))?;
            out.push(pair);
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT gp.desired_key, g.name, tm.group_id, gp.how = 'key',
                        coalesce(up.desired_key, tu.external_id), tu.username, tu.id, tu.external_id IS NOT NULL,
                   CASE
                     WHEN tu.external_id IN (SELECT key FROM rejects WHERE run_id = ?1 AND key IS NOT NULL)
                       THEN '{REJECTED_USER}'
                     WHEN tu.username_folded IN (SELECT lower(username) FROM rejects WHERE run_id = ?1 AND username IS NOT NULL)
                       THEN '{REJECTED_USERNAME}'
                   END
                 FROM target_members tm
                 JOIN temp.group_pairs gp ON gp.target_id = tm.group_id
                 JOIN desired_groups g ON g.run_id = tm.run_id AND g.key = gp.desired_key
                 JOIN target_users tu ON tu.run_id = tm.run_id AND tu.id = tm.member_id
                 LEFT JOIN temp.pairs up ON up.target_id = tu.id
                 WHERE tm.run_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM desired_members m
                                   WHERE m.run_id = ?1 AND m.group_key = gp.desired_key AND m.user_key = up.desired_key)
                 ORDER BY gp.desired_key, tu.id"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let pair = (|| -> rusqlite::Result<MemberPair> {
                Ok(MemberPair {
                    change: MemberChange::Leave,
                    group_key: row.get(0)?,
                    group_name: row.get(1)?,
                    group_id: row.get(2)?,
                    group_managed: row.get(3)?,
                    user_key: row.get(4)?,
                    username: row.get(5)?,
                    user_id: row.get(6)?,
                    user_managed: row.get(7)?,
                    protected: row.get(8)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            out.push(pair);
        }
        Ok(out)
    }

    /// Drops the group snapshots of all but the last few runs, like `prune_snapshots`.
    pub fn prune_group_snapshots(&self) -> Result<()> {
        let keep = super::SNAPSHOTS_KEPT;
        let tables = [
            "desired_groups",
            "desired_members",
            "target_groups",
            "target_members",
        ];
        let sql: String = tables
            .iter()
            .map(|t| {
                format!(
                    "DELETE FROM {t} WHERE run_id < (SELECT coalesce(max(id), 0) - {keep} FROM runs);"
                )
            })
            .collect();
        self.conn.execute_batch(&sql).map_err(|e| self.err(e))
    }
}

fn target_group_from(row: &Row<'_>, at: usize) -> rusqlite::Result<TargetGroupState> {
    Ok(TargetGroupState {
        id: row.get(at)?,
        external_id: row.get(at + 1)?,
        name: row.get(at + 2)?,
        version: row.get(at + 3)?,
        members: row.get::<_, i64>(at + 4)?.max(0) as u64,
    })
}
