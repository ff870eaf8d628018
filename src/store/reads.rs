//! How each run read its source (`schema/0008_incremental_cookies.sql`), and where the next
//! incremental read starts.
//!
//! A run records its read with the load; the record counts only once the read was accepted
//! and the run's plan stored, so a cookie from a read that was refused, failed or never
//! planned is never used: `last_good_read` asks for both.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, parse_time};

/// Whether a read was of the whole source or only of what changed since a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Complete,
    Incremental,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadKind::Complete => "complete",
            ReadKind::Incremental => "incremental",
        }
    }

    fn parse(text: &str) -> Option<ReadKind> {
        match text {
            "complete" => Some(ReadKind::Complete),
            "incremental" => Some(ReadKind::Incremental),
            _ => None,
        }
    }
}

/// One run's source read, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReadRecord {
    pub run_id: i64,
    /// The source as described (its URL or path).
    pub source: String,
    /// The server's identity at the read, when the read was tracked.
    pub server: Option<String>,
    /// Where the next incremental read starts; `None` when the read kept none.
    pub cookie: Option<String>,
    pub kind: ReadKind,
    /// Desired users in the run's snapshot: what the next incremental read starts from.
    pub desired: u64,
    /// Records read (every record for a complete read, the changed ones otherwise).
    pub changed: u64,
    /// Explicit delete signals applied.
    pub deleted: u64,
    /// When the read started.
    pub read_at: DateTime<Utc>,
}

/// The newest good read before a run, with what decides whether the next read may be
/// incremental.
#[derive(Debug, Clone, PartialEq)]
pub struct LastGoodRead {
    pub run_id: i64,
    /// The config digest the run was made with: another mapping means another desired state.
    pub config_digest: String,
    /// The run's read record; `None` for a run from before reads were recorded.
    pub read: Option<SourceReadRecord>,
    /// Desired users the run's snapshot still holds (pruned snapshots hold none).
    pub snapshot: u64,
    /// When the newest good complete read started, if there is one.
    pub last_complete_at: Option<DateTime<Utc>>,
    /// Good incremental reads since that complete read.
    pub incremental_since_complete: u64,
}

/// A good read: its source was accepted and its plan stored.
const GOOD: &str = "r.source_accepted = 1 AND EXISTS (SELECT 1 FROM plans p WHERE p.run_id = r.id)";

impl Store {
    /// Records how `record.run_id` read its source (replacing an earlier record of it);
    /// `desired` is counted from the run's snapshot, whatever the record says.
    pub fn record_source_read(&self, record: &SourceReadRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO source_reads (run_id, source, server, cookie, kind, desired, changed, deleted, read_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, (SELECT count(*) FROM desired_users WHERE run_id = ?1), ?6, ?7, ?8)",
                params![
                    record.run_id,
                    record.source,
                    record.server,
                    record.cookie,
                    record.kind.as_str(),
                    record.changed,
                    record.deleted,
                    record.read_at.to_rfc3339(),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest good read (accepted, its plan stored) before `run_id`, whatever it was.
    pub fn last_good_read(&self, run_id: i64) -> Result<Option<LastGoodRead>> {
        let newest = self
            .conn
            .query_row(
                &format!(
                    "SELECT r.id, r.config_digest, s.run_id, s.source, s.server, s.cookie, s.kind,
                            s.desired, s.changed, s.deleted, s.read_at,
                            (SELECT count(*) FROM desired_users d WHERE d.run_id = r.id)
                     FROM runs r LEFT JOIN source_reads s ON s.run_id = r.id
                     WHERE {GOOD} AND r.id < ?1 ORDER BY r.id DESC LIMIT 1"
                ),
                [run_id],
                |row| {
                    let read = match row.get::<_, Option<i64>>(2)? {
                        None => None,
                        Some(id) => {
                            let kind: String = row.get(6)?;
                            Some(SourceReadRecord {
                                run_id: id,
                                source: row.get(3)?,
                                server: row.get(4)?,
                                cookie: row.get(5)?,
                                // An unknown word is a read not to start from.
                                kind: ReadKind::parse(&kind).unwrap_or(ReadKind::Complete),
                                desired: row.get::<_, i64>(7)?.max(0) as u64,
                                changed: row.get::<_, i64>(8)?.max(0) as u64,
                                deleted: row.get::<_, i64>(9)?.max(0) as u64,
                                read_at: parse_time(row.get(10)?),
                            })
                        }
                    };
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        read,
                        row.get::<_, i64>(11)?.max(0) as u64,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, config_digest, read, snapshot)) = newest else {
            return Ok(None);
        };
        // Runs from before reads were recorded were complete reads.
        let complete: Option<(i64, Option<String>)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT r.id, s.read_at FROM runs r LEFT JOIN source_reads s ON s.run_id = r.id
                     WHERE {GOOD} AND r.id < ?1 AND coalesce(s.kind, 'complete') = 'complete'
                     ORDER BY r.id DESC LIMIT 1"
                ),
                [run_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let (last_complete_at, incremental_since_complete) = match complete {
            None => (None, 0),
            Some((complete_id, at)) => {
                let since: i64 = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM runs r JOIN source_reads s ON s.run_id = r.id
                             WHERE {GOOD} AND r.id > ?1 AND r.id < ?2 AND s.kind = 'incremental'"
                        ),
                        params![complete_id, run_id],
                        |row| row.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                (at.map(parse_time), since.max(0) as u64)
            }
        };
        Ok(Some(LastGoodRead {
            run_id: id,
            config_digest,
            read,
            snapshot,
            last_complete_at,
            incremental_since_complete,
        }))
    }

    /// The read record of `run_id`, if it has one.
    pub fn source_read(&self, run_id: i64) -> Result<Option<SourceReadRecord>> {
        self.conn
            .query_row(
                "SELECT run_id, source, server, cookie, kind, desired, changed, deleted, read_at
                 FROM source_reads WHERE run_id = ?1",
                [run_id],
                |row| {
                    let kind: String = row.get(4)?;
                    Ok(SourceReadRecord {
                        run_id: row.get(0)?,
                        source: row.get(1)?,
                        server: row.get(2)?,
                        cookie: row.get(3)?,
                        kind: ReadKind::parse(&kind).unwrap_or(ReadKind::Complete),
                        desired: row.get::<_, i64>(5)?.max(0) as u64,
                        changed: row.get::<_, i64>(6)?.max(0) as u64,
                        deleted: row.get::<_, i64>(7)?.max(0) as u64,
                        read_at: parse_time(row.get(8)?),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
