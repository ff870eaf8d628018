//! KDL text → `Config`.
//!
//! The parser is a checker first: it walks every node of the config (and of the policy file
//! it names), records every problem it finds, and only builds a `Config` when there is none.
//! A value that is wrong does not hide the problems after it, so one `roster validate` run
//! shows everything that needs fixing.
//!
//! Secrets are never written in the config. When someone does write one inline, the value
//! is masked in the text that the report quotes, so the report itself cannot leak it into a
//! CI log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::{NamedSource, SourceSpan};
use sha2::{Digest, Sha256};

use super::diagnostics::ProblemKind;
use super::{
    Cap, Config, ConfigError, ConfigProblem, FieldMapping, HttpOptions, LdapSource, Mode,
    Normalize, OnInvalid, Policy, ScimTarget, SourceConfig, Spanned, TargetConfig, UserMapping,
};
use super::{CsvSource, LdifSource};
use crate::secret::SecretRef;

mod active_directory;
mod groups;
mod rest;

/// Parses the config file at `path` whose text is `text`. Relative paths in it (state,
/// policy file, CA files) resolve against the directory of `path`; a policy file it names is
/// read from disk. Every problem found, in the config and in the policy file, is in the error.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut file = Checker::new(path.display().to_string(), text.to_string(), dir);
    let Some(doc) = file.parse_kdl() else {
        return Err(ConfigError::Invalid {
            problems: file.finish(),
        });
    };

    let top = file.children(None, Some(&doc), &TOP);
    let state = match top.get("state") {
        Some(node) => file
            .leaf_string(node, "state \".roster/state.db\"")
            .and_then(|s| file.path(&s, "state")),
        None => Some(dir.join(".roster").join("state.db")),
    };
    let source = file.source(&top);
    let target = file.target(&top);
    let user = file.user(&top);
    let source_kind = top
        .get("source")
        .and_then(|n| n.entries().iter().find(|e| e.name().is_none()))
        .and_then(|e| e.value().as_string())
        .map(str::to_string);
    let group = file.group(&top, source_kind.as_deref());
    let (policy, policy_file) = match top.get("policy") {
        Some(node) => file.policy_node(node),
        None => (Some(Policy::default()), None),
    };

    let mut digest = Sha256::new();
    digest.update(text.as_bytes());
    let mut problems = file.finish();
    if let Some(policy_file) = policy_file {
        digest.update(policy_file.text.as_bytes());
        problems.extend(policy_file.finish());
    }
    match (state, source, target, user, group, policy) {
        (Some(state), Some(source), Some(target), Some(user), Some(group), Some(policy))
            if problems.is_empty() =>
        {
            Ok(Config {
                path: path.to_path_buf(),
                source_text: NamedSource::new(path.display().to_string(), text.to_string()),
                state,
                source,
                target,
                user,
                group,
                policy,
                digest: hex(&digest.finalize()),
            })
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node names valid in one block, for unknown-node and duplicate checks.
struct Block {
    /// How messages name the block: "in `user`", "at the top level".
    place: &'static str,
    /// The name shown in "belongs in the ... block".
    name: &'static str,
    nodes: &'static [&'static str],
    repeatable: &'static [&'static str],
}

const TOP: Block = Block {
    place: "at the top level",
    name: "top level",
    nodes: &["state", "source", "target", "user", "group", "policy"],
    repeatable: &[],
};

const LDAP: Block = Block {
    place: "in `source \"ldap\"`",
    name: "source \"ldap\"",
    nodes: &[
        "url",
        "starttls",
        "ca-file",
        "tls-insecure-skip-verify",
        "bind-dn",
        "bind-password",
        "base-dn",
        "filter",
        "page-size",
        "timeout",
        "active-directory",
        "disabled",
        "follow-referrals",
    ],
    repeatable: &[],
};

const SCIM: Block = Block {
    place: "in `target \"scim\"`",
    name: "target \"scim\"",
    nodes: &[
        "url",
        "token",
        "ca-file",
        "concurrency",
        "rate-limit",
        "page-size",
        "timeout",
    ],
    repeatable: &[],
};

const USER: Block = Block {
    place: "in `user`",
    name: "user",
    nodes: &[
        "key",
        "username",
        "name",
        "email",
        "phone",
        "alias",
        "attribute",
        "role",
    ],
    repeatable: &["alias", "attribute", "role"],
};

const POLICY: Block = Block {
    place: "in `policy`",
    name: "policy",
    nodes: &[
        "mode",
        "max-removes",
        "max-remove-percent",
        "max-adds",
        "max-updates",
        "max-source-shrink-percent",
        "on-invalid",
        "default-email",
        "default-name",
        "max-member-removes",
        "group-all",
    ],
    repeatable: &[],
};

const POLICY_FILE: Block = Block {
    place: "in the policy file",
    ..POLICY
};

const BLOCKS: [&Block; 10] = [
    &TOP,
    &LDAP,
    &SCIM,
    &USER,
    &POLICY,
    &CSV,
    &LDIF,
    &groups::GROUP,
    &rest::SERVICENOW,
    &rest::FRESHSERVICE,
];

const SOURCE_TYPES: &[&str] = &["ldap", "csv", "ldif", "servicenow", "freshservice"];
const TARGET_TYPES: &[&str] = &["scim"];
const NORMALIZE_HELP: &str =
    "normalize is \"lowercase\", \"trim\", or both separated by a comma: \"trim,lowercase\"";
const SECRET_HELP: &str = "secrets are never written inline: use env=\"NAME\" or file=\"PATH\"";

/// A whole-number setting's allowed range, and how to say it.
struct Whole {
    min: i128,
    max: i128,
    help: &'static str,
}

/// A number setting (whole or fractional) and its allowed range.
struct Number {
    /// Values must be greater than this (or equal to it when `min_inclusive`).
    min: f64,
    min_inclusive: bool,
    max: Option<f64>,
    help: &'static str,
}

const PERCENT: Number = Number {
    min: 0.0,
    min_inclusive: true,
    max: Some(100.0),
    help: "a percent is a number from 0 to 100",
};

/// A problem found but not yet turned into a `ConfigProblem`: the source it quotes is only
/// known at the end, once every inline secret in the file has been found and masked.
struct Pending {
    kind: ProblemKind,
    span: SourceSpan,
    message: String,
    label: Option<String>,
    help: Option<String>,
}

impl Pending {
    fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = Some(label.into());
        self
    }

    fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}

/// The nodes of one block, after the unknown and duplicate ones have been reported.
struct Children<'d> {
    nodes: Vec<&'d KdlNode>,
    /// Names offered as "did you mean" for misspelled nodes: not reported missing again.
    suggested: Vec<&'static str>,
}

impl<'d> Children<'d> {
    /// The first node of that name (later ones were reported as duplicates).
    fn get(&self, name: &str) -> Option<&'d KdlNode> {
        self.nodes
            .iter()
            .copied()
            .find(|n| n.name().value() == name)
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'d KdlNode> + 's {
        self.nodes
            .iter()
            .copied()
            .filter(move |n| n.name().value() == name)
    }
}

/// The arguments and known properties of one node.
struct Entries<'d> {
    args: Vec<&'d KdlEntry>,
    props: HashMap<&'d str, &'d KdlEntry>,
}

/// Checks one file (the config, or a policy file) and collects its problems.
struct Checker<'t> {
    name: String,
    text: String,
    /// The config file's directory: relative paths resolve against it.
    dir: &'t Path,
    problems: Vec<Pending>,
    /// Spans of inline secrets, masked in the text the report quotes.
    secrets: Vec<SourceSpan>,
}

impl<'t> Checker<'t> {
    fn new(name: String, text: String, dir: &'t Path) -> Self {
        Checker {
            name,
            text,
            dir,
            problems: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn report(
        &mut self,
        kind: ProblemKind,
        span: SourceSpan,
        message: impl Into<String>,
    ) -> &mut Pending {
        self.problems.push(Pending {
            kind,
            span,
            message: message.into(),
            label: None,
            help: None,
        });
        self.problems.last_mut().expect("just pushed")
    }

    /// The problems, in the order they appear in the file, quoting the file with its
    /// inline secrets masked.
    fn finish(self) -> Vec<ConfigProblem> {
        let mut text = self.text.as_bytes().to_vec();
        for span in &self.secrets {
            let end = (span.offset() + span.len()).min(text.len());
            for byte in &mut text[span.offset().min(end)..end] {
                if *byte != b'"' && *byte != b'#' {
                    *byte = b'*';
                }
            }
        }
        // Only whole UTF-8 sequences were replaced by ASCII, so this cannot fail; fall back to
        // the original text rather than panic if it ever did.
        let text = String::from_utf8(text).unwrap_or(self.text);
        let source = NamedSource::new(&self.name, text).with_language("kdl");
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.span.offset());
        problems
            .into_iter()
            .map(|p| {
                let problem = ConfigProblem::at(p.kind, &source, p.span, p.message);
                let problem = match p.label {
                    Some(label) => problem.with_label(label),
                    None => problem,
                };
                problem.with_help_opt(p.help)
            })
            .collect()
    }

    fn line_of(&self, span: SourceSpan) -> usize {
        let end = span.offset().min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The text as a KDL document, or `None` after reporting its syntax errors.
    fn parse_kdl(&mut self) -> Option<KdlDocument> {
        let error = match KdlDocument::parse(&self.text) {
            Ok(doc) => return Some(doc),
            Err(error) => error,
        };
        // kdl reports an unclosed block twice: once at its `{`, once over the whole block.
        // The first is the useful one.
        let unclosed_block = error
            .diagnostics
            .iter()
            .any(|d| d.message.as_deref() == Some("No closing '}' for child block"));
        for diagnostic in error.diagnostics {
            let message = diagnostic.message.as_deref().unwrap_or("invalid KDL");
            if unclosed_block && message == "Closing '}' was not found after nodes" {
                continue;
            }
            let written = self
                .text
                .get(diagnostic.span.offset()..diagnostic.span.offset() + diagnostic.span.len())
                .unwrap_or("");
            let help = match written {
                "true" | "false" | "null" => Some(format!(
                    "KDL 2 writes booleans and null with a #: #{written}"
                )),
                _ => diagnostic.help,
            };
            let pending = self.report(
                ProblemKind::Syntax,
                diagnostic.span,
                lowercase_first(message),
            );
            // kdl labels most spans "not <what it tried to parse>", which reads oddly next to
            // its message; "not closed" is the one that adds something.
            if diagnostic.label.as_deref() == Some("not closed") {
                pending.label("not closed");
            }
            if let Some(help) = help {
                pending.help(help);
            }
        }
        None
    }

    /// The children of `parent` (or the top level of the file when `parent` is `None`),
    /// after reporting unknown node names and duplicates of nodes that may appear once.
    fn children<'d>(
        &mut self,
        parent: Option<&KdlNode>,
        doc: Option<&'d KdlDocument>,
        block: &Block,
    ) -> Children<'d> {
        let mut nodes = Vec::new();
        let mut suggested = Vec::new();
        let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
        for node in doc.map(KdlDocument::nodes).unwrap_or_default() {
            let name = node.name().value();
            if !block.nodes.contains(&name) {
                suggested.extend(self.unknown_node(node, block));
                continue;
            }
            if !block.repeatable.contains(&name) {
                if let Some(first) = seen.get(name) {
                    let line = self.line_of(*first);
                    let what = match parent {
                        Some(_) => format!("`{name}` appears more than once {}", block.place),
                        None => format!("`{name}` appears more than once"),
                    };
                    self.report(ProblemKind::DuplicateNode, node.name().span(), what)
                        .label("repeated here")
                        .help(format!(
                            "`{name}` may be given once; the first one is on line {line}"
                        ));
                    continue;
                }
                seen.insert(name, node.name().span());
            }
            nodes.push(node);
        }
        Children { nodes, suggested }
    }

    /// Reports an unknown node; returns the name suggested instead, if any.
    fn unknown_node(&mut self, node: &KdlNode, block: &Block) -> Option<&'static str> {
        let name = node.name().value();
        let suggestion = closest(name, block.nodes);
        let help = match suggestion {
            Some(known) => format!("did you mean `{known}`?"),
            None => match BLOCKS.iter().find(|b| b.nodes.contains(&name)) {
                Some(other) if other.name == TOP.name => {
                    format!("`{name}` belongs at the top level, outside any block")
                }
                Some(other) => format!("`{name}` belongs in the `{}` block", other.name),
                None => format!("valid {}: {}", block.place, block.nodes.join(", ")),
            },
        };
        self.report(
            ProblemKind::UnknownNode,
            node.name().span(),
            format!("unknown node `{name}` {}", block.place),
        )
        .label("unknown node")
        .help(help);
        suggestion
    }

    /// Reports `name` missing from the block of `parent` (or from the file).
    fn missing(&mut self, parent: Option<&KdlNode>, name: &str, example: &str) {
        let (span, message, label) = match parent {
            Some(node) => (
                node.name().span(),
                format!("`{}` has no `{name}`", describe_node(node)),
                format!("no `{name}` in this block"),
            ),
            None => (
                SourceSpan::from((0, 0)),
                format!("the config has no `{name}` block"),
                format!("no `{name}` in this file"),
            ),
        };
        self.report(ProblemKind::MissingNode, span, message)
            .label(label)
            .help(format!("add it, for example: {example}"));
    }

    fn require<'d>(
        &mut self,
        children: &Children<'d>,
        parent: Option<&KdlNode>,
        name: &str,
        example: &str,
    ) -> Option<&'d KdlNode> {
        let node = children.get(name);
        if node.is_none() && !children.suggested.contains(&name) {
            self.missing(parent, name, example);
        }
        node
    }

    /// The node's arguments and properties, after reporting properties other than `props`.
    fn entries<'d>(&mut self, node: &'d KdlNode, props: &[&str]) -> Entries<'d> {
        let node_name = node.name().value();
        let mut entries = Entries {
            args: Vec::new(),
            props: HashMap::new(),
        };
        for entry in node.entries() {
            let Some(prop) = entry.name() else {
                entries.args.push(entry);
                continue;
            };
            let prop_name = prop.value();
            if !props.contains(&prop_name) {
                let help = match closest(prop_name, props) {
                    Some(known) => format!("did you mean `{known}=`?"),
                    None if props.is_empty() => format!("`{node_name}` takes no properties"),
                    None => format!(
                        "`{node_name}` takes {}",
                        props
                            .iter()
                            .map(|p| format!("`{p}=`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.report(
                    ProblemKind::UnknownProperty,
                    prop.span(),
                    format!("unknown property `{prop_name}` on `{node_name}`"),
                )
                .label("unknown property")
                .help(help);
            } else if entries.props.insert(prop_name, entry).is_some() {
                self.report(
                    ProblemKind::DuplicateNode,
                    prop.span(),
                    format!("`{prop_name}=` is given more than once on `{node_name}`"),
                )
                .label("repeated here")
                .help(format!("give `{prop_name}=` once"));
            }
        }
        entries
    }

    /// Reports a block on a node that holds values only.
    fn no_children(&mut self, node: &KdlNode) {
        if let Some(children) = node.children() {
            let name = node.name().value();
            self.report(
                ProblemKind::WrongType,
                children.span(),
                format!("`{name}` takes a value, not a block"),
            )
            .label("unexpected block")
            .help(format!("remove the braces after `{name}`"));
        }
    }

    /// Reports arguments on a node that takes none.
    fn no_args(&mut self, node: &KdlNode, args: &[&KdlEntry]) {
        if let Some(first) = args.first() {
            let name = node.name().value();
            self.report(
                ProblemKind::InvalidValue,
                first.span(),
                format!("`{name}` takes no arguments"),
            )
            .label("unexpected argument")
            .help(format!("remove the arguments of `{name}`"));
        }
    }

    /// The one argument of a node that takes exactly one.
    fn one_arg<'d>(
        &mut self,
        node: &KdlNode,
        args: &[&'d KdlEntry],
        example: &str,
    ) -> Option<&'d KdlEntry> {
        let name = node.name().value();
        match args {
            [] => {
                self.report(
                    ProblemKind::MissingValue,
                    node.name().span(),
                    format!("`{name}` has no value"),
                )
                .label("needs a value")
                .help(format!("write it like this: {example}"));
                None
            }
            [one] => Some(one),
            [first, second, ..] => {
                self.report(
                    ProblemKind::InvalidValue,
                    second.span(),
                    format!("`{name}` takes one value, found {}", args.len()),
                )
                .label("unexpected value")
                .help(format!("write it like this: {example}"));
                Some(first)
            }
        }
    }

    /// A node with one value, no properties and no block: `page-size 500`.
    fn leaf<'d>(&mut self, node: &'d KdlNode, example: &str) -> Option<&'d KdlEntry> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        self.one_arg(node, &entries.args, example)
    }

    fn leaf_string(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<String>> {
        let entry = self.leaf(node, example)?;
        self.string(node, entry)
    }

    fn leaf_whole(&mut self, node: &KdlNode, range: &Whole, example: &str) -> Option<i128> {
        let entry = self.leaf(node, example)?;
        self.whole(node, entry, range)
    }

    fn leaf_number(&mut self, node: &KdlNode, range: &Number, example: &str) -> Option<f64> {
        let entry = self.leaf(node, example)?;
        self.number(node, entry, range)
    }

    fn leaf_bool(&mut self, node: &KdlNode) -> Option<bool> {
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

    fn wrong_type(
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

    fn string(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
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
    fn name_string(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
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

    fn whole(&mut self, node: &KdlNode, entry: &KdlEntry, range: &Whole) -> Option<i128> {
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

    fn number(&mut self, node: &KdlNode, entry: &KdlEntry, range: &Number) -> Option<f64> {
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
    fn choice<T: Copy>(&mut self, node: &KdlNode, options: &[(&'static str, T)]) -> Option<T> {
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
        let help = match closest(&value, &names) {
            Some(known) => format!("did you mean \"{known}\"? `{name}` is one of {allowed}"),
            None => format!("`{name}` is one of {allowed}"),
        };
        self.report(
            ProblemKind::InvalidValue,
            entry.span(),
            format!("unknown {name} \"{}\"", value.as_str()),
        )
        .label(format!("not a valid {name}"))
        .help(help);
        None
    }

    /// A path, relative to the config file's directory unless absolute.
    fn path(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
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

    fn leaf_path(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<PathBuf>> {
        let value = self.leaf_string(node, example)?;
        let path = self.path(&value, node.name().value())?;
        Some(Spanned::new(path, value.span))
    }

    /// A URL whose scheme is one of `schemes` and which names a host.
    fn url(&mut self, node: &KdlNode, schemes: &[&str], example: &str) -> Option<Spanned<String>> {
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
                    "`url` has no host name",
                )
                .label("no host")
                .help(format!("write it like this: {example}"));
                None
            }
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    format!("`url` must start with {shown}"),
                )
                .label("unsupported scheme")
                .help(format!("write it like this: {example}"));
                None
            }
        }
    }

    /// `bind-password env="NAME"` or `file="PATH"`; anything written inline is reported,
    /// and masked in the report.
    fn secret(&mut self, node: &KdlNode) -> Option<Spanned<SecretRef>> {
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
                    let help = match closest(other, &["env", "file"]) {
                        Some(known) => format!("did you mean `{known}=`?"),
                        None => SECRET_HELP.to_string(),
                    };
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

    /// `source "ldap" { ... }`
    fn source(&mut self, top: &Children) -> Option<SourceConfig> {
        let node = self.require(
            top,
            None,
            "source",
            "source \"ldap\" { url \"ldaps://dc1.example.com:636\" ... }",
        )?;
        let kind = self.block_type(node, SOURCE_TYPES, "source")?;
        let children = self.block(node, &format!("source \"{kind}\""))?;
        match kind.as_str() {
            "csv" => self.csv(node, children).map(SourceConfig::Csv),
            "ldif" => self.ldif(node, children).map(SourceConfig::Ldif),
            "servicenow" => self
                .servicenow(node, children)
                .map(SourceConfig::ServiceNow),
            "freshservice" => self
                .freshservice(node, children)
                .map(SourceConfig::Freshservice),
            _ => self.ldap(node, children).map(SourceConfig::Ldap),
        }
    }

    /// `target "scim" { ... }`
    fn target(&mut self, top: &Children) -> Option<TargetConfig> {
        let node = self.require(
            top,
            None,
            "target",
            "target \"scim\" { url \"https://example.com/scim/v2\" ... }",
        )?;
        let kind = self.block_type(node, TARGET_TYPES, "target")?;
        let children = self.block(node, &format!("target \"{kind}\""))?;
        self.scim(node, children).map(TargetConfig::Scim)
    }

    /// The type argument of `source` / `target`.
    fn block_type(&mut self, node: &KdlNode, known: &[&str], what: &str) -> Option<String> {
        let entries = self.entries(node, &[]);
        let example = format!("{what} \"{}\" {{ ... }}", known[0]);
        let entry = self.one_arg(node, &entries.args, &example)?;
        let kind = self.string(node, entry)?;
        if known.contains(&kind.as_str()) {
            return Some(kind.value);
        }
        let list = known.join(", ");
        let help = match closest(&kind, known) {
            Some(k) => format!("did you mean \"{k}\"? supported {what} types: {list}"),
            None => format!("supported {what} types: {list}"),
        };
        self.report(
            ProblemKind::InvalidValue,
            entry.span(),
            format!("unknown {what} type \"{}\"", kind.as_str()),
        )
        .label(format!("not a known {what} type"))
        .help(help);
        None
    }

    /// The block of a node that must have one.
    fn block<'d>(&mut self, node: &'d KdlNode, shown: &str) -> Option<&'d KdlDocument> {
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

    fn ldap(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LdapSource> {
        const URL: &str = "url \"ldaps://dc1.example.com:636\"";
        let c = self.children(Some(node), Some(doc), &LDAP);
        let url_node = self.require(&c, Some(node), "url", URL);
        let url = url_node.and_then(|n| self.url(n, &["ldap://", "ldaps://"], URL));
        let starttls = c.get("starttls").map(|n| (n, self.leaf_bool(n)));
        if let (Some(url), Some((starttls_node, Some(true)))) = (&url, starttls) {
            if url.to_ascii_lowercase().starts_with("ldaps://") {
                let value = starttls_node.entries().iter().find(|e| e.name().is_none());
                self.report(
                    ProblemKind::InvalidValue,
                    value.map_or(starttls_node.name().span(), |e| e.span()),
                    "`starttls` cannot be used with an ldaps:// URL",
                )
                .label("conflicts with the ldaps:// URL")
                .help("ldaps:// is TLS from the start: use starttls only with an ldap:// URL");
            }
        }
        let ca_file = c
            .get("ca-file")
            .map(|n| self.leaf_path(n, "ca-file \"/etc/ssl/corp-ca.pem\""));
        let insecure = c.get("tls-insecure-skip-verify").map(|n| self.leaf_bool(n));
        let bind_dn_node = c.get("bind-dn");
        let bind_dn = bind_dn_node.map(|n| {
            let entry = self.leaf(n, "bind-dn \"cn=sync,ou=Service,dc=example,dc=com\"")?;
            self.name_string(n, entry)
        });
        let password_node = c.get("bind-password");
        let bind_password = password_node.map(|n| self.secret(n));
        match (bind_dn_node, password_node) {
            (Some(dn), None) => {
                self.report(
                    ProblemKind::MissingNode,
                    dn.name().span(),
                    "`bind-dn` is given without `bind-password`",
                )
                .label("no password for this bind DN")
                .help("add bind-password env=\"LDAP_BIND_PASSWORD\" (or file=\"PATH\"), or remove bind-dn to bind anonymously");
            }
            (None, Some(password)) => {
                self.report(
                    ProblemKind::MissingNode,
                    password.name().span(),
                    "`bind-password` is given without `bind-dn`",
                )
                .label("password for no bind DN")
                .help(
                    "add bind-dn \"cn=sync,ou=Service,dc=example,dc=com\", or remove bind-password",
                );
            }
            _ => {}
        }
        let base_dns = self
            .require(
                &c,
                Some(node),
                "base-dn",
                "base-dn \"ou=People,dc=example,dc=com\"",
            )
            .map(|n| self.base_dns(n));
        let filter = c.get("filter").map(|n| self.filter(n));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 500"));
        let timeout = c
            .get("timeout")
            .map(|n| self.leaf_whole(n, &TIMEOUT, "timeout 30"));
        let (active_directory, follow_referrals) = self.active_directory(&c);

        Some(LdapSource {
            url: url?,
            starttls: starttls.map(|(_, b)| b).unwrap_or(Some(false))?,
            ca_file: optional(ca_file)?,
            tls_insecure_skip_verify: insecure.unwrap_or(Some(false))?,
            bind_dn: optional(bind_dn)?,
            bind_password: optional(bind_password)?,
            base_dns: base_dns??,
            filter: filter.unwrap_or_else(|| {
                Some(Spanned::new(
                    "(objectClass=*)".to_string(),
                    node.name().span(),
                ))
            })?,
            page_size: page_size.unwrap_or(Some(500))? as u32,
            timeout_secs: timeout.unwrap_or(Some(30))? as u64,
            active_directory: active_directory?,
            follow_referrals: follow_referrals?,
        })
    }

    fn base_dns(&mut self, node: &KdlNode) -> Option<Vec<Spanned<String>>> {
        self.names(node, "base-dn \"ou=People,dc=example,dc=com\"")
    }

    /// A node of one or more names (`base-dn "a" "b"`, `phone "x" "y"`); `example` shows
    /// the form when there is none.
    fn names(&mut self, node: &KdlNode, example: &str) -> Option<Vec<Spanned<String>>> {
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

    fn filter(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        let value = self.leaf_string(node, "filter \"(objectClass=inetOrgPerson)\"")?;
        if let Err(why) = check_filter(&value) {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!("`filter` is not a valid LDAP filter: {why}"),
            )
            .label(why)
            .help("an LDAP filter is wrapped in parentheses, like (&(objectClass=person)(uid=*))");
            return None;
        }
        Some(value)
    }

    fn scim(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<ScimTarget> {
        const URL: &str = "url \"https://example.com/scim/v2\"";
        let c = self.children(Some(node), Some(doc), &SCIM);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.url(n, &["http://", "https://"], URL));
        let token = self
            .require(&c, Some(node), "token", "token env=\"SCIM_TOKEN\"")
            .map(|n| self.secret(n));
        let ca_file = c
            .get("ca-file")
            .map(|n| self.leaf_path(n, "ca-file \"/etc/ssl/corp-ca.pem\""));
        let concurrency = c
            .get("concurrency")
            .map(|n| self.leaf_whole(n, &CONCURRENCY, "concurrency 4"));
        let rate_limit = c
            .get("rate-limit")
            .map(|n| self.leaf_number(n, &RATE_LIMIT, "rate-limit 20"));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 500"));
        let timeout = c
            .get("timeout")
            .map(|n| self.leaf_whole(n, &TIMEOUT, "timeout 30"));
        Some(ScimTarget {
            url: url??,
            token: token??,
            http: HttpOptions {
                timeout_secs: timeout.unwrap_or(Some(30))? as u64,
                ca_file: optional(ca_file)?,
                ..HttpOptions::default()
            },
            concurrency: concurrency.unwrap_or(Some(4))? as u32,
            rate_limit: optional(rate_limit)?,
            page_size: page_size.unwrap_or(Some(500))? as u32,
        })
    }

    /// `user { ... }`
    fn user(&mut self, top: &Children) -> Option<UserMapping> {
        let node = self.require(
            top,
            None,
            "user",
            "user { key \"entryUUID\"; username \"uid\" }",
        )?;
        let entries = self.entries(node, &[]);
        self.no_args(node, &entries.args);
        let doc = self.block(node, "user")?;
        let c = self.children(Some(node), Some(doc), &USER);
        let key = self
            .require(&c, Some(node), "key", "key \"entryUUID\"")
            .map(|n| {
                let entry = self.leaf(n, "key \"entryUUID\"")?;
                self.name_string(n, entry)
            });
        let username = self
            .require(
                &c,
                Some(node),
                "username",
                "username \"uid\" normalize=\"lowercase\"",
            )
            .map(|n| self.field(n, false, "username \"uid\" normalize=\"lowercase\""));
        let name = c.get("name").map(|n| self.field(n, false, "name \"cn\""));
        let email = c
            .get("email")
            .map(|n| self.field(n, false, "email \"mail\""));
        let phones = c.get("phone").map(|n| self.phones(n));
        let aliases: Vec<_> = c
            .all("alias")
            .map(|n| self.field(n, true, "alias \"mail\" to=\"nickName\""))
            .collect();
        let attributes: Vec<_> = c
            .all("attribute")
            .map(|n| self.field(n, true, "attribute \"title\" to=\"title\""))
            .collect();
        self.check_targets_unique(aliases.iter().chain(&attributes).flatten());
        let roles = self.roles(&c, top.get("group").is_some());
        if let Some(roles) = &roles {
            self.check_role_targets(roles, aliases.iter().chain(&attributes).flatten());
        }
        Some(UserMapping {
            key: key??,
            username: username??,
            name: optional(name)?,
            email: optional(email)?,
            phones: phones.unwrap_or(Some(Vec::new()))?,
            aliases: aliases.into_iter().collect::<Option<_>>()?,
            attributes: attributes.into_iter().collect::<Option<_>>()?,
            roles: roles?,
        })
    }

    /// `username "uid" normalize="lowercase"`, `alias "mail" to="nickName"`.
    fn field(&mut self, node: &KdlNode, with_to: bool, example: &str) -> Option<FieldMapping> {
        self.no_children(node);
        let props: &[&str] = if with_to {
            &["to", "normalize"]
        } else {
            &["normalize"]
        };
        let entries = self.entries(node, props);
        let attr = self
            .one_arg(node, &entries.args, example)
            .and_then(|e| self.name_string(node, e));
        let (to, to_ok) = match entries.props.get("to") {
            Some(entry) => {
                let to = self.name_string(node, entry);
                let ok = to.is_some();
                (to, ok)
            }
            None if with_to => {
                let name = node.name().value();
                self.report(
                    ProblemKind::MissingValue,
                    node.name().span(),
                    format!("`{name}` has no `to=`"),
                )
                .label("needs to=\"FIELD\"")
                .help(format!("name the target field: {example}"));
                (None, false)
            }
            None => (None, true),
        };
        let normalize = match entries.props.get("normalize") {
            Some(entry) => self.normalize(node, entry),
            None => Some(Vec::new()),
        };
        if !to_ok {
            return None;
        }
        Some(FieldMapping {
            attr: attr?,
            to,
            normalize: normalize?,
        })
    }

    fn normalize(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Vec<Normalize>> {
        let KdlValue::String(value) = entry.value() else {
            self.wrong_type(node, entry, entry.value(), "a string")
                .help(NORMALIZE_HELP);
            return None;
        };
        match parse_normalize(value) {
            Ok(list) => Some(list),
            Err(bad) => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("unknown normalize \"{bad}\""),
                )
                .label("not a known normalization")
                .help(NORMALIZE_HELP);
                None
            }
        }
    }

    fn phones(&mut self, node: &KdlNode) -> Option<Vec<Spanned<String>>> {
        self.names(node, "phone \"telephoneNumber\" \"mobile\"")
    }

    /// Two rules writing the same target field would fight over it.
    fn check_targets_unique<'a>(&mut self, fields: impl Iterator<Item = &'a FieldMapping>) {
        let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
        for to in fields.filter_map(|f| f.to.as_ref()) {
            match seen.get(to.as_str()) {
                Some(first) => {
                    let line = self.line_of(*first);
                    self.report(
                        ProblemKind::InvalidValue,
                        to.span,
                        format!("two rules write the target field `{}`", to.as_str()),
                    )
                    .label("written again here")
                    .help(format!("the first rule for it is on line {line}; keep one"));
                }
                None => {
                    seen.insert(to.as_str(), to.span);
                }
            }
        }
    }

    /// `policy "policies/default.kdl"` or `policy { ... }`. Returns the policy file's checker
    /// (for its problems and its text) when the policy is in a file.
    fn policy_node(&mut self, node: &KdlNode) -> (Option<Policy>, Option<Checker<'t>>) {
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

    fn policy_file(
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
        let mut file = Checker::new(path.display().to_string(), text, self.dir);
        let policy = file.parse_kdl().and_then(|doc| {
            let c = file.children(None, Some(&doc), &POLICY_FILE);
            file.policy(&c)
        });
        Some((policy, file))
    }

    /// The policy nodes of an inline block or of a policy file; defaults for those absent.
    fn policy(&mut self, c: &Children) -> Option<Policy> {
        let defaults = Policy::default();
        let mode = c.get("mode").map(|n| {
            self.choice(
                n,
                &[
                    ("add-only", Mode::AddOnly),
                    ("remove", Mode::Remove),
                    ("delete", Mode::Delete),
                ],
            )
        });
        let max_removes = c
            .get("max-removes")
            .map(|n| self.leaf_whole(n, &COUNT, "max-removes 10"));
        let max_remove_percent = c
            .get("max-remove-percent")
            .map(|n| self.leaf_number(n, &PERCENT, "max-remove-percent 5"));
        let max_adds = c.get("max-adds").map(|n| self.cap(n));
        let max_updates = c.get("max-updates").map(|n| self.cap(n));
        let shrink = c
            .get("max-source-shrink-percent")
            .map(|n| self.leaf_number(n, &PERCENT, "max-source-shrink-percent 20"));
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
        Some(Policy {
            mode: mode.unwrap_or(Some(defaults.mode))?,
            max_removes: max_removes.unwrap_or(Some(0))? as u64,
            max_remove_percent: optional(max_remove_percent)?,
            max_adds: optional(max_adds)?,
            max_updates: optional(max_updates)?,
            max_source_shrink_percent: shrink
                .unwrap_or(Some(defaults.max_source_shrink_percent))?,
            max_target_shrink_percent: defaults.max_target_shrink_percent,
            on_invalid: on_invalid.unwrap_or(Some(defaults.on_invalid))?,
            default_email: optional(default_email)?,
            default_name: optional(default_name)?,
            max_member_removes: optional(max_member_removes)?,
            group_all: optional(group_all)?,
            origin: None,
        })
    }

    /// `max-adds 100` (a count) or `max-adds "10%"` (a percent).
    fn cap(&mut self, node: &KdlNode) -> Option<Cap> {
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

    fn template(&mut self, node: &KdlNode, example: &str) -> Option<String> {
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
    fn span_in_string(&self, entry: &KdlEntry, value: &str, at: usize, len: usize) -> SourceSpan {
        let span = entry.span();
        let written = self.text.get(span.offset()..span.offset() + span.len());
        if written == Some(format!("\"{value}\"").as_str()) {
            SourceSpan::from((span.offset() + 1 + at, len.max(1)))
        } else {
            span
        }
    }
}

// File sources: `source "csv"` and `source "ldif"`.

const CSV: Block = Block {
    place: "in `source \"csv\"`",
    name: "source \"csv\"",
    nodes: &["path", "delimiter"],
    repeatable: &[],
};

const LDIF: Block = Block {
    place: "in `source \"ldif\"`",
    name: "source \"ldif\"",
    nodes: &["path"],
    repeatable: &[],
};

const DELIMITER_HELP: &str = "`delimiter` is one character such as \",\" or \";\", or \"tab\"";

impl Checker<'_> {
    fn csv(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<CsvSource> {
        const PATH: &str = "path \"people.csv\"";
        let c = self.children(Some(node), Some(doc), &CSV);
        let path = self
            .require(&c, Some(node), "path", PATH)
            .map(|n| self.leaf_path(n, PATH));
        let delimiter = c.get("delimiter").map(|n| self.delimiter(n));
        Some(CsvSource {
            path: path??,
            delimiter: delimiter.unwrap_or(Some(b','))?,
        })
    }

    fn ldif(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LdifSource> {
        const PATH: &str = "path \"export.ldif\"";
        let c = self.children(Some(node), Some(doc), &LDIF);
        let path = self
            .require(&c, Some(node), "path", PATH)
            .map(|n| self.leaf_path(n, PATH));
        Some(LdifSource { path: path?? })
    }

    /// `delimiter ";"`: one ASCII character that cannot be confused with CSV's quoting or
    /// line ends; `"tab"` (or a written `\t`) for tab-separated files.
    fn delimiter(&mut self, node: &KdlNode) -> Option<u8> {
        let value = self.leaf_string(node, "delimiter \";\"")?;
        let why = match value.as_bytes() {
            b"tab" | b"\\t" => return Some(b'\t'),
            [b'"'] => "the double quote is CSV's quoting character",
            [b'\n' | b'\r'] => "a line end separates records, not fields",
            [byte] => return Some(*byte),
            [] => "it is empty",
            _ if value.chars().count() == 1 => "it is not an ASCII character",
            _ => "it is more than one character",
        };
        self.report(
            ProblemKind::InvalidValue,
            value.span,
            format!(
                "`delimiter` \"{}\" cannot be used: {why}",
                value.as_str().escape_debug()
            ),
        )
        .label("not a delimiter")
        .help(DELIMITER_HELP);
        None
    }
}

const PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 1000,
    help: "`page-size` is a whole number from 1 to 1000",
};

const TIMEOUT: Whole = Whole {
    min: 1,
    max: 3600,
    help: "`timeout` is a whole number of seconds from 1 to 3600",
};

const CONCURRENCY: Whole = Whole {
    min: 1,
    max: 64,
    help: "`concurrency` is a whole number from 1 to 64",
};

const COUNT: Whole = Whole {
    min: 0,
    max: u32::MAX as i128,
    help: "a count is a whole number, 0 or more",
};

const RATE_LIMIT: Number = Number {
    min: 0.0,
    min_inclusive: false,
    max: None,
    help: "`rate-limit` is requests per second, a number above 0 such as 20 or 0.5",
};

/// An optional setting after checking: `Some(None)` when absent, `Some(Some(value))` when
/// present and valid, `None` when present and invalid (the problem is already reported).
fn optional<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}

fn resolve(dir: &Path, value: &str) -> PathBuf {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

/// The part of an entry that holds its value (after `name=` for a property).
fn value_span(text: &str, entry: &KdlEntry) -> SourceSpan {
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

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A node's span without the whitespace kdl counts as part of it.
fn trimmed(text: &str, span: SourceSpan) -> SourceSpan {
    let end = (span.offset() + span.len()).min(text.len());
    let written = text.get(span.offset()..end).unwrap_or("");
    SourceSpan::from((span.offset(), written.trim_end().len()))
}

fn describe_node(node: &KdlNode) -> String {
    let name = node.name().value();
    match node.entries().first().map(|e| (e.name(), e.value())) {
        Some((None, KdlValue::String(kind))) => format!("{name} \"{kind}\""),
        _ => name.to_string(),
    }
}

fn type_name(value: &KdlValue) -> &'static str {
    match value {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "a whole number",
        KdlValue::Float(_) => "a number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely misspelling.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (*c, strsim::jaro_winkler(&word, c)))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// `"trim,lowercase"` → `[Trim, Lowercase]`; the first unknown item on error.
fn parse_normalize(value: &str) -> Result<Vec<Normalize>, String> {
    value
        .split(',')
        .map(|item| match item.trim() {
            "lowercase" => Ok(Normalize::Lowercase),
            "trim" => Ok(Normalize::Trim),
            other => Err(other.to_string()),
        })
        .collect()
}

/// `"10%"` → 10.0; `None` unless it is a number from 0 to 100 followed by `%`.
fn parse_percent(value: &str) -> Option<f64> {
    let number: f64 = value.trim().strip_suffix('%')?.trim_end().parse().ok()?;
    (number.is_finite() && (0.0..=100.0).contains(&number)).then_some(number)
}

/// Checks that an LDAP filter is wrapped in parentheses that balance.
fn check_filter(filter: &str) -> Result<(), String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Err("the filter is empty".to_string());
    }
    if !filter.starts_with('(') || !filter.ends_with(')') {
        return Err("not wrapped in parentheses".to_string());
    }
    let mut depth = 0usize;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err("a `)` has no matching `(`".to_string()),
            ')' => depth -= 1,
            _ => {}
        }
    }
    match depth {
        0 => Ok(()),
        1 => Err("1 `(` is not closed".to_string()),
        n => Err(format!("{n} `(` are not closed")),
    }
}

/// Why a template is invalid, and which bytes of it.
#[derive(Debug, PartialEq)]
struct TemplateError {
    at: usize,
    len: usize,
    why: String,
}

/// Checks a default-value template: every `{...}` names `username`, `key`, `name` or a
/// source attribute, and braces balance.
fn check_template(template: &str) -> Result<(), TemplateError> {
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
fn is_placeholder(name: &str) -> bool {
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
    fn percent_caps() {
        assert_eq!(parse_percent("10%"), Some(10.0));
        assert_eq!(parse_percent(" 2.5 %"), Some(2.5));
        assert_eq!(parse_percent("100%"), Some(100.0));
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("-1%"), None);
        assert_eq!(parse_percent("10"), None);
        assert_eq!(parse_percent("%"), None);
    }

    #[test]
    fn normalize_lists() {
        assert_eq!(
            parse_normalize("trim,lowercase"),
            Ok(vec![Normalize::Trim, Normalize::Lowercase])
        );
        assert_eq!(
            parse_normalize(" lowercase "),
            Ok(vec![Normalize::Lowercase])
        );
        assert_eq!(parse_normalize("trim,upper"), Err("upper".to_string()));
        assert_eq!(parse_normalize("trim,"), Err(String::new()));
    }

    #[test]
    fn templates() {
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

    #[test]
    fn filters() {
        assert!(check_filter("(objectClass=*)").is_ok());
        assert!(check_filter("(&(objectClass=person)(|(uid=a)(uid=b)))").is_ok());
        assert_eq!(
            check_filter("objectClass=*"),
            Err("not wrapped in parentheses".into())
        );
        assert_eq!(check_filter("(&(a=b)"), Err("1 `(` is not closed".into()));
        assert_eq!(
            check_filter("(a=b))(c=d)"),
            Err("a `)` has no matching `(`".into())
        );
        assert_eq!(check_filter(" "), Err("the filter is empty".into()));
    }

    #[test]
    fn misspellings() {
        assert_eq!(closest("base-nd", LDAP.nodes), Some("base-dn"));
        assert_eq!(
            closest("normalise", &["to", "normalize"]),
            Some("normalize")
        );
        assert_eq!(closest("Page-Size", LDAP.nodes), Some("page-size"));
        assert_eq!(closest("colour", LDAP.nodes), None);
    }
}
