//! The generic part of the parser: the node schema walker and the problem gathering.
//!
//! Every block (source, target, user, group, policy) is checked by the same walker against
//! a `Block` schema, so that unknown and repeated nodes, stray properties, arguments and
//! blocks are reported in one voice wherever they occur. Problems are gathered as `Pending`
//! until the end of the file, when inline secrets are known and masked in the quoted text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};
use miette::{NamedSource, SourceSpan};

pub(super) use super::super::diagnostics::ProblemKind;
use super::super::{At, ConfigFile, ConfigProblem};
use super::depth;
use super::suggest::{Written, did_you_mean};
use super::{BLOCKS, TOP};

/// The node names valid in one block, for unknown-node and duplicate checks.
pub(super) struct Block {
    /// How messages name the block: "in `user`", "at the top level".
    pub(super) place: &'static str,
    /// The name shown in "belongs in the ... block".
    pub(super) name: &'static str,
    pub(super) nodes: &'static [&'static str],
    pub(super) repeatable: &'static [&'static str],
}

/// A problem found but not yet turned into a `ConfigProblem`: the source it quotes is only
/// known at the end, once every inline secret in the file has been found and masked.
pub(super) struct Pending {
    kind: ProblemKind,
    span: SourceSpan,
    message: String,
    label: Option<String>,
    help: Option<String>,
}

impl Pending {
    pub(super) fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = Some(label.into());
        self
    }

    pub(super) fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}

/// The nodes of one block, after the unknown and duplicate ones have been reported.
pub(super) struct Children<'d> {
    pub(super) nodes: Vec<&'d KdlNode>,
    /// Names offered as "did you mean" for misspelled nodes: not reported missing again.
    suggested: Vec<&'static str>,
}

impl<'d> Children<'d> {
    /// The first node of that name (later ones were reported as duplicates).
    pub(super) fn get(&self, name: &str) -> Option<&'d KdlNode> {
        self.nodes
            .iter()
            .copied()
            .find(|n| n.name().value() == name)
    }

    pub(super) fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'d KdlNode> + 's {
        self.nodes
            .iter()
            .copied()
            .filter(move |n| n.name().value() == name)
    }
}

/// The arguments and known properties of one node.
pub(super) struct Entries<'d> {
    pub(super) args: Vec<&'d KdlEntry>,
    pub(super) props: HashMap<&'d str, &'d KdlEntry>,
}

/// Checks one file (the config, or a policy file) and collects its problems.
pub(super) struct Checker<'t> {
    /// Which file this is, for the values that remember where they were set.
    file: ConfigFile,
    name: String,
    pub(super) text: String,
    /// The config file's directory: relative paths resolve against it.
    pub(super) dir: &'t Path,
    problems: Vec<Pending>,
    /// Spans of inline secrets, masked in the text the report quotes.
    pub(super) secrets: Vec<SourceSpan>,
}

impl<'t> Checker<'t> {
    pub(super) fn new(file: ConfigFile, name: String, text: String, dir: &'t Path) -> Self {
        Checker {
            file,
            name,
            text,
            dir,
            problems: Vec::new(),
            secrets: Vec::new(),
        }
    }

    pub(super) fn report(
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

    /// The file's text as it was read, for a `Config` that keeps it (a valid file has no
    /// inline secret to mask).
    pub(super) fn text_as_read(&self) -> NamedSource<String> {
        NamedSource::new(&self.name, self.text.clone())
    }

    /// The problems, in the order they appear in the file, quoting the file with its
    /// inline secrets masked.
    pub(super) fn finish(self) -> Vec<ConfigProblem> {
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

    /// Where `node` is, for a value it sets that later code may point at.
    pub(super) fn at(&self, node: &KdlNode) -> At {
        At::File {
            file: self.file,
            span: trimmed(&self.text, node.span()),
        }
    }

    pub(super) fn line_of(&self, span: SourceSpan) -> usize {
        let end = span.offset().min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The text as a KDL document, or `None` after reporting its syntax errors.
    pub(super) fn parse_kdl(&mut self) -> Option<KdlDocument> {
        // Before kdl sees the text: it would overflow the stack on deep nesting.
        if let Some(brace) = depth::too_deep(&self.text) {
            self.report(
                ProblemKind::TooDeep,
                brace,
                format!("blocks are nested more than {} deep", depth::MAX_DEPTH),
            )
            .label(format!("block {} deep", depth::MAX_DEPTH + 1))
            .help("a roster config nests blocks at most two deep (`source \"ldap\" { ... }`): remove the extra blocks");
            return None;
        }
        // A label far into a line makes miette's report panic (its widths are u16), and no
        // config needs such a line: refused at the line's start, which a report can show.
        if let Some(start) = long_line(&self.text) {
            self.report(
                ProblemKind::TooLong,
                SourceSpan::from((start, 0)),
                format!("a line longer than {MAX_LINE} characters"),
            )
            .label("this line")
            .help("no roster setting needs a value that long: check the line for a pasted file or a missing quote");
            return None;
        }
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
    pub(super) fn children<'d>(
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
    pub(super) fn unknown_node(&mut self, node: &KdlNode, block: &Block) -> Option<&'static str> {
        let name = node.name().value();
        let guess = did_you_mean(name, block.nodes, Written::Node);
        let suggestion = guess.as_ref().map(|g| g.name);
        let help = match guess {
            Some(guess) => guess.help,
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
    pub(super) fn missing(&mut self, parent: Option<&KdlNode>, name: &str, example: &str) {
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

    pub(super) fn require<'d>(
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
    pub(super) fn entries<'d>(&mut self, node: &'d KdlNode, props: &[&str]) -> Entries<'d> {
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
                let help = match did_you_mean(prop_name, props, Written::Property) {
                    Some(guess) => guess.help,
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
    pub(super) fn no_children(&mut self, node: &KdlNode) {
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
    pub(super) fn no_args(&mut self, node: &KdlNode, args: &[&KdlEntry]) {
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
    pub(super) fn one_arg<'d>(
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
}

/// An optional setting after checking: `Some(None)` when absent, `Some(Some(value))` when
/// present and valid, `None` when present and invalid (the problem is already reported).
pub(super) fn optional<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}

pub(super) fn resolve(dir: &Path, value: &str) -> PathBuf {
    let path = PathBuf::from(value);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

pub(super) fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A node's span without the whitespace kdl counts as part of it.
pub(super) fn trimmed(text: &str, span: SourceSpan) -> SourceSpan {
    let end = (span.offset() + span.len()).min(text.len());
    let written = text.get(span.offset()..end).unwrap_or("");
    SourceSpan::from((span.offset(), written.trim_end().len()))
}

pub(super) fn describe_node(node: &KdlNode) -> String {
    let name = node.name().value();
    match node.entries().first().map(|e| (e.name(), e.value())) {
        Some((None, KdlValue::String(kind))) => format!("{name} \"{kind}\""),
        _ => name.to_string(),
    }
}

/// The longest line a config may have, in bytes.
const MAX_LINE: usize = 10_000;

/// Where the first line longer than `MAX_LINE` starts.
fn long_line(text: &str) -> Option<usize> {
    let mut start = 0;
    for line in text.split('\n') {
        if line.len() > MAX_LINE {
            return Some(start);
        }
        start += line.len() + 1;
    }
    None
}
