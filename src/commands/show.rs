//! `show`: a plan file or a run, as it stands now: its actions with the statuses and errors
//! the journal has for them, and the source records the run rejected.

use std::path::Path;

use chrono::SecondsFormat;

use super::{Error, Global, exit, plan_file};
use crate::cli::{ShowArgs, ShowFormat};
use crate::plan::Plan;
use crate::render;
use crate::store::ActionRecord;

pub(super) fn show(global: &Global, args: ShowArgs) -> Result<u8, Error> {
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
                .map(|e| format!(": {}", crate::text::escape_controls(e)))
                .unwrap_or_default()
        ));
        // Stored plans carry the journal's statuses already.
        (store.plan_of_run(run_id)?, store.rejects(run_id)?)
    } else {
        let mut plan = plan_file::load(Path::new(&args.what))?;
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
            let plan = plan.as_ref().map(crate::plan::contract::view);
            let body = serde_json::json!({ "plan": plan, "rejects": rejects });
            out = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
        }
        ShowFormat::Human | ShowFormat::Markdown => {
            out.extend(header);
            if let Some(plan) = &plan {
                out.push_str(&if args.format == ShowFormat::Human {
                    render::human_in(plan, global.colour)
                } else {
                    render::markdown_within(plan, render::COMMENT_LIMIT, Some(&args.what))
                });
            }
            if !rejects.is_empty() {
                out.push_str(&format!("\nRejected source records ({}):\n", rejects.len()));
                for r in &rejects {
                    out.push_str(&format!(
                        "  {}: {}\n",
                        crate::text::escape_controls(&r.origin),
                        crate::text::escape_controls(&r.reason)
                    ));
                }
            }
        }
    }
    super::emit(&out);
    Ok(exit::OK)
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
