//! The Terraform-style plan people read in a terminal. Every name and value from outside is
//! shown with its control characters escaped (`crate::text`): a directory value must not be
//! able to move the cursor over the plan someone is reviewing. Colour (`+` green, `~` yellow,
//! `-` red) is only ever asked for by the caller, for a terminal.

use std::fmt::Write;

use super::{plural, quoted, shown};
use crate::plan::{Action, ActionKind, ActionStatus as Status, Change, Field, Plan};

/// Whether the plan's symbols are coloured (ANSI SGR codes). `commands` decides: on a
/// terminal only, and never with `NO_COLOR` or `--no-color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Colour {
    #[default]
    Never,
    Always,
}

impl Colour {
    /// The symbol, coloured by what it does: green adds, yellow changes, red takes away.
    fn paint(self, symbol: char) -> String {
        let code = match symbol {
            '+' => "32",
            '~' => "33",
            '-' => "31",
            '!' => "2",
            _ => return symbol.to_string(),
        };
        match self {
            Colour::Never => symbol.to_string(),
            Colour::Always => format!("\x1b[{code}m{symbol}\x1b[0m"),
        }
    }
}

/// The whole plan, without colour: one block per action, then the summary line.
pub fn human(plan: &Plan) -> String {
    human_in(plan, Colour::Never)
}

/// The whole plan, its symbols coloured as `colour` says.
pub fn human_in(plan: &Plan, colour: Colour) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; a plan in memory is read without error.
    let _ = write_human(plan, colour, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The same, written to `out` action by action as the plan yields them: a plan of a million
/// actions is never one `String`.
pub fn write_human(
    plan: &Plan,
    colour: Colour,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut head = String::new();
    for note in &plan.forced {
        let _ = writeln!(
            head,
            "Warning: --force overrode a safety check: {}",
            shown(note)
        );
    }
    for note in &plan.notes {
        let _ = writeln!(head, "Note: {note}");
    }
    if !plan.forced.is_empty() || !plan.notes.is_empty() {
        head.push('\n');
    }
    out.write_all(head.as_bytes())?;
    let mut block = String::new();
    plan.each_action(|action| {
        block.clear();
        action_block(&mut block, plan, action, colour);
        out.write_all(block.as_bytes())
    })?;
    let mut tail = String::new();
    if !plan.is_empty() {
        tail.push('\n');
    }
    tail.push_str(&summary_line(plan));
    tail.push('\n');
    out.write_all(tail.as_bytes())
}

fn action_block(out: &mut String, plan: &Plan, action: &Action, colour: Colour) {
    let symbol = match action.status {
        Status::Skipped => '!',
        _ => action.action.symbol(),
    };
    let _ = write!(
        out,
        "  {} {} {}",
        colour.paint(symbol),
        action.object().as_str(),
        shown(&super::groups::object_name(action))
    );
    if action.action == ActionKind::Add {
        let name = action.after(&Field::Name).map(shown);
        let email = action.after(&Field::Email).map(shown);
        match (name, email) {
            (Some(n), Some(e)) => {
                let _ = write!(out, " ({n} <{e}>)");
            }
            (Some(n), None) => {
                let _ = write!(out, " ({n})");
            }
            (None, Some(e)) => {
                let _ = write!(out, " (<{e}>)");
            }
            (None, None) => {}
        }
    }
    let mut notes = Vec::new();
    // A user's remove and delete in the target's own words, where it has them.
    let user = action.object() == crate::plan::ObjectKind::User;
    match action.action {
        ActionKind::Delete => notes.push(
            plan.delete_means
                .clone()
                .filter(|_| user)
                .unwrap_or_else(|| "delete".to_string()),
        ),
        ActionKind::Remove if user => notes.extend(plan.remove_means.clone()),
        _ => {}
    }
    match action.status {
        Status::Held => notes.push(format!(
            "held: {}",
            action
                .hold
                .as_ref()
                .map_or_else(|| "by a cap".to_string(), ToString::to_string)
        )),
        Status::Skipped => notes.push(format!("skipped: {}", shown(&action.reason()))),
        Status::Applied | Status::Failed | Status::Applying => {
            notes.push(action.status.as_str().to_string())
        }
        Status::Planned => {}
    }
    if !notes.is_empty() {
        let _ = write!(out, "  ({})", notes.join("; "));
    }
    out.push('\n');
    if let Some(error) = &action.error {
        let _ = writeln!(out, "      error: {}", error.escape_debug());
    }
    if action.action == ActionKind::Update && action.status != Status::Skipped {
        for change in &action.changes {
            change_line(out, change, colour);
        }
    }
}

fn change_line(out: &mut String, change: &Change, colour: Colour) {
    let field = change.field.to_string();
    let field = shown(&field);
    let _ = match (&change.before, &change.after) {
        (Some(b), Some(a)) => writeln!(
            out,
            "      {} {field}: {} -> {}",
            colour.paint('~'),
            quoted(b),
            quoted(a)
        ),
        (None, Some(a)) => writeln!(out, "      {} {field}: {}", colour.paint('+'), quoted(a)),
        (Some(b), None) => writeln!(out, "      {} {field}: {}", colour.paint('-'), quoted(b)),
        (None, None) => Ok(()),
    };
}

/// `Plan: 1 to add, 1 to update, 1 to remove (held), 0 to delete. ...`
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut line = if s.has_changes() {
        let held = |kind: ActionKind, total: u64| {
            let n = plan.count_where(|_, k, status| k == kind && status == Status::Held);
            match n {
                0 => String::new(),
                n if n == total => " (held)".to_string(),
                n => format!(" ({n} held)"),
            }
        };
        format!(
            "Plan: {} to add{}, {} to update{}, {} to remove{}, {} to delete{}.",
            s.add,
            held(ActionKind::Add, s.add),
            s.update,
            held(ActionKind::Update, s.update),
            s.remove,
            held(ActionKind::Remove, s.remove),
            s.delete,
            held(ActionKind::Delete, s.delete),
        )
    } else {
        format!(
            "No changes. The target matches the source ({}).",
            plural(s.unchanged, "user", "users")
        )
    };
    line.push_str(&super::groups::summary_note(plan));
    if s.rejected > 0 {
        let _ = write!(
            line,
            " {} (see `roster show`).",
            plural(s.rejected, "rejected record", "rejected records")
        );
    }
    if s.skipped > 0 {
        let _ = write!(
            line,
            " {} skipped by a rule.",
            plural(s.skipped, "change", "changes")
        );
    }
    if s.unmanaged > 0 {
        let _ = write!(
            line,
            " {} left alone.",
            plural(s.unmanaged, "unmanaged account", "unmanaged accounts")
        );
    }
    line
}
