//! The applier: carries out an approved plan against the target, action by action.
//!
//! Every action is journaled in the state store before its target call (`applying`) and
//! after it (`applied` / `failed`). A killed apply is resumed by applying the same plan again:
//! actions already applied are not repeated, and an add that was in flight is looked up
//! before it is created again, so retries never make duplicate accounts. A failing action
//! fails only itself. Held actions stay held unless a human releases them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{SecondsFormat, Utc};

use crate::model::{DesiredUser, FieldValue};
use crate::plan::{Action, ActionKind, ObjectKind, Plan, Status};
use crate::progress::Progress;
use crate::stale;
use crate::store::{Store, StoreError};
use crate::target::{Target, TargetError, UserUpdate};

mod groups;

/// How a human released held actions for this apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Release {
    /// `--allow-removes N`: releases held removes and deletes if N covers all of them.
    pub allow_removes: Option<u64>,
    /// `--force`: releases everything held.
    pub force: bool,
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
        "--allow-removes {allowed} does not cover the {held} held removes and deletes; \
         pass --allow-removes {held} (or more) to release them"
    )]
    NotEnoughAllowed { allowed: u64, held: u64 },
    #[error("{0}")]
    Stale(String),
    #[error("checking the plan against the target: {0}")]
    Target(TargetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Parallel target calls.
    pub concurrency: usize,
    /// Re-read the touched objects first and refuse if any changed (saved plans).
    pub check_staleness: bool,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Releases held actions as the human asked; errors if `--allow-removes` is too small.
pub fn release(plan: &mut Plan, release: Release) -> Result<(), ApplyError> {
    let held_removals = plan
        .actions
        .iter()
        .filter(|a| a.status == Status::Held && a.counts_as_removal())
        .count() as u64;
    if let Some(allowed) = release.allow_removes
        && !release.force
        && held_removals > 0
    {
        if allowed < held_removals {
            return Err(ApplyError::NotEnoughAllowed {
                allowed,
                held: held_removals,
            });
        }
        for a in plan
            .actions
            .iter_mut()
            .filter(|a| a.status == Status::Held && a.counts_as_removal())
        {
            a.status = Status::Planned;
            a.held_by = None;
        }
    }
    if release.force {
        for a in plan.actions.iter_mut().filter(|a| a.status == Status::Held) {
            a.status = Status::Planned;
            a.held_by = None;
        }
    }
    Ok(())
}

/// Applies `plan` (already stored with `Store::save_plan`). Statuses in the journal win over
/// the plan's: what an earlier apply did is not done again.
pub fn apply(
    plan: &mut Plan,
    store: &Store,
    target: &dyn Target,
    options: ApplyOptions,
    progress: &Progress,
) -> Result<ApplyReport, ApplyError> {
    let concurrency = options.concurrency;
    let record = store.plan_record(&plan.plan_id)?;
    if record.as_ref().is_some_and(|r| r.status == "applied") {
        return Err(ApplyError::AlreadyApplied(plan.plan_id.clone()));
    }
    let mut report = ApplyReport::default();
    // Resume: the journal knows what an earlier run of this plan did.
    let journal: std::collections::HashMap<u32, Status> = store
        .journal(&plan.plan_id)?
        .into_iter()
        .map(|e| (e.seq, e.status))
        .collect();
    let mut interrupted = vec![false; plan.actions.len()];
    for (i, action) in plan.actions.iter_mut().enumerate() {
        let Some(entry) = journal.get(&action.seq) else {
            continue;
        };
        match entry {
            Status::Applied => {
                action.status = Status::Applied;
                report.already_applied += 1;
            }
            Status::Applying => interrupted[i] = true,
            _ => {}
        }
    }
    let todo: Vec<usize> = (0..plan.actions.len())
        .filter(|&i| {
            matches!(
                plan.actions[i].status,
                Status::Planned | Status::Failed | Status::Applying
            ) || interrupted[i]
        })
        .collect();
    for a in &plan.actions {
        match a.status {
            Status::Held => report.held += 1,
            Status::Skipped => report.skipped += 1,
            _ => {}
        }
    }
    if options.check_staleness {
        // Interrupted actions may have reached the target already: they are looked up when
        // they are redone, not counted as drift.
        let pending: Vec<&Action> = todo
            .iter()
            .filter(|&&i| !interrupted[i])
            .map(|&i| &plan.actions[i])
            .collect();
        let drift = stale::check(&pending, target).map_err(ApplyError::Target)?;
        if !drift.is_empty() {
            return Err(ApplyError::Stale(stale::message(&drift)));
        }
    }
    store.set_plan_status(&plan.plan_id, "applying")?;

    let bar = progress.bar("apply", &target.describe(), todo.len() as u64);
    // Memberships wait for the users and groups they name: they run after the rest, batched
    // per group (apply/groups.rs).
    let (todo, memberships) = groups::split_memberships(todo, &plan.actions);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(usize, Status, Option<String>)>> =
        Mutex::new(Vec::with_capacity(todo.len()));
    let workers = concurrency.clamp(1, 64).min(todo.len().max(1));
    let plan_id = plan.plan_id.clone();
    let actions = &plan.actions;
    std::thread::scope(|scope| -> Result<(), ApplyError> {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let journal = store.reopen()?;
            let (next, todo, outcomes, bar, plan_id, interrupted) =
                (&next, &todo, &outcomes, &bar, &plan_id, &interrupted);
            handles.push(scope.spawn(move || -> Result<(), ApplyError> {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = todo.get(n) else { return Ok(()) };
                    let action = &actions[i];
                    journal.journal_start(plan_id, action.seq, &now())?;
                    let result = execute(action, target, &journal, plan_id, interrupted[i]);
                    let (status, error, result_id) = match result {
                        Ok(id) => (Status::Applied, None, id),
                        Err(e) => {
                            log::error!(
                                "{} {} {}: {e}",
                                action.action.as_str(),
                                action.object.as_str(),
                                action.username
                            );
                            (Status::Failed, Some(e.to_string()), None)
                        }
                    };
                    journal.journal_finish(
                        plan_id,
                        action.seq,
                        status,
                        error.as_deref(),
                        result_id.as_deref(),
                        &now(),
                    )?;
                    bar.inc(1);
                    if let Ok(mut o) = outcomes.lock() {
                        o.push((i, status, error));
                    }
                }
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
    let member_outcomes = groups::apply_memberships(
        actions,
        &memberships,
        store,
        target,
        &plan_id,
        concurrency,
        &bar,
    )?;
    bar.finish();

    for (i, status, error) in outcomes
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .chain(member_outcomes)
    {
        let action = &mut plan.actions[i];
        action.status = status;
        if let Some(error) = error {
            action.reason = format!("{}; failed: {error}", action.reason);
        }
        match status {
            Status::Applied => report.applied += 1,
            _ => report.failed += 1,
        }
    }
    // Held and failed actions can still be applied (released, retried) with the same plan.
    let done = report.failed == 0 && report.held == 0;
    store.set_plan_status(&plan.plan_id, if done { "applied" } else { "partial" })?;
    Ok(report)
}

/// One action's target calls. Returns the target id an add created or adopted.
fn execute(
    action: &Action,
    target: &dyn Target,
    store: &Store,
    plan_id: &str,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    if action.object != ObjectKind::User {
        return groups::execute(action, target, interrupted);
    }
    let id = || action.target_id.as_deref().ok_or(ActionError::NoTargetId);
    let version = action.target_version.as_deref();
    match action.action {
        ActionKind::Add => {
            let created = add(action, target, interrupted)?;
            // Created inactive (out of service in the source): roster's own deactivation,
            // undone when the source has the account in service again.
            if action.after("active") == Some("false")
                && let Some(id) = &created
            {
                store.record_deactivated(id, &action.key, plan_id, &now())?;
            }
            Ok(created)
        }
        ActionKind::Update => {
            let update = update_of(action);
            let id = id()?;
            target.update_user(id, version, &update)?;
            match update.active {
                Some(true) => store.forget_deactivated(id)?,
                // The source has the account out of service: roster deactivated it, and
                // reactivates it when the source has it in service again.
                Some(false) => store.record_deactivated(id, &action.key, plan_id, &now())?,
                None => {}
            }
            Ok(None)
        }
        ActionKind::Remove => {
            let id = id()?;
            let update = UserUpdate {
                active: Some(false),
                ..UserUpdate::default()
            };
            target.update_user(id, version, &update)?;
            store.record_deactivated(id, &action.key, plan_id, &now())?;
            Ok(None)
        }
        ActionKind::Delete => {
            let id = id()?;
            target.delete_user(id, version)?;
            store.forget_deactivated(id)?;
            Ok(None)
        }
    }
}

/// Creates the user; if it already exists (an earlier interrupted apply, or a create the
/// target refused as a duplicate), adopts the existing account when it is ours or unmanaged.
fn add(
    action: &Action,
    target: &dyn Target,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    let user = desired_of(action);
    if interrupted && let Some(existing) = target.find_user(&user.username)? {
        return adopt(action, &user, existing, target);
    }
    match target.create_user(&user) {
        Ok(created) => Ok(Some(created.id)),
        Err(e) if e.is_conflict() => match target.find_user(&user.username)? {
            Some(existing) => adopt(action, &user, existing, target),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

fn adopt(
    action: &Action,
    user: &DesiredUser,
    existing: crate::model::TargetUser,
    target: &dyn Target,
) -> Result<Option<String>, ActionError> {
    match existing.external_id.as_deref() {
        Some(key) if key != user.key => {
            return Err(ActionError::Taken {
                username: user.username.clone(),
                key: key.to_string(),
            });
        }
        Some(_) => log::info!("add {}: already created (resumed apply)", action.username),
        None => log::info!(
            "add {}: adopting the existing unmanaged account",
            action.username
        ),
    }
    let mut update = update_of(action);
    update.username = None;
    if existing.external_id.is_some() {
        update.external_id = None;
    }
    if !update.is_empty() {
        target.update_user(&existing.id, existing.version.as_deref(), &update)?;
    }
    Ok(Some(existing.id))
}

/// The user an add action creates, rebuilt from its changes.
fn desired_of(action: &Action) -> DesiredUser {
    let mut user = DesiredUser {
        key: action.key.clone(),
        username: action.username.clone(),
        ..DesiredUser::default()
    };
    for c in &action.changes {
        let Some(after) = c.after.clone() else {
            continue;
        };
        match c.field.as_str() {
            "externalId" => user.key = after,
            "username" => user.username = after,
            "name" => user.name = Some(after),
            "email" => user.email = Some(after),
            "phone" => user.phones.push(after),
            "active" => user.active = after != "false",
            field => {
                user.fields
                    .insert(field.to_string(), FieldValue::Set(after));
            }
        }
    }
    user
}

/// The target update an action's changes ask for.
fn update_of(action: &Action) -> UserUpdate {
    let mut update = UserUpdate::default();
    for c in &action.changes {
        match (c.field.as_str(), c.after.clone()) {
            ("externalId", after) => update.external_id = after,
            ("username", after) => update.username = after,
            ("name", after) => update.name = after,
            ("email", after) => update.email = after,
            ("phone", Some(after)) => update.add_phones.push(after),
            ("phone", None) => {}
            ("active", after) => update.active = after.map(|a| a == "true"),
            (field, Some(after)) => {
                update
                    .fields
                    .insert(field.to_string(), FieldValue::Set(after));
            }
            (field, None) => {
                update.fields.insert(field.to_string(), FieldValue::Clear);
            }
        }
    }
    update
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
