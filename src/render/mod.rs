//! Rendering plans for people (human, Markdown) and programs (JSON). Rendering never
//! changes a plan and knows nothing about where it came from.

mod human;
mod markdown;

pub use human::{human, summary_line};
pub use markdown::markdown;

use crate::plan::Plan;

/// The plan file and `--format json`: the contract's JSON, pretty-printed.
pub fn json(plan: &Plan) -> String {
    // A Plan holds only strings, numbers and enums: serialising it cannot fail.
    let mut out = serde_json::to_string_pretty(plan).unwrap_or_default();
    out.push('\n');
    out
}

/// `"text"` with quotes and control characters escaped, for showing a value.
pub(crate) fn quoted(value: &str) -> String {
    format!("{value:?}")
}

pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
