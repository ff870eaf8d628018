//! The plan as Markdown, for a pull-request comment: a summary line, then a table per kind
//! of action with every field's before and after, held actions and rejects called out.
//!
//! A comment is read by people and rendered by GitHub or GitLab: every value from outside is
//! either in a code span (`text::markdown_code`) or escaped (`text::markdown_text`), so that a
//! directory value can open no HTML, link or mention and cannot end its table cell. GitHub
//! refuses a comment over 65,536 characters, so a plan that would not fit is shown as a
//! summary table and the first changes of each kind, with a pointer to the full plan.

use std::fmt::Write;

use super::human::summary_line;
use super::plural;
use crate::plan::{Action, ActionKind, ActionStatus as Status, Plan};
use crate::text::{markdown_code, markdown_text};

/// The most a Markdown plan may be, in bytes (never fewer than its characters): GitHub's
/// comment limit of 65,536 characters, less room for what a CI job writes around the plan.
pub const COMMENT_LIMIT: usize = 60_000;

/// How many actions of each kind a shortened plan lists, tried in turn until it fits.
const SHOWN_PER_KIND: [usize; 5] = [50, 20, 10, 3, 0];

/// The plan as a comment that fits GitHub's limit, without naming its plan file.
pub fn markdown(plan: &Plan) -> String {
    markdown_within(plan, COMMENT_LIMIT, None)
}

/// The plan as Markdown of at most `limit` bytes where it can be: in full when it fits,
/// otherwise shortened, pointing at `roster show PLAN_FILE` for the rest.
pub fn markdown_within(plan: &Plan, limit: usize, plan_file: Option<&str>) -> String {
    let full = render(plan, None);
    if full.len() <= limit {
        return full;
    }
    let mut shortest = full;
    for shown in SHOWN_PER_KIND {
        shortest = render(plan, Some(Shortened { shown, plan_file }));
        if shortest.len() <= limit {
            break;
        }
    }
    shortest
}

/// How a plan too large for a comment is cut.
#[derive(Clone, Copy)]
struct Shortened<'a> {
    /// Actions listed per kind.
    shown: usize,
    plan_file: Option<&'a str>,
}

const KINDS: [(ActionKind, &str); 4] = [
    (ActionKind::Add, "To add"),
    (ActionKind::Update, "To update"),
    (ActionKind::Remove, "To remove"),
    (ActionKind::Delete, "To delete"),
];

fn render(plan: &Plan, shortened: Option<Shortened<'_>>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### roster plan\n\n**{}**\n", summary_line(plan));
    if plan.summary.held > 0 {
        let held: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| a.status == Status::Held)
            .collect();
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} held by a cap** and not applied. {} after review.\n",
            plural(plan.summary.held, "action is", "actions are"),
            super::release_hint(&held),
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
            markdown_text(note)
        );
    }
    for note in &plan.notes {
        let _ = writeln!(out, "> [!NOTE]\n> {}\n", markdown_text(note));
    }
    if let Some(cut) = shortened {
        size_table(&mut out, plan, cut);
    }
    for (kind, title) in KINDS {
        let actions: Vec<_> = plan.actions.iter().filter(|a| a.action == kind).collect();
        if actions.is_empty() {
            continue;
        }
        let listed = match shortened {
            Some(cut) => cut.shown.min(actions.len()),
            None => actions.len(),
        };
        if listed == 0 {
            continue;
        }
        if listed < actions.len() {
            let _ = writeln!(out, "#### {title} ({}, first {listed})\n", actions.len());
        } else {
            let _ = writeln!(out, "#### {title} ({})\n", actions.len());
        }
        action_table(&mut out, plan, &actions[..listed]);
        if listed < actions.len() {
            let _ = writeln!(
                out,
                "_… and {} more {}._\n",
                actions.len() - listed,
                if actions.len() - listed == 1 {
                    "action"
                } else {
                    "actions"
                }
            );
        }
    }
    out
}

/// The head of a shortened plan: why it is short, where the rest is, and every kind's count.
fn size_table(out: &mut String, plan: &Plan, cut: Shortened<'_>) {
    let full = match cut.plan_file {
        Some(file) => format!(
            "The full plan: {} (or the plan file itself).",
            markdown_code(&format!("roster show {file}"))
        ),
        None => "The full plan: `roster show PLAN_FILE` on the plan saved with `roster plan --out PLAN_FILE`.".to_string(),
    };
    let _ = writeln!(
        out,
        "> [!IMPORTANT]\n> This plan of {} is too large for a comment: {} {full}\n",
        plural(plan.actions.len() as u64, "action", "actions"),
        match cut.shown {
            0 => "only the counts are shown here.".to_string(),
            n => format!("the first {n} of each kind are shown here."),
        },
    );
    let _ = writeln!(
        out,
        "| | action | planned | held | skipped |\n|---|---|---|---|---|"
    );
    for (kind, _) in KINDS {
        let count = |status: Option<Status>| {
            plan.actions
                .iter()
                .filter(|a| a.action == kind && status.is_none_or(|s| a.status == s))
                .count()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            kind.symbol(),
            kind.as_str(),
            count(None),
            count(Some(Status::Held)),
            count(Some(Status::Skipped)),
        );
    }
    out.push('\n');
}

/// One table of actions of a kind, a row per change.
fn action_table(out: &mut String, plan: &Plan, actions: &[&Action]) {
    // With groups in the plan, each row says what kind of object it is.
    let kinds = super::groups::has_groups(plan);
    let name = |a: &Action| {
        markdown_text(&if kinds {
            format!("{} {}", a.object().as_str(), super::groups::object_name(a))
        } else {
            a.name().to_string()
        })
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
                markdown_text(&a.hold.as_ref().map(ToString::to_string).unwrap_or_default())
            ),
            Status::Skipped => format!("skipped: {}", markdown_text(&a.reason())),
            other => other.as_str().to_string(),
        };
        if a.changes.is_empty() {
            let _ = writeln!(
                out,
                "| `{}` | {} | | | | {status} |",
                a.action.symbol(),
                name(a)
            );
        }
        for (i, c) in a.changes.iter().enumerate() {
            let user = if i == 0 { name(a) } else { String::new() };
            let status = if i == 0 { status.as_str() } else { "" };
            let (before, after) = change_cells(c.before.as_deref(), c.after.as_deref());
            let _ = writeln!(
                out,
                "| `{}` | {user} | {} | {before} | {after} | {status} |",
                a.action.symbol(),
                markdown_text(&c.field.to_string()),
            );
        }
    }
    out.push('\n');
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
            before.map(markdown_code).unwrap_or_default(),
            after.map(markdown_code).unwrap_or_default(),
        ),
    }
}

fn word_diff(before: &str, after: &str) -> String {
    let diff = similar::TextDiff::from_words(before, after);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let text = markdown_text(change.value());
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
