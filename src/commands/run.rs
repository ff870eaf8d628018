//! `plan`, `apply` and `sync`: the commands that take the state lock, make or apply a plan,
//! and record how the run ended.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use chrono::Utc;

use super::{Error, Global, Session, exit, plan_file};
use crate::apply::{self, ApplyReport, Release};
use crate::cli::{ApplyArgs, Format, PlanArgs, PolicyOverrides, SyncArgs};
use crate::mapping::Mapper;
use crate::pipeline::{self, PlanOptions};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::store::{Outcome, RunKind, RunOutcome, Store};
use crate::{render, target};

pub(super) fn plan(global: &Global, args: PlanArgs) -> Result<u8, Error> {
    let mut session = global.session(RunKind::Plan, &args.overrides)?;
    let run_id = begin(&session, RunKind::Plan)?;
    let reviewed = match args.compare.as_deref().map(plan_file::load).transpose() {
        Ok(reviewed) => reviewed,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    let plan = match make_plan(&mut session, run_id, args.force, global.progress) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    publish(
        &session.store,
        run_id,
        &plan,
        args.out.as_deref(),
        args.format,
    )?;
    if let Some(reviewed) = &reviewed {
        let comparison = render::comparison(reviewed, &plan);
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
    let release = Release {
        allow_removes: args.allow_removes,
        force: args.force,
    };
    let result = match &args.plan_file {
        Some(file) => plan_file::load_for(file, &session.config).and_then(|plan| {
            session.store.save_plan(&plan, None)?;
            Ok(plan)
        }),
        None => make_plan(&mut session, run_id, args.force, global.progress).and_then(|plan| {
            session.store.save_plan(&plan, Some(run_id))?;
            print_plan(&plan, Format::Human);
            Ok(plan)
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
    let report = apply_plan(&session, run_id, plan, release, saved, global.progress)?;
    Ok(if report.failed > 0 {
        exit::ERROR
    } else {
        exit::OK
    })
}

pub(super) fn sync(global: &Global, args: SyncArgs) -> Result<u8, Error> {
    let mut session = global.session(RunKind::Sync, &args.overrides)?;
    let run_id = begin(&session, RunKind::Sync)?;
    let plan = match make_plan(&mut session, run_id, false, global.progress) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    session.store.save_plan(&plan, Some(run_id))?;
    print_plan(&plan, args.format);
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
    let report = apply_plan(
        &session,
        run_id,
        plan,
        Release::default(),
        false,
        global.progress,
    )?;
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
    progress: bool,
) -> Result<Plan, Error> {
    let options = PlanOptions { force, progress };
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
        },
        Utc::now(),
    )?;
    Err(error)
}

/// Stores the plan, writes its file and shows it, at the same time: for a large plan each
/// of these is a pass over every action.
fn publish(
    store: &Store,
    run_id: i64,
    plan: &Plan,
    out: Option<&Path>,
    format: Format,
) -> Result<(), Error> {
    let (saved, written) = std::thread::scope(|scope| {
        let file = out.map(|out| scope.spawn(|| plan_file::write(out, plan)));
        let shown = scope.spawn(|| print_plan(plan, format));
        let saved = store.save_plan(plan, Some(run_id));
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

pub(super) fn print_plan(plan: &Plan, format: Format) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed stdout (`roster plan | head`) is not an error worth failing the run for.
    let _ = match format {
        Format::Human => out.write_all(render::human(plan).as_bytes()),
        Format::Json => render::write_json(plan, &mut out),
        Format::Markdown => out.write_all(render::markdown(plan).as_bytes()),
    };
    let _ = out.flush();
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
    let target = target::open(&config.target, mapper.target_fields())?;
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
    };
    let progress = Progress::new(show_progress);
    let outcome = apply::release(&mut plan, release).and_then(|()| {
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
                outcome: Outcome::Error,
                error: Some(e.to_string()),
                plan_id: Some(plan.plan_id.clone()),
            };
            session.store.finish_run(run_id, &outcome, Utc::now())?;
            return Err(e.into());
        }
    };
    super::emit(&format!("{}\n", report_line(&report)));
    let outcome = RunOutcome {
        outcome: if report.failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Applied
        },
        error: (report.failed > 0).then(|| format!("{} actions failed", report.failed)),
        plan_id: Some(plan.plan_id.clone()),
    };
    session.store.finish_run(run_id, &outcome, Utc::now())?;
    Ok(report)
}

fn report_line(r: &ApplyReport) -> String {
    let mut line = format!("Apply complete: {} applied, {} failed", r.applied, r.failed);
    if r.held > 0 {
        line.push_str(&format!(
            ", {} held (release with --allow-removes N or --force)",
            r.held
        ));
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
