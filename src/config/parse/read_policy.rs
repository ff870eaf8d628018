//! The read settings of a policy: `read "complete" | "incremental"`, `complete-every` and
//! `max-incremental-age`.
//!
//! Kept apart from `policy.rs` because they say how the source is read, not what a plan may
//! do: an incremental read is a safety matter of its own (see ARCHITECTURE.md, "Incremental
//! reads"), and its settings are spans of time or counts of runs, which no cap uses.

use kdl::KdlNode;

use super::checker::{Children, ProblemKind};
use crate::config::{Every, ReadMode, ReadPolicy, Spanned};

/// What a span of time may be written as, for help lines.
const DURATION_HELP: &str =
    "a span of time is a whole number and a unit in quotes: \"90m\", \"24h\", \"7d\"";

impl super::checker::Checker<'_> {
    /// The read settings of an inline policy block or a policy file; defaults for those absent.
    pub(super) fn read_policy(&mut self, c: &Children) -> Option<ReadPolicy> {
        let defaults = ReadPolicy::default();
        let read = c.get("read").map(|n| {
            let mode = self.choice(
                n,
                &[
                    ("complete", ReadMode::Complete),
                    ("incremental", ReadMode::Incremental),
                ],
            );
            mode.map(|m| Spanned::new(m, self.at(n)))
        });
        let complete_every = c.get("complete-every").map(|n| {
            let every = self.every(n);
            every.map(|e| Spanned::new(e, self.at(n)))
        });
        let max_age = c.get("max-incremental-age").map(|n| {
            let secs = self.duration(n, "max-incremental-age \"7d\"");
            secs.map(|s| Spanned::new(s, self.at(n)))
        });
        Some(ReadPolicy {
            read: read.unwrap_or(Some(defaults.read))?,
            complete_every: complete_every.unwrap_or(Some(defaults.complete_every))?,
            max_incremental_age: max_age.unwrap_or(Some(defaults.max_incremental_age))?,
        })
    }

    /// `complete-every "24h"` or `complete-every "10 runs"`.
    fn every(&mut self, node: &KdlNode) -> Option<Every> {
        let entry = self.leaf(node, "complete-every \"24h\"")?;
        let value = self.string(node, entry)?;
        match parse_every(&value) {
            Some(every) => Some(every),
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!(
                        "`complete-every` \"{}\" is neither a span of time nor a number of runs",
                        value.as_str()
                    ),
                )
                .label("not a span of time or runs")
                .help(format!(
                    "{DURATION_HELP}, or a number of runs: \"10 runs\" (at least 1)"
                ));
                None
            }
        }
    }

    /// A span of time such as `"7d"`, in seconds.
    fn duration(&mut self, node: &KdlNode, example: &str) -> Option<u64> {
        let name = node.name().value().to_string();
        let entry = self.leaf(node, example)?;
        let value = self.string(node, entry)?;
        match parse_duration(&value) {
            Some(secs) => Some(secs),
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`{name}` \"{}\" is not a span of time", value.as_str()),
                )
                .label("not a span of time")
                .help(DURATION_HELP);
                None
            }
        }
    }
}

/// `"90m"`, `"24h"`, `"7d"` (and `"30s"`) → seconds; `None` for anything else, zero included.
pub(super) fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let size = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(size).filter(|s| *s > 0)
}

/// `"24h"` or `"10 runs"` (`"1 run"`).
pub(super) fn parse_every(text: &str) -> Option<Every> {
    let trimmed = text.trim();
    let runs = trimmed
        .strip_suffix("runs")
        .or_else(|| trimmed.strip_suffix("run"));
    match runs {
        Some(n) => n
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Every::Runs),
        None => parse_duration(trimmed).map(Every::Seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_time_are_a_whole_number_and_a_unit() {
        assert_eq!(parse_duration("7d"), Some(7 * 86_400));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration(" 90m "), Some(5_400));
        assert_eq!(parse_duration("30s"), Some(30));
        for bad in [
            "",
            "h",
            "7",
            "0h",
            "7 weeks",
            "-1d",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn complete_every_is_a_span_of_time_or_a_number_of_runs() {
        assert_eq!(parse_every("24h"), Some(Every::Seconds(86_400)));
        assert_eq!(parse_every("10 runs"), Some(Every::Runs(10)));
        assert_eq!(parse_every("1 run"), Some(Every::Runs(1)));
        assert_eq!(parse_every("0 runs"), None);
        assert_eq!(parse_every("runs"), None);
        assert_eq!(parse_every("often"), None);
        assert_eq!(Every::Runs(10).to_string(), "10 runs");
        assert_eq!(Every::Seconds(86_400).to_string(), "1d");
        assert_eq!(Every::Seconds(5_400).to_string(), "90m");
    }
}
