//! Which target accounts roster owns, for targets that cannot carry roster's key (LoginTC).
//!
//! On a SCIM target, an account is roster's when its externalId holds a key. LoginTC has no
//! such field, so the store remembers instead: the target id, the source key, and the
//! config (`owner`) that created or adopted it. A snapshot of such a target is read with the
//! owner's records laid over it (`Loader::claim_for`), so pairing and planning work as they do
//! with externalIds, and an account with no record is unmanaged: reported, never removed.
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
        self.conn
            .execute(
                "INSERT OR REPLACE INTO owned_accounts (owner, target_id, key, plan_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![owner, target_id, key, plan_id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets an account `owner` deleted.
    pub fn forget_owned(&self, owner: &str, target_id: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM owned_accounts WHERE owner = ?1 AND target_id = ?2",
                params![owner, target_id],
            )
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
                 JOIN target_users t ON t.run_id = d.run_id AND t.username_folded = d.username_folded
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
        loader.claim_for(owner);
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
}
