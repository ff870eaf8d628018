//! `show`: a plan file or a run, as it stands now: its actions with the statuses and errors
//! the journal has for them, and the source records the run rejected. `--records` and
//! `--errors` export the same as CSV, the way xMatters offers a sync's records and its
//! error report.
//!
//! What is shown is always counted again from the actions' statuses: a plan whose held
//! removes were released and applied later does not say they are held.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::SecondsFormat;

use super::{Error, Global, exit, plan_file, runs};
use crate::cli::{ShowArgs, ShowFormat};
use crate::model::Reject;
use crate::plan::{ActionStatus, Plan};
use crate::store::{ActionRecord, RunRecord, Store, StoreError};
use crate::{render, text};

/// What `show` shows: a run (for a run id), its plan, and the records it rejected.
struct Shown {
    run: Option<RunRecord>,
    plan: Option<Plan>,
    rejects: Vec<Reject>,
}

pub(super) fn show(global: &Global, args: ShowArgs) -> Result<u8, Error> {
    let store = global.store()?;
    let shown = if let Ok(run_id) = args.what.parse::<i64>() {
        let run = store
            .run(run_id)?
            .ok_or_else(|| Error::Usage(format!("there is no run {run_id} (see `roster runs`)")))?;
        Shown {
            plan: run_plan(&store, &run)?,
            rejects: store.rejects(run_id)?,
            run: Some(run),
        }
    } else {
        let mut plan = plan_file::load(Path::new(&args.what))?;
        let journal = store.journal(&plan.plan_id)?;
        overlay_journal(&mut plan, &journal);
        plan.recount();
        let rejects = match store.plan_record(&plan.plan_id)?.and_then(|r| r.run_id) {
            Some(run_id) => store.rejects(run_id)?,
            None => Vec::new(),
        };
        Shown {
            run: None,
            plan: Some(plan),
            rejects,
        }
    };
    if args.records.is_some() || args.errors.is_some() {
        return export(&shown, args.records.as_deref(), args.errors.as_deref());
    }
    let out = match args.format {
        ShowFormat::Csv => render::csv(shown.plan.as_ref(), &shown.rejects),
        ShowFormat::Json => {
            // Written as it is made: a plan of 100,000 adds as one `Value` and then one
            // `String` took 820 MiB.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let _ = serde_json::to_writer_pretty(&mut out, &JsonShown(&shown))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            return Ok(exit::OK);
        }
        ShowFormat::Human | ShowFormat::Markdown => {
            human(&shown, args.format, global.colour, &args.what)
        }
    };
    super::emit(&out);
    Ok(exit::OK)
}

/// The plan a run made or applied, with the journal's statuses and its summary counted from
/// them. A run that applied a plan file has the plan's id, not the plan's row.
pub(super) fn run_plan(store: &Store, run: &RunRecord) -> Result<Option<Plan>, StoreError> {
    let plan = match &run.plan_id {
        Some(id) => store.load_plan(id)?,
        None => None,
    };
    let plan = match plan {
        Some(plan) => Some(plan),
        None => store.plan_of_run(run.id)?,
    };
    Ok(plan.map(|mut plan| {
        plan.recount();
        plan
    }))
}

/// The plan contract object (`format_version`, `plan_id`, `summary`, `actions`, ...) with
/// each failed action's `error`, the `rejects`, and for a run the `run` it belongs to. A run
/// that made no plan (refused, failed before planning) has only `run` and `rejects`.
///
/// Keys come in sorted order at every level, as a `serde_json::Value` writes them (the
/// output is what it was when it was one): the header and each action are made `Value`s one
/// at a time, and the actions are written one after another, never all held as JSON.
struct JsonShown<'a>(&'a Shown);

impl serde::Serialize for JsonShown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let shown = self.0;
        let mut top = match &shown.plan {
            Some(plan) => serde_json::to_value(crate::plan::contract::header(plan))
                .map_err(S::Error::custom)?,
            None => serde_json::json!({}),
        };
        let Some(fields) = top.as_object_mut() else {
            return Err(S::Error::custom("a plan's header is an object"));
        };
        fields.insert(
            "rejects".into(),
            serde_json::to_value(&shown.rejects).map_err(S::Error::custom)?,
        );
        if let Some(run) = &shown.run {
            fields.insert("run".into(), runs::json_row(run));
        }
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (key, value) in fields.iter() {
            match &shown.plan {
                Some(plan) if key == "actions" => map.serialize_entry(key, &JsonActions(plan))?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// A plan's actions as `show --format json` has them: each as the contract writes it, with
/// its `error` when it failed.
struct JsonActions<'a>(&'a Plan);

impl serde::Serialize for JsonActions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = serializer.serialize_seq(Some(self.0.actions.len()))?;
        for action in &self.0.actions {
            let mut json = serde_json::to_value(crate::plan::contract::ActionJson::from(action))
                .map_err(S::Error::custom)?;
            if let (Some(error), Some(json)) = (&action.error, json.as_object_mut()) {
                json.insert("error".into(), error.clone().into());
            }
            seq.serialize_element(&json)?;
        }
        seq.end()
    }
}

fn human(shown: &Shown, format: ShowFormat, colour: render::Colour, what: &str) -> String {
    let mut out = String::new();
    if let Some(run) = &shown.run {
        out.push_str(&run_header(run));
    }
    if let Some(plan) = &shown.plan {
        out.push_str(&if format == ShowFormat::Human {
            render::human_in(plan, colour)
        } else {
            render::markdown_within(plan, render::COMMENT_LIMIT, Some(what))
        });
        if let Some(line) = outcome_line(plan) {
            out.push_str(&line);
        }
    }
    if !shown.rejects.is_empty() {
        out.push_str(&format!(
            "\nRejected source records ({}):\n",
            shown.rejects.len()
        ));
        for r in &shown.rejects {
            out.push_str(&format!(
                "  {}: {}\n",
                text::escape_controls(&r.origin),
                text::escape_controls(&r.reason)
            ));
        }
    }
    out
}

/// `Run 12 (sync): held at 2024-05-01T02:00:00Z on sync1 (pid 4242)`, the error, what it
/// applied and how its notifications went.
fn run_header(run: &RunRecord) -> String {
    let mut out = format!(
        "Run {} ({}): {} at {} on {} (pid {}){}\n",
        run.id,
        run.kind,
        run.outcome,
        run.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        run.host,
        run.pid,
        run.error
            .as_deref()
            .map(|e| format!(": {}", text::escape_controls(e)))
            .unwrap_or_default()
    );
    if let Some(a) = &run.applied {
        out.push_str(&format!(
            "This run applied {}, {} failed, {} held.\n",
            a.applied, a.failed, a.held
        ));
    }
    for d in &run.notifications {
        match &d.error {
            None => out.push_str(&format!("Notified by {} to {}.\n", d.channel, d.to)),
            Some(e) => out.push_str(&format!(
                "The {} notification to {} was not sent: {}\n",
                d.channel,
                d.to,
                text::escape_controls(e)
            )),
        }
    }
    out.push('\n');
    out
}

/// Where the plan's actions stand now, when any was applied, failed or is in flight:
/// `Outcome: 5 applied, 1 failed, 3 held.`
fn outcome_line(plan: &Plan) -> Option<String> {
    let count = |status: ActionStatus| plan.actions.iter().filter(|a| a.status == status).count();
    let (applied, failed, applying) = (
        count(ActionStatus::Applied),
        count(ActionStatus::Failed),
        count(ActionStatus::Applying),
    );
    if applied + failed + applying == 0 {
        return None;
    }
    let mut parts = vec![format!("{applied} applied"), format!("{failed} failed")];
    for (n, word) in [
        (count(ActionStatus::Held), "held"),
        (applying, "interrupted while applying"),
        (count(ActionStatus::Planned), "not applied yet"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    Some(format!("Outcome: {}.\n", parts.join(", ")))
}

/// `--records` and `--errors`: CSV, to stdout (`-`) or a file each.
fn export(shown: &Shown, records: Option<&Path>, errors: Option<&Path>) -> Result<u8, Error> {
    let stdout = |p: Option<&Path>| p.is_some_and(|p| p == Path::new("-"));
    if stdout(records) && stdout(errors) {
        return Err(Error::Usage(
            "--records and --errors cannot both go to stdout: give one of them a file, \
             e.g. --records --errors=errors.csv"
                .into(),
        ));
    }
    let reports = [
        (records, render::records_csv(shown.plan.as_ref())),
        (
            errors,
            render::errors_csv(shown.plan.as_ref(), &shown.rejects),
        ),
    ];
    for (path, text) in reports {
        match path {
            None => {}
            Some(p) if p == Path::new("-") => super::emit(&text),
            Some(p) => write_file(p, &text)?,
        }
    }
    Ok(exit::OK)
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| {
        Error::Usage(format!(
            "cannot write the CSV export {}: {e}",
            PathBuf::from(path).display()
        ))
    })
}

/// Gives a plan read from a file the statuses and errors the journal has for its actions.
fn overlay_journal(plan: &mut Plan, journal: &[ActionRecord]) {
    let by_seq: std::collections::HashMap<u32, &ActionRecord> =
        journal.iter().map(|e| (e.seq, e)).collect();
    for action in &mut plan.actions {
        if let Some(entry) = by_seq.get(&action.seq) {
            action.status = entry.status;
            if let Some(error) = &entry.error {
                action.error = Some(error.clone());
            }
        }
    }
}
