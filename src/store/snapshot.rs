//! The two snapshots: loading them (streamed, one transaction) and pairing them for the
//! planner (a keyed join in SQL).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{OptionalExtension, Row, Statement, Transaction, params};
use sha2::{Digest, Sha256};

use super::{Result, Store};
use crate::model::{DesiredUser, FieldValue, MatchedBy, Pair, Reject, TargetUser};

/// Loads one run's desired users, target users and rejects inside one transaction.
/// Nothing is visible to other readers until `finish` commits.
pub struct Loader<'s> {
    /// The inserts of a desired and of a target row, prepared once for the whole load: a
    /// statement taken from the connection's cache for every row cost a third of what the
    /// insert itself does (the cache hashes the SQL text each time). Before `tx`, so that
    /// they are finalized before it ends.
    insert_desired: Statement<'s>,
    insert_target: Statement<'s>,
    pub(super) tx: Transaction<'s>,
    pub(super) store: &'s Store,
    pub(super) run_id: i64,
    pub(super) counts: SnapshotCounts,
    /// Keys seen more than once.
    duplicate_keys: HashSet<String>,
    /// Whose accounts this config manages, and how the target says so (`ownership.rs`).
    claim_for: Option<(String, Claim)>,
    /// An incremental load: the desired state was copied from an earlier run and is patched
    /// (see `patch_from`); the keys loaded by this read, to tell a duplicate in it from a
    /// record it replaces.
    patching: Option<HashSet<String>>,
    /// Patching: the origins this read replaced, each with the key of the record read there
    /// (none for a reject), the last one read winning. What the base held at such an origin
    /// under another key is taken out when the load finishes (`replace_at_origins`), in one
    /// pass: the table has no index by origin, and a search per record read scanned the
    /// whole snapshot each time (14 s for 1,000 changes of 100,000 users).
    replaced_at: HashMap<String, Option<String>>,
    /// Patching: the source id of the record this read loaded at each origin (`source_id`),
    /// so that a delete naming another id there is known to be of an earlier entry.
    ids_read: HashMap<String, String>,
    /// The origins the source reported deleted with no record read there after the
    /// signal: what the desired state holds there is taken out when the load finishes, in
    /// one pass (`take_out_deleted`; a search per signal scanned the whole snapshot).
    deleted_at: HashSet<String>,
    /// The target snapshot was copied from an earlier run and patched (`target_patch.rs`).
    pub(super) target_patched: bool,
}

/// What a delete that names a record by the source's own id did (`Loader::deleted_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Neither this read nor its base saw a record with that id.
    Unseen,
    /// What the desired state holds at `origin` is taken out when the load finishes.
    Taken { origin: String },
    /// This read loaded another entry (another id) at `origin` since that id's record was
    /// read: the delete is of the entry that was there before, and the new one stays. An
    /// entry deleted and created again under the same DN is named so by LDAP content sync.
    Superseded { origin: String },
}

/// How a target tells which accounts are an owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The target keeps no key of roster's (LoginTC): the owner's records in the store say.
    ByRecords,
    /// The target keeps the owner with each account (SCIM, in the externalId); an account
    /// written before owners were is the owner's when the store's records prove it.
    OnTarget,
}

/// What a load stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Source records read (used and rejected).
    pub source: u64,
    pub desired: u64,
    pub rejected: u64,
    pub target: u64,
    pub managed: u64,
    /// Accounts the target says another owner manages (left alone, never counted managed).
    pub foreign: u64,
    /// Desired users the source's delete signals took out (an incremental read).
    pub deleted: u64,
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    crate::model::hex(digest.as_ref())
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain strings, vectors and maps cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// A digest of a desired user's content, stable across runs.
fn desired_digest(user: &DesiredUser) -> String {
    hex(Sha256::digest(json(user)))
}

/// A desired user with the columns the store derives from it (folded username, the JSON of
/// its phones and fields, its digest), computed by `new` wherever the user was mapped, so
/// that a reader thread does this work and the thread that owns the connection only
/// inserts (`Loader::desired_row`).
#[derive(Debug, Clone)]
pub struct DesiredRow {
    user: DesiredUser,
    origin: String,
    username_folded: String,
    phones: String,
    fields: String,
    digest: String,
}

impl DesiredRow {
    pub fn new(user: DesiredUser, origin: String) -> Self {
        DesiredRow {
            username_folded: user.username.to_lowercase(),
            phones: json(&user.phones),
            fields: json(&user.fields),
            digest: desired_digest(&user),
            user,
            origin,
        }
    }
}

/// A target user with the columns the store derives from it, computed by `new` on the
/// thread that read it (see `DesiredRow`).
#[derive(Debug, Clone)]
pub struct TargetRow {
    user: TargetUser,
    username_folded: String,
    phones: String,
    fields: String,
    digest: String,
}

impl TargetRow {
    pub fn new(user: TargetUser) -> Self {
        TargetRow {
            username_folded: user.username.to_lowercase(),
            phones: json(&user.phones),
            fields: json(&user.fields),
            digest: user.digest(),
            user,
        }
    }
}

const INSERT_DESIRED: &str = "INSERT OR IGNORE INTO desired_users (run_id, key, username, username_folded, name, email, phones, fields, origin, digest, active)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_TARGET: &str = "INSERT OR IGNORE INTO target_users (run_id, id, external_id, username, username_folded, name, email, phones, fields, active, version, digest, owner)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

impl Store {
    /// Starts loading the snapshots of `run_id`.
    pub fn loader(&mut self, run_id: i64) -> Result<Loader<'_>> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let prepare = |sql| self.conn.prepare(sql).map_err(|e| self.err(e));
        Ok(Loader {
            insert_desired: prepare(INSERT_DESIRED)?,
            insert_target: prepare(INSERT_TARGET)?,
            tx,
            store: self,
            run_id,
            counts: SnapshotCounts::default(),
            duplicate_keys: HashSet::new(),
            claim_for: None,
            patching: None,
            replaced_at: HashMap::new(),
            ids_read: HashMap::new(),
            deleted_at: HashSet::new(),
            target_patched: false,
        })
    }
}

impl Loader<'_> {
    /// Only `owner`'s accounts are managed, as `claim` says how to tell them (laid over the
    /// snapshot when the load finishes).
    pub fn claim_for(&mut self, owner: &str, claim: Claim) {
        self.claim_for = Some((owner.to_string(), claim));
    }

    /// An incremental load: starts from `base_run`'s desired users and rejects, which the
    /// records of this read then replace (by key or origin) and explicit delete signals take
    /// out (`deleted`). Nothing is removed for not being read. Returns how many desired users
    /// were copied.
    pub fn patch_from(&mut self, base_run: i64) -> Result<u64> {
        let copied = self
            .tx
            .execute(
                "INSERT INTO desired_users (run_id, key, username, username_folded, name, email, phones, fields, origin, digest, active)
                 SELECT ?1, key, username, username_folded, name, email, phones, fields, origin, digest, active
                 FROM desired_users WHERE run_id = ?2",
                params![self.run_id, base_run],
            )
            .and_then(|n| {
                self.tx.execute(
                    "INSERT INTO rejects (run_id, origin, key, username, reason)
                     SELECT ?1, origin, key, username, reason FROM rejects WHERE run_id = ?2",
                    params![self.run_id, base_run],
                )?;
                self.tx.execute(
                    "INSERT INTO source_ids (run_id, source_id, origin)
                     SELECT ?1, source_id, origin FROM source_ids WHERE run_id = ?2",
                    params![self.run_id, base_run],
                )?;
                Ok(n)
            })
            .map_err(|e| self.store.err(e))?;
        self.patching = Some(HashSet::new());
        Ok(copied as u64)
    }

    /// An explicit delete signal of an incremental read: the record at `origin` is gone from
    /// the source. What the desired state holds there (a desired user, a reject) is taken
    /// out when the load finishes, unless a record is read at `origin` after the signal: the
    /// record read later is the source as it is now. With the source's `id` of the record
    /// that was there: nothing is taken out when this read loaded a record of another id
    /// at `origin` (`Deletion::Superseded`, an entry deleted and created again).
    pub fn deleted(&mut self, origin: &str, id: Option<&str>) -> Deletion {
        let origin = origin.to_string();
        if let (Some(id), Some(read)) = (id, self.ids_read.get(&origin))
            && !read.eq_ignore_ascii_case(id)
        {
            return Deletion::Superseded { origin };
        }
        self.deleted_at.insert(origin.clone());
        Deletion::Taken { origin }
    }

    /// An explicit delete that names the record by the source's own id only (LDAP content
    /// sync: its `entryUUID`): the record read with that id is gone, unless this read
    /// loaded another entry at its origin (`Deletion::Superseded`). The id is forgotten.
    pub fn deleted_id(&mut self, id: &str) -> Result<Deletion> {
        let id = id.to_lowercase();
        let Some(origin) = self.origin_of(&id)? else {
            return Ok(Deletion::Unseen);
        };
        self.tx
            .prepare_cached("DELETE FROM source_ids WHERE run_id = ?1 AND source_id = ?2")
            .and_then(|mut s| s.execute(params![self.run_id, id]))
            .map_err(|e| self.store.err(e))?;
        Ok(self.deleted(&origin, Some(&id)))
    }

    /// The source's own id of the record at `origin` (LDAP content sync: its `entryUUID`),
    /// for a later delete signal that names only the id (`origin_of`).
    pub fn source_id(&mut self, id: &str, origin: &str) -> Result<()> {
        let id = id.to_lowercase();
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO source_ids (run_id, source_id, origin) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![self.run_id, id, origin]))
            .map_err(|e| self.store.err(e))?;
        if self.patching.is_some() {
            self.ids_read.insert(origin.to_string(), id);
        }
        Ok(())
    }

    /// The origin of the record the source knows by `id`, if this load (or its base) saw it.
    pub fn origin_of(&mut self, id: &str) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT origin FROM source_ids WHERE run_id = ?1 AND source_id = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.run_id, id.to_lowercase()], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.store.err(e))
    }

    /// Patching: what the base held for the record at `origin` (or, for a desired user, with
    /// its key, unless this read loaded that key already) makes room for what was read now.
    /// The row with its key goes now (by the primary key); a row at its origin under another
    /// key when the load finishes (`replace_at_origins`), before anything looks at the whole.
    fn replace(&mut self, origin: &str, key: Option<&str>) -> Result<()> {
        // A record read after a delete signal at its origin is the source as it is now.
        self.deleted_at.remove(origin);
        let Some(loaded) = &mut self.patching else {
            return Ok(());
        };
        self.replaced_at
            .insert(origin.to_string(), key.map(str::to_string));
        let key = key.filter(|k| loaded.insert(k.to_string()));
        let run_id = self.run_id;
        if let Some(key) = key {
            self.tx
                .prepare_cached("DELETE FROM desired_users WHERE run_id = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![run_id, key]))
                .map_err(|e| self.store.err(e))?;
        }
        self.tx
            .prepare_cached("DELETE FROM rejects WHERE run_id = ?1 AND origin = ?2")
            .and_then(|mut s| s.execute(params![run_id, origin]))
            .map_err(|e| self.store.err(e))?;
        Ok(())
    }

    /// Patching, as the load finishes: a desired user the base held at an origin this read
    /// replaced, under another key than the record read there (or any, for a reject), is
    /// taken out, as `replace` would have done at once. One pass over the snapshot, whatever
    /// the number of records read.
    fn replace_at_origins(&mut self) -> Result<()> {
        if self.replaced_at.is_empty() {
            return Ok(());
        }
        let replaced = std::mem::take(&mut self.replaced_at);
        let run_id = self.run_id;
        let err = |e| self.store.err(e);
        self.tx
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS replaced_at (origin TEXT PRIMARY KEY, key TEXT);
                 DELETE FROM temp.replaced_at;",
            )
            .map_err(err)?;
        {
            let mut insert = self
                .tx
                .prepare("INSERT INTO temp.replaced_at (origin, key) VALUES (?1, ?2)")
                .map_err(err)?;
            for (origin, key) in &replaced {
                insert.execute(params![origin, key]).map_err(err)?;
            }
        }
        self.tx
            .execute(
                "DELETE FROM desired_users WHERE run_id = ?1
                   AND origin IN (SELECT origin FROM temp.replaced_at)
                   AND key IS NOT (SELECT r.key FROM temp.replaced_at r WHERE r.origin = desired_users.origin)",
                [run_id],
            )
            .and_then(|_| self.tx.execute("DELETE FROM temp.replaced_at", []))
            .map_err(err)?;
        Ok(())
    }

    /// As the load finishes, after `replace_at_origins`: what the desired state holds at
    /// the origins the source reported deleted (`deleted`) is taken out, desired users and
    /// rejects, in one pass over the snapshot whatever the number of signals.
    fn take_out_deleted(&mut self) -> Result<()> {
        if self.deleted_at.is_empty() {
            return Ok(());
        }
        let deleted = std::mem::take(&mut self.deleted_at);
        let run_id = self.run_id;
        let err = |e| self.store.err(e);
        self.tx
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS deleted_at (origin TEXT PRIMARY KEY);
                 DELETE FROM temp.deleted_at;",
            )
            .map_err(err)?;
        {
            let mut insert = self
                .tx
                .prepare("INSERT INTO temp.deleted_at (origin) VALUES (?1)")
                .map_err(err)?;
            for origin in &deleted {
                insert.execute([origin]).map_err(err)?;
            }
        }
        let taken = self
            .tx
            .execute(
                "DELETE FROM desired_users WHERE run_id = ?1 AND origin IN (SELECT origin FROM temp.deleted_at)",
                [run_id],
            )
            .and_then(|n| {
                self.tx.execute(
                    "DELETE FROM rejects WHERE run_id = ?1 AND origin IN (SELECT origin FROM temp.deleted_at)",
                    [run_id],
                )?;
                self.tx.execute("DELETE FROM temp.deleted_at", [])?;
                Ok(n)
            })
            .map_err(err)?;
        self.counts.deleted = taken as u64;
        self.counts.desired -= (taken as u64).min(self.counts.desired);
        Ok(())
    }

    pub fn desired(&mut self, user: &DesiredUser, origin: &str) -> Result<()> {
        self.desired_row(&DesiredRow::new(user.clone(), origin.to_string()))
    }

    /// Loads a desired user whose derived columns were computed already (`DesiredRow::new`).
    pub fn desired_row(&mut self, row: &DesiredRow) -> Result<()> {
        let (user, origin) = (&row.user, row.origin.as_str());
        self.counts.source += 1;
        self.replace(origin, Some(&user.key))?;
        let inserted = self
            .insert_desired
            .execute(params![
                self.run_id,
                user.key,
                user.username,
                row.username_folded,
                user.name,
                user.email,
                row.phones,
                row.fields,
                origin,
                row.digest,
                user.active,
            ])
            .map_err(|e| self.store.err(e))?;
        if inserted == 0 {
            self.duplicate_keys.insert(user.key.clone());
            self.insert_reject(&Reject {
                origin: origin.to_string(),
                key: Some(user.key.clone()),
                username: Some(user.username.clone()),
                reason: format!(
                    "duplicate key {}: another record has the same key",
                    user.key
                ),
            })?;
        } else {
            self.counts.desired += 1;
        }
        Ok(())
    }

    pub fn reject(&mut self, reject: &Reject) -> Result<()> {
        self.counts.source += 1;
        self.replace(&reject.origin, None)?;
        self.insert_reject(reject)
    }

    fn insert_reject(&mut self, reject: &Reject) -> Result<()> {
        self.counts.rejected += 1;
        self.tx
            .prepare_cached("INSERT INTO rejects (run_id, origin, key, username, reason) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut s| s.execute(params![self.run_id, reject.origin, reject.key, reject.username, reject.reason]))
            .map_err(|e| self.store.err(e))?;
        Ok(())
    }

    pub fn target(&mut self, user: &TargetUser) -> Result<()> {
        self.target_row(&TargetRow::new(user.clone()))
    }

    /// Loads a target user whose derived columns were computed already (`TargetRow::new`).
    /// An id listed twice (a listing that moved while it was paged) keeps its last listing.
    // Not `INSERT OR REPLACE`: a REPLACE may delete a row before it inserts one, so SQLite
    // opens a statement journal for every such insert (it copied each page the insert
    // touched, 6 % of a no-change plan's CPU at 100,000 users). The rare repeat is an UPDATE.
    pub fn target_row(&mut self, row: &TargetRow) -> Result<()> {
        let user = &row.user;
        self.counts.target += 1;
        self.counts.managed += u64::from(user.is_managed());
        let values = params![
            self.run_id,
            user.id,
            user.external_id,
            user.username,
            row.username_folded,
            user.name,
            user.email,
            row.phones,
            row.fields,
            user.active,
            user.version,
            row.digest,
            user.owner,
        ];
        let inserted = self
            .insert_target
            .execute(values)
            .map_err(|e| self.store.err(e))?;
        if inserted == 0 {
            self.tx
                .prepare_cached(
                    "UPDATE target_users SET external_id = ?3, username = ?4, username_folded = ?5, name = ?6, email = ?7,
                       phones = ?8, fields = ?9, active = ?10, version = ?11, digest = ?12, owner = ?13, owner_unknown = 0
                     WHERE run_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| s.execute(values))
                .map_err(|e| self.store.err(e))?;
        }
        Ok(())
    }

    /// Rejects the records that clash with each other (the first holder of a duplicate key,
    /// every holder of a duplicate username), records the counts, and commits.
    pub fn finish(mut self) -> Result<SnapshotCounts> {
        let run_id = self.run_id;
        self.replace_at_origins()?;
        self.take_out_deleted()?;
        for key in std::mem::take(&mut self.duplicate_keys) {
            self.move_to_rejects(
                "key = ?2",
                &key,
                &format!("duplicate key {key}: another record has the same key"),
            )?;
        }
        let clashing: Vec<String> = self
            .tx
            .prepare(
                "SELECT username_folded FROM desired_users WHERE run_id = ?1
                 GROUP BY username_folded HAVING count(*) > 1",
            )
            .and_then(|mut s| s.query_map([run_id], |r| r.get(0))?.collect())
            .map_err(|e| self.store.err(e))?;
        for username in clashing {
            self.move_to_rejects(
                "username_folded = ?2",
                &username,
                &format!("duplicate username {username}: records with different keys have the same username"),
            )?;
        }
        if let Some(loaded) = self.patching.take() {
            self.finish_patch(loaded)?;
        }
        self.count_patched_target()?;
        match self.claim_for.take() {
            Some((owner, Claim::ByRecords)) => self.apply_ownership(&owner)?,
            Some((owner, Claim::OnTarget)) => self.apply_target_owners(&owner)?,
            None => {}
        }
        // The target guard compares listings: every account roster wrote counts, whoever
        // owns it, so that another config taking its accounts over is not a shrink.
        self.tx
            .execute(
                "UPDATE runs SET source_count = ?2, source_complete = 1, target_count = ?3, rejected = ?4, target_managed = ?5 WHERE id = ?1",
                params![run_id, self.counts.source, self.counts.target, self.counts.rejected, self.counts.managed + self.counts.foreign],
            )
            .map_err(|e| self.store.err(e))?;
        self.store.commit_checkpoint_behind(self.tx)?;
        Ok(self.counts)
    }

    /// After an incremental load: a key this read loaded that another record holds among
    /// the rejects is a duplicate key (as a complete read would find it), and the counts are
    /// those of the whole patched snapshot, so that the next complete read is compared with
    /// the whole directory.
    fn finish_patch(&mut self, loaded: HashSet<String>) -> Result<()> {
        let clashing: Vec<String> = self
            .tx
            .prepare(
                "SELECT DISTINCT d.key FROM desired_users d
                 JOIN rejects j ON j.run_id = d.run_id AND j.key = d.key AND j.origin <> d.origin
                 WHERE d.run_id = ?1",
            )
            .and_then(|mut s| s.query_map([self.run_id], |r| r.get(0))?.collect())
            .map_err(|e| self.store.err(e))?;
        for key in clashing.into_iter().filter(|k| loaded.contains(k)) {
            self.move_to_rejects(
                "key = ?2",
                &key,
                &format!("duplicate key {key}: another record has the same key"),
            )?;
        }
        let (desired, rejected): (i64, i64) = self
            .tx
            .query_row(
                "SELECT (SELECT count(*) FROM desired_users WHERE run_id = ?1),
                        (SELECT count(*) FROM rejects WHERE run_id = ?1)",
                [self.run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.store.err(e))?;
        self.counts.desired = desired.max(0) as u64;
        self.counts.rejected = rejected.max(0) as u64;
        self.counts.source = self.counts.desired + self.counts.rejected;
        Ok(())
    }

    pub(super) fn move_to_rejects(
        &mut self,
        filter: &str,
        value: &str,
        reason: &str,
    ) -> Result<()> {
        let moved = self
            .tx
            .execute(
                &format!(
                    "INSERT INTO rejects (run_id, origin, key, username, reason)
                     SELECT run_id, origin, key, username, ?3 FROM desired_users WHERE run_id = ?1 AND {filter}"
                ),
                params![self.run_id, value, reason],
            )
            .and_then(|n| {
                self.tx.execute(&format!("DELETE FROM desired_users WHERE run_id = ?1 AND {filter}"), params![self.run_id, value])?;
                Ok(n)
            })
            .map_err(|e| self.store.err(e))?;
        self.counts.rejected += moved as u64;
        self.counts.desired -= (moved as u64).min(self.counts.desired);
        Ok(())
    }
}

fn desired_from(row: &Row<'_>, at: usize) -> rusqlite::Result<DesiredUser> {
    Ok(DesiredUser {
        key: row.get(at)?,
        username: row.get(at + 1)?,
        name: row.get(at + 2)?,
        email: row.get(at + 3)?,
        phones: from_json(row, at + 4)?,
        fields: from_json::<BTreeMap<String, FieldValue>>(row, at + 5)?,
        active: row.get(at + 6)?,
    })
}

const DESIRED_COLUMNS: &str = "d.key, d.username, d.name, d.email, d.phones, d.fields, d.active";
const TARGET_COLUMNS: &str = "t.id, t.external_id, t.username, t.name, t.email, t.phones, t.fields, t.active, t.version, t.owner";

fn target_from(row: &Row<'_>, at: usize) -> rusqlite::Result<TargetUser> {
    Ok(TargetUser {
        id: row.get(at)?,
        external_id: row.get(at + 1)?,
        username: row.get(at + 2)?,
        name: row.get(at + 3)?,
        email: row.get(at + 4)?,
        phones: from_json(row, at + 5)?,
        fields: from_json(row, at + 6)?,
        active: row.get(at + 7)?,
        version: row.get(at + 8)?,
        owner: row.get(at + 9)?,
    })
}

/// A JSON column, parsed from the row's own text (no copy of it first).
fn from_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, at: usize) -> rusqlite::Result<T> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, e)
    };
    let text = row.get_ref(at)?.as_str().map_err(|e| failed(Box::new(e)))?;
    serde_json::from_str(text).map_err(|e| failed(Box::new(e)))
}

impl Store {
    /// Fills `temp.{pairs}` (created if needed, emptied first) with the matching users and
    /// groups both follow: by key (externalId) first; then an unmatched desired object takes
    /// the target object with the same folded `{name}` if that object is unmanaged, or
    /// carries a key that no source record has, kept or rejected (re-keyed). The table and
    /// column names are roster's own constants, never input.
    pub(super) fn match_by_key_then_name(
        &self,
        run_id: i64,
        pairs: &str,
        desired: &str,
        target: &str,
        name: &str,
    ) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {pairs} (desired_key TEXT PRIMARY KEY, target_id TEXT UNIQUE, how TEXT NOT NULL);
                 DELETE FROM temp.{pairs};"
            ))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO temp.{pairs}
                     SELECT d.key, t.id, 'key' FROM {desired} d
                     JOIN {target} t ON t.run_id = d.run_id AND t.external_id = d.key
                     WHERE d.run_id = ?1 ORDER BY t.id"
                ),
                [run_id],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO temp.{pairs}
                     SELECT d.key, t.id, '{name}' FROM {desired} d
                     JOIN {target} t ON t.run_id = d.run_id AND t.{name}_folded = d.{name}_folded
                     WHERE d.run_id = ?1
                       AND d.key NOT IN (SELECT desired_key FROM temp.{pairs})
                       AND t.id NOT IN (SELECT target_id FROM temp.{pairs})
                       AND (t.external_id IS NULL
                            OR (t.external_id NOT IN (SELECT key FROM {desired} WHERE run_id = ?1)
                                AND t.external_id NOT IN (SELECT key FROM rejects WHERE run_id = ?1 AND key IS NOT NULL)))
                     ORDER BY t.id"
                ),
                [run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Pairs the run's desired and target users and hands each pair to `each`, without
    /// holding either snapshot in memory. Matching is by key (externalId) first; then a
    /// desired user without a match takes the target account with the same username if
    /// that account is unmanaged, or carries a key no source record has (re-keyed).
    pub fn for_each_pair(&self, run_id: i64, mut each: impl FnMut(Pair)) -> Result<()> {
        self.match_by_key_then_name(run_id, "pairs", "desired_users", "target_users", "username")?;

        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {DESIRED_COLUMNS}, p.how, dz.target_id IS NOT NULL, {TARGET_COLUMNS}
                 FROM desired_users d
                 LEFT JOIN temp.pairs p ON p.desired_key = d.key
                 LEFT JOIN target_users t ON t.run_id = d.run_id AND t.id = p.target_id
                 LEFT JOIN deactivated dz ON dz.target_id = t.id
                 WHERE d.run_id = ?1"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let desired = desired_from(row, 0).map_err(|e| self.err(e))?;
            let how: Option<String> = row.get(7).map_err(|e| self.err(e))?;
            let pair = match how {
                None => Pair::SourceOnly(desired),
                Some(how) => Pair::Both {
                    desired,
                    deactivated_by_roster: row.get(8).map_err(|e| self.err(e))?,
                    target: target_from(row, 9).map_err(|e| self.err(e))?,
                    matched_by: if how == "key" {
                        MatchedBy::Key
                    } else {
                        MatchedBy::Username
                    },
                },
            };
            each(pair);
        }

        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {TARGET_COLUMNS},
                   CASE
                     WHEN t.external_id IN (SELECT key FROM rejects WHERE run_id = ?1 AND key IS NOT NULL)
                       THEN 'its source record was rejected (see `roster show`)'
                     WHEN t.username_folded IN (SELECT lower(username) FROM rejects WHERE run_id = ?1 AND username IS NOT NULL)
                       THEN 'a rejected source record has its username (see `roster show`)'
                     WHEN t.external_id IN (SELECT key FROM desired_users WHERE run_id = ?1)
                       THEN 'another target account has the same externalId'
                     WHEN t.owner_unknown = 1
                       THEN 'owner unknown: its externalId names no owner (written by an earlier roster) and this config''s state store has no record of making it'
                   END
                 FROM target_users t
                 WHERE t.run_id = ?1 AND t.id NOT IN (SELECT target_id FROM temp.pairs)"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let target = target_from(row, 0).map_err(|e| self.err(e))?;
            let protected: Option<String> = row.get(10).map_err(|e| self.err(e))?;
            each(Pair::TargetOnly { target, protected });
        }
        Ok(())
    }

    /// A digest of the run's whole desired state (order-independent of the read).
    pub fn desired_digest(&self, run_id: i64) -> Result<String> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT digest FROM desired_users WHERE run_id = ?1 ORDER BY key")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.err(e))?;
        let mut hasher = Sha256::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let digest: String = row.get(0).map_err(|e| self.err(e))?;
            hasher.update(digest.as_bytes());
        }
        Ok(hex(hasher.finalize()))
    }

    /// How many source records (users and groups) a run rejected.
    pub fn reject_count(&self, run_id: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM rejects WHERE run_id = ?1",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// The rejects of a run.
    pub fn rejects(&self, run_id: i64) -> Result<Vec<Reject>> {
        let mut stmt = self
            .conn
            .prepare("SELECT origin, key, username, reason FROM rejects WHERE run_id = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(Reject {
                    origin: r.get(0)?,
                    key: r.get(1)?,
                    username: r.get(2)?,
                    reason: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Records that roster took an account out of service, so that it is reactivated when
    /// it returns to the source.
    pub fn record_deactivated(
        &self,
        target_id: &str,
        key: &str,
        plan_id: &str,
        at: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO deactivated (target_id, key, plan_id, at) VALUES (?1, ?2, ?3, ?4)",
                params![target_id, key, plan_id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn forget_deactivated(&self, target_id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM deactivated WHERE target_id = ?1", [target_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DesiredUser;

    fn user(key: &str, username: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            username: username.into(),
            ..DesiredUser::default()
        }
    }

    fn target(id: &str, key: Option<&str>, username: &str) -> TargetUser {
        TargetUser {
            id: id.into(),
            external_id: key.map(Into::into),
            username: username.into(),
            active: true,
            ..TargetUser::default()
        }
    }

    use crate::store::temp_store as store;

    #[test]
    fn duplicate_keys_and_usernames_reject_every_record_involved_and_protect_their_accounts() {
        let (_dir, mut store) = store();
        let run = store
            .begin_run(crate::store::RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader
            .desired(&user("k1", "alice"), "uid=alice")
            .expect("load");
        loader
            .desired(&user("k1", "alice2"), "uid=alice2")
            .expect("load");
        loader.desired(&user("k2", "Bob"), "uid=bob").expect("load");
        loader
            .desired(&user("k3", "bob"), "uid=bob2")
            .expect("load");
        loader
            .desired(&user("k4", "carol"), "uid=carol")
            .expect("load");
        loader
            .target(&target("t1", Some("k1"), "alice"))
            .expect("load");
        loader
            .target(&target("t2", Some("k2"), "bob"))
            .expect("load");
        loader
            .target(&target("t9", Some("k9"), "gone"))
            .expect("load");
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.source, counts.desired, counts.rejected), (5, 1, 4));

        let mut rejects: Vec<String> = store
            .rejects(run)
            .expect("rejects")
            .into_iter()
            .map(|r| format!("{} {}", r.origin, r.reason))
            .collect();
        rejects.sort();
        assert_eq!(
            rejects,
            [
                "uid=alice duplicate key k1: another record has the same key",
                "uid=alice2 duplicate key k1: another record has the same key",
                "uid=bob duplicate username bob: records with different keys have the same username",
                "uid=bob2 duplicate username bob: records with different keys have the same username",
            ]
        );

        let mut seen = Vec::new();
        store
            .for_each_pair(run, |pair| {
                seen.push(match pair {
                    Pair::SourceOnly(d) => format!("source-only {}", d.username),
                    Pair::Both { desired, .. } => format!("both {}", desired.username),
                    Pair::TargetOnly { target, protected } => format!(
                        "target-only {} protected={}",
                        target.username,
                        protected.is_some()
                    ),
                })
            })
            .expect("pairs");
        seen.sort();
        assert_eq!(
            seen,
            [
                "source-only carol",
                "target-only alice protected=true",
                "target-only bob protected=true",
                "target-only gone protected=false"
            ]
        );
    }

    #[test]
    fn matching_is_by_key_then_by_username_for_unmanaged_or_orphaned_accounts() {
        let (_dir, mut store) = store();
        let run = store
            .begin_run(crate::store::RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        for (key, name) in [
            ("k1", "alice"),
            ("k2", "bob"),
            ("k3", "carol"),
            ("k4", "dave"),
        ] {
            loader.desired(&user(key, name), name).expect("load");
        }
        loader
            .target(&target("t1", Some("k1"), "alice-renamed"))
            .expect("load");
        loader.target(&target("t2", None, "BOB")).expect("load");
        loader
            .target(&target("t3", Some("old-key"), "carol"))
            .expect("load");
        loader
            .target(&target("t4", Some("k1"), "dave"))
            .expect("load");
        loader.finish().expect("finish");
        let mut seen = Vec::new();
        store
            .for_each_pair(run, |pair| {
                seen.push(match pair {
                    Pair::SourceOnly(d) => format!("{} new", d.username),
                    Pair::Both {
                        desired,
                        target,
                        matched_by,
                        ..
                    } => format!("{} -> {} by {matched_by:?}", desired.username, target.id),
                    Pair::TargetOnly { target, protected } => format!(
                        "{} alone, protected: {}",
                        target.id,
                        protected.unwrap_or_default()
                    ),
                })
            })
            .expect("pairs");
        seen.sort();
        assert_eq!(
            seen,
            [
                "alice -> t1 by Key",
                "bob -> t2 by Username",
                "carol -> t3 by Username",
                "dave new",
                "t4 alone, protected: another target account has the same externalId",
            ]
        );
    }

    #[test]
    fn a_target_account_listed_twice_keeps_its_last_listing() {
        let (_dir, mut store) = store();
        let run = store
            .begin_run(crate::store::RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader
            .target(&target("t1", Some("k1"), "alice"))
            .expect("load");
        loader.target(&target("t2", None, "bob")).expect("load");
        loader
            .target(&TargetUser {
                version: Some("W/\"2\"".into()),
                ..target("t1", Some("k9"), "alice-renamed")
            })
            .expect("load again");
        loader.finish().expect("finish");
        let mut seen = Vec::new();
        store
            .for_each_pair(run, |pair| {
                if let Pair::TargetOnly { target, .. } = pair {
                    seen.push(format!(
                        "{} {} {:?} {:?}",
                        target.id, target.username, target.external_id, target.version
                    ));
                }
            })
            .expect("pairs");
        seen.sort();
        assert_eq!(
            seen,
            [
                "t1 alice-renamed Some(\"k9\") Some(\"W/\\\"2\\\"\")",
                "t2 bob None None"
            ]
        );
    }

    #[test]
    fn inactive_desired_users_are_stored_and_their_digest_says_so() {
        let active = user("k1", "alice");
        let inactive = DesiredUser {
            active: false,
            ..active.clone()
        };
        assert_ne!(desired_digest(&active), desired_digest(&inactive));
        assert!(
            !json(&active).contains("active"),
            "an active user serialises as before the field existed"
        );
        let old: DesiredUser = serde_json::from_str(
            r#"{"key":"k","username":"u","name":null,"email":null,"phones":[],"fields":{}}"#,
        )
        .expect("old JSON loads");
        assert!(old.active);

        let (_dir, mut store) = store();
        let run = store
            .begin_run(crate::store::RunKind::Plan, "digest", chrono::Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.desired(&inactive, "uid=alice").expect("load");
        loader.desired(&user("k2", "bob"), "uid=bob").expect("load");
        loader
            .target(&target("t1", Some("k1"), "alice"))
            .expect("load");
        loader.finish().expect("finish");
        let mut seen = Vec::new();
        store
            .for_each_pair(run, |pair| {
                if let Pair::Both { desired, .. } | Pair::SourceOnly(desired) = pair {
                    seen.push((desired.username, desired.active));
                }
            })
            .expect("pairs");
        seen.sort();
        assert_eq!(
            seen,
            [("alice".to_string(), false), ("bob".to_string(), true)]
        );
    }
}
