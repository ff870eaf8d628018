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
mod incremental;
mod read;

use chrono::{DateTime, Utc};

use crate::config::{At, Cap, Config, Mode, OnInvalid, PolicyValueAt, ReadMode, Spanned};
use crate::mapping::Mapper;
use crate::plan::{FORMAT_VERSION, Plan};
use crate::planner::{self, SourceRead, SourceRefusal};
use crate::progress::Progress;
use crate::render;
use crate::source::{self, Source, SourceError, TrackedRead};
use crate::store::{Claim, ReadKind, SnapshotCounts, SourceReadRecord, Store, StoreError};
use crate::target::{self, TargetError};
use incremental::Decision;
use read::{SourceReading, TargetReading};

pub use read::ReadError;

/// How a plan run may go: whether `--force` overrides the safety checks, and whether
/// progress is shown.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub force: bool,
    pub progress: bool,
    /// `--initial`: a first load, allowed only into a target with no account of this owner.
    pub initial: bool,
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
    /// `--initial` on a target that already has accounts roster manages.
    #[error(
        "--initial is for a first load into a target with no account of owner \"{owner}\", \
         but {target} has {managed} accounts roster manages; refusing to plan (a second \
         initial load would load everything again: run `roster plan` without --initial)"
    )]
    NotInitial {
        owner: String,
        target: String,
        managed: u64,
    },
}

/// How long a field apply saw the target drop is left out of plans before it is tried again.
const IGNORED_BELIEVED_DAYS: i64 = 7;

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
    let mut source = source::open(&config.source);
    let kept = match config.target.kept_state_key() {
        Some(key) => store.kept_state(&key)?,
        None => None,
    };
    let target = target::open(
        &config.target,
        &config.owner,
        mapper.target_fields(),
        kept.as_deref(),
    )?;
    let progress = Progress::new(options.progress);
    let started = std::time::Instant::now();
    let mut forced = Forced::new(options.force);

    let groups = groups::read(config, target.as_ref())?;
    let mapper = match &groups {
        Some(groups) => mapper.with_groups(groups.index()),
        None => mapper,
    };
    // Only this config's owner's accounts are managed: a target that keeps no key of
    // roster's by the store's ownership records, one that keeps owners by what it says.
    let caps = target.capabilities();
    let by_records = !caps.external_ids;
    let claim_for = if by_records {
        Some((config.owner.as_str(), Claim::ByRecords))
    } else if caps.owner_on_target {
        Some((config.owner.as_str(), Claim::OnTarget))
    } else {
        None
    };
    let read_at = Utc::now();
    let mut choice = choose_reading(store, run_id, config, source.as_mut(), read_at)?;
    let decided = choice.decision.clone();
    let mut reading = match (&decided, &choice.identity) {
        (Some(Decision::Incremental { base_run, since }), Some(_)) => SourceReading::Changes {
            since,
            base_run: *base_run,
        },
        (_, Some(_)) => SourceReading::WholeTracked,
        _ => SourceReading::Whole,
    };
    let source_where = source.describe();
    // The target too is read by change when the source is (`incremental::target_reading`).
    let base = match reading {
        SourceReading::Changes { base_run, .. } if target.lists_changes() => {
            store.target_base(base_run)?
        }
        _ => None,
    };
    let (target_reading, base_missing) =
        incremental::target_reading(&reading, target.lists_changes(), base);
    let mut read_as = |reading, target_reading| {
        read::read_both(
            store,
            run_id,
            source.as_mut(),
            reading,
            &mapper,
            target.as_ref(),
            target_reading,
            claim_for,
            &progress,
        )
    };
    let first = read_as(reading, target_reading);
    // A source that cannot answer with changes after all (LDAP content sync: the session log
    // does not reach back to the cookie): what it read is rolled back, and a complete read
    // is made instead, the note saying why.
    let (counts, tracked, target_read) = match first {
        Err(ReadError::Source {
            error: SourceError::NeedsCompleteRead(why),
            ..
        }) if matches!(reading, SourceReading::Changes { .. }) => {
            log::info!("complete read: {why}");
            choice.decision = Some(Decision::Complete { why });
            reading = SourceReading::WholeTracked;
            read_as(reading, TargetReading::Whole)?
        }
        other => other?,
    };
    let incremental = matches!(reading, SourceReading::Changes { .. });
    record_read(
        store,
        run_id,
        &choice,
        source_where,
        &tracked,
        incremental,
        read_at,
    )?;
    log::info!(
        "read {} source records ({} rejected) and {} target accounts ({} managed)",
        counts.source,
        counts.rejected,
        counts.target,
        counts.managed
    );
    check_invalid(store, run_id, config, &counts, &mapper.outcomes())?;
    // Values a field's on-invalid="default" replaced, then how the source was read.
    let mut notes = mapper.notes();
    notes.extend(read_note(&choice, &tracked, incremental));
    if incremental {
        notes.extend(incremental::target_note(
            &target_read,
            base_missing.as_deref(),
        ));
    }
    if options.initial {
        check_initial(config, &counts, target.describe())?;
        notes.push(format!(
            "initial load: the target holds no account of owner \"{}\"; no cap counts the adds \
             and the shrink checks do not apply",
            config.owner
        ));
    } else {
        // An incremental read removes nothing by absence: the shrink it would measure is only
        // the explicit deletes, which the remove caps hold.
        if !incremental {
            check_source(store, run_id, config, &counts, &mut forced)?;
        }
        check_target(store, run_id, config, &counts, &mut forced)?;
    }
    store.accept_source(run_id)?;
    log::debug!("read and loaded both sides in {:.2}s", elapsed(started));

    // The plan's time is also the time marks of newly missing accounts start from.
    let created_at = Utc::now();
    let context = planner::Context {
        managed: counts.managed,
        target_accounts: counts.target,
        now: created_at,
        marks: store.missing_marks(&config.owner)?,
        initial: options.initial,
    };
    // The actions go into the store's draft as they are made: memory does not grow with
    // the directory (issue 16).
    let mut users = planner::Planner::with_sink(&config.policy, context, store.draft()?);
    if caps.owner_on_target {
        users = users.recording_owner(&config.owner);
    }
    if !caps.renames {
        users = users.without_renames();
    }
    store.for_each_pair(run_id, |pair| users.push(pair))?;
    let planned = users.finish();
    planned.actions.close()?;
    // Only a read that passed the checks gets here: marks advance on good reads alone.
    store.keep_missing_marks(&config.owner, &planned.missing)?;
    let mut summary = planned.summary;
    groups::plan(store, run_id, config, groups, &mut summary, &mut forced)?;
    // Changes apply saw this target drop (within the last week) are left out, with why.
    let since = (Utc::now() - chrono::Duration::days(IGNORED_BELIEVED_DAYS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ignored: Vec<crate::plan::Field> = store
        .ignored_fields(&target.describe(), &since)?
        .iter()
        .filter_map(|name| crate::plan::contract::user_field(name))
        .collect();
    if !ignored.is_empty() {
        store.rewrite_drafted_users(|action| {
            let before = action.clone();
            planner::ignored::leave_out_ignored(std::slice::from_mut(action), &ignored);
            *action != before
        })?;
    }
    let stored = store.drafted()?;
    log::debug!("paired and planned in {:.2}s", elapsed(started));
    notes.extend(empty_base_note(&stored, counts.target).map_err(|e| unreadable(store, e))?);

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
    for (other, count) in store.foreign_owners(run_id)? {
        notes.push(format!(
            "{count} account{} in {} belong{} to owner \"{other}\" (the target says so): \
             this config (owner \"{}\") never updates, removes or deletes {}",
            if count == 1 { "" } else { "s" },
            target.describe(),
            if count == 1 { "s" } else { "" },
            config.owner,
            if count == 1 { "it" } else { "them" },
        ));
    }
    let words = target.removal_words();
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_id: plan_id(created_at),
        created_at,
        summary,
        actions: Vec::new(),
        stored: Some(stored),
        mode: *config.policy.mode,
        config_digest: config.digest.clone(),
        desired_digest: store.desired_digest(run_id)?,
        forced: forced.into_notes(),
        notes,
        remove_means: words.remove,
        delete_means: words.delete,
        target: target.describe(),
        max_removes: match config.policy.max_removes {
            Spanned {
                value: Cap::Count(n),
                span: At::CommandLine { .. },
            } => Some(n),
            _ => None,
        },
        managed: has_percent_cap(&config.policy).then_some(counts.managed),
        target_accounts: has_percent_cap(&config.policy).then_some(counts.target),
        initial: options.initial,
    };
    // Users and groups: every record the plan leaves out is counted.
    plan.summary.rejected = store.reject_count(run_id)?;
    plan.recount();
    store.prune_snapshots()?;
    log::debug!("digested and pruned in {:.2}s", elapsed(started));
    Ok(plan)
}

/// How this run reads the source: `decision` is `None` when the policy asks for complete
/// reads (nothing tracked, as before incremental reads existed); `identity` is the server's,
/// when the read is tracked.
struct ReadChoice {
    decision: Option<Decision>,
    identity: Option<String>,
}

/// `read "incremental"` (or `--incremental`): asks the server who it is, reads the last good
/// read from the store, and decides (`incremental::decide`). A source that tracks nothing is
/// read whole, and the plan says so.
fn choose_reading(
    store: &Store,
    run_id: i64,
    config: &Config,
    source: &mut dyn Source,
    now: DateTime<Utc>,
) -> Result<ReadChoice, PipelineError> {
    if *config.policy.read.read != ReadMode::Incremental {
        return Ok(ReadChoice {
            decision: None,
            identity: None,
        });
    }
    if !source.tracks_changes() {
        return Ok(ReadChoice {
            decision: Some(Decision::Complete {
                why: format!(
                    "the source {} tracks no changes: it is always read whole",
                    source.describe()
                ),
            }),
            identity: None,
        });
    }
    let identity = source
        .server_identity()
        .map_err(|error| ReadError::Source {
            where_: source.describe(),
            error,
        })?;
    let last = store.last_good_read(run_id)?;
    let facts = incremental::Facts {
        source: &source.describe(),
        identity: &identity,
        config_digest: &config.digest,
        last: last.as_ref(),
        now,
    };
    let decision = incremental::decide(&facts, &config.policy.read, &|c| source.check_cookie(c));
    match &decision {
        Decision::Incremental { base_run, since } => {
            log::info!("incremental read since run {base_run} ({since})")
        }
        Decision::Complete { why } => log::info!("complete read: {why}"),
    }
    Ok(ReadChoice {
        decision: Some(decision),
        identity: Some(identity),
    })
}

/// Records the read of this run; its cookie is used only once the read is accepted and the
/// plan stored (`Store::last_good_read`).
fn record_read(
    store: &Store,
    run_id: i64,
    choice: &ReadChoice,
    source: String,
    tracked: &TrackedRead,
    incremental: bool,
    read_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.record_source_read(&SourceReadRecord {
        run_id,
        source,
        server: choice.identity.clone(),
        cookie: choice.identity.as_ref().and(tracked.cookie.clone()),
        kind: if incremental {
            ReadKind::Incremental
        } else {
            ReadKind::Complete
        },
        desired: 0,
        changed: tracked.records,
        deleted: tracked.deleted,
        read_at,
    })
}

/// The plan's line about how the source was read, when the policy asks for incremental reads.
fn read_note(choice: &ReadChoice, tracked: &TrackedRead, incremental: bool) -> Option<String> {
    match &choice.decision {
        None => None,
        Some(Decision::Incremental { base_run, .. }) if incremental => Some(format!(
            "incremental read: {} and {} since the read of run {base_run}; nothing is removed \
             for being absent from an incremental read (a delete the source does not report is \
             seen at the next complete read)",
            render::plural(tracked.records, "changed record", "changed records"),
            render::plural(tracked.deleted, "delete", "deletes"),
        )),
        Some(Decision::Incremental { .. }) => None,
        Some(Decision::Complete { why }) => Some(format!("complete read: {why}")),
    }
}

/// `on-invalid "fail"`: one invalid record refuses the whole plan, listing every one. A
/// field's own `on-invalid=` decides for the records it rejects: `fail` refuses whatever
/// the policy says, `skip` does not refuse under a policy `fail`.
fn check_invalid(
    store: &Store,
    run_id: i64,
    config: &Config,
    counts: &SnapshotCounts,
    outcomes: &crate::mapping::Outcomes,
) -> Result<(), PipelineError> {
    let policy_fails = config.policy.on_invalid == OnInvalid::Fail;
    if counts.rejected == 0 || (!policy_fails && outcomes.fatal.is_empty()) {
        return Ok(());
    }
    let list: Vec<String> = if policy_fails {
        store
            .rejects(run_id)?
            .iter()
            .filter(|r| !outcomes.skipped.contains(&r.origin))
            .map(|r| format!("  {}: {}", r.origin, r.reason))
            .collect()
    } else {
        outcomes
            .fatal
            .iter()
            .map(|line| format!("  {line}"))
            .collect()
    };
    if list.is_empty() {
        return Ok(());
    }
    Err(PipelineError::Refused {
        refusal: Refusal::InvalidRecords {
            count: list.len(),
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
    // Every account roster wrote counts, whoever owns it (as the store records the read).
    let now = counts.managed + counts.foreign;
    match shrink_percent(before, now) {
        Some(shrink) if shrink > **limit => forced.or_refuse(
            Refusal::TargetShrank {
                before,
                now,
                shrink,
                limit: **limit,
            },
            config.policy_value_at(limit, "the limit is set here", "max-target-shrink-percent"),
        ),
        _ => Ok(()),
    }
}

/// Whether a cap of the policy is a percent (of the managed accounts, or of the target for
/// adds), whose base the plan then records, for the re-check at apply.
fn has_percent_cap(policy: &crate::config::Policy) -> bool {
    let percent = |cap: &Option<crate::config::PolicyValue<Cap>>| {
        cap.as_ref()
            .is_some_and(|c| matches!(c.value, Cap::Percent(_)))
    };
    policy.max_remove_percent.is_some()
        || matches!(policy.max_removes.value, Cap::Percent(_))
        || percent(&policy.max_adds)
        || percent(&policy.max_updates)
        || percent(&policy.max_deletes)
        || percent(&policy.max_changes)
}

/// `--initial`: refused when the target has any account roster manages for this owner (an
/// externalId, or on a target without them an ownership record), so that running it twice
/// cannot load twice.
fn check_initial(
    config: &Config,
    counts: &SnapshotCounts,
    target: String,
) -> Result<(), PipelineError> {
    if counts.managed == 0 {
        return Ok(());
    }
    Err(PipelineError::Refused {
        refusal: Refusal::NotInitial {
            owner: config.owner.clone(),
            target,
            managed: counts.managed,
        },
        set_here: Vec::new(),
    })
}

/// A percent cap measured against an empty base (a first load into an empty target) holds
/// everything it counts: said in a note, with the way out, rather than left to puzzle over.
fn empty_base_note(
    stored: &crate::plan::Stored,
    target_accounts: u64,
) -> std::io::Result<Option<String>> {
    use crate::plan::{ActionStatus, Hold, Limit};
    let on_empty = |hold: &Hold| {
        matches!(
            hold,
            Hold::Cap {
                limit: Limit::Percent { of: 0, .. } | Limit::PercentOfTarget { of: 0, .. },
                ..
            }
        )
    };
    // Only held actions have a hold: a plan without any is not read again for this.
    let mut held = 0u64;
    if stored.tally.iter().any(|t| t.status == ActionStatus::Held) {
        stored.source.each(&mut |a| {
            if a.hold.as_deref().is_some_and(on_empty) {
                held += 1;
            }
            Ok(())
        })?;
    }
    Ok((held > 0).then(|| {
        format!(
            "{} held by a percent cap measured against {}: a percent of nothing allows \
             nothing; for a first load use `roster plan --initial`, or release them with \
             `roster apply PLAN --allow-adds N`",
            render::plural(held, "action is", "actions are"),
            if target_accounts == 0 {
                "an empty target"
            } else {
                "no managed accounts"
            }
        )
    }))
}

/// The plan's draft could not be read back from the store.
fn unreadable(store: &Store, e: std::io::Error) -> PipelineError {
    PipelineError::Store(StoreError::Invalid {
        path: store.path().display().to_string(),
        message: format!("reading the plan's actions back: {e}"),
    })
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
