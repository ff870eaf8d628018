//! The plan as Markdown, for a pull-request comment: a summary line, then a table per kind
//! of action with every field's before and after, held actions and rejects called out.

use std::fmt::Write;

use super::human::summary_line;
use crate::plan::{ActionKind, Plan, Status};

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### roster plan\n\n**{}**\n", summary_line(plan));
    for note in &plan.forced {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> `--force` overrode a safety check: {}\n",
            cell(note)
        );
    }
    for (kind, title) in [
        (ActionKind::Add, "To add"),
        (ActionKind::Update, "To update"),
        (ActionKind::Remove, "To remove"),
        (ActionKind::Delete, "To delete"),
    ] {
        let actions: Vec<_> = plan.actions.iter().filter(|a| a.action == kind).collect();
        if actions.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### {title} ({})\n", actions.len());
        // With groups in the plan, each row says what kind of object it is.
        let kinds = super::groups::has_groups(plan);
        let name = |a: &crate::plan::Action| {
            if kinds {
                format!("{} {}", a.object.as_str(), super::groups::object_name(a))
            } else {
                a.username.clone()
            }
        };
        let _ = writeln!(
            out,
            "| | {} | field | before | after | status |\n|---|---|---|---|---|---|",
            if kinds { "object" } else { "user" }
        );
        for a in actions {
            let status = match a.status {
                Status::Held => format!(
                    "**held**: {}",
                    cell(a.held_by.as_deref().unwrap_or_default())
                ),
                Status::Skipped => format!("skipped: {}", cell(&a.reason)),
                other => other.as_str().to_string(),
            };
            if a.changes.is_empty() {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | | | | {status} |",
                    a.action.symbol(),
                    cell(&name(a))
                );
            }
            for (i, c) in a.changes.iter().enumerate() {
                let user = if i == 0 {
                    cell(&name(a))
                } else {
                    String::new()
                };
                let status = if i == 0 { status.as_str() } else { "" };
                let _ = writeln!(
                    out,
                    "| `{}` | {user} | {} | {} | {} | {status} |",
                    a.action.symbol(),
                    cell(&c.field),
                    c.before.as_deref().map(code).unwrap_or_default(),
                    c.after.as_deref().map(code).unwrap_or_default(),
                );
            }
        }
        out.push('\n');
    }
    out
}

/// Text safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    format!("`{}`", cell(s).replace('`', "'"))
}
