//! The `policy` node: an inline block or a policy file (a preset from `policies/`), and the
//! safety rules in it.
//!
//! A policy file is checked by a checker of its own, so that its problems quote the policy
//! file, not the config.

use std::path::Path;

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::checker::{Block, Checker, Children, ProblemKind, optional, trimmed};
use super::values::{Number, Whole};
use crate::config::{
    Cap, ConfigFile, Grace, Mode, OnInvalid, OverCap, Policy, PolicyValue, Spanned,
};

pub(super) const POLICY: Block = Block {
    place: "in `policy`",
    name: "policy",
    nodes: &[
        "mode",
        "max-removes",
        "max-remove-percent",
        "max-adds",
        "max-updates",
        "max-deletes",
        "max-changes",
        "remove-after",
        "over-cap",
        "max-source-shrink-percent",
        "max-target-shrink-percent",
        "on-invalid",
        "default-email",
        "default-name",
        "max-member-removes",
        "group-all",
        "read",
        "complete-every",
        "max-incremental-age",
    ],
    repeatable: &[],
};

pub(super) const POLICY_FILE: Block = Block {
    place: "in the policy file",
    ..POLICY
};

pub(super) const COUNT: Whole = Whole {
    min: 0,
    max: u32::MAX as i128,
    help: "a count is a whole number, 0 or more",
};

pub(super) const PERCENT: Number = Number {
    min: 0.0,
    min_inclusive: true,
    max: Some(100.0),
    help: "a percent is a number from 0 to 100",
};

impl<'t> Checker<'t> {
    /// `policy "policies/default.kdl"` or `policy { ... }`. Returns the policy file's checker
    /// (for its problems and its text) when the policy is in a file.
    pub(super) fn policy_node(&mut self, node: &KdlNode) -> (Option<Policy>, Option<Checker<'t>>) {
        let entries = self.entries(node, &[]);
        let origin = Some(trimmed(&self.text, node.span()));
        match (node.children(), entries.args.as_slice()) {
            (Some(doc), args) => {
                if let Some(first) = args.first() {
                    self.report(
                        ProblemKind::InvalidValue,
                        first.span(),
                        "`policy` takes a file or a block, not both",
                    )
                    .label("file given with a block")
                    .help("remove the file name, or the block");
                }
                let c = self.children(Some(node), Some(doc), &POLICY);
                (self.policy(&c).map(|p| Policy { origin, ..p }), None)
            }
            (None, []) => {
                self.one_arg(node, &[], "policy \"policies/default.kdl\"");
                (None, None)
            }
            (None, args) => {
                let Some(entry) = self.one_arg(node, args, "policy \"policies/default.kdl\"")
                else {
                    return (None, None);
                };
                let Some(path) = self
                    .string(node, entry)
                    .and_then(|s| self.path(&s, "policy"))
                else {
                    return (None, None);
                };
                self.policy_file(entry, &path)
                    .map_or((None, None), |(policy, file)| {
                        (policy.map(|p| Policy { origin, ..p }), Some(file))
                    })
            }
        }
    }

    pub(super) fn policy_file(
        &mut self,
        entry: &KdlEntry,
        path: &Path,
    ) -> Option<(Option<Policy>, Checker<'t>)> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                self.report(
                    ProblemKind::Unreadable,
                    entry.span(),
                    format!("cannot read policy file {}: {e}", path.display()),
                )
                .label("this file")
                .help("policy file paths are relative to the config file's directory");
                return None;
            }
        };
        let mut file = Checker::new(
            ConfigFile::Policy,
            path.display().to_string(),
            text,
            self.dir,
        );
        let policy = file.parse_kdl().and_then(|doc| {
            let c = file.children(None, Some(&doc), &POLICY_FILE);
            file.policy(&c)
        });
        Some((policy, file))
    }

    /// The policy nodes of an inline block or of a policy file; defaults for those absent.
    pub(super) fn policy(&mut self, c: &Children) -> Option<Policy> {
        let defaults = Policy::default();
        let mode = c.get("mode").map(|n| {
            let mode = self.choice(
                n,
                &[
                    ("add-only", Mode::AddOnly),
                    ("remove", Mode::Remove),
                    ("delete", Mode::Delete),
                ],
            );
            self.set_at(n, mode)
        });
        let max_removes = c.get("max-removes").map(|n| self.max_removes(n));
        let max_remove_percent = c.get("max-remove-percent").map(|n| {
            let percent = self.leaf_number(n, &PERCENT, "max-remove-percent 5");
            self.set_at(n, percent)
        });
        let max_adds = c.get("max-adds").map(|n| self.cap(n));
        let max_updates = c.get("max-updates").map(|n| self.cap(n));
        let thresholds = self.thresholds(c);
        let shrink = c.get("max-source-shrink-percent").map(|n| {
            let percent = self.leaf_number(n, &PERCENT, "max-source-shrink-percent 20");
            self.set_at(n, percent)
        });
        let target_shrink = c.get("max-target-shrink-percent").map(|n| {
            let percent = self.leaf_number(n, &PERCENT, "max-target-shrink-percent 20");
            self.set_at(n, percent)
        });
        let on_invalid = c
            .get("on-invalid")
            .map(|n| self.choice(n, &[("skip", OnInvalid::Skip), ("fail", OnInvalid::Fail)]));
        let default_email = c
            .get("default-email")
            .map(|n| self.template(n, "default-email \"{username}@example.com\""));
        let default_name = c
            .get("default-name")
            .map(|n| self.template(n, "default-name \"{username}\""));
        let max_member_removes = c.get("max-member-removes").map(|n| self.cap(n));
        let group_all = c.get("group-all").map(|n| {
            let entry = self.leaf(n, "group-all \"Everyone\"")?;
            self.name_string(n, entry).map(|s| s.value)
        });
        let read = self.read_policy(c);
        Some(Policy {
            read: read?,
            mode: mode.unwrap_or(Some(defaults.mode))?,
            max_removes: max_removes.unwrap_or(Some(defaults.max_removes))?,
            max_remove_percent: optional(max_remove_percent)?,
            max_adds: optional(max_adds)?,
            max_updates: optional(max_updates)?,
            max_deletes: thresholds.max_deletes?,
            max_changes: thresholds.max_changes?,
            remove_after: thresholds.remove_after?,
            over_cap: thresholds.over_cap?,
            max_source_shrink_percent: shrink
                .unwrap_or(Some(defaults.max_source_shrink_percent))?,
            max_target_shrink_percent: target_shrink
                .unwrap_or(Some(defaults.max_target_shrink_percent))?,
            on_invalid: on_invalid.unwrap_or(Some(defaults.on_invalid))?,
            default_email: optional(default_email)?,
            default_name: optional(default_name)?,
            max_member_removes: optional(max_member_removes)?,
            group_all: optional(group_all)?,
            origin: None,
        })
    }

    /// `max-removes 10` (the count it has always been) or `max-removes "2%"` (a percent of
    /// the managed accounts).
    fn max_removes(&mut self, node: &KdlNode) -> Option<PolicyValue<Cap>> {
        let is_percent = node
            .entries()
            .first()
            .is_some_and(|e| matches!(e.value(), KdlValue::String(_)));
        if is_percent {
            return self.cap(node);
        }
        let count = self.leaf_whole(node, &COUNT, "max-removes 10");
        self.set_at(node, count.map(|c| Cap::Count(c as u64)))
    }

    /// The thresholds per kind and how removals are paced: `max-deletes`, `max-changes`,
    /// `remove-after`, `over-cap`. Each is `Some(None)` when absent, `None` when invalid.
    fn thresholds(&mut self, c: &Children) -> Thresholds {
        let max_deletes = c.get("max-deletes").map(|n| self.cap(n));
        let max_changes = c.get("max-changes").map(|n| self.cap(n));
        let remove_after = c.get("remove-after").map(|n| {
            let grace = self.grace(n);
            self.set_at(n, grace)
        });
        let over_cap = c.get("over-cap").map(|n| {
            let over = self.choice(n, &[("hold", OverCap::Hold), ("drip", OverCap::Drip)]);
            self.set_at(n, over)
        });
        Thresholds {
            max_deletes: optional(max_deletes),
            max_changes: optional(max_changes),
            remove_after: optional(remove_after),
            over_cap: over_cap.unwrap_or(Some(OverCap::Hold.into())),
        }
    }

    /// `remove-after "72h"`, `"3d"` or `"3 runs"`.
    fn grace(&mut self, node: &KdlNode) -> Option<Grace> {
        let help =
            "`remove-after` is hours like \"72h\", days like \"3d\", or runs like \"3 runs\"";
        let entry = self.leaf(node, "remove-after \"72h\"")?;
        let text = match entry.value() {
            KdlValue::String(s) => s.clone(),
            other => {
                self.wrong_type(node, entry, other, "a string").help(help);
                return None;
            }
        };
        match Grace::parse(&text) {
            Some(Grace::Hours(0) | Grace::Days(0) | Grace::Runs(0)) => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`remove-after` \"{text}\" is no grace period"),
                )
                .label("zero")
                .help("leave `remove-after` out to remove as soon as an account is missing");
                None
            }
            Some(grace) if grace.duration().is_none() && !matches!(grace, Grace::Runs(_)) => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`remove-after` \"{text}\" is too long"),
                )
                .label("too long")
                .help(help);
                None
            }
            Some(grace) => Some(grace),
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`remove-after` \"{text}\" is not a grace period roster reads"),
                )
                .label("not hours, days or runs")
                .help(help);
                None
            }
        }
    }

    /// A checked value of `node`, with where it was set.
    fn set_at<T>(&self, node: &KdlNode, value: Option<T>) -> Option<PolicyValue<T>> {
        value.map(|value| Spanned::new(value, self.at(node)))
    }

    /// `max-adds 100` (a count) or `max-adds "10%"` (a percent), with where it was set.
    pub(super) fn cap(&mut self, node: &KdlNode) -> Option<PolicyValue<Cap>> {
        let cap = self.cap_value(node);
        self.set_at(node, cap)
    }

    fn cap_value(&mut self, node: &KdlNode) -> Option<Cap> {
        let name = node.name().value();
        let help = format!(
            "`{name}` is a count like `{name} 100` or a percent in quotes like `{name} \"10%\"`"
        );
        let entry = self.leaf(node, &format!("{name} 100"))?;
        match entry.value() {
            KdlValue::Integer(n) if *n >= 0 => Some(Cap::Count(*n as u64)),
            KdlValue::String(s) => match parse_percent(s) {
                Some(p) => Some(Cap::Percent(p)),
                None => {
                    self.report(
                        ProblemKind::InvalidValue,
                        entry.span(),
                        format!("`{name}` \"{s}\" is not a percent from 0% to 100%"),
                    )
                    .label("not a percent")
                    .help(help);
                    None
                }
            },
            KdlValue::Integer(n) => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`{name}` is {n}, below zero"),
                )
                .label("negative")
                .help(help);
                None
            }
            other => {
                self.wrong_type(node, entry, other, "a whole number or a percent")
                    .help(help);
                None
            }
        }
    }

    pub(super) fn template(&mut self, node: &KdlNode, example: &str) -> Option<String> {
        let entry = self.leaf(node, example)?;
        let value = self.string(node, entry)?;
        match check_template(&value) {
            Ok(()) => Some(value.value),
            Err(error) => {
                let span = self.span_in_string(entry, &value, error.at, error.len);
                self.report(
                    ProblemKind::InvalidValue,
                    span,
                    format!("`{}` is not a valid template: {}", node.name().value(), error.why),
                )
                .label(error.why)
                .help("placeholders are {username}, {key}, {name}, or a source attribute such as {mail}");
                None
            }
        }
    }

    /// The span of bytes `at..at+len` of a string value, when the value is written as a
    /// plain quoted string (so offsets in the value are offsets in the file); otherwise the
    /// whole value.
    pub(super) fn span_in_string(
        &self,
        entry: &KdlEntry,
        value: &str,
        at: usize,
        len: usize,
    ) -> SourceSpan {
        let span = entry.span();
        let written = self.text.get(span.offset()..span.offset() + span.len());
        if written == Some(format!("\"{value}\"").as_str()) {
            SourceSpan::from((span.offset() + 1 + at, len.max(1)))
        } else {
            span
        }
    }
}

/// The policy nodes `thresholds` reads, each `None` when its value is invalid.
struct Thresholds {
    max_deletes: Option<Option<PolicyValue<Cap>>>,
    max_changes: Option<Option<PolicyValue<Cap>>>,
    remove_after: Option<Option<PolicyValue<Grace>>>,
    over_cap: Option<PolicyValue<OverCap>>,
}

/// `"10%"` → 10.0; `None` unless it is a number from 0 to 100 followed by `%`.
pub(super) fn parse_percent(value: &str) -> Option<f64> {
    let number: f64 = value.trim().strip_suffix('%')?.trim_end().parse().ok()?;
    (number.is_finite() && (0.0..=100.0).contains(&number)).then_some(number)
}

/// Why a template is invalid, and which bytes of it.
#[derive(Debug, PartialEq)]
pub(super) struct TemplateError {
    at: usize,
    len: usize,
    why: String,
}

/// Checks a default-value template: every `{...}` names `username`, `key`, `name` or a
/// source attribute, and braces balance.
pub(super) fn check_template(template: &str) -> Result<(), TemplateError> {
    let mut rest = template.char_indices();
    while let Some((at, c)) = rest.next() {
        match c {
            '}' => {
                return Err(TemplateError {
                    at,
                    len: 1,
                    why: "`}` without `{`".to_string(),
                });
            }
            '{' => {
                let close = template[at + 1..].find(['{', '}']).map(|i| at + 1 + i);
                let Some(close) = close.filter(|&i| template.as_bytes()[i] == b'}') else {
                    return Err(TemplateError {
                        at,
                        len: 1,
                        why: "`{` is not closed".to_string(),
                    });
                };
                let name = &template[at + 1..close];
                if !is_placeholder(name) {
                    return Err(TemplateError {
                        at,
                        len: close + 1 - at,
                        why: format!("`{{{name}}}` is not a placeholder"),
                    });
                }
                // Skip past the placeholder.
                for _ in template[at + 1..=close].chars() {
                    rest.next();
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `username`, `key`, `name`, or an LDAP attribute name (a letter then letters, digits and
/// hyphens) or OID.
pub(super) fn is_placeholder(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn percent_caps() {
        assert_eq!(parse_percent("10%"), Some(10.0));
        assert_eq!(parse_percent(" 2.5 %"), Some(2.5));
        assert_eq!(parse_percent("100%"), Some(100.0));
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("-1%"), None);
        assert_eq!(parse_percent("10"), None);
        assert_eq!(parse_percent("%"), None);
    }

    #[test]
    pub(super) fn templates() {
        assert_eq!(check_template("{username}@example.com"), Ok(()));
        assert_eq!(check_template("{givenName} {sn} ({key})"), Ok(()));
        assert_eq!(check_template("no placeholders"), Ok(()));
        assert_eq!(check_template("{1.2.840.113556}"), Ok(()));
        let unclosed = check_template("{username@example.com").unwrap_err();
        assert_eq!((unclosed.at, unclosed.len), (0, 1));
        let nested = check_template("a{b{c}}").unwrap_err();
        assert_eq!((nested.at, nested.why.as_str()), (1, "`{` is not closed"));
        let stray = check_template("{username}}").unwrap_err();
        assert_eq!((stray.at, stray.why.as_str()), (10, "`}` without `{`"));
        let empty = check_template("x{}").unwrap_err();
        assert_eq!((empty.at, empty.len), (1, 2));
        let spaced = check_template("{user name}").unwrap_err();
        assert_eq!(spaced.why, "`{user name}` is not a placeholder");
    }
}
