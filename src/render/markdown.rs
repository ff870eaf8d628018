//! The plan as Markdown, for a pull-request comment: a summary line, then a table per kind
//! of action with every field's before and after, held actions and rejects called out.

use std::fmt::Write;

use super::human::summary_line;
use super::plural;
use crate::plan::{ActionKind, ActionStatus as Status, Plan};

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### roster plan\n\n**{}**\n", summary_line(plan));
    if plan.summary.held > 0 {
        let removals = plan
            .actions
            .iter()
            .filter(|a| a.status == Status::Held && a.counts_as_removal())
            .count();
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} held by a cap** and not applied. {}\n",
            plural(plan.summary.held, "action is", "actions are"),
            if removals > 0 {
                format!(
                    "Release the held removes with `roster apply PLAN --allow-removes {removals}` after review."
                )
            } else {
                "Release them with `roster apply PLAN --force` after review.".to_string()
            }
        );
    }
    if plan.summary.rejected > 0 {
        let _ = writeln!(
            out,
            "> [!NOTE]\n> **{} rejected** and not synced: `roster show` lists each with its reason.\n",
            plural(
                plan.summary.rejected,
                "source record was",
                "source records were"
            )
        );
    }
    for note in &plan.forced {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> `--force` overrode a safety check: {}\n",
            cell(note)
        );
    }
    for note in &plan.notes {
        let _ = writeln!(out, "> [!NOTE]\n> {}\n", cell(note));
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
                format!("{} {}", a.object().as_str(), super::groups::object_name(a))
            } else {
                a.name().to_string()
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
                    cell(&a.hold.as_ref().map(ToString::to_string).unwrap_or_default())
                ),
                Status::Skipped => format!("skipped: {}", cell(&a.reason())),
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
                let (before, after) = change_cells(c.before.as_deref(), c.after.as_deref());
                let _ = writeln!(
                    out,
                    "| `{}` | {user} | {} | {before} | {after} | {status} |",
                    a.action.symbol(),
                    cell(&c.field.to_string()),
                );
            }
        }
        out.push('\n');
    }
    out
}

/// Values longer than this are shown as a word-by-word diff instead of before and after.
const LONG: usize = 40;

/// The before and after cells of a change: plain values, or for long values a word diff in
/// the "after" cell (deleted words struck through, inserted words in bold).
fn change_cells(before: Option<&str>, after: Option<&str>) -> (String, String) {
    match (before, after) {
        (Some(b), Some(a)) if b.len() > LONG || a.len() > LONG => {
            ("(long value)".to_string(), word_diff(b, a))
        }
        _ => (
            before.map(code).unwrap_or_default(),
            after.map(code).unwrap_or_default(),
        ),
    }
}

fn word_diff(before: &str, after: &str) -> String {
    let diff = similar::TextDiff::from_words(before, after);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let text = cell(change.value());
        let (word, space) = match text.strip_suffix(' ') {
            Some(word) => (word.to_string(), " "),
            None => (text.clone(), ""),
        };
        if word.trim().is_empty() {
            out.push_str(&text);
            continue;
        }
        match change.tag() {
            similar::ChangeTag::Equal => out.push_str(&word),
            similar::ChangeTag::Delete => out.push_str(&format!("~~{word}~~")),
            similar::ChangeTag::Insert => out.push_str(&format!("**{word}**")),
        }
        out.push_str(space);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_diffed_word_by_word() {
        let before = "Senior engineer in the platform team, Berlin office";
        let after = "Staff engineer in the platform team, Paris office";
        let (b, a) = change_cells(Some(before), Some(after));
        assert_eq!(b, "(long value)");
        assert_eq!(
            a,
            "~~Senior~~**Staff** engineer in the platform team, ~~Berlin~~**Paris** office"
        );
        let (b, a) = change_cells(Some("short"), Some("also short"));
        assert_eq!((b.as_str(), a.as_str()), ("`short`", "`also short`"));
    }
}
