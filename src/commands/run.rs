//! `plan`, `apply` and `sync`: the commands that take the state lock, make or apply a plan,
//! and record how the run ended.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use chrono::Utc;

use super::{Error, Global, Session, exit, plan_file};
use crate::apply::{self, ApplyReport, Release};
use crate::cli::{ApplyArgs, Format, PlanArgs, PolicyOverrides, SyncArgs};
use crate::config::{Config, Policy};
use crate::mapping::Mapper;
use crate::pipeline::{self, PlanOptions};
use crate::plan::seal::{self, Seal};
use crate::plan::{CapName, Hold, Plan};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::store::{AppliedCounts, Outcome, RunKind, RunOutcome, Store};
use crate::{render, target};

pub(super) fn plan(global: &Global, args: PlanArgs) -> Result<u8, Error> {
    let mut session = global.session(RunKind::Plan, &args.overrides)?;
    let run_id = begin(&session, RunKind::Plan)?;
    let result = plan_run(&mut session, run_id, global, args);
    super::notify::after_run(&session, run_id);
    result
}

fn plan_run(
    session: &mut Session,
    run_id: i64,
    global: &Global,
    args: PlanArgs,
) -> Result<u8, Error> {
    let reviewed = match args.compare.as_deref().map(plan_file::load).transpose() {
        Ok(reviewed) => reviewed,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    let key = match signing_key(&session.config) {
        Ok(key) => key,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    let plan = match make_plan(
        session,
        run_id,
        args.force,
        &args.overrides,
        global.progress,
    ) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    let shown = Shown {
        format: args.format,
        colour: global.colour,
    };
    publish(
        &session.store,
        run_id,
        &plan,
        key.as_ref(),
        args.out.as_deref(),
        shown,
    )?;
    explain_holds(&session.config, &plan);
    if let Some(reviewed) = &reviewed {
        let whole = plan
            .in_memory()
            .map_err(|e| unreadable(&session.store, e))?;
        let comparison = render::comparison(reviewed, &whole);
        // JSON on stdout stays one document; the comparison goes beside it.
        if args.format == Format::Json {
            eprint!("{comparison}");
        } else {
            super::emit(&format!("\n{comparison}"));
        }
    }
    if let Some(out) = &args.out
        && plan.summary.has_changes()
    {
        eprintln!(
            "Saved the plan to {}. Apply exactly this plan with: roster apply {}",
            out.display(),
            out.display()
        );
    }
    finish(&session.store, run_id, plan_outcome(&plan), &plan)?;
    // The plan is in `plan_actions` now: its draft is read no more.
    session.store.clear_draft()?;
    Ok(if args.detailed_exitcode {
        plan_exit_code(&plan)
    } else {
        exit::OK
    })
}

pub(super) fn apply(global: &Global, args: ApplyArgs) -> Result<u8, Error> {
    if args.plan_file.is_some() {
        refuse_overrides(&args.overrides)?;
    }
    let mut session = global.session(RunKind::Apply, &args.overrides)?;
    let run_id = begin(&session, RunKind::Apply)?;
    let result = apply_run(&mut session, run_id, global, args);
    super::notify::after_run(&session, run_id);
    result
}

fn apply_run(
    session: &mut Session,
    run_id: i64,
    global: &Global,
    args: ApplyArgs,
) -> Result<u8, Error> {
    let release = args.allow.release(args.force);
    let result = match &args.plan_file {
        Some(file) => signing_key(&session.config)
            .and_then(|key| {
                plan_file::load_for(file, &session.config, &session.store, key.as_ref())
            })
            .and_then(|(plan, digest)| {
                session.store.save_plan(&plan, None, &digest)?;
                Ok(plan)
            }),
        None => make_plan(
            session,
            run_id,
            args.force,
            &args.overrides,
            global.progress,
        )
        .and_then(|plan| {
            save(&session.store, &plan, run_id, None)?;
            print_plan(&plan, Shown::human(global), None, None);
            in_memory(&session.store, plan)
        }),
    };
    let plan = match result {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    if args.plan_file.is_none() && plan.summary.has_changes() && !args.auto_approve {
        match confirm() {
            Ok(true) => {}
            Ok(false) => return cancelled(&session.store, run_id, &plan, "Apply"),
            Err(e) => return fail_run(&session.store, run_id, e),
        }
    }
    // A saved plan may be old: it is checked against the target first. A plan made in this
    // run is as fresh as it gets.
    let saved = args.plan_file.is_some();
    let report = apply_plan(session, run_id, plan, release, saved, global.progress)?;
    Ok(if report.failed > 0 {
        exit::ERROR
    } else {
        exit::OK
    })
}

pub(super) fn sync(global: &Global, args: SyncArgs) -> Result<u8, Error> {
    let mut session = global.session(RunKind::Sync, &args.overrides)?;
    let run_id = begin(&session, RunKind::Sync)?;
    let result = sync_run(&mut session, run_id, global, args);
    super::notify::after_run(&session, run_id);
    result
}

fn sync_run(
    session: &mut Session,
    run_id: i64,
    global: &Global,
    args: SyncArgs,
) -> Result<u8, Error> {
    let plan = match make_plan(session, run_id, false, &args.overrides, global.progress) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    save(&session.store, &plan, run_id, None)?;
    let shown = Shown {
        format: args.format,
        colour: global.colour,
    };
    print_plan(&plan, shown, None, None);
    explain_holds(&session.config, &plan);
    // Apply works on a plan in memory.
    let plan = in_memory(&session.store, plan)?;
    let code = plan_exit_code(&plan);
    if code == exit::OK {
        finish(&session.store, run_id, Outcome::NoChanges, &plan)?;
        return Ok(exit::OK);
    }
    if !args.auto_approve {
        match confirm() {
            Ok(true) => {}
            Ok(false) => return cancelled(&session.store, run_id, &plan, "Sync"),
            Err(e) => return fail_run(&session.store, run_id, e),
        }
    }
    // `--allow-<kind> N` releases what this plan holds, as `apply` does.
    let release = args.allow.release(false);
    let report = apply_plan(session, run_id, plan, release, false, global.progress)?;
    Ok(sync_exit_code(&report, args.detailed_exitcode))
}

/// For schedules: 0 when everything planned was applied, 3 when a cap holds some actions
/// (a human must look), 1 when any action failed; with `--detailed-exitcode`, 2 instead of
/// 0 when changes were applied.
fn sync_exit_code(report: &ApplyReport, detailed: bool) -> u8 {
    if report.failed > 0 {
        exit::ERROR
    } else if report.held > 0 {
        exit::HELD
    } else if detailed && report.applied > 0 {
        exit::CHANGES
    } else {
        exit::OK
    }
}

/// `--mode` and `--max-removes` decide what a plan contains; a saved plan was made already,
/// so they would be silently ignored: refused instead.
fn refuse_overrides(overrides: &PolicyOverrides) -> Result<(), Error> {
    let mut given = Vec::new();
    if overrides.mode.is_some() {
        given.push("--mode");
    }
    if overrides.max_removes.is_some() {
        given.push("--max-removes");
    }
    if overrides.incremental {
        given.push("--incremental");
    }
    if overrides.initial {
        given.push("--initial");
    }
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} cannot change a saved plan, which was made under the policy of its time; \
         make a new plan with them (`roster plan --out FILE` and the same flags), or release \
         held removes with --allow-removes N",
        given.join(" and ")
    )))
}

/// The person asked said no: nothing is applied and the run says so.
fn cancelled(store: &Store, run_id: i64, plan: &Plan, what: &str) -> Result<u8, Error> {
    finish(store, run_id, Outcome::Cancelled, plan)?;
    eprintln!("{what} cancelled.");
    Ok(exit::ERROR)
}

fn begin(session: &Session, kind: RunKind) -> Result<i64, Error> {
    Ok(session
        .store
        .begin_run(kind, &session.config.digest, Utc::now())?)
}

fn make_plan(
    session: &mut Session,
    run_id: i64,
    force: bool,
    overrides: &PolicyOverrides,
    progress: bool,
) -> Result<Plan, Error> {
    let options = PlanOptions {
        force,
        progress,
        initial: overrides.initial,
    };
    Ok(pipeline::plan(
        &mut session.store,
        run_id,
        &session.config,
        options,
    )?)
}

/// Records how a run that made (or applied) `plan` ended.
fn finish(store: &Store, run_id: i64, outcome: Outcome, plan: &Plan) -> Result<(), Error> {
    let outcome = RunOutcome {
        outcome,
        error: None,
        plan_id: Some(plan.plan_id.clone()),
        applied: None,
    };
    Ok(store.finish_run(run_id, &outcome, Utc::now())?)
}

/// Records a failed run and passes the error on.
fn fail_run(store: &Store, run_id: i64, error: Error) -> Result<u8, Error> {
    let outcome = match &error {
        Error::Pipeline(e) if e.is_refusal() => Outcome::Refused,
        Error::NoTerminal => Outcome::Refused,
        _ => Outcome::Error,
    };
    store.finish_run(
        run_id,
        &RunOutcome {
            outcome,
            error: Some(error.to_string()),
            plan_id: None,
            applied: None,
        },
        Utc::now(),
    )?;
    Err(error)
}

/// Stores the plan, writes its file and shows it, at the same time: for a large plan each
/// of these is a pass over every action, and a plan kept in the store is read and decoded
/// once for all of them (`plan::shared`).
///
/// A signature goes into the printed JSON and the file, so a signed plan is sealed first;
/// an unsigned plan's digest only the store needs, and it is taken while the rest runs.
fn publish(
    store: &Store,
    run_id: i64,
    plan: &Plan,
    key: Option<&Secret>,
    out: Option<&Path>,
    shown: Shown,
) -> Result<(), Error> {
    let signed: Option<Seal> = key
        .map(|k| seal::try_seal(plan, Some(k.expose().as_bytes())))
        .transpose()
        .map_err(|e| unreadable(store, e))?;
    let signature = signed.as_ref().and_then(|s| s.signature.as_deref());
    // One reader each: stdout, the file, and the seal when not sealed already (the last
    // copy, so that a signed plan has none). Each copy is moved to the thread that reads it
    // and dropped there.
    let readers = 1 + usize::from(out.is_some()) + usize::from(signed.is_none());
    let mut copies = plan.shared(readers).into_iter();
    let to_show = copies.next().unwrap_or(std::borrow::Cow::Borrowed(plan));
    let to_file = out.and_then(|_| copies.next());
    let to_seal = copies.next();
    let (saved, written) = std::thread::scope(|scope| {
        let file = out
            .zip(to_file)
            .map(|(out, copy)| scope.spawn(move || plan_file::write(out, &copy, signature)));
        let shown = scope.spawn(move || print_plan(&to_show, shown, out, signature));
        let saved = match &to_seal {
            Some(copy) => save(store, copy, run_id, None),
            None => save(
                store,
                plan,
                run_id,
                signed.as_ref().map(|s| s.digest.as_str()),
            ),
        };
        drop(to_seal);
        let written = file.map(|f| {
            f.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        shown
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (saved, written)
    });
    saved?;
    match (out, written) {
        (Some(out), Some(Err(e))) => Err(Error::PlanFile {
            path: out.display().to_string(),
            message: e.to_string(),
        }),
        _ => Ok(()),
    }
}

fn plan_outcome(plan: &Plan) -> Outcome {
    match plan_exit_code(plan) {
        exit::OK => Outcome::NoChanges,
        exit::HELD => Outcome::Held,
        _ => Outcome::Changes,
    }
}

/// 0 no changes, 2 changes, 3 changes some of which are held.
fn plan_exit_code(plan: &Plan) -> u8 {
    if plan.summary.held > 0 {
        exit::HELD
    } else if plan.summary.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    }
}

/// How a plan is printed on stdout: its format, and for the human form whether in colour.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shown {
    format: Format,
    colour: render::Colour,
}

impl Shown {
    fn human(global: &Global) -> Shown {
        Shown {
            format: Format::Human,
            colour: global.colour,
        }
    }
}

/// Prints the plan; a Markdown plan too large for a comment points at `plan_file`. Its JSON
/// carries the plan's signature when it has one, so that `roster plan --format json >
/// plan.json` makes a plan file like `--out` does.
fn print_plan(plan: &Plan, shown: Shown, plan_file: Option<&Path>, signature: Option<&str>) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed stdout (`roster plan | head`) is not an error worth failing the run for.
    let _ = match shown.format {
        Format::Human => render::write_human(plan, shown.colour, &mut out),
        Format::Json => render::write_signed_json(plan, signature, &mut out),
        // Markdown is cut to a comment's size, looking at the whole plan at once.
        Format::Markdown => plan.in_memory().and_then(|plan| {
            let file = plan_file.map(|p| p.display().to_string());
            let text = render::markdown_within(&plan, render::COMMENT_LIMIT, file.as_deref());
            out.write_all(text.as_bytes())
        }),
    };
    let _ = out.flush();
}

/// Points at the policy line of every cap that holds actions in `plan`, on stderr, the way
/// `roster validate` points at problems: a reviewer sees which value to change. A cap left
/// at its default is written nowhere, and the plan's own `held:` text names it already.
fn explain_holds(config: &Config, plan: &Plan) {
    let mut caps: Vec<(HoldingCap, u64)> = Vec::new();
    if plan.count_where(|_, _, status| status == crate::plan::ActionStatus::Held) == 0 {
        return;
    }
    let read = plan.each_action(|a| {
        if let Some(cap) = a.hold.as_deref().map(holding_cap) {
            match caps.iter_mut().find(|(c, _)| *c == cap) {
                Some((_, count)) => *count += 1,
                None => caps.push((cap, 1)),
            }
        }
        Ok(())
    });
    if let Err(e) = read {
        log::warn!("cannot point at the caps that hold actions: {e}");
        return;
    }
    let policy = &config.policy;
    for (cap, count) in caps {
        let name = cap.name();
        let message = format!(
            "{} held by {name}, which is set here",
            render::plural(count, "action is", "actions are")
        );
        let at = match cap {
            HoldingCap::User(CapName::MaxRemoves) => {
                config.policy_value_at(&policy.max_removes, message, name)
            }
            HoldingCap::User(CapName::MaxRemovePercent) => policy
                .max_remove_percent
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
            HoldingCap::User(CapName::MaxAdds) => policy
                .max_adds
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
            HoldingCap::User(CapName::MaxUpdates) => policy
                .max_updates
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
            HoldingCap::User(CapName::MaxDeletes) => policy
                .max_deletes
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
            HoldingCap::User(CapName::MaxChanges) => policy
                .max_changes
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
            HoldingCap::MemberRemoves => policy
                .max_member_removes
                .as_ref()
                .and_then(|v| config.policy_value_at(v, message, name)),
        };
        if let Some(at) = at {
            eprintln!("{:?}", miette::Report::new(at));
        }
    }
}

/// The policy value behind a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldingCap {
    User(CapName),
    MemberRemoves,
}

impl HoldingCap {
    fn name(self) -> &'static str {
        match self {
            HoldingCap::User(cap) => cap.as_str(),
            HoldingCap::MemberRemoves => "max-member-removes",
        }
    }
}

fn holding_cap(hold: &Hold) -> HoldingCap {
    match hold {
        Hold::Cap { name, .. } => HoldingCap::User(*name),
        Hold::MemberRemoves { .. } => HoldingCap::MemberRemoves,
        Hold::WithUserRemoval { by, .. }
        | Hold::WaitsForUserAdd { by, .. }
        | Hold::Dripped { by, .. } => holding_cap(by),
    }
}

/// Asks for `yes` on the terminal; refuses without one.
fn confirm() -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoTerminal);
    }
    eprint!(
        "\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: "
    );
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

/// Releases what the human released, applies, reports and records the outcome.
fn apply_plan(
    session: &Session,
    run_id: i64,
    mut plan: Plan,
    release: Release,
    check_staleness: bool,
    show_progress: bool,
) -> Result<ApplyReport, Error> {
    let config = &session.config;
    let mapper = Mapper::new(&config.user, &config.policy);
    let kept_key = config.target.kept_state_key();
    let kept = match &kept_key {
        Some(key) => session.store.kept_state(key)?,
        None => None,
    };
    let target = target::open(
        &config.target,
        &config.owner,
        mapper.target_fields(),
        kept.as_deref(),
    )?;
    if target.describe() != plan.target {
        return Err(Error::Usage(format!(
            "the plan is for the target {}, but the config names {}",
            plan.target,
            target.describe()
        )));
    }
    let options = apply::ApplyOptions {
        concurrency: config.target.concurrency() as usize,
        check_staleness,
        owner: &config.owner,
        kept_key: kept_key.as_deref(),
    };
    let progress = Progress::new(show_progress);
    let policy = policy_in_force(config, &plan);
    let outcome = apply::release(&mut plan, release).and_then(|()| {
        apply::recheck(&plan, &policy, release)?;
        apply::apply(
            &mut plan,
            &session.store,
            target.as_ref(),
            options,
            &progress,
        )
    });
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            let outcome = RunOutcome {
                outcome: match e {
                    apply::ApplyError::Refused(_) => Outcome::Refused,
                    _ => Outcome::Error,
                },
                error: Some(e.to_string()),
                plan_id: Some(plan.plan_id.clone()),
                applied: None,
            };
            session.store.finish_run(run_id, &outcome, Utc::now())?;
            return Err(e.into());
        }
    };
    let held: Vec<&crate::plan::Action> = plan
        .actions
        .iter()
        .filter(|a| a.status == crate::plan::ActionStatus::Held)
        .collect();
    super::emit(&format!("{}\n", report_line(&report, &held)));
    let outcome = RunOutcome {
        outcome: if report.failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Applied
        },
        error: (report.failed > 0).then(|| format!("{} actions failed", report.failed)),
        plan_id: Some(plan.plan_id.clone()),
        applied: Some(AppliedCounts {
            applied: report.applied,
            failed: report.failed,
            held: report.held,
        }),
    };
    session.store.finish_run(run_id, &outcome, Utc::now())?;
    Ok(report)
}

/// The policy a plan is re-checked against: the config's, with what the command line set
/// when the plan was made (its mode, its `--max-removes`), which the sealed plan records.
fn policy_in_force(config: &Config, plan: &Plan) -> Policy {
    let mut policy = config.policy.clone();
    if plan.mode != *policy.mode {
        policy.override_mode(plan.mode);
    }
    if let Some(n) = plan.max_removes {
        policy.override_max_removes(n);
    }
    policy
}

/// The `plan-signing-key`, when the config names one. A key that is named but cannot be
/// read is an error: a plan made without it could not be applied where the store never saw
/// it, and a plan file to apply could not be checked.
fn signing_key(config: &Config) -> Result<Option<Secret>, Error> {
    config
        .plan_signing_key
        .as_ref()
        .map(|key| {
            key.value.resolve().map_err(|e| {
                Error::Usage(format!(
                    "plan-signing-key: {e}; plans are signed and checked with it"
                ))
            })
        })
        .transpose()
}

/// Stores a plan made in this run, with its digest: `digest` when the plan was sealed
/// already (signed), else taken on another thread while the actions are written.
fn save(store: &Store, plan: &Plan, run_id: i64, digest: Option<&str>) -> Result<(), Error> {
    let mut unsealed = None;
    let saved = std::thread::scope(|scope| {
        let digest = match digest {
            Some(digest) => Ok(digest.to_string()),
            None => Err(scope.spawn(|| seal::try_seal(plan, None))),
        };
        store.save_plan_then_digest(plan, Some(run_id), || match digest {
            Ok(digest) => digest,
            Err(sealing) => match sealing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            {
                Ok(seal) => seal.digest,
                Err(e) => {
                    // Matches no plan; the error below fails the run.
                    let digest = format!("unreadable plan: {e}");
                    unsealed = Some(e);
                    digest
                }
            },
        })
    });
    match unsealed {
        Some(e) => Err(unreadable(store, e)),
        None => saved.map_err(Error::from),
    }
}

/// A saved plan with its actions in memory, for apply; its draft is read no more.
fn in_memory(store: &Store, plan: Plan) -> Result<Plan, Error> {
    if plan.stored.is_none() {
        return Ok(plan);
    }
    let whole = plan
        .in_memory()
        .map_err(|e| unreadable(store, e))?
        .into_owned();
    store.clear_draft()?;
    Ok(whole)
}

/// The actions of a plan kept in the store could not be read back.
fn unreadable(store: &Store, e: std::io::Error) -> Error {
    Error::Store(crate::store::StoreError::Invalid {
        path: store.path().display().to_string(),
        message: format!("reading the plan's actions back: {e}"),
    })
}

/// `Apply complete: ...`; held actions come with what releases them: each
/// `--allow-<kind> N` its kind, `--force` everything.
fn report_line(r: &ApplyReport, held: &[&crate::plan::Action]) -> String {
    let mut line = format!("Apply complete: {} applied, {} failed", r.applied, r.failed);
    if r.held > 0 {
        let hint = render::release_hint(held).replacen("Release", "release", 1);
        line.push_str(&format!(", {} held ({hint})", r.held));
    }
    if r.skipped > 0 {
        line.push_str(&format!(", {} skipped", r.skipped));
    }
    if r.already_applied > 0 {
        line.push_str(&format!(", {} already applied earlier", r.already_applied));
    }
    line.push('.');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, ActionKind, Counted, Limit, UserRef};

    fn held(kind: ActionKind, name: CapName) -> Action {
        let mut a = Action::change_user(kind, UserRef::default(), Vec::new(), Vec::new());
        a.hold(Hold::Cap {
            counted: Counted::Adds(1),
            name,
            limit: Limit::Count(0),
        });
        a
    }

    #[test]
    fn held_actions_are_pointed_at_the_flag_of_their_kind() {
        let report = |held| ApplyReport {
            applied: 2,
            held,
            ..ApplyReport::default()
        };
        let remove = held(ActionKind::Remove, CapName::MaxRemoves);
        assert_eq!(
            report_line(&report(3), &[&remove, &remove, &remove]),
            "Apply complete: 2 applied, 0 failed, 3 held (release the held removes with \
             `roster apply PLAN --allow-removes 3`)."
        );
        let add = held(ActionKind::Add, CapName::MaxAdds);
        let update = held(ActionKind::Update, CapName::MaxChanges);
        let delete = held(ActionKind::Delete, CapName::MaxDeletes);
        let all = report_line(&report(5), &[&delete, &add, &remove, &add, &update]);
        assert!(
            all.contains(
                "release the held adds and updates and removes and deletes with `roster apply \
                 PLAN --allow-adds 2 --allow-updates 1 --allow-removes 1 --allow-deletes 1`"
            ),
            "{all}"
        );
        // A delete the remove caps hold is released with the removes.
        let shared = held(ActionKind::Delete, CapName::MaxRemoves);
        assert!(report_line(&report(1), &[&shared]).contains("--allow-removes 1"));
        // Only --force releases what no flag of a kind does.
        let mut group = Action::add_group("g", "Sales", crate::plan::Reason::NotInTarget);
        group.hold(Hold::MemberRemoves {
            count: 2,
            group: "Sales".into(),
            limit: Limit::Count(1),
        });
        assert_eq!(
            report_line(&report(1), &[&group]),
            "Apply complete: 2 applied, 0 failed, 1 held (release them with \
             `roster apply PLAN --force`)."
        );
        let mixed = report_line(&report(2), &[&add, &group]);
        assert!(
            mixed.contains("--allow-adds 1`; the 1 other held action only with `--force`"),
            "{mixed}"
        );
    }
}
