//! The applier: carries out an approved plan against the target, action by action.
//!
//! Every action is journaled in the state store before its target call (`applying`) and
//! after it (`applied` / `failed`). A killed apply is resumed by applying the same plan again:
//! actions already applied are not repeated, and an add that was in flight is looked up
//! before it is created again, so retries never make duplicate accounts. A failing action
//! fails only itself. Held actions stay held unless a human releases them.
//!
//! `apply` reads as its steps: `resume` (what the journal says an earlier run did),
//! the staleness check (`stale.rs`), the adds of an initial plan in bulk where the target
//! can (`bulk.rs`), `workers` (user and group actions on N threads, each
//! journaled around its call; `users.rs` and `groups.rs` know the calls, `create.rs` the
//! create → conflict → find → adopt path they share), the memberships (`groups.rs`), and
//! the outcomes, written back to the plan and the report.

use chrono::{SecondsFormat, Utc};

use crate::config::Policy;
use crate::plan::{ActionStatus, Allowance, Plan, PlanStatus};
use crate::progress::Progress;
use crate::stale;
use crate::store::{Store, StoreError};
use crate::target::{Target, TargetError};

mod bulk;
mod create;
mod groups;
mod journal;
mod recheck;
mod resume;
mod users;
mod workers;

/// How a human released held actions for this apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Release {
    /// `--allow-adds N`: releases the held adds if N covers all of them.
    pub allow_adds: Option<u64>,
    /// `--allow-updates N`: the same for updates.
    pub allow_updates: Option<u64>,
    /// `--allow-removes N`: the same for removes and deactivations (and deletes where no
    /// `max-deletes` caps them apart).
    pub allow_removes: Option<u64>,
    /// `--allow-deletes N`: the same for deletes.
    pub allow_deletes: Option<u64>,
    /// `--force`: releases everything held.
    pub force: bool,
}

impl Release {
    /// What `--allow-<kind>` was given for `kind` (0 when not given).
    pub fn allowed(&self, kind: Allowance) -> u64 {
        self.given(kind).unwrap_or(0)
    }

    fn given(&self, kind: Allowance) -> Option<u64> {
        match kind {
            Allowance::Adds => self.allow_adds,
            Allowance::Updates => self.allow_updates,
            Allowance::Removes => self.allow_removes,
            Allowance::Deletes => self.allow_deletes,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: u64,
    pub failed: u64,
    pub held: u64,
    pub skipped: u64,
    /// Applied by an earlier, interrupted apply of the same plan.
    pub already_applied: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("plan {0} was already applied; make a new plan with `roster plan`")]
    AlreadyApplied(String),
    #[error(
        "{flag} {allowed} does not cover the {held} held {noun}; \
         pass {flag} {held} (or more) to release them"
    )]
    NotEnoughAllowed {
        flag: &'static str,
        noun: &'static str,
        allowed: u64,
        held: u64,
    },
    #[error("{0}")]
    Stale(String),
    /// Actions the policy in force does not allow (`recheck.rs`): nothing was applied.
    #[error("{0}")]
    Refused(String),
    #[error("checking the plan against the target: {0}")]
    Target(TargetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// Parallel target calls.
    pub concurrency: usize,
    /// Re-read the touched objects first and refuse if any changed (saved plans).
    pub check_staleness: bool,
    /// The config's owner: accounts it creates or adopts are recorded as its own.
    pub owner: &'a str,
    /// Where the store keeps the state of a target that cannot be listed
    /// (`TargetConfig::kept_state_key`).
    pub kept_key: Option<&'a str>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Releases held actions as the human asked: each `--allow-<kind> N` releases the held
/// actions of its kind when N covers all of them, and errors when it does not (a cap is a
/// tripwire: a human who looked releases what they saw, not the first N).
pub fn release(plan: &mut Plan, release: Release) -> Result<(), ApplyError> {
    if release.force {
        for a in plan
            .actions
            .iter_mut()
            .filter(|a| a.status == ActionStatus::Held)
        {
            a.release();
        }
        return Ok(());
    }
    for kind in Allowance::ALL {
        let Some(allowed) = release.given(kind) else {
            continue;
        };
        let releases = |a: &crate::plan::Action| {
            a.status == ActionStatus::Held && a.released_by() == Some(kind)
        };
        let held = plan.actions.iter().filter(|a| releases(a)).count() as u64;
        if held == 0 {
            continue;
        }
        if allowed < held {
            return Err(ApplyError::NotEnoughAllowed {
                flag: kind.flag(),
                noun: kind.noun(),
                allowed,
                held,
            });
        }
        for a in plan.actions.iter_mut().filter(|a| releases(a)) {
            a.release();
        }
    }
    Ok(())
}

/// Checks every action still to apply against `policy`, the policy in force (with the mode
/// the plan was made in), after the human's `release`: before any target call, and for every
/// plan, saved or just made. The error says which actions break which rule.
pub fn recheck(plan: &Plan, policy: &Policy, release: Release) -> Result<(), ApplyError> {
    let violations = recheck::recheck(plan, policy, release);
    if violations.is_empty() {
        return Ok(());
    }
    Err(ApplyError::Refused(recheck::message(
        &plan.plan_id,
        &violations,
    )))
}

/// Applies `plan` (already stored with `Store::save_plan`). Statuses in the journal win over
/// the plan's: what an earlier apply did is not done again.
pub fn apply(
    plan: &mut Plan,
    store: &Store,
    target: &dyn Target,
    options: ApplyOptions<'_>,
    progress: &Progress,
) -> Result<ApplyReport, ApplyError> {
    let record = store.plan_record(&plan.plan_id)?;
    if record.is_some_and(|r| r.status == PlanStatus::Applied) {
        return Err(ApplyError::AlreadyApplied(plan.plan_id.clone()));
    }
    let mut report = ApplyReport::default();
    let resumed = resume::from_journal(plan, store, &mut report)?;
    if options.check_staleness {
        // Interrupted actions may have reached the target already: they are looked up when
        // they are redone, not counted as drift.
        let pending: Vec<_> = resumed
            .todo
            .iter()
            .filter(|&&i| !resumed.interrupted[i])
            .map(|&i| &plan.actions[i])
            .collect();
        // Where the target keeps no key of roster's, the accounts are compared as roster
        // saw them when planning: with its ownership records laid over them.
        let owned = if target.capabilities().external_ids {
            None
        } else {
            Some(store.owned(options.owner)?)
        };
        let drift = stale::check(&pending, target, owned.as_ref(), options.owner)
            .map_err(ApplyError::Target)?;
        if !drift.is_empty() {
            return Err(ApplyError::Stale(stale::message(&drift)));
        }
    }
    store.set_plan_status(&plan.plan_id, PlanStatus::Applying)?;

    let bar = progress.bar("apply", &target.describe(), resumed.todo.len() as u64);
    // Memberships wait for the users and groups they name: they run after the rest, batched
    // per group (apply/groups.rs).
    let (todo, memberships) = groups::split_memberships(resumed.todo, &plan.actions);
    let run = workers::Run {
        actions: &plan.actions,
        target,
        plan_id: &plan.plan_id,
        concurrency: options.concurrency,
        owner: options.owner,
        kept_key: options.kept_key,
        bar: &bar,
    };
    // An initial plan's user adds go in bulk where the target can (apply/bulk.rs).
    let (bulk, todo) = bulk::create_adds(&run, store, plan.initial, todo, &resumed.interrupted)?;
    let each = workers::run_actions(&run, store, &todo, &resumed.interrupted)?;
    let members = groups::apply_memberships(&run, store, &memberships)?;
    let mut outcomes = joined(joined(bulk, each), members);
    finish_batch(&run, store, &mut outcomes)?;
    bar.finish();

    record_outcomes(plan, outcomes, &mut report);
    // Held and failed actions can still be applied (released, retried) with the same plan.
    let done = report.failed == 0 && report.held == 0;
    let status = if done {
        PlanStatus::Applied
    } else {
        PlanStatus::Partial
    };
    store.set_plan_status(&plan.plan_id, status)?;
    Ok(report)
}

/// Both lists, in order; an empty first one is not extended (the bulk step's, for any plan
/// but an initial one), so the workers' outcomes are not copied beside themselves.
fn joined<T>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    if a.is_empty() {
        return b;
    }
    a.extend(b);
    a
}

/// How one action ended: its index in the plan, and the error when it failed.
pub(super) struct Outcome {
    index: usize,
    error: Option<String>,
    /// Staged on a batch target, not journaled yet (`finish_batch` decides). Boxed: every
    /// action of the plan has an outcome until apply ends, and few targets stage.
    staged: Option<Box<Staged>>,
}

/// An action a batch target staged: journaled when the target makes its changes.
pub(super) struct Staged {
    seq: u32,
    result_id: Option<String>,
    /// The target id of the account it changes, which the target's answer names.
    account: Option<String>,
}

/// Lets a batch target make what its actions staged (a file target writes its file, Luma
/// uploads its workbook), then journals those actions: applied when it succeeded, every one
/// failed with its error when it did not, since none of them reached the target; an action
/// on an account the target refused fails with the target's message, one it took with a
/// warning is applied and the warning logged. The state it reports is kept in the store
/// only after it was made.
fn finish_batch(
    run: &workers::Run<'_>,
    store: &Store,
    outcomes: &mut [Outcome],
) -> Result<(), ApplyError> {
    if !run.target.writes_at_finish() {
        return Ok(());
    }
    let finished = run.target.finish_apply();
    if let (Ok(Some(state)), Some(key)) = (finished.as_ref().map(|f| &f.kept), run.kept_key) {
        store.keep_state(key, state, run.plan_id, &now())?;
    }
    let (error, per_account) = match finished {
        Ok(finished) => (None, finished),
        Err(e) => {
            log::error!("{}: {e}", run.target.describe());
            (Some(e.to_string()), Default::default())
        }
    };
    for outcome in outcomes.iter_mut() {
        let Some(staged) = outcome.staged.take() else {
            continue;
        };
        let action = &run.actions[outcome.index];
        let account = staged.account.as_deref().unwrap_or_default();
        let error = error.clone().or_else(|| {
            per_account.refused.get(account).map(|message| {
                let message = format!("{} refused it: {message}", run.target.describe());
                log::error!(
                    "{} {} {}: {message}",
                    action.action.as_str(),
                    action.object().as_str(),
                    action.name()
                );
                message
            })
        });
        if error.is_none()
            && let Some(warning) = per_account.warnings.get(account)
        {
            log::warn!(
                "{} {} {}: applied, with a warning from {}: {warning}",
                action.action.as_str(),
                action.object().as_str(),
                action.name(),
                run.target.describe()
            );
        }
        let status = match error {
            None => ActionStatus::Applied,
            Some(_) => ActionStatus::Failed,
        };
        store.journal_finish(
            run.plan_id,
            staged.seq,
            status,
            error.as_deref(),
            staged.result_id.as_deref(),
            &now(),
        )?;
        outcome.error.clone_from(&error);
        run.bar.inc(1);
    }
    Ok(())
}

impl Outcome {
    fn status(&self) -> ActionStatus {
        match self.error {
            None => ActionStatus::Applied,
            Some(_) => ActionStatus::Failed,
        }
    }
}

/// Writes how the actions ended into the plan (as `show` and the report tell it).
fn record_outcomes(plan: &mut Plan, outcomes: Vec<Outcome>, report: &mut ApplyReport) {
    for outcome in outcomes {
        let action = &mut plan.actions[outcome.index];
        action.status = outcome.status();
        match outcome.error {
            None => report.applied += 1,
            Some(error) => {
                action.error = Some(error);
                report.failed += 1;
            }
        }
    }
}

/// Why one action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("journal: {0}")]
    Store(StoreError),
    #[error("the plan has no target id for this action (a damaged plan file?)")]
    NoTargetId,
    #[error(
        "username {username} is taken in the target by an account managed under another key ({key})"
    )]
    Taken { username: String, key: String },
    #[error(
        "group name {name} is taken in the target by a group managed under another key ({key})"
    )]
    GroupTaken { name: String, key: String },
    /// An action handed to the wrong step of apply (a bug, reported rather than hidden).
    #[error("{0}")]
    NotHere(String),
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        ActionError::Store(e)
    }
}
