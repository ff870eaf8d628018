//! Rendering plans for people (human, Markdown) and programs (JSON). Rendering never
//! changes a plan and knows nothing about where it came from.

mod compare;
mod csv;
mod groups;
mod human;
mod markdown;

pub use compare::{compare, comparison};
pub use csv::{csv, errors_csv, records_csv};
pub use human::{Colour, human, human_in, summary_line, write_human};
pub use markdown::{COMMENT_LIMIT, markdown, markdown_within};

use crate::plan::{Action, Allowance, Plan};

/// The plan file and `--format json`: the contract's JSON, pretty-printed.
pub fn json(plan: &Plan) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and a Plan holds only strings, numbers and enums.
    let _ = write_json(plan, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Streams the plan's JSON to `out`, without building it in memory first.
pub fn write_json(plan: &Plan, out: &mut impl std::io::Write) -> std::io::Result<()> {
    write_signed_json(plan, None, out)
}

/// The same, with the plan's signature (`plan::seal`) when it has one.
pub fn write_signed_json(
    plan: &Plan,
    signature: Option<&str>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(
        &mut *out,
        &crate::plan::contract::signed_view(plan, signature),
    )
    .map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// `"text"` with quotes and every control character escaped, for showing a value.
pub(crate) fn quoted(value: &str) -> String {
    crate::text::quoted(value)
}

/// Outside text (a name, a reason that quotes a value) shown unquoted, its control
/// characters escaped.
pub(crate) fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    crate::text::escape_controls(value)
}

/// What releases the `held` actions of a plan, as `apply::release` does it: each
/// `--allow-<kind> N` the held actions of its kind (`Action::released_by`), `--force`
/// everything held.
pub fn release_hint(held: &[&Action]) -> String {
    let mut flags: Vec<(Allowance, u64)> = Vec::new();
    let mut others = 0;
    for action in held {
        match action.released_by() {
            Some(kind) => match flags.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => flags.push((kind, 1)),
            },
            None => others += 1,
        }
    }
    flags.sort_by_key(|(kind, _)| Allowance::ALL.iter().position(|k| k == kind));
    if flags.is_empty() {
        return "Release them with `roster apply PLAN --force`".to_string();
    }
    let nouns: Vec<&str> = flags.iter().map(|(k, _)| k.noun()).collect();
    let args: Vec<String> = flags
        .iter()
        .map(|(k, n)| format!("{} {n}", k.flag()))
        .collect();
    let mut hint = format!(
        "Release the held {} with `roster apply PLAN {}`",
        nouns.join(" and "),
        args.join(" ")
    );
    if others > 0 {
        hint.push_str(&format!(
            "; the {} only with `--force`, which releases everything held",
            plural(others, "other held action", "other held actions")
        ));
    }
    hint
}

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
