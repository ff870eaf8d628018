//! Plans and the apply journal. Every plan is stored with its actions; apply journals each
//! action before its target call (`applying`) and after it (`applied` / `failed`), so that a
//! killed apply can be resumed without repeating what was done. Apply's journal writer
//! (`apply/journal.rs`) groups many of these writes into one transaction (`journal_batch`):
//! the starts of the next actions are committed before any of their calls, the finishes
//! after theirs.
//!
//! Rows are written and read through the plan contract (`plan::contract`): the header is
//! the plan file without its actions, each action row holds the columns of the plan file's
//! action, and a row that the contract does not read is reported as a damaged plan.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError};
use crate::plan::contract::{self, ActionJson, ActionView, ChangeJson, CompactChanges, PlanJson};
use crate::plan::{ActionStatus, Plan, PlanStatus};

/// A stored plan's bookkeeping (the plan itself: `load_plan`).
#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub id: String,
    pub run_id: Option<i64>,
    pub status: PlanStatus,
    /// The digest of the plan as roster made it (`plan::seal`); `None` for a plan stored
    /// by a version that recorded none.
    pub digest: Option<String>,
}

/// The journal's view of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub seq: u32,
    pub status: ActionStatus,
    pub error: Option<String>,
    pub result_id: Option<String>,
}

/// Rows per multi-row INSERT (13 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plans hold only strings, numbers and enums: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl Store {
    /// Stores a plan and its actions, with `digest`, the digest of its canonical form
    /// (`plan::seal`). A plan already stored (a plan file made from this state) is left as
    /// it is: its journal is the truth about what was applied.
    pub fn save_plan(&self, plan: &Plan, run_id: Option<i64>, digest: &str) -> Result<()> {
        self.save_plan_then_digest(plan, run_id, || digest.to_string())
    }

    /// `save_plan`, with the digest asked for only once the actions are written, in the same
    /// transaction: the caller can compute it on another thread meanwhile (it is a pass over
    /// every action, as the writing is).
    pub fn save_plan_then_digest(
        &self,
        plan: &Plan,
        run_id: Option<i64>,
        digest: impl FnOnce() -> String,
    ) -> Result<()> {
        let header = contract::header(plan);
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO plans (id, run_id, created_at, config_digest, desired_digest, status, header)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    plan.plan_id,
                    run_id,
                    plan.created_at.to_rfc3339(),
                    plan.config_digest,
                    plan.desired_digest,
                    PlanStatus::Planned.as_str(),
                    to_json(&header),
                ],
            )
            .map_err(|e| self.err(e))?;
        if inserted == 1 && plan.stored.is_some() {
            // A plan just made has its actions in the draft already: saving is numbering them.
            self.number_draft(&plan.plan_id)?;
            tx.execute(
                "UPDATE plans SET plan_digest = ?2 WHERE id = ?1",
                params![plan.plan_id, digest()],
            )
            .map_err(|e| self.err(e))?;
        } else if inserted == 1 {
            // Many rows per statement: a plan of 100,000 adds is stored in a fraction of the
            // time one statement per row takes.
            let columns = "(plan_id, seq, action, object, key, username, target_id, status, reason, changes, held_by, target_version, target_digest)";
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            for chunk in plan.actions.chunks(ROWS_PER_INSERT) {
                let sql = format!(
                    "INSERT INTO plan_actions {columns} VALUES {}",
                    vec![row; chunk.len()].join(", ")
                );
                let mut stmt = tx.prepare_cached(&sql).map_err(|e| self.err(e))?;
                let rows: Vec<ActionView<'_>> = chunk.iter().map(ActionView::of).collect();
                let changes: Vec<String> = chunk
                    .iter()
                    .map(|a| to_json(&CompactChanges(&a.changes)))
                    .collect();
                let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 13);
                for (a, changes) in rows.iter().zip(&changes) {
                    values.extend_from_slice(&[
                        &plan.plan_id,
                        &a.seq,
                        &a.action,
                        &a.object,
                        &a.key,
                        &a.username,
                        &a.target_id,
                        &a.status,
                        &a.reason,
                        changes,
                        &a.held_by,
                        &a.target_version,
                        &a.target_digest,
                    ]);
                }
                stmt.execute(values.as_slice()).map_err(|e| self.err(e))?;
            }
            tx.execute(
                "UPDATE plans SET plan_digest = ?2 WHERE id = ?1",
                params![plan.plan_id, digest()],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn plan_record(&self, plan_id: &str) -> Result<Option<PlanRecord>> {
        let row: Option<(String, Option<i64>, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT id, run_id, status, plan_digest FROM plans WHERE id = ?1",
                [plan_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(id, run_id, status, digest)| {
            let status = PlanStatus::parse(&status).ok_or_else(|| StoreError::Invalid {
                path: self.path.display().to_string(),
                message: format!("plan {plan_id} has unknown status {status:?}"),
            })?;
            Ok(PlanRecord {
                id,
                run_id,
                status,
                digest,
            })
        })
        .transpose()
    }

    /// A stored plan, its actions with the statuses and errors the journal has for them.
    pub fn load_plan(&self, plan_id: &str) -> Result<Option<Plan>> {
        let header: Option<String> = self
            .conn
            .query_row("SELECT header FROM plans WHERE id = ?1", [plan_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(header) = header else {
            return Ok(None);
        };
        let invalid = |message: String| StoreError::Invalid {
            path: self.path.display().to_string(),
            message,
        };
        let header: PlanJson = serde_json::from_str(&header)
            .map_err(|e| invalid(format!("plan {plan_id} is damaged: {e}")))?;
        let damaged =
            |e: contract::ContractError| invalid(format!("plan {plan_id} is damaged: {e}"));
        let mut plan = header.into_plan().map_err(damaged)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, action, object, key, username, target_id, status, reason, changes, held_by, target_version, error, target_digest
                 FROM plan_actions WHERE plan_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([plan_id]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let get = |i: usize| -> Result<String> { r.get(i).map_err(|e| self.err(e)) };
            let seq: u32 = r.get(0).map_err(|e| self.err(e))?;
            let changes: Vec<ChangeJson> = serde_json::from_str(&get(8)?)
                .map_err(|_| invalid(format!("plan {plan_id} action {seq} has bad changes")))?;
            let row = ActionJson {
                seq,
                action: get(1)?,
                object: get(2)?,
                key: get(3)?,
                username: get(4)?,
                target_id: r.get(5).map_err(|e| self.err(e))?,
                status: get(6)?,
                reason: get(7)?,
                changes,
                held_by: r.get(9).map_err(|e| self.err(e))?,
                target_version: r.get(10).map_err(|e| self.err(e))?,
                target_digest: r.get(12).map_err(|e| self.err(e))?,
            };
            let mut action = row.into_action().map_err(damaged)?;
            let error: Option<String> = r.get(11).map_err(|e| self.err(e))?;
            if error.is_some() {
                action.error = error;
            }
            plan.actions.push(action);
        }
        Ok(Some(plan))
    }

    /// The plan made by a run, if it made one.
    pub fn plan_of_run(&self, run_id: i64) -> Result<Option<Plan>> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM plans WHERE run_id = ?1 ORDER BY created_at DESC LIMIT 1",
                [run_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match id {
            Some(id) => self.load_plan(&id),
            None => Ok(None),
        }
    }

    pub fn set_plan_status(&self, plan_id: &str, status: PlanStatus) -> Result<()> {
        self.conn
            .execute(
                "UPDATE plans SET status = ?2 WHERE id = ?1",
                params![plan_id, status.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every action of a plan as the journal has it.
    pub fn journal(&self, plan_id: &str) -> Result<Vec<ActionRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, status, error, result_id FROM plan_actions WHERE plan_id = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([plan_id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, status, error, result_id) = row.map_err(|e| self.err(e))?;
            let status = self.journaled_status(plan_id, seq, &status)?;
            out.push(ActionRecord {
                seq,
                status,
                error,
                result_id,
            });
        }
        Ok(out)
    }

    /// An action's status as the journal has it; one roster does not know is an error.
    fn journaled_status(&self, plan_id: &str, seq: u32, status: &str) -> Result<ActionStatus> {
        ActionStatus::parse(status).ok_or_else(|| StoreError::Invalid {
            path: self.path.display().to_string(),
            message: format!("plan {plan_id} action {seq} has unknown status {status:?}"),
        })
    }

    /// The actions of a plan an earlier apply started or finished, with their status: what
    /// resuming needs, without the rest of the journal (the planned and held actions, all
    /// of a plan never applied, are passed over unread). A status roster does not know is
    /// an error, as in `journal`.
    pub fn journal_progress(&self, plan_id: &str) -> Result<HashMap<u32, ActionStatus>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, status FROM plan_actions WHERE plan_id = ?1 AND status NOT IN (?2, ?3)",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![
                plan_id,
                ActionStatus::Planned.as_str(),
                ActionStatus::Held.as_str()
            ])
            .map_err(|e| self.err(e))?;
        let mut progress = HashMap::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let seq: u32 = r.get(0).map_err(|e| self.err(e))?;
            let status: String = r.get(1).map_err(|e| self.err(e))?;
            progress.insert(seq, self.journaled_status(plan_id, seq, &status)?);
        }
        Ok(progress)
    }

    /// Runs `writes` (journal starts and finishes, and what apply records with them) in one
    /// transaction, committed when they all succeeded and rolled back otherwise. One commit
    /// for many writes is what makes the journal cheap: a commit per write costs a WAL frame
    /// of each page it touches, and the write lock each time.
    pub fn journal_batch<T>(&self, writes: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        // IMMEDIATE: the write lock is taken at the start, never upgraded from a read lock
        // halfway (which can fail with SQLITE_BUSY whatever the busy timeout).
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        match writes(self) {
            Ok(value) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(self.err(e));
                }
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Journals that an action is about to be sent to the target.
    pub fn journal_start(&self, plan_id: &str, seq: u32, at: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE plan_actions SET status = ?4, started_at = ?3 WHERE plan_id = ?1 AND seq = ?2")
            .and_then(|mut s| s.execute(params![plan_id, seq, at, ActionStatus::Applying.as_str()]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Journals how an action ended.
    pub fn journal_finish(
        &self,
        plan_id: &str,
        seq: u32,
        status: ActionStatus,
        error: Option<&str>,
        result_id: Option<&str>,
        at: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE plan_actions SET status = ?3, error = ?4, result_id = coalesce(?5, result_id), finished_at = ?6
                 WHERE plan_id = ?1 AND seq = ?2",
            )
            .and_then(|mut s| s.execute(params![plan_id, seq, status.as_str(), error, result_id, at]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kept_without_nulls_and_rows_with_them_read_alike() {
        let (_dir, store) = crate::store::temp_store();
        let fixture = include_str!("../../tests/fixtures/plan_v1.json");
        let plan = contract::read(serde_json::from_str(fixture).expect("json")).expect("plan");
        assert!(
            plan.actions
                .iter()
                .any(|a| a.changes.iter().any(|c| c.before.is_none()))
        );
        store.save_plan(&plan, None, "digest").expect("saved");
        let stored: Vec<String> = store
            .conn
            .prepare("SELECT changes FROM plan_actions WHERE plan_id = ?1 ORDER BY seq")
            .and_then(|mut s| {
                s.query_map([&plan.plan_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("rows");
        assert_eq!(stored.len(), plan.actions.len());
        assert!(stored.iter().all(|c| !c.contains("null")), "{stored:?}");
        let loaded = store.load_plan(&plan.plan_id).expect("read").expect("plan");
        assert_eq!(loaded.actions, plan.actions);

        // A row as roster wrote it before: every change with both values, null or not.
        for a in &plan.actions {
            let verbose = to_json(&ActionJson::from(a).changes);
            store
                .conn
                .execute(
                    "UPDATE plan_actions SET changes = ?3 WHERE plan_id = ?1 AND seq = ?2",
                    params![plan.plan_id, a.seq, verbose],
                )
                .expect("rewritten");
        }
        let loaded = store.load_plan(&plan.plan_id).expect("read").expect("plan");
        assert_eq!(loaded.actions, plan.actions);
    }

    #[test]
    fn resuming_reads_the_actions_an_apply_started_or_finished_and_refuses_unknown_statuses() {
        let (_dir, store) = crate::store::temp_store();
        let fixture = include_str!("../../tests/fixtures/plan_v1.json");
        let plan = contract::read(serde_json::from_str(fixture).expect("json")).expect("plan");
        store.save_plan(&plan, None, "digest").expect("saved");
        let id = plan.plan_id.as_str();
        // Planned 1 and 2, skipped 3, held 4 and 5: only what is neither planned nor held.
        assert_eq!(
            store.journal_progress(id).expect("progress"),
            HashMap::from([(3, ActionStatus::Skipped)])
        );

        store.journal_start(id, 1, "t").expect("start");
        store.journal_start(id, 2, "t").expect("start");
        store
            .journal_finish(id, 2, ActionStatus::Applied, None, Some("t-2"), "t")
            .expect("finish");
        store
            .journal_finish(id, 5, ActionStatus::Failed, Some("no"), None, "t")
            .expect("finish");
        assert_eq!(
            store.journal_progress(id).expect("progress"),
            HashMap::from([
                (1, ActionStatus::Applying),
                (2, ActionStatus::Applied),
                (3, ActionStatus::Skipped),
                (5, ActionStatus::Failed),
            ])
        );

        store
            .conn
            .execute(
                "UPDATE plan_actions SET status = 'done?' WHERE plan_id = ?1 AND seq = 4",
                [id],
            )
            .expect("damaged");
        let error = store.journal_progress(id).expect_err("unknown status");
        assert!(
            error
                .to_string()
                .contains("action 4 has unknown status \"done?\""),
            "{error}"
        );
    }
}
