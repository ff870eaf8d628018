//! A plan run, end to end: read both sides, check what was read, pair, plan the users and
//! the groups, merge, and hand back the plan.
//!
//! This is the one place where the stages meet, so that following a policy value from the
//! config to the planner is reading one function: `plan` below. The stages themselves live
//! where they belong (connectors read, the store pairs, the planner decides); this module
//! only orders them and turns their failures into a `PipelineError` that says which stage
//! refused or failed. It owns no I/O of its own beyond calling the connectors it is given.
//!
//! The order, and why:
//! 1. groups first (`groups::read`), because `in-group=` roles are evaluated while users are
//!    mapped;
//! 2. users of both sides at once (`read::read_both`), into the store in one transaction;
//! 3. the checks that refuse to plan: invalid records under `on-invalid "fail"`, then the
//!    source completeness rule (`planner::check_source`), which `--force` may override;
//! 4. the users paired in SQL and planned, then the groups and memberships, merged in;
//! 5. the plan assembled: id, time, digests, counts.

mod groups;
mod read;

use chrono::{DateTime, Utc};

use crate::config::{At, Cap, Config, Mode, OnInvalid, PolicyValueAt};
use crate::mapping::Mapper;
use crate::plan::{FORMAT_VERSION, Plan};
use crate::planner::{self, SourceRead, SourceRefusal};
use crate::progress::Progress;
use crate::render;
use crate::source;
use crate::store::{SnapshotCounts, Store, StoreError};
use crate::target::{self, TargetError};

pub use read::ReadError;

/// How a plan run may go: whether `--force` overrides the safety checks, and whether
/// progress is shown.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub force: bool,
    pub progress: bool,
}

/// Why no plan was made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PipelineError {
    /// A safety rule refused to plan: nothing was planned, and the run says so. `set_here`
    /// points at the policy line whose value refused, when a file has it.
    #[error("{refusal}")]
    #[diagnostic(code(roster::refused))]
    Refused {
        refusal: Refusal,
        #[related]
        set_here: Vec<PolicyValueAt>,
    },
    /// A side could not be read completely (an incomplete read is never planned on).
    #[error(transparent)]
    #[diagnostic(code(roster::read))]
    Read(#[from] ReadError),
    /// The target connector could not be set up (its URL, CA file or token).
    #[error(transparent)]
    #[diagnostic(code(roster::target))]
    Target(#[from] TargetError),
    #[error(transparent)]
    #[diagnostic(code(roster::store))]
    Store(#[from] StoreError),
}

impl PipelineError {
    /// Refused by a rule, or by a source that could not be read: the run is recorded as
    /// `refused` rather than as an error of roster's.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PipelineError::Refused { .. } | PipelineError::Read(ReadError::Source { .. })
        )
    }
}

/// The safety rules that refuse to plan.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `on-invalid "fail"` and some records are invalid: every one of them is listed.
    #[error(
        "on-invalid is \"fail\" and {count} source records are invalid; nothing was planned:\n{list}"
    )]
    InvalidRecords { count: usize, list: String },
    /// The source looks partial: empty, or shrunk past `max-source-shrink-percent`.
    #[error("{why}{rejected}")]
    SourceIncomplete {
        why: String,
        /// Records read but rejected, pointed at (empty when none were).
        rejected: String,
    },
    /// The target lists far fewer managed accounts than the last good read showed.
    #[error(
        "the target lists {now} accounts roster manages where {before} are expected from the last good read \
         ({shrink:.1}% fewer, more than max-target-shrink-percent {limit}); planning on a listing \
         that stops short would create accounts that exist; refusing to plan (check the target, \
         or use --force if they were deleted on purpose)"
    )]
    TargetShrank {
        before: u64,
        now: u64,
        shrink: f64,
        limit: f64,
    },
    /// The group read found nothing while the target has groups roster manages.
    #[error(
        "the source returned no groups while the target has {managed} managed groups; \
         refusing to plan (check which groups the group block selects, or use --force)"
    )]
    NoGroups { managed: usize },
}

/// Reads both sides of `config` into the store under `run_id` and plans. Refuses (nothing
/// planned) when the read is incomplete or fails the checks, unless `options.force`, in
/// which case the plan lists what was overridden.
pub fn plan(
    store: &mut Store,
    run_id: i64,
    config: &Config,
    options: PlanOptions,
) -> Result<Plan, PipelineError> {
    let mapper = Mapper::new(&config.user, &config.policy).for_target(config.target.capabilities());
    let source = source::open(&config.source);
    let kept = match config.target.kept_state_key() {
        Some(key) => store.kept_state(&key)?,
        None => None,
    };
    let target = target::open(&config.target, mapper.target_fields(), kept.as_deref())?;
    let progress = Progress::new(options.progress);
    let started = std::time::Instant::now();
    let mut forced = Forced::new(options.force);

    let groups = groups::read(config, target.as_ref())?;
    let mapper = match &groups {
        Some(groups) => mapper.with_groups(groups.index()),
        None => mapper,
    };
    // A target that keeps no key of roster's: the store's ownership records say which of
    // its accounts are roster's.
    let by_records = !target.capabilities().external_ids;
    let claim_for = by_records.then_some(config.owner.as_str());
    let counts = read::read_both(
        store,
        run_id,
        source,
        &mapper,
        target.as_ref(),
        claim_for,
        &progress,
    )?;
    log::info!(
        "read {} source records ({} rejected) and {} target accounts ({} managed)",
        counts.source,
        counts.rejected,
        counts.target,
        counts.managed
    );
    check_invalid(store, run_id, config, &counts)?;
    check_source(store, run_id, config, &counts, &mut forced)?;
    check_target(store, run_id, config, &counts, &mut forced)?;
    store.accept_source(run_id)?;
    log::debug!("read and loaded both sides in {:.2}s", elapsed(started));

    let mut users = planner::Planner::new(&config.policy);
    store.for_each_pair(run_id, |pair| users.push(pair))?;
    let planned = users.finish(counts.managed);
    let planned = groups::plan(store, run_id, config, groups, planned, &mut forced)?;
    log::debug!("paired and planned in {:.2}s", elapsed(started));

    let mut notes = Vec::new();
    if by_records
        && counts.managed == 0
        && counts.target > 0
        && *config.policy.mode != Mode::AddOnly
    {
        notes.push(format!(
            "nothing is removed: roster has no record of owning any of the {} accounts in {} \
             (owner \"{}\"); accounts it creates or adopts from now on are recorded, and only those are ever removed",
            counts.target,
            target.describe(),
            config.owner
        ));
    }
    let words = target.removal_words();
    let created_at = Utc::now();
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_id: plan_id(created_at),
        created_at,
        summary: planned.summary,
        actions: planned.actions,
        mode: *config.policy.mode,
        config_digest: config.digest.clone(),
        desired_digest: store.desired_digest(run_id)?,
        forced: forced.into_notes(),
        notes,
        remove_means: words.remove,
        delete_means: words.delete,
        target: target.describe(),
        max_removes: matches!(config.policy.max_removes.span, At::CommandLine { .. })
            .then_some(config.policy.max_removes.value),
        managed: has_percent_cap(&config.policy).then_some(counts.managed),
    };
    // Users and groups: every record the plan leaves out is counted.
    plan.summary.rejected = store.reject_count(run_id)?;
    plan.recount();
    store.prune_snapshots()?;
    log::debug!("digested and pruned in {:.2}s", elapsed(started));
    Ok(plan)
}

/// `on-invalid "fail"`: one invalid record refuses the whole plan, listing every one.
fn check_invalid(
    store: &Store,
    run_id: i64,
    config: &Config,
    counts: &SnapshotCounts,
) -> Result<(), PipelineError> {
    if config.policy.on_invalid != OnInvalid::Fail || counts.rejected == 0 {
        return Ok(());
    }
    let rejects = store.rejects(run_id)?;
    let list: Vec<String> = rejects
        .iter()
        .map(|r| format!("  {}: {}", r.origin, r.reason))
        .collect();
    Err(PipelineError::Refused {
        refusal: Refusal::InvalidRecords {
            count: rejects.len(),
            list: list.join("\n"),
        },
        set_here: Vec::new(),
    })
}

/// The source completeness rule. Usable users count, not records: a source whose records
/// are all rejected (a mapping gone wrong) is as empty as one that returned nothing.
fn check_source(
    store: &Store,
    run_id: i64,
    config: &Config,
    counts: &SnapshotCounts,
    forced: &mut Forced,
) -> Result<(), PipelineError> {
    let read = SourceRead {
        count: counts.desired,
        last_good: store.last_good_source_count(run_id)?,
        managed: counts.managed,
    };
    let Err(why) = planner::check_source(read, &config.policy) else {
        return Ok(());
    };
    let rejected = if counts.rejected > 0 {
        format!(
            " ({} read but rejected: see `roster show {run_id}`)",
            render::plural(counts.rejected, "record was", "records were")
        )
    } else {
        String::new()
    };
    let set_here = match why {
        SourceRefusal::Shrank { .. } => config.policy_value_at(
            &config.policy.max_source_shrink_percent,
            "the limit is set here",
            "max-source-shrink-percent",
        ),
        SourceRefusal::Empty { .. } => None,
    };
    let refusal = Refusal::SourceIncomplete {
        why: why.to_string(),
        rejected,
    };
    forced.or_refuse(refusal, set_here)
}

/// The target-side guard, the mirror of the source's: a target listing that shows far fewer
/// managed accounts than the store expects (the last good read, with the creates and deletes
/// roster applied since) is more likely a listing that stopped short than accounts deleted
/// by hand, and planning on it would create every missing account again.
fn check_target(
    store: &Store,
    run_id: i64,
    config: &Config,
    counts: &SnapshotCounts,
    forced: &mut Forced,
) -> Result<(), PipelineError> {
    let Some(before) = store.expected_managed(run_id)? else {
        return Ok(());
    };
    let limit = &config.policy.max_target_shrink_percent;
    match shrink_percent(before, counts.managed) {
        Some(shrink) if shrink > **limit => forced.or_refuse(
            Refusal::TargetShrank {
                before,
                now: counts.managed,
                shrink,
                limit: **limit,
            },
            config.policy_value_at(limit, "the limit is set here", "max-target-shrink-percent"),
        ),
        _ => Ok(()),
    }
}

/// Whether a cap of the policy is a percent of the managed accounts (whose number the plan
/// then records, for the re-check at apply).
fn has_percent_cap(policy: &crate::config::Policy) -> bool {
    let percent = |cap: &Option<crate::config::PolicyValue<Cap>>| {
        cap.as_ref()
            .is_some_and(|c| matches!(c.value, Cap::Percent(_)))
    };
    policy.max_remove_percent.is_some() || percent(&policy.max_adds) || percent(&policy.max_updates)
}

/// By how many percent `now` is below `before`, if it is.
fn shrink_percent(before: u64, now: u64) -> Option<f64> {
    (before > now).then(|| (before - now) as f64 * 100.0 / before as f64)
}

/// The safety checks `--force` overrode in this run, in words, for the plan to show.
struct Forced {
    force: bool,
    notes: Vec<String>,
}

impl Forced {
    fn new(force: bool) -> Forced {
        Forced {
            force,
            notes: Vec::new(),
        }
    }

    /// Refuses (pointing at the policy line `set_here`, if any), or with `--force` notes the
    /// refusal and goes on.
    fn or_refuse(
        &mut self,
        refusal: Refusal,
        set_here: Option<PolicyValueAt>,
    ) -> Result<(), PipelineError> {
        if !self.force {
            return Err(PipelineError::Refused {
                refusal,
                set_here: set_here.into_iter().collect(),
            });
        }
        let note = refusal.to_string();
        log::warn!("--force: {note}");
        self.notes.push(note);
        Ok(())
    }

    fn into_notes(self) -> Vec<String> {
        self.notes
    }
}

fn elapsed(started: std::time::Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// A plan id: its creation time, readable and sortable, and a random suffix.
fn plan_id(at: DateTime<Utc>) -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{suffix}", at.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_is_measured_against_the_larger_earlier_count() {
        assert_eq!(shrink_percent(10, 10), None);
        assert_eq!(shrink_percent(10, 12), None, "growth is no shrink");
        assert_eq!(shrink_percent(0, 0), None);
        assert_eq!(shrink_percent(200, 150), Some(25.0));
        assert_eq!(shrink_percent(3, 0), Some(100.0));
    }
}
