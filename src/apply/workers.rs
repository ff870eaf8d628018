//! The apply workers: plain threads (scoped), each with its own connection to the store for
//! reads, taking work items in plan order once the journal writer (`journal.rs`) has them
//! started. The user and group actions run here one call each; the membership requests use
//! the same pool (`in_parallel`).

use std::sync::Mutex;

use super::journal::{Finish, ItemSeqs, Journal, Record, with_writer};
use super::{ActionError, ApplyError, Outcome, Staged, groups, users};
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

/// What a worker works with: its own store connection (for reads) and the journal writer
/// (every write goes through it, `journal.rs`).
pub(super) struct Worker<'a, 'j> {
    pub store: &'a Store,
    pub journal: &'a Journal<'j>,
}

/// Runs `work` on each of `items` on up to `concurrency` threads, each with its own store
/// connection, and gathers what they return. An item is handed to `work` only once the
/// actions `seqs` names for it are journaled as started. A journal failure stops the whole
/// apply.
pub(super) fn in_parallel<T: Sync, R: Send, I: IntoIterator<Item = u32>>(
    items: &[T],
    seqs: impl Fn(&T) -> I,
    run: &Run<'_>,
    store: &Store,
    work: impl Fn(&T, &Worker<'_, '_>) -> Result<Vec<R>, ApplyError> + Sync,
) -> Result<Vec<R>, ApplyError> {
    let results: Mutex<Vec<R>> = Mutex::new(Vec::with_capacity(items.len()));
    let workers = run.concurrency.clamp(1, 64).min(items.len().max(1));
    let seqs = ItemSeqs::of(items, seqs);
    let ids = (run.plan_id, run.owner);
    with_writer(store.reopen()?, ids, &seqs, workers, |journal| {
        std::thread::scope(|scope| -> Result<(), ApplyError> {
            let mut handles = Vec::new();
            for _ in 0..workers {
                let reads = store.reopen()?;
                let (results, work) = (&results, &work);
                handles.push(scope.spawn(move || -> Result<(), ApplyError> {
                    let worker = Worker {
                        store: &reads,
                        journal,
                    };
                    while let Some(index) = journal.take() {
                        let done = work(&items[index], &worker)?;
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
        })
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
    let seqs = |&index: &usize| [run.actions[index].seq];
    in_parallel(todo, seqs, run, store, |&index, worker| {
        let action = &run.actions[index];
        let mut records = Vec::new();
        let result = execute(action, run, worker.store, &mut records, interrupted[index]);
        // A batch target has only staged the change: it is journaled once the target made
        // it (`finish_batch`), and stays `applying` until then.
        if run.target.writes_at_finish()
            && let Ok(result_id) = &result
        {
            worker.journal.record(records);
            return Ok(vec![Outcome {
                index,
                error: None,
                staged: Some(Box::new(Staged {
                    seq: action.seq,
                    account: result_id.clone().or_else(|| action.target_id.clone()),
                    result_id: result_id.clone(),
                })),
            }]);
        }
        Ok(vec![finish(run, worker.journal, index, result, records)])
    })
}

/// Journals how an action ended (with the records its call made), logs a failure, and
/// counts it done: after a single call here, after a bulk answer in `bulk.rs`.
pub(super) fn finish(
    run: &Run<'_>,
    journal: &Journal<'_>,
    index: usize,
    result: Result<Option<String>, ActionError>,
    mut records: Vec<Record>,
) -> Outcome {
    let action = &run.actions[index];
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
                records.push(Record::Ignored {
                    target: run.target.describe(),
                    fields: fields.iter().map(ToString::to_string).collect(),
                });
            }
            (ActionStatus::Failed, Some(e.to_string()), None)
        }
    };
    let finish = Finish {
        seq: action.seq,
        status,
        error: error.clone(),
        result_id,
    };
    journal.finish(finish, records);
    run.bar.inc(1);
    Outcome {
        index,
        error,
        staged: None,
    }
}

/// One action's target calls. Returns the target id an add created or adopted.
fn execute(
    action: &Action,
    run: &Run<'_>,
    store: &Store,
    records: &mut Vec<Record>,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    match action.object() {
        ObjectKind::User => users::execute(action, run, store, records, interrupted),
        _ => groups::execute(action, run.target, interrupted),
    }
}
