//! The apply workers: plain threads (scoped), each with its own connection to the store,
//! taking work items in plan order. The user and group actions run here one call each;
//! the membership requests use the same pool (`in_parallel`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ActionError, ApplyError, Outcome, Staged, groups, now, users};
use crate::plan::{Action, ActionStatus, ObjectKind};
use crate::progress::Counter;
use crate::store::Store;
use crate::target::{Target, TargetError};

/// What every step of one apply works with (besides the store, whose connection each
/// worker opens for itself).
pub(super) struct Run<'a> {
    pub actions: &'a [Action],
    pub target: &'a dyn Target,
    pub plan_id: &'a str,
    /// Parallel target calls.
    pub concurrency: usize,
    /// The config's owner, recorded with the accounts it creates or adopts.
    pub owner: &'a str,
    /// Where the store keeps a batch target's state (`TargetConfig::kept_state_key`).
    pub kept_key: Option<&'a str>,
    pub bar: &'a Counter,
}

/// Runs `work` on each of `items` on up to `concurrency` threads, each with its own store
/// connection, and gathers what they return. A journal failure stops the whole apply.
pub(super) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    store: &Store,
    work: impl Fn(&T, &Store) -> Result<Vec<R>, ApplyError> + Sync,
) -> Result<Vec<R>, ApplyError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<R>> = Mutex::new(Vec::with_capacity(items.len()));
    let workers = concurrency.clamp(1, 64).min(items.len().max(1));
    std::thread::scope(|scope| -> Result<(), ApplyError> {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let journal = store.reopen()?;
            let (next, results, work) = (&next, &results, &work);
            handles.push(scope.spawn(move || -> Result<(), ApplyError> {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let done = work(item, &journal)?;
                    if let Ok(mut r) = results.lock() {
                        r.extend(done);
                    }
                }
                Ok(())
            }));
        }
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(())
    })?;
    Ok(results.into_inner().unwrap_or_default())
}

/// Applies the user and group actions `todo` (indices into the plan), each journaled
/// before and after its call.
pub(super) fn run_actions(
    run: &Run<'_>,
    store: &Store,
    todo: &[usize],
    interrupted: &[bool],
) -> Result<Vec<Outcome>, ApplyError> {
    in_parallel(todo, run.concurrency, store, |&index, journal| {
        let action = &run.actions[index];
        journal.journal_start(run.plan_id, action.seq, &now())?;
        let result = execute(action, run, journal, interrupted[index]);
        // A batch target has only staged the change: it is journaled once the target made
        // it (`finish_batch`), and stays `applying` until then.
        if run.target.writes_at_finish()
            && let Ok(result_id) = &result
        {
            return Ok(vec![Outcome {
                index,
                error: None,
                staged: Some(Staged {
                    seq: action.seq,
                    account: result_id.clone().or_else(|| action.target_id.clone()),
                    result_id: result_id.clone(),
                }),
            }]);
        }
        let (status, error, result_id) = match result {
            Ok(id) => (ActionStatus::Applied, None, id),
            Err(e) => {
                log::error!(
                    "{} {} {}: {e}",
                    action.action.as_str(),
                    action.object().as_str(),
                    action.name()
                );
                if let ActionError::Target(TargetError::Ignored { fields, .. }) = &e {
                    // Later plans leave these changes out and say why (`planner::ignored`).
                    let names: Vec<String> = fields.iter().map(ToString::to_string).collect();
                    journal.record_ignored(&run.target.describe(), &names, &now())?;
                }
                (ActionStatus::Failed, Some(e.to_string()), None)
            }
        };
        journal.journal_finish(
            run.plan_id,
            action.seq,
            status,
            error.as_deref(),
            result_id.as_deref(),
            &now(),
        )?;
        run.bar.inc(1);
        Ok(vec![Outcome {
            index,
            error,
            staged: None,
        }])
    })
}

/// One action's target calls. Returns the target id an add created or adopted.
fn execute(
    action: &Action,
    run: &Run<'_>,
    store: &Store,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    match action.object() {
        ObjectKind::User => users::execute(action, run, store, interrupted),
        _ => groups::execute(action, run.target, interrupted),
    }
}
