//! One function per subcommand. Each reads like the pipeline it runs: load the config, take
//! the lock, read both sides, plan, show, save, apply; the work itself lives in the modules.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::apply::{self, ApplyReport, Release};
use crate::cli::{
    ApplyArgs, Cli, Command, Format, ModeArg, PlanArgs, PolicyOverrides, RunsArgs, ShowArgs,
    ShowFormat, SyncArgs,
};
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::mapping::Mapper;
use crate::plan::{FORMAT_VERSION, Plan};
use crate::planner::{self, SourceRead};
use crate::progress::Progress;
use crate::read::{self, ReadError};
use crate::store::{LockGuard, RunOutcome, Store};
use crate::{group_sync, render, source, target};

/// Exit codes of the contract.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES: u8 = 2;
    pub const HELD: u8 = 3;
}

pub fn run(cli: Cli) -> Result<u8, Error> {
    let global = Global {
        config: cli.config.clone(),
        state: cli.state.clone(),
        progress: !cli.quiet,
    };
    match cli.command {
        Command::Validate => validate(&global),
        Command::Plan(args) => plan(&global, args),
        Command::Apply(args) => apply(&global, args),
        Command::Sync(args) => sync(&global, args),
        Command::Show(args) => show(&global, args),
        Command::Runs(args) => runs(&global, args),
        Command::Unlock { lock_id } => unlock(&global, &lock_id),
    }
}

/// Options every subcommand shares.
struct Global {
    config: PathBuf,
    state: Option<PathBuf>,
    progress: bool,
}

impl Global {
    fn load(&self, overrides: &PolicyOverrides) -> Result<Config, Error> {
        let mut config = Config::load(&self.config)?;
        if let Some(state) = &self.state {
            config.state = state.clone();
        }
        if let Some(mode) = overrides.mode {
            config.policy.override_mode(match mode {
                ModeArg::AddOnly => Mode::AddOnly,
                ModeArg::Remove => Mode::Remove,
                ModeArg::Delete => Mode::Delete,
            });
        }
        if let Some(n) = overrides.max_removes {
            config.policy.override_max_removes(n);
        }
        Ok(config)
    }

    /// The state store of a config, for the commands that only read history.
    fn store(&self) -> Result<Store, Error> {
        let path = match &self.state {
            Some(state) => state.clone(),
            None => Config::load(&self.config)?.state,
        };
        Ok(Store::open(&path)?)
    }
}

fn validate(global: &Global) -> Result<u8, Error> {
    let config = Config::load(&global.config)?;
    // Secrets belong to the environment a run has, which need not be this one (a pull
    // request check validates without them): a missing one is worth a warning, not a failure.
    for (node, secret) in config.secrets() {
        if let Err(e) = secret.resolve() {
            log::warn!("{node}: {e}; plan and apply will need it");
        }
    }
    println!(
        "{}: the configuration is valid (mode {}).",
        global.config.display(),
        config.policy.mode.as_str()
    );
    Ok(exit::OK)
}

/// A locked session on the state store.
struct Session {
    config: Config,
    store: Store,
    _lock: LockGuard,
}

fn session(global: &Global, command: &str, overrides: &PolicyOverrides) -> Result<Session, Error> {
    let config = global.load(overrides)?;
    let store = Store::open(&config.state)?;
    let lock = store.lock(command, Utc::now())?;
    Ok(Session {
        config,
        store,
        _lock: lock,
    })
}

fn plan(global: &Global, args: PlanArgs) -> Result<u8, Error> {
    let mut session = session(global, "plan", &args.overrides)?;
    let run_id = session
        .store
        .begin_run("plan", &session.config.digest, Utc::now())?;
    let reviewed = match args.compare.as_deref().map(load_plan_file).transpose() {
        Ok(reviewed) => reviewed,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    let plan = match make_plan(&mut session, run_id, args.force, global.progress) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    // Stored, written to its file and shown at the same time: for a large plan each of these
    // is a pass over every action.
    let (saved, written) = std::thread::scope(|scope| {
        let file = args
            .out
            .as_ref()
            .map(|out| scope.spawn(|| write_plan_file(out, &plan)));
        let shown = scope.spawn(|| print_plan(&plan, args.format));
        let saved = session.store.save_plan(&plan, Some(run_id));
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
    if let (Some(out), Some(Err(e))) = (&args.out, written) {
        return Err(Error::PlanFile {
            path: out.display().to_string(),
            message: e.to_string(),
        });
    }
    if let Some(reviewed) = &reviewed {
        let comparison = render::comparison(reviewed, &plan);
        // JSON on stdout stays one document; the comparison goes beside it.
        if args.format == Format::Json {
            eprint!("{comparison}");
        } else {
            print!("\n{comparison}");
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
    session.store.finish_run(
        run_id,
        &RunOutcome {
            outcome: plan_outcome(&plan).into(),
            error: None,
            plan_id: Some(plan.plan_id.clone()),
        },
        Utc::now(),
    )?;
    Ok(if args.detailed_exitcode {
        plan_exit_code(&plan)
    } else {
        exit::OK
    })
}

fn plan_outcome(plan: &Plan) -> &'static str {
    match plan_exit_code(plan) {
        exit::OK => "no-changes",
        exit::HELD => "held",
        _ => "changes",
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

fn print_plan(plan: &Plan, format: Format) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed stdout (`roster plan | head`) is not an error worth failing the run for.
    let _ = match format {
        Format::Human => out.write_all(render::human(plan).as_bytes()),
        Format::Json => render::write_json(plan, &mut out),
        Format::Markdown => out.write_all(render::markdown(plan).as_bytes()),
    };
    let _ = out.flush();
}

/// Records a failed run and passes the error on.
fn fail_run(store: &Store, run_id: i64, error: Error) -> Result<u8, Error> {
    let outcome = if matches!(
        error,
        Error::Refused(_) | Error::Read(ReadError::Source { .. })
    ) {
        "refused"
    } else {
        "error"
    };
    store.finish_run(
        run_id,
        &RunOutcome {
            outcome: outcome.into(),
            error: Some(error.to_string()),
            plan_id: None,
        },
        Utc::now(),
    )?;
    Err(error)
}

/// Reads both sides into the store and plans. Refuses (nothing planned) when the source
/// read is incomplete or fails the completeness checks, unless `force`.
fn make_plan(
    session: &mut Session,
    run_id: i64,
    force: bool,
    show_progress: bool,
) -> Result<Plan, Error> {
    let config = &session.config;
    let mapper = Mapper::new(&config.user, &config.policy);
    let source = source::open(&config.source);
    let target = target::open(&config.target, mapper.target_fields())?;
    let progress = Progress::new(show_progress);
    let started = std::time::Instant::now();
    // Group sync: groups are read first, for `in-group=` roles (see group_sync.rs).
    let groups = group_sync::read(config, target.as_ref())?;
    let mapper = match &groups {
        Some(groups) => mapper.with_groups(groups.index()),
        None => mapper,
    };
    let counts = read::read_both(
        &mut session.store,
        run_id,
        source,
        &mapper,
        target.as_ref(),
        &progress,
    )?;
    log::info!(
        "read {} source records ({} rejected) and {} target accounts ({} managed)",
        counts.source,
        counts.rejected,
        counts.target,
        counts.managed
    );

    if config.policy.on_invalid == crate::config::OnInvalid::Fail && counts.rejected > 0 {
        let rejects = session.store.rejects(run_id)?;
        let list: Vec<String> = rejects
            .iter()
            .map(|r| format!("  {}: {}", r.origin, r.reason))
            .collect();
        return Err(Error::Refused(format!(
            "on-invalid is \"fail\" and {} source records are invalid; nothing was planned:\n{}",
            rejects.len(),
            list.join("\n")
        )));
    }

    let mut forced = Vec::new();
    // Usable users count, not records: a source whose records are all rejected (a mapping
    // gone wrong) is as empty as one that returned nothing.
    let read = SourceRead {
        count: counts.desired,
        last_good: session.store.last_good_source_count(run_id)?,
        managed: counts.managed,
    };
    if let Err(mut refusal) = planner::check_source(read, &config.policy) {
        if counts.rejected > 0 {
            refusal.push_str(&format!(
                " ({} read but rejected: see `roster show {run_id}`)",
                render::plural(counts.rejected, "record was", "records were")
            ));
        }
        if !force {
            return Err(Error::Refused(refusal));
        }
        log::warn!("--force: {refusal}");
        forced.push(refusal);
    }
    session.store.accept_source(run_id)?;

    log::debug!(
        "read and loaded both sides in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let mut planner = planner::Planner::new(&config.policy);
    session
        .store
        .for_each_pair(run_id, |pair| planner.push(pair))?;
    let planned = planner.finish(counts.managed);
    let planned = group_sync::plan(
        &session.store,
        run_id,
        config,
        groups,
        planned,
        force,
        &mut forced,
    )?;
    log::debug!(
        "paired and planned in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let created_at = Utc::now();
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_id: plan_id(created_at),
        created_at,
        summary: planned.summary,
        actions: planned.actions,
        mode: *config.policy.mode,
        config_digest: config.digest.clone(),
        desired_digest: session.store.desired_digest(run_id)?,
        forced,
        target: target.describe(),
    };
    // Users and groups: every record the plan leaves out is counted.
    plan.summary.rejected = session.store.reject_count(run_id)?;
    plan.recount();
    session.store.prune_snapshots()?;
    log::debug!(
        "digested and pruned in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(plan)
}

fn plan_id(at: DateTime<Utc>) -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{suffix}", at.format("%Y%m%dT%H%M%SZ"))
}

/// Writes the plan file next to its final name and renames it into place, so a reader never
/// sees half a plan.
fn write_plan_file(path: &Path, plan: &Plan) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    render::write_json(plan, &mut file)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn apply(global: &Global, args: ApplyArgs) -> Result<u8, Error> {
    let mut session = session(global, "apply", &args.overrides)?;
    let run_id = session
        .store
        .begin_run("apply", &session.config.digest, Utc::now())?;
    let release = Release {
        allow_removes: args.allow_removes,
        force: args.force,
    };
    let result = match &args.plan_file {
        Some(file) => read_plan_file(file, &session.config).and_then(|plan| {
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
    if args.plan_file.is_none() && plan.summary.has_changes() && !args.auto_approve && !confirm()? {
        let outcome = RunOutcome {
            outcome: "cancelled".into(),
            error: None,
            plan_id: Some(plan.plan_id.clone()),
        };
        session.store.finish_run(run_id, &outcome, Utc::now())?;
        eprintln!("Apply cancelled.");
        return Ok(exit::ERROR);
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

fn sync(global: &Global, args: SyncArgs) -> Result<u8, Error> {
    let mut session = session(global, "sync", &args.overrides)?;
    let run_id = session
        .store
        .begin_run("sync", &session.config.digest, Utc::now())?;
    let plan = match make_plan(&mut session, run_id, false, global.progress) {
        Ok(plan) => plan,
        Err(e) => return fail_run(&session.store, run_id, e),
    };
    session.store.save_plan(&plan, Some(run_id))?;
    print_plan(&plan, args.format);
    let code = plan_exit_code(&plan);
    if code == exit::OK {
        session.store.finish_run(
            run_id,
            &RunOutcome {
                outcome: "no-changes".into(),
                error: None,
                plan_id: Some(plan.plan_id.clone()),
            },
            Utc::now(),
        )?;
        return Ok(exit::OK);
    }
    if !args.auto_approve && !confirm()? {
        let outcome = RunOutcome {
            outcome: "cancelled".into(),
            error: None,
            plan_id: Some(plan.plan_id.clone()),
        };
        session.store.finish_run(run_id, &outcome, Utc::now())?;
        eprintln!("Sync cancelled.");
        return Ok(exit::ERROR);
    }
    let report = apply_plan(
        &session,
        run_id,
        plan,
        Release::default(),
        false,
        global.progress,
    )?;
    Ok(if report.failed > 0 { exit::ERROR } else { code })
}

/// Asks for `yes` on the terminal; refuses without one.
fn confirm() -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "refusing to apply without confirmation: there is no terminal to ask on; \
             review a saved plan and apply it (`roster plan --out FILE`, then `roster apply FILE`), or pass --auto-approve"
                .into(),
        ));
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

/// Reads a plan file of this format version.
fn load_plan_file(path: &Path) -> Result<Plan, Error> {
    let err = |message: String| Error::PlanFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not a roster plan: {e}")))?;
    if value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        != Some(u64::from(FORMAT_VERSION))
    {
        return Err(err(format!(
            "unsupported format_version (this roster reads version {FORMAT_VERSION})"
        )));
    }
    serde_json::from_value(value).map_err(|e| err(format!("not a roster plan: {e}")))
}

/// Reads a plan file to apply: it must have been made with the current config and policy.
fn read_plan_file(path: &Path, config: &Config) -> Result<Plan, Error> {
    let plan = load_plan_file(path)?;
    if plan.config_digest != config.digest {
        return Err(Error::PlanFile {
            path: path.display().to_string(),
            message: "the plan was made with another config or policy than the current one; \
                      make a new plan with `roster plan`"
                .into(),
        });
    }
    Ok(plan)
}

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
    let outcome = apply::release(&mut plan, release).and_then(|()| {
        let concurrency = match &config.target {
            crate::config::TargetConfig::Scim(scim) => scim.concurrency as usize,
        };
        let options = apply::ApplyOptions {
            concurrency,
            check_staleness,
        };
        apply::apply(
            &mut plan,
            &session.store,
            target.as_ref(),
            options,
            &Progress::new(show_progress),
        )
    });
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            let outcome = RunOutcome {
                outcome: "error".into(),
                error: Some(e.to_string()),
                plan_id: Some(plan.plan_id.clone()),
            };
            session.store.finish_run(run_id, &outcome, Utc::now())?;
            return Err(e.into());
        }
    };
    println!("{}", report_line(&report));
    let outcome = if report.failed > 0 {
        "failed"
    } else {
        "applied"
    };
    let error = (report.failed > 0).then(|| format!("{} actions failed", report.failed));
    session.store.finish_run(
        run_id,
        &RunOutcome {
            outcome: outcome.into(),
            error,
            plan_id: Some(plan.plan_id.clone()),
        },
        Utc::now(),
    )?;
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

fn show(global: &Global, args: ShowArgs) -> Result<u8, Error> {
    let store = global.store()?;
    let mut header = None;
    let (plan, rejects) = if let Ok(run_id) = args.what.parse::<i64>() {
        let run = store
            .run(run_id)?
            .ok_or_else(|| Error::Usage(format!("there is no run {run_id} (see `roster runs`)")))?;
        header = Some(format!(
            "Run {} ({}): {} at {}{}\n",
            run.id,
            run.kind,
            run.outcome,
            run.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            run.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        // Stored plans carry the journal's statuses already.
        (store.plan_of_run(run_id)?, store.rejects(run_id)?)
    } else {
        let mut plan = load_plan_file(Path::new(&args.what))?;
        let journal = store.journal(&plan.plan_id)?;
        overlay_journal(&mut plan, &journal);
        let rejects = match store.plan_record(&plan.plan_id)?.and_then(|r| r.run_id) {
            Some(run_id) => store.rejects(run_id)?,
            None => Vec::new(),
        };
        (Some(plan), rejects)
    };
    let mut out = String::new();
    match args.format {
        ShowFormat::Csv => out = render::csv(plan.as_ref(), &rejects),
        ShowFormat::Json => {
            let body = serde_json::json!({ "plan": plan, "rejects": rejects });
            out = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
        }
        ShowFormat::Human | ShowFormat::Markdown => {
            out.extend(header);
            if let Some(plan) = &plan {
                out.push_str(&if args.format == ShowFormat::Human {
                    render::human(plan)
                } else {
                    render::markdown(plan)
                });
            }
            if !rejects.is_empty() {
                out.push_str(&format!("\nRejected source records ({}):\n", rejects.len()));
                for r in &rejects {
                    out.push_str(&format!("  {}: {}\n", r.origin, r.reason));
                }
            }
        }
    }
    print!("{out}");
    Ok(exit::OK)
}

/// Gives a plan read from a file the statuses and errors the journal has for its actions.
fn overlay_journal(plan: &mut Plan, journal: &[crate::store::ActionRecord]) {
    let by_seq: std::collections::HashMap<u32, &crate::store::ActionRecord> =
        journal.iter().map(|e| (e.seq, e)).collect();
    for action in &mut plan.actions {
        if let Some(entry) = by_seq.get(&action.seq) {
            action.status = entry.status;
            if let Some(error) = &entry.error {
                action.reason = format!("{}; failed: {error}", action.reason);
            }
        }
    }
}

fn runs(global: &Global, args: RunsArgs) -> Result<u8, Error> {
    let store = global.store()?;
    println!(
        "{:>5}  {:<6} {:<20} {:>9}  {:<11} {:>7} {:>7} {:>6}  plan",
        "id", "kind", "started", "duration", "outcome", "source", "target", "reject"
    );
    for r in store.runs(args.limit)? {
        let duration = r
            .finished_at
            .map(|f| {
                format!(
                    "{:.1}s",
                    (f - r.started_at).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_else(|| "-".into());
        let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:>5}  {:<6} {:<20} {:>9}  {:<11} {:>7} {:>7} {:>6}  {}",
            r.id,
            r.kind,
            r.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            duration,
            r.outcome,
            n(r.source_count),
            n(r.target_count),
            n(r.rejected),
            r.plan_id.as_deref().unwrap_or("-")
        );
    }
    Ok(exit::OK)
}

fn unlock(global: &Global, lock_id: &str) -> Result<u8, Error> {
    let store = global.store()?;
    match store.unlock(lock_id)? {
        Some(holder) => {
            println!(
                "Released the lock {} held by `roster {}` (pid {} on {}).",
                holder.lock_id, holder.command, holder.pid, holder.host
            );
            Ok(exit::OK)
        }
        None => Err(Error::Usage(format!("no lock with id {lock_id} is held"))),
    }
}
