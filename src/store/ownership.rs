//! Which target accounts a config (its `owner`) owns, so that configs sharing a target never
//! take each other's accounts.
//!
//! The store records every account an owner created or adopted: the target id, the source
//! key, the owner. How a snapshot is read depends on the target (`Claim`):
//!
//! - LoginTC keeps no key of roster's: the owner's records are laid over the snapshot
//!   (`apply_ownership`), so pairing and planning work as they do with externalIds, and an
//!   account with no record is unmanaged: reported, never removed.
//! - SCIM keeps the owner with the account, in its externalId (`roster:OWNER:KEY`, read by
//!   the connector into `TargetUser::owner`), so ownership survives a lost store
//!   (`apply_target_owners`): another owner's account is not this config's at all; an
//!   account written by an earlier roster (a bare key, no owner) is this owner's when its
//!   records prove it, and otherwise of unknown owner: it keeps syncing with the source
//!   user of the same key *and* username (and is then stamped with the owner), but it is
//!   never removed, and no other source user may take it.
//!
//! Losing the store loses the records, which can only make roster remove less.

use std::collections::HashMap;

use rusqlite::params;

use super::{Loader, Result, Store};

impl Store {
    /// Records that `owner` owns the account `target_id`, which belongs to source key `key`.
    pub fn record_owned(
        &self,
        owner: &str,
        target_id: &str,
        key: &str,
        plan_id: &str,
        at: &str,
    ) -> Result<()> {
        // Cached: apply records one a create, in the journal writer's groups.
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO owned_accounts (owner, target_id, key, plan_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![owner, target_id, key, plan_id, at]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets an account `owner` deleted.
    pub fn forget_owned(&self, owner: &str, target_id: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM owned_accounts WHERE owner = ?1 AND target_id = ?2")
            .and_then(|mut s| s.execute(params![owner, target_id]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The accounts `owner` owns: target id → source key.
    pub fn owned(&self, owner: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT target_id, key FROM owned_accounts WHERE owner = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<HashMap<String, String>>>()
            .map_err(|e| self.err(e))
    }

    /// Which other owner owns the account `target_id`, if one does.
    pub fn other_owner(&self, owner: &str, target_id: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT owner FROM owned_accounts WHERE target_id = ?1 AND owner <> ?2 ORDER BY owner LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![target_id, owner])
            .map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => Ok(Some(row.get(0).map_err(|e| self.err(e))?)),
            None => Ok(None),
        }
    }
}

impl Loader<'_> {
    /// Lays `owner`'s ownership records over the target snapshot being loaded: an account it
    /// owns gets its key as `external_id`, as a SCIM account carries it; every other account
    /// stays unmanaged. A source user whose username is an account another owner owns is
    /// rejected (with the reason), so that neither config takes the other's account.
    pub(super) fn apply_ownership(&mut self, owner: &str) -> Result<()> {
        let run_id = self.run_id;
        self.tx
            .execute(
                "UPDATE target_users SET external_id =
                   (SELECT o.key FROM owned_accounts o WHERE o.owner = ?2 AND o.target_id = target_users.id)
                 WHERE run_id = ?1",
                params![run_id, owner],
            )
            .map_err(|e| self.store.err(e))?;
        let taken: Vec<(String, String)> = self
            .tx
            .prepare(
                "SELECT DISTINCT d.username_folded, o.owner FROM desired_users d
                 JOIN target_users t INDEXED BY target_users_username ON t.run_id = d.run_id AND t.username_folded = d.username_folded
                 JOIN owned_accounts o ON o.target_id = t.id AND o.owner <> ?2
                 WHERE d.run_id = ?1 AND t.external_id IS NULL",
            )
            .and_then(|mut s| {
                s.query_map(params![run_id, owner], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.store.err(e))?;
        for (username, other) in taken {
            self.move_to_rejects(
                "username_folded = ?2",
                &username,
                &format!(
                    "username {username} is an account that owner \"{other}\" manages in the target; \
                     two configs cannot own one account"
                ),
            )?;
        }
        self.counts.managed = self
            .tx
            .query_row(
                "SELECT count(*) FROM target_users WHERE run_id = ?1 AND external_id IS NOT NULL",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.store.err(e))?;
        Ok(())
    }
}

impl Loader<'_> {
    /// Lays the owners a target records (SCIM) over the snapshot being loaded, for `owner`:
    /// another owner's account becomes unmanaged (its key is not this config's to match),
    /// and a source user with its username is rejected; an account without an owner is
    /// this owner's if the records prove it, else marked `owner_unknown` (never removed),
    /// and a source user that would take it by username, or has its key under another
    /// username, is rejected.
    // The joins start from the few target accounts they are about (`CROSS JOIN` keeps that
    // order: another owner's, or of unknown owner, none in a config's usual target) and look
    // the desired users up by their index (`INDEXED BY`): left to itself, SQLite scanned the
    // run's whole target snapshot for every desired user (no statistics), which made a
    // no-change plan of 100,000 users take minutes instead of seconds; starting from every
    // desired user and looking up its username cost 0.24 G instructions at 20,000 users.
    pub(super) fn apply_target_owners(&mut self, owner: &str) -> Result<()> {
        let run_id = self.run_id;
        let err = |e| self.store.err(e);
        self.tx
            .execute(
                "UPDATE target_users SET external_id = NULL
                 WHERE run_id = ?1 AND owner IS NOT NULL AND owner <> ?2",
                params![run_id, owner],
            )
            .map_err(err)?;
        self.tx
            .execute(
                "UPDATE target_users SET owner_unknown = 1
                 WHERE run_id = ?1 AND owner IS NULL AND external_id IS NOT NULL
                   AND id NOT IN (SELECT target_id FROM owned_accounts WHERE owner = ?2)",
                params![run_id, owner],
            )
            .map_err(err)?;
        let query = |loader: &Self, sql: &str| -> Result<Vec<(String, String, String)>> {
            loader
                .tx
                .prepare(sql)
                .and_then(|mut s| {
                    s.query_map(params![run_id, owner], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect()
                })
                .map_err(|e| loader.store.err(e))
        };
        // Same key, other username: the account may be anybody's; renaming it is not proof.
        let renamed = query(
            self,
            "SELECT d.key, t.username, t.id FROM target_users t
             CROSS JOIN desired_users d ON d.run_id = t.run_id AND d.key = t.external_id
             WHERE t.run_id = ?1 AND t.owner_unknown = 1 AND t.username_folded <> d.username_folded
               AND ?2 IS NOT NULL",
        )?;
        for (key, username, id) in renamed {
            self.move_to_rejects(
                "key = ?2",
                &key,
                &format!(
                    "key {key} is the target account {id} (username {username}), written by an earlier \
                     roster without an owner, and this config's state store has no record of making it: \
                     roster does not rename an account it cannot prove it owns \
                     (give the source user its old username back for one sync, or rename the account by hand)"
                ),
            )?;
        }
        let foreign = query(
            self,
            "SELECT DISTINCT d.username_folded, t.owner, t.id FROM target_users t
             CROSS JOIN desired_users d INDEXED BY desired_users_username ON d.run_id = t.run_id AND d.username_folded = t.username_folded
             WHERE t.run_id = ?1 AND t.owner IS NOT NULL AND t.owner <> ?2",
        )?;
        for (username, other, _) in foreign {
            self.move_to_rejects(
                "username_folded = ?2",
                &username,
                &format!(
                    "username {username} is an account that owner \"{other}\" manages in the target; \
                     two configs cannot own one account"
                ),
            )?;
        }
        let unknown = query(
            self,
            "SELECT DISTINCT d.username_folded, t.external_id, t.id FROM target_users t
             CROSS JOIN desired_users d INDEXED BY desired_users_username ON d.run_id = t.run_id AND d.username_folded = t.username_folded
             WHERE t.run_id = ?1 AND t.owner_unknown = 1 AND t.external_id <> d.key
               AND ?2 IS NOT NULL",
        )?;
        for (username, key, _) in unknown {
            self.move_to_rejects(
                "username_folded = ?2",
                &username,
                &format!(
                    "username {username} is an account written by an earlier roster under key {key}, \
                     without an owner, and this config's state store has no record of making it: \
                     its owner is unknown, so roster does not take it over"
                ),
            )?;
        }
        let count = |sql: &str| {
            self.tx
                .query_row(sql, [run_id], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| self.store.err(e))
        };
        self.counts.managed = count(
            "SELECT count(*) FROM target_users WHERE run_id = ?1 AND external_id IS NOT NULL",
        )?;
        self.counts.foreign = count(
            "SELECT count(*) FROM target_users WHERE run_id = ?1 AND external_id IS NULL AND owner IS NOT NULL",
        )?;
        Ok(())
    }
}

impl Store {
    /// The other owners whose accounts a run's target snapshot holds, with how many each.
    pub fn foreign_owners(&self, run_id: i64) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT owner, count(*) FROM target_users
                 WHERE run_id = ?1 AND external_id IS NULL AND owner IS NOT NULL
                 GROUP BY owner ORDER BY owner",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DesiredUser, Pair, TargetUser};
    use crate::store::{RunKind, Store};

    fn member(id: &str, username: &str) -> TargetUser {
        TargetUser {
            id: id.into(),
            username: username.into(),
            active: true,
            ..TargetUser::default()
        }
    }

    fn person(key: &str, username: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            username: username.into(),
            ..DesiredUser::default()
        }
    }

    /// Loads one run of a target without externalIds under `owner`; the pairs it gives.
    fn load(
        store: &mut Store,
        owner: &str,
        desired: &[DesiredUser],
        target: &[TargetUser],
    ) -> (u64, Vec<Pair>) {
        let run = store
            .begin_run(RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.claim_for(owner, crate::store::Claim::ByRecords);
        for d in desired {
            loader
                .desired(d, &format!("uid={}", d.username))
                .expect("load");
        }
        for t in target {
            loader.target(t).expect("load");
        }
        let counts = loader.finish().expect("finish");
        let mut pairs = Vec::new();
        store.for_each_pair(run, |p| pairs.push(p)).expect("pairs");
        (counts.managed, pairs)
    }

    #[test]
    fn only_the_owners_records_make_accounts_managed_and_another_owners_username_is_rejected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("state.db")).expect("open");
        let members = [
            member("t1", "alice"),
            member("t2", "zed"),
            member("t3", "mallory"),
        ];

        // No records at all: nothing is managed, so nothing can be removed.
        let (managed, pairs) = load(&mut store, "employees", &[], &members);
        assert_eq!(managed, 0);
        assert!(
            pairs
                .iter()
                .all(|p| matches!(p, Pair::TargetOnly { target, .. } if !target.is_managed()))
        );

        store
            .record_owned("employees", "t1", "k-alice", "p1", "now")
            .expect("record");
        store
            .record_owned("contractors", "t2", "c-zed", "p2", "now")
            .expect("record");
        let desired = [person("k-alice", "alice"), person("k-zed", "zed")];
        let (managed, pairs) = load(&mut store, "employees", &desired, &members);
        assert_eq!(managed, 1, "only alice is the employees' own");
        let mut seen = Vec::new();
        for pair in &pairs {
            match pair {
                Pair::Both { target, .. } => seen.push(format!("both {}", target.username)),
                Pair::SourceOnly(d) => seen.push(format!("source {}", d.username)),
                Pair::TargetOnly { target, .. } => seen.push(format!(
                    "target {} managed={}",
                    target.username,
                    target.is_managed()
                )),
            }
        }
        seen.sort();
        // zed is the contractors' account: the employees' zed is rejected, not paired.
        assert_eq!(
            seen,
            [
                "both alice",
                "target mallory managed=false",
                "target zed managed=false"
            ]
        );
        assert_eq!(
            store
                .other_owner("employees", "t2")
                .expect("owner")
                .as_deref(),
            Some("contractors")
        );
        store.forget_owned("employees", "t1").expect("forget");
        assert!(store.owned("employees").expect("owned").is_empty());
    }

    #[test]
    fn on_a_target_that_keeps_owners_only_this_owners_and_proven_accounts_are_managed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("state.db")).expect("open");
        store
            .record_owned("employees", "t3", "k-bob", "p0", "now")
            .expect("record");
        let account = |id: &str, username: &str, key: &str, owner: Option<&str>| TargetUser {
            external_id: Some(key.into()),
            owner: owner.map(Into::into),
            ..member(id, username)
        };
        let target = [
            account("t1", "alice", "k1", Some("employees")),
            account("t2", "zed", "c-zed", Some("contractors")),
            // Written by an earlier roster, the store proves it: the employees'.
            account("t3", "bob", "k-bob", None),
            // Written by an earlier roster, no record: owner unknown.
            account("t4", "carol", "k-carol", None),
            account("t5", "dave", "k-dave", None),
            account("t6", "erin", "k-erin", None),
            account("t7", "frank", "old-frank", None),
        ];
        let desired = [
            person("k1", "alice"),
            person("k-zed", "zed"),
            person("k-bob", "bob"),
            person("k-carol", "carol"),
            person("k-erin", "erin2"),
            person("k-frank", "frank"),
        ];
        let run = store
            .begin_run(RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.claim_for("employees", crate::store::Claim::OnTarget);
        for d in &desired {
            loader.desired(d, "origin").expect("load");
        }
        for t in &target {
            loader.target(t).expect("load");
        }
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.managed, counts.foreign), (6, 1));
        let mut seen = Vec::new();
        store
            .for_each_pair(run, |p| {
                seen.push(match p {
                    Pair::Both { target, .. } => format!("both {}", target.username),
                    Pair::SourceOnly(d) => format!("source {}", d.username),
                    Pair::TargetOnly { target, protected } => format!(
                        "target {} managed={} protected={}",
                        target.username,
                        target.is_managed(),
                        protected.map_or("no".to_string(), |p| p[..12.min(p.len())].to_string())
                    ),
                })
            })
            .expect("pairs");
        seen.sort();
        assert_eq!(
            seen,
            [
                "both alice",
                "both bob",
                "both carol",
                "target dave managed=true protected=owner unknow",
                "target erin managed=true protected=its source r",
                "target frank managed=true protected=a rejected s",
                "target zed managed=false protected=a rejected s",
            ]
        );
        let reasons: Vec<String> = store
            .rejects(run)
            .expect("rejects")
            .into_iter()
            .map(|r| r.reason)
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("owner \"contractors\" manages"))
        );
        assert!(reasons.iter().any(|r| r.contains("does not rename")));
        assert!(reasons.iter().any(|r| r.contains("its owner is unknown")));
        assert_eq!(
            store.foreign_owners(run).expect("owners"),
            [("contractors".to_string(), 1)]
        );
    }
}
