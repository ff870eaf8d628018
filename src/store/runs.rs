//! The `runs` table: every plan, apply and sync, what it read and how it ended.
//!
//! A run's kind and outcome are closed enums here and plain words in SQL (`plan`,
//! `no-changes`, ...): the words are what `roster runs` shows and what earlier versions
//! wrote, so they are spelled once, in `as_str`, and read back through `parse`.

use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, lock, parse_time};

/// Which command a run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunKind {
    Plan,
    Apply,
    Sync,
}

/// How a run ended (`Running` until it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Running,
    /// A plan with nothing to do.
    NoChanges,
    /// A plan with changes.
    Changes,
    /// A plan with changes some of which a cap holds.
    Held,
    /// Every action applied (or held, or skipped).
    Applied,
    /// Some action failed.
    Failed,
    /// A safety rule refused to plan (incomplete or shrunken source, invalid records).
    Refused,
    /// Nothing was applied: the person asked said no.
    Cancelled,
    Error,
    /// The process ended without finishing the run (killed, crashed, the machine stopped):
    /// found so by the next run that took the lock.
    Interrupted,
}

macro_rules! words {
    ($ty:ident { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),*
                }
            }

            pub fn parse(s: &str) -> Option<$ty> {
                $ty::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $ty::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {text:?}", stringify!($ty)).into())
                })
            }
        }
    };
}

words!(RunKind {
    Plan => "plan",
    Apply => "apply",
    Sync => "sync",
});

words!(Outcome {
    Running => "running",
    NoChanges => "no-changes",
    Changes => "changes",
    Held => "held",
    Applied => "applied",
    Failed => "failed",
    Refused => "refused",
    Cancelled => "cancelled",
    Error => "error",
    Interrupted => "interrupted",
});

/// What a run did, for `finish_run`.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub outcome: Outcome,
    pub error: Option<String>,
    pub plan_id: Option<String>,
    /// The apply report, for a run that applied.
    pub applied: Option<AppliedCounts>,
}

/// What the apply of a run did: actions this run applied, that failed, and that a cap still
/// holds when it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedCounts {
    pub applied: u64,
    pub failed: u64,
    pub held: u64,
}

/// Where a notification went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Webhook,
}

words!(Channel {
    Email => "email",
    Webhook => "webhook",
});

/// How one notification of a run went. `to` is the recipients of an email, or a webhook's
/// scheme and host (never its path or query, which may carry a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: Channel,
    pub to: String,
    /// `None` when it was sent; why not, when it was not.
    pub error: Option<String>,
}

/// Which runs `roster runs` lists: every bound is optional; newest first, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Runs started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Runs started before this time.
    pub until: Option<DateTime<Utc>>,
    pub outcomes: Vec<Outcome>,
    pub kinds: Vec<RunKind>,
    pub limit: Option<usize>,
}

/// One row of `roster runs`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: i64,
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub host: String,
    pub pid: i64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub source_count: Option<i64>,
    pub target_count: Option<i64>,
    pub rejected: Option<i64>,
    pub plan_id: Option<String>,
    pub applied: Option<AppliedCounts>,
    /// The notifications sent (or not) when the run ended; empty when none was due.
    pub notifications: Vec<Delivery>,
}

/// `expected_managed`'s query. The applied actions are found through their index by when they
/// finished (`schema/0015_applied_user_actions.sql`), from a second before the run started
/// (the actions' times are milliseconds and `Z`, the runs' nanoseconds and an offset: the
/// index's range is a little wider than the question), and `julianday` decides exactly.
pub(super) const EXPECTED_MANAGED: &str = "SELECT r.target_managed
         + (SELECT coalesce(sum(CASE a.action WHEN 'add' THEN 1 ELSE -1 END), 0)
            FROM plan_actions a
            WHERE a.object = 'user' AND a.status = 'applied'
              AND a.finished_at >= strftime('%Y-%m-%dT%H:%M:%fZ', r.started_at, '-1 seconds')
              AND a.action IN ('add', 'delete')
              AND julianday(a.finished_at) >= julianday(r.started_at))
     FROM runs r
     WHERE r.source_accepted = 1 AND r.id < ?1 AND r.target_managed IS NOT NULL
     ORDER BY r.id DESC LIMIT 1";

const RUN_COLUMNS: &str = "id, kind, started_at, finished_at, host, pid, outcome, error, source_count, \
     target_count, rejected, plan_id, applied, failed, held, notifications";

fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let applied = match (
        r.get::<_, Option<i64>>(12)?,
        r.get::<_, Option<i64>>(13)?,
        r.get::<_, Option<i64>>(14)?,
    ) {
        (Some(applied), Some(failed), Some(held)) => Some(AppliedCounts {
            applied: applied.max(0) as u64,
            failed: failed.max(0) as u64,
            held: held.max(0) as u64,
        }),
        _ => None,
    };
    let notifications = match r.get::<_, Option<String>>(15)? {
        Some(text) => deliveries_from_json(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(15, rusqlite::types::Type::Text, e.into())
        })?,
        None => Vec::new(),
    };
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
        applied,
        notifications,
    })
}

/// The `notifications` column: the store's own JSON, read back strictly.
fn deliveries_to_json(deliveries: &[Delivery]) -> String {
    let rows: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "channel": d.channel.as_str(),
                "to": d.to,
                "sent": d.error.is_none(),
                "error": d.error,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn deliveries_from_json(text: &str) -> std::result::Result<Vec<Delivery>, String> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("bad notifications column: {e}"))?;
    rows.iter()
        .map(|row| {
            let channel = row
                .get("channel")
                .and_then(serde_json::Value::as_str)
                .and_then(Channel::parse)
                .ok_or_else(|| format!("bad notification channel in {row}"))?;
            let to = row
                .get("to")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            let error = row
                .get("error")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            Ok(Delivery { channel, to, error })
        })
        .collect()
}

impl Store {
    /// Records the start of a run and returns its id.
    pub fn begin_run(&self, kind: RunKind, config_digest: &str, now: DateTime<Utc>) -> Result<i64> {
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
        let counts = outcome.applied;
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, error = ?4, plan_id = coalesce(?5, plan_id),
                     applied = ?6, failed = ?7, held = ?8
                 WHERE id = ?1",
                params![
                    run_id,
                    now.to_rfc3339(),
                    outcome.outcome,
                    outcome.error,
                    outcome.plan_id,
                    counts.map(|c| c.applied as i64),
                    counts.map(|c| c.failed as i64),
                    counts.map(|c| c.held as i64),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records how the notifications of a finished run went.
    pub fn record_notifications(&self, run_id: i64, deliveries: &[Delivery]) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET notifications = ?2 WHERE id = ?1",
                params![run_id, deliveries_to_json(deliveries)],
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

    /// How many managed accounts the target should show now, by what the store knows: the
    /// managed accounts of the last accepted read before `run_id`, plus the user accounts
    /// created since and less those deleted since (journaled as applied after that read
    /// started, by any plan, including plans applied from a file made elsewhere).
    pub fn expected_managed(&self, run_id: i64) -> Result<Option<u64>> {
        self.conn
            .query_row(EXPECTED_MANAGED, [run_id], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .map(|v| v.flatten().map(|n| n.max(0) as u64))
            .map_err(|e| self.err(e))
    }

    /// The runs `filter` selects, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(since) = filter.since {
            values.push(Box::new(since.to_rfc3339()));
            sql.push_str(&format!(
                " AND julianday(started_at) >= julianday(?{})",
                values.len()
            ));
        }
        if let Some(until) = filter.until {
            values.push(Box::new(until.to_rfc3339()));
            sql.push_str(&format!(
                " AND julianday(started_at) < julianday(?{})",
                values.len()
            ));
        }
        for (column, words) in [
            (
                "outcome",
                filter
                    .outcomes
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "kind",
                filter.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            ),
        ] {
            if words.is_empty() {
                continue;
            }
            let mut marks = Vec::new();
            for word in words {
                values.push(Box::new(word));
                marks.push(format!("?{}", values.len()));
            }
            sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            values.push(Box::new(limit.min(i64::MAX as usize) as i64));
            sql.push_str(&format!(" LIMIT ?{}", values.len()));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let params: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v.as_ref()).collect();
        let rows = stmt
            .query_map(params.as_slice(), run_record)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Marks every run still `running` as `interrupted`. Only the lock holder may call it:
    /// every run holds the lock while it runs, so no other run can be alive then.
    pub(super) fn mark_interrupted(&self, now: DateTime<Utc>) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE runs SET outcome = ?1,
                     error = coalesce(error, 'the process ended without finishing this run (killed or crashed); found at ' || ?2)
                 WHERE outcome = ?3",
                params![Outcome::Interrupted, now.to_rfc3339(), Outcome::Running],
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::temp_store as store;

    /// An applied user action of plan `p`, finished at `at`.
    fn applied(store: &Store, seq: u32, action: &str, at: &str) {
        store
            .conn
            .execute(
                "INSERT INTO plan_actions (plan_id, seq, action, object, key, username, status, reason, changes, finished_at)
                 VALUES ('p', ?1, ?2, 'user', 'k', 'u', 'applied', '', '[]', ?3)",
                params![seq, action, at],
            )
            .expect("action");
    }

    #[test]
    fn the_target_guard_counts_the_adds_and_deletes_applied_since_the_read_began_through_their_index()
     {
        let (_dir, store) = store();
        store
            .conn
            .execute_batch(
                "INSERT INTO runs (id, kind, started_at, host, pid, config_digest, source_accepted, target_managed)
                 VALUES (1, 'plan', '2026-12-04T10:00:00.500000000+00:00', 'h', 1, 'd', 1, 10);
                 INSERT INTO plans (id, run_id, created_at, config_digest, desired_digest, status, header)
                 VALUES ('p', 1, '2026-12-04T10:00:01Z', 'd', 'd', 'applied', '{}');",
            )
            .expect("run and plan");
        // Before the read began, if only by a fraction of a second: not counted.
        applied(&store, 1, "add", "2026-12-04T10:00:00.499Z");
        applied(&store, 2, "add", "2026-12-03T10:00:00.000Z");
        // After it: two adds and a delete.
        applied(&store, 3, "add", "2026-12-04T10:00:00.500Z");
        applied(&store, 4, "add", "2026-12-04T11:00:00.000Z");
        applied(&store, 5, "delete", "2026-12-05T09:00:00.000Z");
        // An update changes no count.
        applied(&store, 6, "update", "2026-12-04T11:00:00.000Z");
        assert_eq!(store.expected_managed(2).expect("count"), Some(11));

        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {EXPECTED_MANAGED}"))
            .expect("explain")
            .query_map([2], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan");
        assert!(
            // A range of the index, not a scan of every plan's actions.
            plan.iter()
                .any(|step| step.contains("plan_actions_applied_users (finished_at>?)")),
            "{plan:?}"
        );
    }
}
