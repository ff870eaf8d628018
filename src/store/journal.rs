//! Plans and the apply journal. Every plan is stored with its actions; apply journals each
//! action before its target call (`applying`) and after it (`applied` / `failed`), each in
//! its own committed transaction, so that a killed apply can be resumed without repeating
//! what was done.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError};
use crate::plan::{Plan, Status};

/// A stored plan.
#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub id: String,
    pub run_id: Option<i64>,
    pub status: String,
    pub body: String,
}

/// The journal's view of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub seq: u32,
    pub status: Status,
    pub error: Option<String>,
    pub result_id: Option<String>,
}

impl Store {
    /// Stores a plan and its actions. A plan already stored (a plan file made from this
    /// state) is left as it is: its journal is the truth about what was applied.
    pub fn save_plan(&self, plan: &Plan, run_id: Option<i64>, body: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO plans (id, run_id, created_at, config_digest, desired_digest, status, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'planned', ?6)",
                params![plan.plan_id, run_id, plan.created_at.to_rfc3339(), plan.config_digest, plan.desired_digest, body],
            )
            .map_err(|e| self.err(e))?;
        if inserted == 1 {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO plan_actions (plan_id, seq, action, object, key, username, target_id, status, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| self.err(e))?;
            for a in &plan.actions {
                stmt.execute(params![
                    plan.plan_id,
                    a.seq,
                    a.action.as_str(),
                    a.object.as_str(),
                    a.key,
                    a.username,
                    a.target_id,
                    a.status.as_str(),
                    a.reason
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn plan_record(&self, plan_id: &str) -> Result<Option<PlanRecord>> {
        self.conn
            .query_row(
                "SELECT id, run_id, status, body FROM plans WHERE id = ?1",
                [plan_id],
                |r| {
                    Ok(PlanRecord {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        status: r.get(2)?,
                        body: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The plan made by a run, if it made one.
    pub fn plan_of_run(&self, run_id: i64) -> Result<Option<PlanRecord>> {
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
            Some(id) => self.plan_record(&id),
            None => Ok(None),
        }
    }

    pub fn set_plan_status(&self, plan_id: &str, status: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE plans SET status = ?2 WHERE id = ?1",
                params![plan_id, status],
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
            let status = Status::parse(&status).ok_or_else(|| StoreError::Invalid {
                path: self.path.display().to_string(),
                message: format!("plan {plan_id} action {seq} has unknown status {status:?}"),
            })?;
            out.push(ActionRecord {
                seq,
                status,
                error,
                result_id,
            });
        }
        Ok(out)
    }

    /// Journals that an action is about to be sent to the target.
    pub fn journal_start(&self, plan_id: &str, seq: u32, at: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE plan_actions SET status = 'applying', started_at = ?3 WHERE plan_id = ?1 AND seq = ?2")
            .and_then(|mut s| s.execute(params![plan_id, seq, at]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Journals how an action ended.
    pub fn journal_finish(
        &self,
        plan_id: &str,
        seq: u32,
        status: Status,
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
