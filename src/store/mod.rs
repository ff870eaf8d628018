//! The state store: one SQLite file holding runs, the two snapshots, rejects, plans and the
//! apply journal.
//!
//! # Migrations
//! `schema/NNNN_*.sql` are compiled in (`MIGRATIONS`) and applied in order inside one
//! exclusive transaction; `PRAGMA user_version` records how many have run. Never edit or
//! remove a migration once it has landed: add a new file.
//!
//! # Concurrency and durability
//! The database runs in WAL mode with a busy timeout, so the apply's journal writer (one
//! connection, `apply/journal.rs`) commits while the workers and the main thread read
//! through connections of their own. `synchronous=NORMAL` in WAL mode keeps
//! every committed transaction across a killed process, which is what the journal needs
//! (a power cut may lose the last commits; a resumed apply then redoes them, and creates are
//! looked up before they are repeated). Runs of roster exclude each other with the `lock` row.
//!
//! # Performance
//! Loads use one transaction and `prepare_cached`; the diff is a keyed join in SQL.

mod draft;
mod groups;
mod ignored;
mod journal;
mod kept;
mod lock;
mod missing;
mod ownership;
mod reads;
mod runs;
mod snapshot;
mod target_patch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use draft::Draft;
pub use groups::GroupDiff;
pub use journal::{ActionRecord, PlanRecord};
pub use lock::{LockGuard, LockHolder};
pub use reads::{LastGoodRead, ReadKind, SourceReadRecord};
pub use runs::{
    AppliedCounts, Channel, Delivery, Outcome, RunFilter, RunKind, RunOutcome, RunRecord,
};
pub use snapshot::{Claim, Deletion, DesiredRow, Loader, SnapshotCounts, TargetRow};
pub use target_patch::TargetBase;

/// The schema, in order. Append only.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../schema/0001_initial.sql"),
    ),
    ("0002_groups", include_str!("../../schema/0002_groups.sql")),
    (
        "0003_inactive_users",
        include_str!("../../schema/0003_inactive_users.sql"),
    ),
    (
        "0004_lock_and_target_guard",
        include_str!("../../schema/0004_lock_and_target_guard.sql"),
    ),
    (
        "0005_reports_run_results",
        include_str!("../../schema/0005_reports_run_results.sql"),
    ),
    (
        "0006_trust_plan_digest",
        include_str!("../../schema/0006_trust_plan_digest.sql"),
    ),
    (
        "0007_logintc_ownership",
        include_str!("../../schema/0007_logintc_ownership.sql"),
    ),
    (
        "0008_incremental_cookies",
        include_str!("../../schema/0008_incremental_cookies.sql"),
    ),
    (
        "0009_scim_ignored_fields",
        include_str!("../../schema/0009_scim_ignored_fields.sql"),
    ),
    (
        "0010_policy_missing_marks",
        include_str!("../../schema/0010_policy_missing_marks.sql"),
    ),
    (
        "0011_owner_target_owner",
        include_str!("../../schema/0011_owner_target_owner.sql"),
    ),
    (
        "0012_targets_kept_state",
        include_str!("../../schema/0012_targets_kept_state.sql"),
    ),
    (
        "0013_syncprov_uuids",
        include_str!("../../schema/0013_syncprov_uuids.sql"),
    ),
    (
        "0014_plan_draft",
        include_str!("../../schema/0014_plan_draft.sql"),
    ),
    (
        "0015_applied_user_actions",
        include_str!("../../schema/0015_applied_user_actions.sql"),
    ),
];

/// How many runs keep their desired/target snapshots; older ones are pruned.
const SNAPSHOTS_KEPT: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {error}")]
    Sqlite {
        path: String,
        error: rusqlite::Error,
    },
    #[error("cannot create the directory for the state store {path}: {message}")]
    Dir { path: String, message: String },
    #[error(
        "state store {path} was written by a newer roster (schema version {found}, this roster knows {known})"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Locked(LockHolder),
    #[error(
        "refusing to release the lock {}: `roster {}` (pid {}) is still running; wait for it to finish, or stop it first",
        .0.lock_id, .0.command, .0.pid
    )]
    HolderAlive(LockHolder),
    #[error(
        "refusing to release the lock {}: it is held by `roster {}` (pid {}) on {}, another host, and that run may still be going; if you are sure it is not, run `roster unlock {} --force`",
        .0.lock_id, .0.command, .0.pid, .0.host, .0.lock_id
    )]
    HolderElsewhere(LockHolder),
    #[error("state store {path}: {message}")]
    Invalid { path: String, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Checkpoints started on threads of their own (`checkpoint_behind`), joined when the
    /// store is dropped.
    checkpoints: std::cell::RefCell<Vec<std::thread::JoinHandle<()>>>,
}

/// SQLite's default `wal_autocheckpoint`, in pages.
const AUTOCHECKPOINT_PAGES: i64 = 1000;

impl Drop for Store {
    fn drop(&mut self) {
        for running in self.checkpoints.get_mut().drain(..) {
            // It only copies committed pages: a panic there loses nothing.
            let _ = running.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) the state store and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| sqlite(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            checkpoints: Default::default(),
        };
        store.configure().map_err(|e| sqlite(path, e))?;
        store.migrate()?;
        Ok(store)
    }

    /// A second connection to the same file, for another thread (apply workers).
    pub fn reopen(&self) -> Result<Store> {
        let conn = Connection::open(&self.path).map_err(|e| sqlite(&self.path, e))?;
        let store = Store {
            conn,
            path: self.path.clone(),
            checkpoints: Default::default(),
        };
        store.configure().map_err(|e| sqlite(&self.path, e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(Duration::from_secs(10))?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        // The pairing's temporary tables (one row and two index entries per paired user) in
        // a temporary file behind a small page cache: in memory they grew with the
        // directory, 345 against 154 MiB at the peak of a no-change plan of 1,000,000 users
        // (issue 16), where at 100,000 either way takes the same time.
        self.conn.pragma_update(None, "temp_store", "FILE")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let known = MIGRATIONS.len() as i64;
        // Up to date (the common case): a plain read, so that `roster runs` and `show` do not
        // queue behind the write transaction of a run that is reading its sources.
        let version = self.schema_version().map_err(|e| sqlite(&path, e))?;
        if version == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .map_err(|e| sqlite(&path, e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| sqlite(&path, e))?;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        for (_, sql) in &MIGRATIONS[version as usize..] {
            tx.execute_batch(sql).map_err(|e| sqlite(&path, e))?;
        }
        tx.pragma_update(None, "user_version", known)
            .map_err(|e| sqlite(&path, e))?;
        tx.commit().map_err(|e| sqlite(&path, e))
    }

    /// Commits `tx`, a large write (a run's snapshots), leaving the copy of its pages from the
    /// WAL into the database to a thread of its own: SQLite would make it on this thread,
    /// inside the commit (the WAL is past `wal_autocheckpoint`), while the run waits (3.1 of
    /// the 16.8 s of an incremental plan of 1,000,000 users). The checkpoint is passive: it
    /// never blocks this connection's reads and writes, and one that finds another running
    /// gives way. The WAL is whole either way; only where the pages lie differs.
    pub(crate) fn commit_checkpoint_behind(&self, tx: rusqlite::Transaction<'_>) -> Result<()> {
        let err = |e| self.err(e);
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(err)?;
        let committed = tx.commit();
        self.conn
            .pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)
            .map_err(err)?;
        committed.map_err(err)?;
        self.checkpoint_behind();
        Ok(())
    }

    /// Starts a passive checkpoint on a thread of its own (see `commit_checkpoint_behind`).
    /// One that finds another running gives way at once.
    pub(crate) fn checkpoint_behind(&self) {
        let path = self.path.clone();
        let running = std::thread::spawn(move || {
            let checkpoint = Connection::open(&path)
                .and_then(|conn| conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())));
            if let Err(e) = checkpoint {
                log::debug!("checkpointing {}: {e}", path.display());
            }
        });
        let mut checkpoints = self.checkpoints.borrow_mut();
        checkpoints.retain(|c| !c.is_finished());
        checkpoints.push(running);
    }

    fn schema_version(&self) -> rusqlite::Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite(&self.path, e)
    }

    /// Drops the snapshots of all but the last few runs; runs, plans, rejects and the
    /// journal are kept as history.
    pub fn prune_snapshots(&self) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "DELETE FROM desired_users WHERE run_id < (SELECT coalesce(max(id), 0) - {SNAPSHOTS_KEPT} FROM runs);
                 DELETE FROM target_users WHERE run_id < (SELECT coalesce(max(id), 0) - {SNAPSHOTS_KEPT} FROM runs);
                 DELETE FROM source_ids WHERE run_id < (SELECT coalesce(max(id), 0) - {SNAPSHOTS_KEPT} FROM runs);"
            ))
            .map_err(|e| self.err(e))
    }
}

/// A store in a directory of its own that goes with it, for tests.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("state.db")).expect("open");
    (dir, store)
}

fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        error: source,
    }
}

fn parse_time(s: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}
