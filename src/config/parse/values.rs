//! Readers for the kinds of value every block uses: strings, numbers in a range, booleans,
//! choices, paths, URLs, secrets and lists of names.
//!
//! Each reader reports what is wrong with the value (at the value, with an example of the
//! right form) and returns `None`; the blocks only say which reader a node takes.

use std::path::PathBuf;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::checker::{Checker, Pending, ProblemKind, resolve};
use super::suggest::{Written, did_you_mean};
use crate::config::Spanned;
use crate::secret::SecretRef;

pub(super) const SECRET_HELP: &str =
    "secrets are never written inline: use env=\"NAME\" or file=\"PATH\"";

/// A whole-number setting's allowed range, and how to say it.
pub(super) struct Whole {
    pub(super) min: i128,
    pub(super) max: i128,
    pub(super) help: &'static str,
}

/// A number setting (whole or fractional) and its allowed range.
pub(super) struct Number {
    /// Values must be greater than this (or equal to it when `min_inclusive`).
    pub(super) min: f64,
    pub(super) min_inclusive: bool,
    pub(super) max: Option<f64>,
    pub(super) help: &'static str,
}

pub(super) const PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 1000,
    help: "`page-size` is a whole number from 1 to 1000",
};

pub(super) const TIMEOUT: Whole = Whole {
    min: 1,
    max: 3600,
    help: "`timeout` is a whole number of seconds from 1 to 3600",
};

impl Checker<'_> {
    /// A node with one value, no properties and no block: `page-size 500`.
    pub(super) fn leaf<'d>(&mut self, node: &'d KdlNode, example: &str) -> Option<&'d KdlEntry> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        self.one_arg(node, &entries.args, example)
    }

    pub(super) fn leaf_string(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<String>> {
        let entry = self.leaf(node, example)?;
        self.string(node, entry)
    }

    pub(super) fn leaf_whole(
        &mut self,
        node: &KdlNode,
        range: &Whole,
        example: &str,
    ) -> Option<i128> {
        let entry = self.leaf(node, example)?;
        self.whole(node, entry, range)
    }

    pub(super) fn leaf_number(
        &mut self,
        node: &KdlNode,
        range: &Number,
        example: &str,
    ) -> Option<f64> {
        let entry = self.leaf(node, example)?;
        self.number(node, entry, range)
    }

    pub(super) fn leaf_bool(&mut self, node: &KdlNode) -> Option<bool> {
        let name = node.name().value();
        let entry = self.leaf(node, &format!("{name} #true"))?;
        match entry.value() {
            KdlValue::Bool(b) => Some(*b),
            other => {
                self.wrong_type(node, entry, other, "#true or #false")
                    .help(format!("write `{name} #true` or `{name} #false`"));
                None
            }
        }
    }

    pub(super) fn wrong_type(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
        found: &KdlValue,
        expected: &str,
    ) -> &mut Pending {
        let name = match entry.name() {
            Some(prop) => format!("{}=", prop.value()),
            None => node.name().value().to_string(),
        };
        self.report(
            ProblemKind::WrongType,
            entry.span(),
            format!("`{name}` must be {expected}, found {}", type_name(found)),
        )
        .label(format!("this is {}", type_name(found)))
    }

    pub(super) fn string(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
        match entry.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), entry.span())),
            other => {
                self.wrong_type(node, entry, other, "a string")
                    .help("put the value in double quotes");
                None
            }
        }
    }

    /// A string that must not be empty (attribute names, DNs, paths).
    pub(super) fn name_string(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
    ) -> Option<Spanned<String>> {
        let value = self.string(node, entry)?;
        if value.trim().is_empty() {
            self.report(
                ProblemKind::InvalidValue,
                entry.span(),
                format!("`{}` is empty", node.name().value()),
            )
            .label("empty");
            return None;
        }
        Some(value)
    }

    pub(super) fn whole(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
        range: &Whole,
    ) -> Option<i128> {
        let name = node.name().value();
        match entry.value() {
            KdlValue::Integer(n) if (range.min..=range.max).contains(n) => Some(*n),
            KdlValue::Integer(n) => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`{name}` is {n}, out of range"),
                )
                .label(if *n < range.min {
                    format!("less than {}", range.min)
                } else {
                    format!("more than {}", range.max)
                })
                .help(range.help);
                None
            }
            other => {
                self.wrong_type(node, entry, other, "a whole number")
                    .help(range.help);
                None
            }
        }
    }

    pub(super) fn number(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
        range: &Number,
    ) -> Option<f64> {
        let name = node.name().value();
        let value = match entry.value() {
            KdlValue::Integer(n) => *n as f64,
            KdlValue::Float(f) => *f,
            other => {
                self.wrong_type(node, entry, other, "a number")
                    .help(range.help);
                return None;
            }
        };
        let above_min = if range.min_inclusive {
            value >= range.min
        } else {
            value > range.min
        };
        if value.is_finite() && above_min && range.max.is_none_or(|max| value <= max) {
            return Some(value);
        }
        self.report(
            ProblemKind::InvalidValue,
            entry.span(),
            format!("`{name}` is {value}, out of range"),
        )
        .label("out of range")
        .help(range.help);
        None
    }

    /// One of a fixed set of names: `mode "add-only"`.
    pub(super) fn choice<T: Copy>(
        &mut self,
        node: &KdlNode,
        options: &[(&'static str, T)],
    ) -> Option<T> {
        let name = node.name().value();
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let example = format!("{name} \"{}\"", names[0]);
        let entry = self.leaf(node, &example)?;
        let value = self.string(node, entry)?;
        if let Some((_, t)) = options.iter().find(|(n, _)| *n == value.as_str()) {
            return Some(*t);
        }
        let allowed = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.unknown_value(
            entry.span(),
            &value,
            &names,
            format!("unknown {name} \"{}\"", value.as_str()),
            format!("not a valid {name}"),
            format!("`{name}` is one of {allowed}"),
        );
        None
    }

    /// Reports a value that is none of `known`: `message` and `label` say what it is not,
    /// `allowed` what it may be, after a guess when one of them is close.
    pub(super) fn unknown_value(
        &mut self,
        span: SourceSpan,
        value: &str,
        known: &[&str],
        message: String,
        label: String,
        allowed: String,
    ) {
        let help = match did_you_mean(value, known, Written::Value) {
            Some(guess) => format!("{} {allowed}", guess.help),
            None => allowed,
        };
        self.report(ProblemKind::InvalidValue, span, message)
            .label(label)
            .help(help);
    }

    /// A path, relative to the config file's directory unless absolute.
    pub(super) fn path(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        if value.trim().is_empty() {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!("`{what}` is an empty path"),
            )
            .label("empty");
            return None;
        }
        Some(resolve(self.dir, value))
    }

    pub(super) fn leaf_path(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<PathBuf>> {
        let value = self.leaf_string(node, example)?;
        let path = self.path(&value, node.name().value())?;
        Some(Spanned::new(path, value.span))
    }

    /// A URL whose scheme is one of `schemes` and which names a host (`url`, `proxy`).
    pub(super) fn url(
        &mut self,
        node: &KdlNode,
        schemes: &[&str],
        example: &str,
    ) -> Option<Spanned<String>> {
        let name = node.name().value();
        let value = self.leaf_string(node, example)?;
        let lower = value.to_ascii_lowercase();
        let rest = schemes.iter().find_map(|s| lower.strip_prefix(s));
        let shown = schemes.join(" or ");
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Some(value),
            Some(_) => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    format!("`{name}` has no host name"),
                )
                .label("no host")
                .help(format!("write it like this: {example}"));
                None
            }
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    format!("`{name}` must start with {shown}"),
                )
                .label("unsupported scheme")
                .help(format!("write it like this: {example}"));
                None
            }
        }
    }

    /// Reports `given`, a node that is only meaningful with a `missing` one (`bind-dn`
    /// without `bind-password`, ...).
    pub(super) fn given_without(
        &mut self,
        given: &KdlNode,
        missing: &str,
        label: &str,
        help: impl Into<String>,
    ) {
        self.report(
            ProblemKind::MissingNode,
            given.name().span(),
            format!("`{}` is given without `{missing}`", given.name().value()),
        )
        .label(label)
        .help(help);
    }

    /// `bind-password env="NAME"` or `file="PATH"`; anything written inline is reported,
    /// and masked in the report.
    pub(super) fn secret(&mut self, node: &KdlNode) -> Option<Spanned<SecretRef>> {
        let name = node.name().value();
        self.no_children(node);
        let mut found: Option<Spanned<SecretRef>> = None;
        // Set once any entry has been reported: then "says nowhere" would be noise.
        let mut reported = false;
        for entry in node.entries() {
            let prop = entry.name().map(|p| p.value());
            if !matches!(prop, Some("env" | "file")) {
                // Whatever this is, it may hold the secret itself: never quote it.
                self.secrets.push(value_span(&self.text, entry));
            }
            match prop {
                None => {
                    reported = true;
                    self.report(
                        ProblemKind::InlineSecret,
                        entry.span(),
                        format!("`{name}` holds a secret written inline"),
                    )
                    .label("secret written here")
                    .help(SECRET_HELP);
                }
                Some(prop @ ("env" | "file")) => {
                    let KdlValue::String(value) = entry.value() else {
                        reported = true;
                        self.wrong_type(node, entry, entry.value(), "a string")
                            .help(SECRET_HELP);
                        continue;
                    };
                    if value.trim().is_empty() {
                        reported = true;
                        self.report(
                            ProblemKind::InvalidValue,
                            entry.span(),
                            format!("`{prop}=` of `{name}` is empty"),
                        )
                        .label("empty")
                        .help(SECRET_HELP);
                        continue;
                    }
                    if found.is_some() {
                        self.report(
                            ProblemKind::InvalidValue,
                            entry.span(),
                            format!("`{name}` names more than one place"),
                        )
                        .label("second place")
                        .help(format!("give `{name}` either env= or file=, not both"));
                        continue;
                    }
                    let secret = if prop == "env" {
                        SecretRef::Env(value.clone())
                    } else {
                        SecretRef::File(resolve(self.dir, value))
                    };
                    found = Some(Spanned::new(secret, entry.span()));
                }
                Some(other) => {
                    let help = did_you_mean(other, &["env", "file"], Written::Property)
                        .map_or_else(|| SECRET_HELP.to_string(), |guess| guess.help);
                    self.report(
                        ProblemKind::UnknownProperty,
                        entry.span(),
                        format!("unknown property `{other}` on `{name}`"),
                    )
                    .label("unknown property")
                    .help(help);
                    reported = true;
                }
            }
        }
        if found.is_none() && !reported {
            self.report(
                ProblemKind::MissingValue,
                node.name().span(),
                format!("`{name}` does not say where the secret is"),
            )
            .label("needs env= or file=")
            .help(format!(
                "write it like this: {name} env=\"NAME\" or {name} file=\"PATH\""
            ));
        }
        found
    }

    /// The type argument of `source` / `target`.
    pub(super) fn block_type(
        &mut self,
        node: &KdlNode,
        known: &[&str],
        what: &str,
    ) -> Option<String> {
        let entries = self.entries(node, &[]);
        let example = format!("{what} \"{}\" {{ ... }}", known[0]);
        let entry = self.one_arg(node, &entries.args, &example)?;
        let kind = self.string(node, entry)?;
        if known.contains(&kind.as_str()) {
            return Some(kind.value);
        }
        let list = known.join(", ");
        self.unknown_value(
            entry.span(),
            &kind,
            known,
            format!("unknown {what} type \"{}\"", kind.as_str()),
            format!("not a known {what} type"),
            format!("supported {what} types: {list}"),
        );
        None
    }

    /// The block of a node that must have one.
    pub(super) fn block<'d>(&mut self, node: &'d KdlNode, shown: &str) -> Option<&'d KdlDocument> {
        let children = node.children();
        if children.is_none() {
            self.report(
                ProblemKind::MissingNode,
                node.name().span(),
                format!("`{shown}` has no block"),
            )
            .label("needs a block")
            .help(format!("write its settings in braces: {shown} {{ ... }}"));
        }
        children
    }

    /// A node of one or more names (`base-dn "a" "b"`, `phone "x" "y"`); `example` shows
    /// the form when there is none.
    pub(super) fn names(&mut self, node: &KdlNode, example: &str) -> Option<Vec<Spanned<String>>> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        if entries.args.is_empty() {
            self.one_arg(node, &[], example);
            return None;
        }
        let names: Vec<_> = entries
            .args
            .iter()
            .map(|e| self.name_string(node, e))
            .collect();
        names.into_iter().collect()
    }
}

/// The part of an entry that holds its value (after `name=` for a property).
pub(super) fn value_span(text: &str, entry: &KdlEntry) -> SourceSpan {
    let span = entry.span();
    let Some(name) = entry.name() else {
        return span;
    };
    let end = span.offset() + span.len();
    let after_name = name.span().offset() + name.span().len();
    match text.get(after_name..end).and_then(|s| s.find('=')) {
        Some(eq) => SourceSpan::from((after_name + eq + 1, end - (after_name + eq + 1))),
        None => span,
    }
}

pub(super) fn type_name(value: &KdlValue) -> &'static str {
    match value {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "a whole number",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}
