//! The state store: one SQLite file holding runs, the two snapshots, rejects, plans and the
//! apply journal.
//!
//! # Migrations
//! `schema/NNNN_*.sql` are compiled in (`MIGRATIONS`) and applied in order inside one
//! exclusive transaction; `PRAGMA user_version` records how many have run. Never edit or
//! remove a migration once it has landed: add a new file.
//!
//! # Concurrency and durability
//! The database runs in WAL mode with a busy timeout, so the apply workers (one connection
//! each) can journal while the main thread reads. `synchronous=NORMAL` in WAL mode keeps
//! every committed transaction across a killed process, which is what the journal needs
//! (a power cut may lose the last commits; a resumed apply then redoes them, and creates are
//! looked up before they are repeated). Runs of roster exclude each other with the `lock` row.
//!
//! # Performance
//! Loads use one transaction and `prepare_cached`; the diff is a keyed join in SQL.

mod groups;
mod journal;
mod lock;
mod snapshot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

pub use groups::GroupDiff;
pub use journal::{ActionRecord, PlanRecord};
pub use lock::{LockGuard, LockHolder};
pub use snapshot::{Loader, SnapshotCounts};

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
    #[error("state store {path}: {message}")]
    Invalid { path: String, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// What a run did, for `finish_run`.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub outcome: String,
    pub error: Option<String>,
    pub plan_id: Option<String>,
}

/// One row of `roster runs`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub host: String,
    pub pid: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub source_count: Option<i64>,
    pub target_count: Option<i64>,
    pub rejected: Option<i64>,
    pub plan_id: Option<String>,
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
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let known = MIGRATIONS.len() as i64;
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

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        sqlite(&self.path, e)
    }

    /// Records the start of a run and returns its id.
    pub fn begin_run(&self, kind: &str, config_digest: &str, now: DateTime<Utc>) -> Result<i64> {
        let host = lock::hostname();
        self.conn
            .execute(
                "INSERT INTO runs (kind, started_at, host, pid, config_digest) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![kind, now.to_rfc3339(), host, std::process::id(), config_digest],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&self, run_id: i64, outcome: &RunOutcome, now: DateTime<Utc>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, error = ?4, plan_id = coalesce(?5, plan_id) WHERE id = ?1",
                params![run_id, now.to_rfc3339(), outcome.outcome, outcome.error, outcome.plan_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks this run's source read as accepted: it becomes the "last good read" that the
    /// next run's shrink check compares against.
    pub fn accept_source(&self, run_id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET source_accepted = 1 WHERE id = ?1",
                [run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The number of usable users (records read less those rejected) of the last accepted
    /// source read before `run_id`.
    pub fn last_good_source_count(&self, run_id: i64) -> Result<Option<u64>> {
        self.conn
            .query_row(
                "SELECT source_count - coalesce(rejected, 0) FROM runs
                 WHERE source_accepted = 1 AND id < ?1 ORDER BY id DESC LIMIT 1",
                [run_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(|n| n.max(0) as u64))
            .map_err(|e| self.err(e))
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, started_at, finished_at, host, pid, outcome, error, source_count, target_count, rejected, plan_id
                 FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    started_at: parse_time(r.get::<_, String>(2)?),
                    finished_at: r.get::<_, Option<String>>(3)?.map(parse_time),
                    host: r.get(4)?,
                    pid: r.get(5)?,
                    outcome: r.get(6)?,
                    error: r.get(7)?,
                    source_count: r.get(8)?,
                    target_count: r.get(9)?,
                    rejected: r.get(10)?,
                    plan_id: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self.runs(usize::MAX >> 2)?.into_iter().find(|r| r.id == id))
    }

    /// Drops the snapshots of all but the last few runs; runs, plans, rejects and the
    /// journal are kept as history.
    pub fn prune_snapshots(&self) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "DELETE FROM desired_users WHERE run_id < (SELECT coalesce(max(id), 0) - {SNAPSHOTS_KEPT} FROM runs);
                 DELETE FROM target_users WHERE run_id < (SELECT coalesce(max(id), 0) - {SNAPSHOTS_KEPT} FROM runs);"
            ))
            .map_err(|e| self.err(e))
    }
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
