//! The plan being made, kept in the store as the planner makes it (`schema/0014_plan_draft.sql`,
//! issue 16): a first plan of a million adds is never held in memory whole.
//!
//! `Draft` is the planner's sink (`planner::Sink`): it writes each action as it comes, counts
//! the planned ones per cap family, and holds them with one `UPDATE` per cap that trips (the
//! drip order is an `ORDER BY`). `DraftActions` reads the draft back in plan order, numbered,
//! through a connection of its own (the renderers, the seal and the plan file each read it on
//! their own thread); `Store::save_plan` numbers the draft into `plan_actions`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags, params};

use super::{Result, Store, StoreError};
use crate::config::Policy;
use crate::plan::contract::{ActionJson, ActionView, ChangeJson, CompactChanges};
use crate::plan::sink::{Drip, Family, Sink};
use crate::plan::{
    Action, ActionKind, ActionSource, ActionStatus, Hold, ObjectKind, Stored, Subject, Tally,
};

/// Rows per multi-row INSERT (20 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

/// The columns a draft row is written with, in order.
const COLUMNS: &str = "(tier, kind, name, key1, key2, family, deactivates, since_ns, runs, action, object, key, username, target_id, status, reason, changes, held_by, target_version, target_digest)";
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Plan order, as `planner::order` and `planner::groups::merge` have it: users by kind, name
/// and keys; then groups and memberships in the order they were appended.
const PLAN_ORDER: &str = "tier, kind, name, key1, key2, n";

/// The action columns of a draft row, as `ActionJson` (without `seq`) reads them.
const ACTION_COLUMNS: &str = "action, object, key, username, target_id, status, reason, changes, held_by, target_version, target_digest";

/// The counter `Store::number_draft` numbers the rows with, while it runs.
const NEXT_SEQ: &str = "roster_next_seq";

/// Users come first, then groups and memberships.
const USERS: i64 = 0;
const GROUPS: i64 = 1;

fn family_number(family: Family) -> i64 {
    match family {
        Family::Adds => 0,
        Family::Updates => 1,
        Family::Removals => 2,
        Family::Deletes => 3,
    }
}

fn kind_number(kind: ActionKind) -> i64 {
    match kind {
        ActionKind::Add => 0,
        ActionKind::Update => 1,
        ActionKind::Remove => 2,
        ActionKind::Delete => 3,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plans hold only strings, numbers and enums: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// One row to write: the action, with the columns the caps and the plan order read. The
/// action is turned into the contract's columns where it is written (`insert`, on the
/// writer's thread), not where it is planned.
struct Row {
    tier: i64,
    kind: i64,
    family: Option<i64>,
    since_ns: Option<i64>,
    runs: Option<i64>,
    action: Action,
}

impl Row {
    fn user(action: Action, family: Family, since: (DateTime<Utc>, u64)) -> Row {
        Row {
            tier: USERS,
            kind: kind_number(action.action),
            family: Some(family_number(family)),
            // Nanoseconds cover 1677 to 2262; outside, the earliest or latest there is.
            since_ns: Some(
                since
                    .0
                    .timestamp_nanos_opt()
                    .unwrap_or(if since.0.timestamp() < 0 {
                        i64::MIN
                    } else {
                        i64::MAX
                    }),
            ),
            runs: Some(i64::try_from(since.1).unwrap_or(i64::MAX)),
            action,
        }
    }

    fn group(action: &Action) -> Row {
        Row {
            tier: GROUPS,
            kind: 0,
            family: None,
            since_ns: None,
            runs: None,
            action: action.clone(),
        }
    }

    /// The name and keys a user action is ordered by; a group row is ordered by `n` alone.
    fn order_keys(&self) -> (&str, &str, Option<&str>) {
        if self.tier == USERS {
            let (key1, key2) = self.action.subject.keys();
            (self.action.name(), key1, key2)
        } else {
            ("", "", None)
        }
    }
}

/// The planner's sink into the store. Open while the pairs are planned.
///
/// The rows are written on a thread of its own, through a connection of its own, in one
/// transaction, while the planner goes on with the next pairs (`Writer`): on the plan's
/// path the planning and the inserts then share the two cores instead of taking turns.
/// Once every action is in (`Sink::order`, before the caps), the writer commits and the
/// caps count and hold on the store's own connection, in a transaction of their own up to
/// `Draft::close`. A draft that fails is never planned on: `close` returns the first error.
pub struct Draft<'s> {
    store: &'s Store,
    rows: Vec<Row>,
    /// Until every row is in: the thread writing them.
    writer: std::cell::RefCell<Option<Writer>>,
    /// Planned user actions per family, as the caps have left them.
    planned: [u64; 4],
    /// The first thing that failed; the rest of the draft is not written.
    error: Option<StoreError>,
    /// A count the caps asked for that could not be read (a `&self` step): the draft fails
    /// at `close` as if a write had.
    count_failed: std::cell::RefCell<Option<StoreError>>,
    open: bool,
}

/// Batches of rows in flight to the writer: bounds memory when the store is the slow side.
const BATCHES_IN_FLIGHT: usize = 16;

enum Batch {
    Rows(Vec<Row>),
    /// The draft was dropped unfinished: nothing of it is kept.
    Abandon,
}

/// The thread that writes the draft's rows.
struct Writer {
    batches: std::sync::mpsc::SyncSender<Batch>,
    done: std::thread::JoinHandle<Result<()>>,
}

impl Writer {
    fn start(store: Store) -> Writer {
        let (batches, rows) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let done = std::thread::spawn(move || {
            // The draft's pages are copied into the database behind the planner
            // (`Store::checkpoint_behind`, once the writer is done), not in its commit.
            store
                .conn
                .execute_batch("PRAGMA wal_autocheckpoint = 0; BEGIN")
                .map_err(|e| store.err(e))?;
            for batch in rows {
                match batch {
                    // An error returns with the transaction open: closing the connection
                    // rolls it back.
                    Batch::Rows(rows) => insert(&store, &rows)?,
                    Batch::Abandon => return Ok(()),
                }
            }
            store.conn.execute_batch("COMMIT").map_err(|e| store.err(e))
        });
        Writer { batches, done }
    }

    /// Hands `rows` over; `false` when the writer has stopped (it failed: `finish` says why).
    fn send(&self, rows: Vec<Row>) -> bool {
        self.batches.send(Batch::Rows(rows)).is_ok()
    }

    /// Commits what was sent, or says why it could not.
    fn finish(self, path: &std::path::Path) -> Result<()> {
        drop(self.batches);
        self.done.join().unwrap_or_else(|_| {
            Err(StoreError::Invalid {
                path: path.display().to_string(),
                message: "writing the plan's draft stopped (the writing thread panicked)".into(),
            })
        })
    }
}

impl Store {
    /// Starts the draft of a plan (emptying what a run that died may have left).
    pub fn draft(&self) -> Result<Draft<'_>> {
        self.clear_draft()?;
        let writer = Writer::start(self.reopen()?);
        Ok(Draft {
            store: self,
            rows: Vec::with_capacity(ROWS_PER_INSERT),
            writer: std::cell::RefCell::new(Some(writer)),
            planned: [0; 4],
            error: None,
            count_failed: std::cell::RefCell::new(None),
            open: true,
        })
    }

    /// Empties the draft: once the plan is saved and no longer read from it.
    pub fn clear_draft(&self) -> Result<()> {
        // Without a WHERE, SQLite drops the table's pages at once.
        self.conn
            .execute_batch("DELETE FROM plan_draft")
            .map_err(|e| self.err(e))
    }

    /// The draft's actions as a plan keeps them: read from the store, counted.
    pub fn drafted(&self) -> Result<Stored> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT object, action, status, count(*) FROM plan_draft GROUP BY object, action, status",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut tally = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i: usize| -> Result<String> { r.get(i).map_err(|e| self.err(e)) };
            let (object, action, status) = (text(0)?, text(1)?, text(2)?);
            let bad = || StoreError::Invalid {
                path: self.path.display().to_string(),
                message: format!("the plan draft has an unknown action {object} {action} {status}"),
            };
            tally.push(Tally {
                object: ObjectKind::parse(&object).ok_or_else(bad)?,
                action: ActionKind::parse(&action).ok_or_else(bad)?,
                status: ActionStatus::parse(&status).ok_or_else(bad)?,
                count: r.get::<_, i64>(3).map_err(|e| self.err(e))? as u64,
            });
        }
        Ok(Stored {
            source: Arc::new(DraftActions {
                path: self.path.clone(),
            }),
            tally,
        })
    }

    /// Appends group and membership actions to the draft, after every user action, in the
    /// order given.
    pub fn draft_groups(&self, actions: &[Action]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let rows: Vec<Row> = actions.iter().map(Row::group).collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert(self, chunk)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Calls `each` with the draft's user actions that `wanted` picks by kind and status, in
    /// plan order (on this connection, for the group merge).
    pub fn each_drafted_user(
        &self,
        mut each: impl FnMut(Action) -> Result<()>,
        wanted: &str,
    ) -> Result<()> {
        let sql = format!(
            "SELECT n, {ACTION_COLUMNS} FROM plan_draft WHERE tier = {USERS} AND ({wanted}) ORDER BY {PLAN_ORDER}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let action = read_action(r, 0).map_err(|e| self.damaged_draft(e))?;
            each(action)?;
        }
        Ok(())
    }

    /// Changes the user actions `change` rewrites (the fields a target drops left out):
    /// `change` gets every planned or held user update and remove, and says whether it
    /// changed it.
    pub fn rewrite_drafted_users(&self, mut change: impl FnMut(&mut Action) -> bool) -> Result<()> {
        let mut changed: Vec<(i64, ActionJson, String)> = Vec::new();
        {
            let sql = format!(
                "SELECT n, {ACTION_COLUMNS} FROM plan_draft WHERE tier = {USERS}
                 AND action IN ('update', 'remove') AND status IN ('planned', 'held')"
            );
            let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let n: i64 = r.get(0).map_err(|e| self.err(e))?;
                let mut action = read_action(r, 0).map_err(|e| self.damaged_draft(e))?;
                if change(&mut action) {
                    let changes = to_json(&CompactChanges(&action.changes));
                    changed.push((n, ActionJson::from(&action), changes));
                }
            }
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        {
            let mut stmt = tx
                .prepare(
                    "UPDATE plan_draft SET status = ?2, reason = ?3, changes = ?4, held_by = ?5 WHERE n = ?1",
                )
                .map_err(|e| self.err(e))?;
            for (n, a, changes) in &changed {
                stmt.execute(params![n, a.status, a.reason, changes, a.held_by])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Numbers the draft into `plan_actions` as `plan_id`'s actions, in plan order: one
    /// statement, the rows copied inside SQLite as they are (never read into actions, nor
    /// into Rust values and bound again), numbered from 1.
    ///
    /// The numbers come from a counter the rows take as SQLite reads them off the draft's
    /// order index: `row_number()` would pass every row through a window's temporary table
    /// first (a third of the numbering's time, issue 16). That holds only while the
    /// statement reads the index in order, with no sort after the numbers are taken, so
    /// its query plan is asked first; a plan that reads otherwise is numbered by
    /// `row_number()`.
    pub(super) fn number_draft(&self, plan_id: &str) -> Result<Numbered> {
        let taken = Arc::new(AtomicI64::new(0));
        let counter = Arc::clone(&taken);
        self.conn
            .create_scalar_function(NEXT_SEQ, 0, FunctionFlags::SQLITE_UTF8, move |_| {
                Ok(counter.fetch_add(1, Ordering::Relaxed) + 1)
            })
            .map_err(|e| self.err(e))?;
        let numbered = self.number_by_counter(plan_id, &taken);
        let removed = self
            .conn
            .remove_function(NEXT_SEQ, 0)
            .map_err(|e| self.err(e));
        let numbered = numbered?;
        removed?;
        if numbered {
            return Ok(Numbered::ByCounter);
        }
        log::debug!(
            "the plan's actions are numbered by row_number(): SQLite reads the draft otherwise"
        );
        self.number_by_window(plan_id)?;
        Ok(Numbered::ByWindow)
    }

    /// The numbering's statement, `seq` being `seq`.
    fn numbering(seq: &str) -> String {
        format!(
            "INSERT INTO plan_actions (plan_id, seq, {ACTION_COLUMNS})
             SELECT ?1, {seq}, {ACTION_COLUMNS} FROM plan_draft ORDER BY {PLAN_ORDER}"
        )
    }

    /// Numbers the draft with `NEXT_SEQ` when the statement reads it in plan order; `false`
    /// (nothing written) when it would not.
    fn number_by_counter(&self, plan_id: &str, taken: &AtomicI64) -> Result<bool> {
        let sql = Self::numbering(&format!("{NEXT_SEQ}()"));
        if !self.reads_in_order(&sql, plan_id)? {
            return Ok(false);
        }
        let inserted = self
            .conn
            .execute(&sql, [plan_id])
            .map_err(|e| self.err(e))?;
        let numbered = taken.load(Ordering::Relaxed);
        if usize::try_from(numbered).ok() != Some(inserted) {
            return Err(StoreError::Invalid {
                path: self.path.display().to_string(),
                message: format!("numbering the plan's {inserted} actions took {numbered} numbers"),
            });
        }
        Ok(true)
    }

    /// Numbers the draft by `row_number()`, whatever way SQLite reads it.
    fn number_by_window(&self, plan_id: &str) -> Result<()> {
        let sql = Self::numbering(&format!("row_number() OVER (ORDER BY {PLAN_ORDER})"));
        self.conn
            .execute(&sql, [plan_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether `sql` (with `plan_id` for its parameter) reads the draft through its order
    /// index and sorts nothing: its rows then come in plan order, each numbered as it comes.
    fn reads_in_order(&self, sql: &str, plan_id: &str) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(|e| self.err(e))?;
        let details: Vec<String> = stmt
            .query_map([plan_id], |r| r.get::<_, String>(3))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        Ok(details.len() == 1 && details[0] == "SCAN plan_draft USING INDEX plan_draft_order")
    }

    fn damaged_draft(&self, message: String) -> StoreError {
        StoreError::Invalid {
            path: self.path.display().to_string(),
            message: format!("the plan draft is damaged: {message}"),
        }
    }
}

/// How `Store::number_draft` numbered a plan's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Numbered {
    /// By the counter, as SQLite read the draft in plan order.
    ByCounter,
    /// By `row_number()`, as SQLite would have read it otherwise.
    ByWindow,
}

/// Writes `rows` into the draft in one statement.
fn insert(store: &Store, rows: &[Row]) -> Result<()> {
    let sql = format!(
        "INSERT INTO plan_draft {COLUMNS} VALUES {}",
        vec![ROW; rows.len()].join(", ")
    );
    let mut stmt = store.conn.prepare_cached(&sql).map_err(|e| store.err(e))?;
    let views: Vec<(ActionView<'_>, String, bool)> = rows
        .iter()
        .map(|r| {
            let view = ActionView::of(&r.action);
            let changes = to_json(&CompactChanges(&r.action.changes));
            (view, changes, r.tier == USERS && r.action.deactivates())
        })
        .collect();
    let keys: Vec<(&str, &str, Option<&str>)> = rows.iter().map(Row::order_keys).collect();
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 20);
    for ((r, (a, changes, deactivates)), (name, key1, key2)) in rows.iter().zip(&views).zip(&keys) {
        values.extend_from_slice(&[
            &r.tier,
            &r.kind,
            name,
            key1,
            key2,
            &r.family,
            deactivates,
            &r.since_ns,
            &r.runs,
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
    stmt.execute(values.as_slice()).map_err(|e| store.err(e))?;
    Ok(())
}

/// An action from the `ACTION_COLUMNS` of a row, starting at column `at + 1`.
fn read_action(r: &rusqlite::Row<'_>, seq: u32) -> std::result::Result<Action, String> {
    let text = |i: usize| -> std::result::Result<String, String> {
        r.get(i + 1).map_err(|e| e.to_string())
    };
    let optional = |i: usize| -> std::result::Result<Option<String>, String> {
        r.get(i + 1).map_err(|e| e.to_string())
    };
    let changes: Vec<ChangeJson> =
        serde_json::from_str(&text(7)?).map_err(|e| format!("bad changes: {e}"))?;
    let row = ActionJson {
        seq,
        action: text(0)?,
        object: text(1)?,
        key: text(2)?,
        username: text(3)?,
        target_id: optional(4)?,
        status: text(5)?,
        reason: text(6)?,
        changes,
        held_by: optional(8)?,
        target_version: optional(9)?,
        target_digest: optional(10)?,
    };
    row.into_action().map_err(|e| e.to_string())
}

impl Draft<'_> {
    /// Hands the buffered rows to the writer.
    fn write(&mut self) {
        if self.error.is_some() || self.rows.is_empty() {
            self.rows.clear();
            return;
        }
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(ROWS_PER_INSERT));
        let stopped = match self.writer.get_mut() {
            Some(writer) => !writer.send(rows),
            None => {
                // Rows after the writer committed (none come: the planner orders once, at
                // the end), written here.
                if let Err(e) = insert(self.store, &rows) {
                    self.error = Some(e);
                }
                false
            }
        };
        if stopped && let Err(e) = self.settle() {
            self.error = Some(e);
        }
    }

    /// Waits for the writer to commit every row, then opens the transaction the caps hold
    /// in. Once; the first failure is kept.
    fn settle(&self) -> Result<()> {
        let Some(writer) = self.writer.borrow_mut().take() else {
            return Ok(());
        };
        writer.finish(&self.store.path)?;
        self.store.checkpoint_behind();
        self.store
            .conn
            .execute_batch("BEGIN")
            .map_err(|e| self.store.err(e))
    }

    fn run(&mut self, sql: &str, values: &[&dyn rusqlite::ToSql]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.settle() {
            self.error = Some(e);
            return;
        }
        if let Err(e) = self.store.conn.execute(sql, values) {
            self.error = Some(self.store.err(e));
        }
    }

    /// Writes what is left and commits the draft; the first failure of any step, if one
    /// failed (then nothing of the draft is kept).
    pub fn close(mut self) -> Result<()> {
        self.write();
        if let Err(e) = self.settle() {
            self.error.get_or_insert(e);
        }
        self.open = false;
        match self.error.take().or_else(|| self.count_failed.take()) {
            Some(e) => {
                let _ = self.store.conn.execute_batch("ROLLBACK");
                Err(e)
            }
            None => self
                .store
                .conn
                .execute_batch("COMMIT")
                .map_err(|e| self.store.err(e)),
        }
    }
}

impl Drop for Draft<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.get_mut().take() {
            let _ = writer.batches.send(Batch::Abandon);
            let _ = writer.finish(&self.store.path);
        } else if self.open {
            let _ = self.store.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Sink for Draft<'_> {
    fn push(&mut self, action: Action, family: Family, since: (DateTime<Utc>, u64)) {
        if is_planned_user(&action) {
            self.planned[family_number(family) as usize] += 1;
        }
        self.rows.push(Row::user(action, family, since));
        if self.rows.len() == ROWS_PER_INSERT {
            self.write();
        }
    }

    /// The index keeps the order; what is still buffered is written and committed, for the
    /// caps to see.
    fn order(&mut self) {
        self.write();
        if let Err(e) = self.settle() {
            self.error.get_or_insert(e);
        }
    }

    fn planned(&self, family: Family, _: &Policy) -> u64 {
        self.planned[family_number(family) as usize]
    }

    fn deactivations(&self, family: Family, _: &Policy) -> u64 {
        if self.error.is_some() {
            return 0;
        }
        if let Err(e) = self.settle() {
            self.count_failed.borrow_mut().get_or_insert(e);
            return 0;
        }
        self.store
            .conn
            .query_row(
                "SELECT count(*) FROM plan_draft WHERE tier = 0 AND family = ?1 AND object = 'user' AND status = 'planned' AND deactivates",
                [family_number(family)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .unwrap_or_else(|e| {
                self.count_failed.borrow_mut().get_or_insert(self.store.err(e));
                0
            })
    }

    fn hold_family(&mut self, family: Family, _: &Policy, hold: &Hold, going: u64, _: &Drip) {
        let f = family_number(family);
        let held = hold.to_string();
        let status = ActionStatus::Held.as_str();
        if going == 0 {
            self.run(
                "UPDATE plan_draft SET status = ?1, held_by = ?2
                 WHERE tier = 0 AND family = ?3 AND object = 'user' AND status = 'planned'",
                &[&status, &held, &f],
            );
        } else {
            // Missing longest first (the earliest mark, then the most runs), then by name, then
            // in plan order; all but the first `going` are held.
            let going = i64::try_from(going).unwrap_or(i64::MAX);
            self.run(
                &format!(
                    "UPDATE plan_draft SET status = ?1, held_by = ?2 WHERE n IN (
                       SELECT n FROM plan_draft
                       WHERE tier = 0 AND family = ?3 AND object = 'user' AND status = 'planned'
                       ORDER BY since_ns, runs DESC, name, {PLAN_ORDER} LIMIT -1 OFFSET ?4)"
                ),
                &[&status, &held, &f, &going],
            );
        }
        let planned = &mut self.planned[f as usize];
        *planned = (*planned).min(going);
    }

    fn planned_changes(&self, but_adds: bool) -> u64 {
        Family::ALL
            .iter()
            .filter(|f| !(but_adds && **f == Family::Adds))
            .map(|f| self.planned[family_number(*f) as usize])
            .sum()
    }

    fn hold_changes(&mut self, hold: &Hold, but_adds: bool) {
        let held = hold.to_string();
        let status = ActionStatus::Held.as_str();
        self.run(
            "UPDATE plan_draft SET status = ?1, held_by = ?2
             WHERE tier = 0 AND object = 'user' AND status = 'planned' AND NOT (?3 AND action = 'add')",
            &[&status, &held, &but_adds],
        );
        for f in Family::ALL {
            if !(but_adds && f == Family::Adds) {
                self.planned[family_number(f) as usize] = 0;
            }
        }
    }

    /// Numbered when read back, and when saved.
    fn number(&mut self) {}
}

fn is_planned_user(a: &Action) -> bool {
    matches!(a.subject, Subject::User(_)) && a.status == ActionStatus::Planned
}

/// The draft's actions as a stored plan reads them: in plan order, numbered from 1, through a
/// read-only connection of each reader's own.
#[derive(Debug)]
struct DraftActions {
    path: PathBuf,
}

impl ActionSource for DraftActions {
    fn each(&self, each: &mut dyn FnMut(&Action) -> std::io::Result<()>) -> std::io::Result<()> {
        self.each_owned(&mut |action| each(&action))
    }

    fn each_owned(
        &self,
        each: &mut dyn FnMut(Action) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let failed = |e: rusqlite::Error| {
            std::io::Error::other(format!("state store {}: {e}", self.path.display()))
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(failed)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT n, {ACTION_COLUMNS} FROM plan_draft ORDER BY {PLAN_ORDER}"
            ))
            .map_err(failed)?;
        let mut rows = stmt.query([]).map_err(failed)?;
        let mut seq: u32 = 0;
        while let Some(r) = rows.next().map_err(failed)? {
            seq = seq.saturating_add(1);
            let action = read_action(r, seq).map_err(|e| {
                std::io::Error::other(format!(
                    "state store {}: the plan draft is damaged: {e}",
                    self.path.display()
                ))
            })?;
            each(action)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;

    /// A plan row for the numbered actions to belong to.
    fn plan_row(store: &Store, plan_id: &str) {
        store
            .conn
            .execute(
                "INSERT INTO plans (id, created_at, config_digest, desired_digest, status, header)
                 VALUES (?1, '2026-12-06T00:00:00Z', '', '', 'planned', '{}')",
                [plan_id],
            )
            .expect("plan row");
    }

    /// The plan's actions as `plan_actions` numbers them for `plan_id`: seq, key, action.
    fn numbered(store: &Store, plan_id: &str) -> Vec<(u32, String, String)> {
        store
            .conn
            .prepare("SELECT seq, key, action FROM plan_actions WHERE plan_id = ?1 ORDER BY seq")
            .and_then(|mut s| {
                s.query_map([plan_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("numbered rows")
    }

    #[test]
    fn the_draft_is_numbered_in_plan_order_by_a_counter_where_sqlite_reads_it_so() {
        let (_dir, store) = temp_store();
        let fixture = include_str!("../../tests/fixtures/plan_v1_groups.json");
        let plan = crate::plan::contract::read(serde_json::from_str(fixture).expect("json"))
            .expect("plan");
        let (users, groups): (Vec<&Action>, Vec<&Action>) = plan
            .actions
            .iter()
            .partition(|a| a.object() == ObjectKind::User);
        assert!(users.len() > 2 && !groups.is_empty());
        // Users drafted in the reverse of plan order: the numbering has to sort them.
        let policy = Policy::default();
        let mut draft = store.draft().expect("draft");
        for a in users.iter().rev() {
            draft.push((*a).clone(), Family::of(a, &policy), (Utc::now(), 0));
        }
        draft.order();
        draft.close().expect("drafted");
        let groups: Vec<Action> = groups.into_iter().cloned().collect();
        store.draft_groups(&groups).expect("groups drafted");

        plan_row(&store, "by counter");
        plan_row(&store, "by window");
        // The fast path is the one this SQLite takes.
        assert_eq!(
            store.number_draft("by counter").expect("numbered"),
            Numbered::ByCounter
        );
        store.number_by_window("by window").expect("numbered");
        let by_counter = numbered(&store, "by counter");
        assert_eq!(by_counter, numbered(&store, "by window"));
        assert_eq!(
            by_counter
                .iter()
                .map(|(seq, _, _)| *seq)
                .collect::<Vec<_>>(),
            (1..=plan.actions.len() as u32).collect::<Vec<_>>()
        );
        // In the order the draft is read back in (numbered there as it is read).
        let mut read = Vec::new();
        store
            .drafted()
            .expect("tally")
            .source
            .each(&mut |a| {
                let row = ActionView::of(a);
                read.push((row.seq, row.key.into_owned(), row.action.to_string()));
                Ok(())
            })
            .expect("read");
        assert_eq!(by_counter, read);
        // The counter is gone with the numbering.
        assert!(store.conn.prepare(&format!("SELECT {NEXT_SEQ}()")).is_err());
    }
}
