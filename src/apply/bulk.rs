//! The adds of an initial plan, created in bulk where the target can (SCIM `/Bulk`).
//!
//! Only for a plan made with `--initial` (a first load: thousands of creates into a target
//! with none of this owner's accounts), and only for user adds not in flight in an earlier
//! apply (those are looked up first, one by one, as always). Updates, removes, group
//! actions and memberships go their usual way.
//!
//! Two steps, each on the apply's worker threads:
//! 1. Per chunk of at most `Target::bulk_creates` adds: every action is journaled as started
//!    (`applying`), then one `create_users` call sends the chunk (the connector cuts it into
//!    requests by its size and the provider's answers).
//! 2. Per account, what its answer says, through the same add a single create goes through
//!    (`users::add`, `create.rs`): created → recorded (owner, deactivation) and journaled
//!    with its id; refused as a duplicate → found and adopted, or refused, as after a single
//!    create's 409; refused otherwise → failed with the provider's message; not sent → one
//!    create of its own; unknown (the request failed after the provider may have acted) →
//!    looked up first, as a resumed apply does, and created alone only when it is not there.
//!    So no answer, and no failure of a whole request, can make an account twice.

use std::sync::Mutex;

use super::journal::Record;
use super::workers::{Run, finish, in_parallel};
use super::{ActionError, ApplyError, Outcome, users};
use crate::model::DesiredUser;
use crate::plan::{Action, ActionKind, ObjectKind};
use crate::store::Store;
use crate::target::BulkCreate;

/// One account of a chunk once its Bulk request was answered.
struct Answered {
    index: usize,
    /// Taken by the one worker that finishes the action.
    answer: Mutex<Option<BulkCreate>>,
}

/// Creates the user adds of `todo` in bulk when the plan is `initial` and the target
/// creates in bulk. Returns how they ended and the rest of `todo`, in plan order.
pub(super) fn create_adds(
    run: &Run<'_>,
    store: &Store,
    initial: bool,
    todo: Vec<usize>,
    interrupted: &[bool],
) -> Result<(Vec<Outcome>, Vec<usize>), ApplyError> {
    let in_bulk = |&i: &usize| is_user_add(&run.actions[i]) && !interrupted[i];
    if !initial || run.target.writes_at_finish() || !todo.iter().any(in_bulk) {
        return Ok((Vec::new(), todo));
    }
    let per_call = match run.target.bulk_creates() {
        Ok(Some(n)) => n.max(1),
        Ok(None) => {
            log::debug!(
                "{}: no bulk create; the adds of the initial plan go one request each",
                run.target.describe()
            );
            return Ok((Vec::new(), todo));
        }
        Err(e) => {
            log::debug!(
                "{}: {e}; the adds of the initial plan go one request each",
                run.target.describe()
            );
            return Ok((Vec::new(), todo));
        }
    };
    let (adds, rest): (Vec<usize>, Vec<usize>) = todo.into_iter().partition(in_bulk);
    log::debug!(
        "{}: the {} adds of the initial plan go in bulk, at most {per_call} a call",
        run.target.describe(),
        adds.len()
    );
    let chunks: Vec<&[usize]> = adds.chunks(per_call).collect();
    // Every action of a chunk is journaled as started before the chunk is handed over.
    let seqs = |chunk: &&[usize]| {
        chunk
            .iter()
            .map(|&i| run.actions[i].seq)
            .collect::<Vec<_>>()
    };
    let answered = in_parallel(&chunks, seqs, run, store, |chunk, _| {
        Ok(send_chunk(run, chunk))
    })?;
    // Started already, with their chunk.
    let started = |_: &Answered| Vec::new();
    let outcomes = in_parallel(&answered, started, run, store, |answered, worker| {
        let answer = answered.answer.lock().ok().and_then(|mut a| a.take());
        let action = &run.actions[answered.index];
        let mut records = Vec::new();
        let result = follow_up(action, run, worker.store, &mut records, answer);
        Ok(vec![finish(
            run,
            worker.journal,
            answered.index,
            result,
            records,
        )])
    })?;
    Ok((outcomes, rest))
}

fn is_user_add(action: &Action) -> bool {
    action.object() == ObjectKind::User && action.action == ActionKind::Add
}

/// Sends the chunk's actions (journaled as started) in one `create_users` call.
fn send_chunk(run: &Run<'_>, chunk: &[usize]) -> Vec<Answered> {
    let users: Vec<DesiredUser> = chunk
        .iter()
        .map(|&i| users::desired_of(&run.actions[i]))
        .collect();
    let mut answers = run.target.create_users(&users).into_iter();
    chunk
        .iter()
        .map(|&index| Answered {
            index,
            // A connector that answers for fewer accounts than it was given: the rest may
            // exist, so they are looked up.
            answer: Mutex::new(Some(answers.next().unwrap_or_else(|| {
                BulkCreate::Unknown("the target's bulk answer left it out".into())
            }))),
        })
        .collect()
}

/// The rest of one add after its bulk answer: what a single create would have done next.
fn follow_up(
    action: &Action,
    run: &Run<'_>,
    store: &Store,
    records: &mut Vec<Record>,
    answer: Option<BulkCreate>,
) -> Result<Option<String>, ActionError> {
    let add = |records: &mut Vec<Record>, interrupted, answered| {
        users::add(action, run, store, records, interrupted, answered)
    };
    match answer {
        Some(BulkCreate::Created(id)) => add(records, false, Some(Ok(id))),
        Some(BulkCreate::Refused(e)) => add(records, false, Some(Err(e))),
        Some(BulkCreate::NotSent) => add(records, false, None),
        Some(BulkCreate::Unknown(why)) => {
            log::debug!("add user {}: {why}; looked up first", action.name());
            add(records, true, None)
        }
        // Never: each answer is taken once. Looked up first all the same.
        None => add(records, true, None),
    }
}
