//! An incremental target read: the base run's target snapshot, patched with the accounts
//! the target listed as changed since (SCIM `meta.lastModified`).
//!
//! The copy starts from the base run's listing, less the accounts roster itself deleted
//! since that read (the journal's applied user deletes: a deletion leaves nothing for a
//! filter to list), and every account listed now replaces its row by id
//! (`Loader::target` is an upsert). The owner marks are laid over the whole patched snapshot
//! again when the load finishes, as for a complete listing. Whether the patch can be
//! trusted is the caller's to check against the total the target states
//! (`target_rows`); `clear_target` drops it for a whole listing.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Loader, Result, Store, parse_time};

/// The base run's target snapshot, when it is whole in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetBase {
    /// When the base run's read started (both sides are read after it).
    pub read_at: DateTime<Utc>,
    /// Accounts the base run listed.
    pub accounts: u64,
}

impl Store {
    /// The target snapshot of `base_run`, if the store still holds it whole (as many rows
    /// as the run counted) and the run recorded when it read.
    pub fn target_base(&self, base_run: i64) -> Result<Option<TargetBase>> {
        let row: Option<(Option<i64>, i64, String)> = self
            .conn
            .query_row(
                "SELECT r.target_count,
                        (SELECT count(*) FROM target_users t WHERE t.run_id = r.id),
                        s.read_at
                 FROM runs r JOIN source_reads s ON s.run_id = r.id WHERE r.id = ?1",
                [base_run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match row {
            Some((Some(counted), held, read_at)) if counted == held => Some(TargetBase {
                read_at: parse_time(read_at),
                accounts: held.max(0) as u64,
            }),
            _ => None,
        })
    }
}

impl Loader<'_> {
    /// Starts this run's target snapshot from `base_run`'s, less the user accounts roster
    /// deleted (journaled as applied) since `since`. Returns how many accounts were copied.
    pub fn patch_target_from(&mut self, base_run: i64, since: DateTime<Utc>) -> Result<u64> {
        let copied = self
            .tx
            .execute(
                "INSERT INTO target_users (run_id, id, external_id, username, username_folded, name, email, phones, fields, active, version, digest, owner)
                 SELECT ?1, id, external_id, username, username_folded, name, email, phones, fields, active, version, digest, owner
                 FROM target_users WHERE run_id = ?2",
                params![self.run_id, base_run],
            )
            .and_then(|copied| {
                let deleted = self.tx.execute(
                    "DELETE FROM target_users WHERE run_id = ?1 AND id IN (
                         SELECT target_id FROM plan_actions
                         WHERE object = 'user' AND status = 'applied'
                           AND finished_at >= strftime('%Y-%m-%dT%H:%M:%fZ', ?2, '-1 seconds')
                           AND action = 'delete' AND target_id IS NOT NULL
                           AND julianday(finished_at) >= julianday(?2))",
                    params![self.run_id, since.to_rfc3339()],
                )?;
                Ok(copied - deleted)
            })
            .map_err(|e| self.store.err(e))?;
        self.target_patched = true;
        Ok(copied as u64)
    }

    /// Accounts this run's target snapshot holds now.
    pub fn target_rows(&mut self) -> Result<u64> {
        self.tx
            .query_row(
                "SELECT count(*) FROM target_users WHERE run_id = ?1",
                [self.run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.store.err(e))
    }

    /// Drops this run's target snapshot (a patch not to be trusted), for a whole listing.
    pub fn clear_target(&mut self) -> Result<()> {
        self.tx
            .execute("DELETE FROM target_users WHERE run_id = ?1", [self.run_id])
            .map_err(|e| self.store.err(e))?;
        self.counts.target = 0;
        self.counts.managed = 0;
        self.target_patched = false;
        Ok(())
    }

    /// After a patched load: the target counts are those of the whole patched snapshot.
    pub(super) fn count_patched_target(&mut self) -> Result<()> {
        if !self.target_patched {
            return Ok(());
        }
        let (all, managed): (i64, i64) = self
            .tx
            .query_row(
                "SELECT count(*), count(external_id) FROM target_users WHERE run_id = ?1",
                [self.run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.store.err(e))?;
        self.counts.target = all.max(0) as u64;
        self.counts.managed = managed.max(0) as u64;
        Ok(())
    }
}
