//! Parsing the group-sync settings: the `group` block and the `role` rules of `user`.
//!
//! Kept apart from the rest of the parser because group sync is optional and has rules of
//! its own (a role has exactly one condition; `in-group=` needs a `group` block; a rule after
//! a `default=#true` for the same field can never match), but it uses the same checker, so
//! its problems land in the same report, with the same spans, codes and "did you mean".

use std::collections::HashMap;

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::checker::{Block, Checker, Children, ProblemKind};
use crate::config::{
    AttributeTest, DEFAULT_GROUP_FILTER, DEFAULT_ROLE_FIELD, FieldMapping, GroupMapping,
    GroupScope, RoleCondition, RoleRule, Spanned,
};

/// The kinds of source a `group` block can be written for, and what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupSource {
    /// LDAP, and the file sources (which have no groups; the read says so).
    Directory,
    ServiceNow,
    Freshservice,
}

impl GroupSource {
    fn of(kind: Option<&str>) -> GroupSource {
        match kind {
            Some("servicenow") => GroupSource::ServiceNow,
            Some("freshservice") => GroupSource::Freshservice,
            _ => GroupSource::Directory,
        }
    }

    /// The nodes of the `group` block that make sense for this source.
    fn nodes(self) -> &'static [&'static str] {
        match self {
            GroupSource::Directory => &["base-dn", "filter", "name", "key", "nested"],
            GroupSource::ServiceNow => &["query", "name", "key"],
            GroupSource::Freshservice => &["name", "key"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            GroupSource::Directory => "an LDAP",
            GroupSource::ServiceNow => "a ServiceNow",
            GroupSource::Freshservice => "a Freshservice",
        }
    }

    /// What to write instead of a node that belongs to another kind of source.
    fn help(self, node: &str) -> String {
        match (self, node) {
            (GroupSource::Directory, "query") => {
                "`query` is ServiceNow's encoded query on sys_user_group; an LDAP source \
                 chooses its groups with base-dn and filter"
                    .to_string()
            }
            (GroupSource::ServiceNow, "base-dn" | "filter") => format!(
                "ServiceNow groups are chosen with an encoded query on sys_user_group, \
                 e.g. query \"active=true\"; remove `{node}`"
            ),
            (GroupSource::Freshservice, "base-dn" | "filter" | "query") => {
                format!("roster reads every Freshservice requester group; remove `{node}`")
            }
            (_, "nested") => "only LDAP groups can contain groups; remove `nested`".to_string(),
            (_, node) => format!("remove `{node}`"),
        }
    }

    /// The default key and name fields.
    fn defaults(self) -> (&'static str, &'static str) {
        match self {
            GroupSource::Directory => ("entryUUID", "cn"),
            GroupSource::ServiceNow => ("sys_id", "name"),
            GroupSource::Freshservice => ("id", "name"),
        }
    }
}

pub(super) const GROUP: Block = Block {
    place: "in `group`",
    name: "group",
    nodes: &["base-dn", "filter", "query", "name", "key", "nested"],
    repeatable: &[],
};

const ROLE_EXAMPLE: &str = "role \"Lead\" when=\"title\" contains=\"Engineer\"";
const ROLE_PROPS: &[&str] = &[
    "when", "equals", "contains", "matches", "in-group", "default", "to",
];
const TESTS: &[&str] = &["equals", "contains", "matches"];
const CONDITION_HELP: &str = "a role has one condition: when=\"ATTR\" with equals=, contains= or \
     matches=; or when=\"{EXPR}\" (an expression, true or false); or in-group=\"GROUP\"; or default=#true";

impl Checker<'_> {
    /// `group { ... }`: `Some(None)` when the config has none, `None` when it is invalid.
    /// `source_kind` is the type of the `source` block (`ldap`, `servicenow`, ...): which
    /// nodes the block takes, and their defaults, depend on it.
    pub(super) fn group(
        &mut self,
        top: &Children,
        source_kind: Option<&str>,
    ) -> Option<Option<GroupMapping>> {
        let Some(node) = top.get("group") else {
            return Some(None);
        };
        let source = GroupSource::of(source_kind);
        let entries = self.entries(node, &[]);
        self.no_args(node, &entries.args);
        let doc = self.block(node, "group")?;
        let c = self.children(Some(node), Some(doc), &GROUP);
        let mut misplaced = false;
        for child in &c.nodes {
            let name = child.name().value();
            if !source.nodes().contains(&name) {
                misplaced = true;
                self.report(
                    ProblemKind::UnknownNode,
                    child.name().span(),
                    format!(
                        "`{name}` does not apply to the groups of {} source",
                        source.describe()
                    ),
                )
                .label(format!("not for {} source", source.describe()))
                .help(source.help(name));
            }
        }
        let default = |value: &str| Some(Spanned::new(value.to_string(), node.name().span()));
        let scope = match source {
            GroupSource::Directory => {
                let base_dns = self
                    .require(
                        &c,
                        Some(node),
                        "base-dn",
                        "base-dn \"ou=Groups,dc=example,dc=com\"",
                    )
                    .map(|n| self.base_dns(n));
                let filter = c.get("filter").map(|n| self.filter(n));
                GroupScope::Directory {
                    base_dns: base_dns??,
                    filter: filter.unwrap_or_else(|| default(DEFAULT_GROUP_FILTER))?,
                }
            }
            GroupSource::ServiceNow => {
                let query = c
                    .get("query")
                    .map(|n| self.leaf_string(n, "query \"active=true\""));
                GroupScope::ServiceNow {
                    query: query.unwrap_or_else(|| default("active=true"))?,
                }
            }
            GroupSource::Freshservice => GroupScope::Freshservice,
        };
        let (default_key, default_name) = source.defaults();
        let name = c
            .get("name")
            .map(|n| self.attribute_name(n, &format!("name \"{default_name}\"")));
        let key = c
            .get("key")
            .map(|n| self.attribute_name(n, &format!("key \"{default_key}\"")));
        let nested = c.get("nested").map(|n| self.leaf_bool(n));
        if misplaced {
            return None;
        }
        Some(Some(GroupMapping {
            scope,
            name: name.unwrap_or_else(|| default(default_name))?,
            key: key.unwrap_or_else(|| default(default_key))?,
            nested: nested.unwrap_or(Some(false))?,
        }))
    }

    fn attribute_name(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<String>> {
        let entry = self.leaf(node, example)?;
        self.name_string(node, entry)
    }

    /// Every `role` rule of a `user` block, in order; `None` if any is invalid.
    pub(super) fn roles(&mut self, c: &Children, has_group: bool) -> Option<Vec<RoleRule>> {
        let rules: Vec<Option<RoleRule>> = c.all("role").map(|n| self.role(n, has_group)).collect();
        let rules: Vec<RoleRule> = rules.into_iter().collect::<Option<_>>()?;
        self.check_unreachable_roles(&rules);
        Some(rules)
    }

    fn role(&mut self, node: &KdlNode, has_group: bool) -> Option<RoleRule> {
        self.no_children(node);
        let entries = self.entries(node, ROLE_PROPS);
        let value = self
            .one_arg(node, &entries.args, ROLE_EXAMPLE)
            .and_then(|e| self.name_string(node, e));
        let to = match entries.props.get("to") {
            Some(entry) => self
                .prop_name(node, entry)
                .filter(|to| self.mapped_field_name(to)),
            None => Some(Spanned::new(
                DEFAULT_ROLE_FIELD.to_string(),
                node.name().span(),
            )),
        };
        let condition = self.role_condition(node, &entries.props, has_group);
        Some(RoleRule {
            value: value?,
            to: to?,
            condition: condition?,
        })
    }

    fn role_condition(
        &mut self,
        node: &KdlNode,
        props: &HashMap<&str, &KdlEntry>,
        has_group: bool,
    ) -> Option<RoleCondition> {
        let when = props.get("when").copied();
        let tests: Vec<(&str, &KdlEntry)> = TESTS
            .iter()
            .filter_map(|t| props.get(t).map(|e| (*t, *e)))
            .collect();
        let in_group = props.get("in-group").copied();
        let default = props.get("default").copied();

        // The entries that start a condition, in the order they are written.
        let mut starts: Vec<&KdlEntry> =
            [when.or(tests.first().map(|(_, e)| *e)), in_group, default]
                .into_iter()
                .flatten()
                .collect();
        starts.sort_by_key(|e| e.span().offset());
        match starts.as_slice() {
            // A misspelled condition is already reported as an unknown property.
            [] if node
                .entries()
                .iter()
                .any(|e| e.name().is_some_and(|n| !ROLE_PROPS.contains(&n.value()))) =>
            {
                return None;
            }
            [] => {
                self.report(
                    ProblemKind::MissingValue,
                    node.name().span(),
                    "`role` has no condition",
                )
                .label("needs a condition")
                .help(CONDITION_HELP);
                return None;
            }
            [_] => {}
            [_, second, ..] => {
                self.report(
                    ProblemKind::InvalidValue,
                    second.span(),
                    "`role` has more than one kind of condition",
                )
                .label("second condition")
                .help(format!("{CONDITION_HELP}; write one rule per condition"));
                return None;
            }
        }

        if let Some(entry) = default {
            return match entry.value() {
                KdlValue::Bool(true) => Some(RoleCondition::Default),
                KdlValue::Bool(false) => {
                    self.report(
                        ProblemKind::InvalidValue,
                        entry.span(),
                        "`default=#false` never matches",
                    )
                    .label("never matches")
                    .help("write default=#true for the rule that applies when no other does, or remove the rule");
                    None
                }
                other => {
                    self.wrong_type(node, entry, other, "#true")
                        .help("write default=#true");
                    None
                }
            };
        }
        if let Some(entry) = in_group {
            let group = self.prop_name(node, entry)?;
            if !has_group {
                self.report(
                    ProblemKind::MissingNode,
                    entry.span(),
                    "`in-group=` needs a `group` block",
                )
                .label("no source groups are read")
                .help("add a `group { base-dn \"ou=Groups,dc=example,dc=com\" }` block so that roster reads the source's groups");
                return None;
            }
            return Some(RoleCondition::InGroup(group));
        }
        self.attribute_condition(node, when, &tests)
    }

    /// `when="ATTR"` and exactly one of `equals=`, `contains=`, `matches=`.
    fn attribute_condition(
        &mut self,
        node: &KdlNode,
        when: Option<&KdlEntry>,
        tests: &[(&str, &KdlEntry)],
    ) -> Option<RoleCondition> {
        let Some(when) = when else {
            if let Some((test, entry)) = tests.first() {
                self.report(
                    ProblemKind::MissingValue,
                    entry.span(),
                    format!("`{test}=` needs `when=`"),
                )
                .label("tests no attribute")
                .help(format!(
                    "name the attribute it tests: when=\"title\" {test}=..."
                ));
            }
            return None;
        };
        // `when="{EXPR}"`: an expression that is true or false, with no test of its own.
        if let KdlValue::String(text) = when.value()
            && crate::expr::is_template(text)
            && tests.is_empty()
        {
            return match crate::expr::Template::compile_condition(text) {
                Ok(condition) => Some(RoleCondition::Expression(condition)),
                Err(error) => {
                    self.expression_error(node, when, text, error);
                    None
                }
            };
        }
        let attr = self.prop_name(node, when);
        let test = match tests {
            [] => {
                self.report(
                    ProblemKind::MissingValue,
                    when.span(),
                    "`when=` has no test",
                )
                .label("needs a test")
                .help("add equals=\"VALUE\", contains=\"PART\" or matches=\"REGEX\"");
                None
            }
            [(name, entry)] => self.attribute_test(node, name, entry),
            [_, (_, second), ..] => {
                self.report(
                    ProblemKind::InvalidValue,
                    second.span(),
                    "`role` has more than one test",
                )
                .label("second test")
                .help("give one of equals=, contains= or matches=; write one rule per test");
                None
            }
        };
        Some(RoleCondition::Attribute {
            attr: attr?,
            test: test?,
        })
    }

    fn attribute_test(
        &mut self,
        node: &KdlNode,
        name: &str,
        entry: &KdlEntry,
    ) -> Option<AttributeTest> {
        let value = self.string(node, entry)?;
        match name {
            "equals" => Some(AttributeTest::equals(&value)),
            "contains" => Some(AttributeTest::contains(&value)),
            _ => match regex::Regex::new(&value) {
                Ok(re) => Some(AttributeTest::Matches(re)),
                Err(e) => {
                    // The regex error is several lines (pattern, caret, reason): keep the reason.
                    let text = e.to_string();
                    let why = text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("invalid")
                        .trim_start_matches("error: ")
                        .to_string();
                    self.report(
                        ProblemKind::InvalidValue,
                        entry.span(),
                        format!("`matches=` is not a valid regular expression: {why}"),
                    )
                    .label("invalid regular expression")
                    .help("the syntax is Rust's regex crate: https://docs.rs/regex/#syntax");
                    None
                }
            },
        }
    }

    /// A property whose value is a non-empty string (an attribute, field or group name).
    fn prop_name(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Spanned<String>> {
        let value = self.string(node, entry)?;
        if value.trim().is_empty() {
            let prop = entry.name().map(|n| n.value()).unwrap_or_default();
            self.report(
                ProblemKind::InvalidValue,
                entry.span(),
                format!("`{prop}=` of `{}` is empty", node.name().value()),
            )
            .label("empty");
            return None;
        }
        Some(value)
    }

    /// A rule after a `default=#true` for the same target field is dead: report it.
    fn check_unreachable_roles(&mut self, rules: &[RoleRule]) {
        let mut defaults: HashMap<&str, SourceSpan> = HashMap::new();
        for rule in rules {
            if let Some(default) = defaults.get(rule.to.as_str()) {
                let line = self.line_of(*default);
                self.report(
                    ProblemKind::InvalidValue,
                    rule.value.span,
                    format!(
                        "this `role` for `{}` can never match: the rule on line {line} is default=#true",
                        rule.to.as_str()
                    ),
                )
                .label("never reached")
                .help("rules are tried in order and the first match wins: put the default rule last");
                continue;
            }
            if matches!(rule.condition, RoleCondition::Default) {
                defaults.insert(rule.to.as_str(), rule.value.span);
            }
        }
    }

    /// Roles may share a target field among themselves (that is their order), but not with
    /// an alias or attribute rule, which would fight over it.
    pub(super) fn check_role_targets<'a>(
        &mut self,
        roles: &[RoleRule],
        fields: impl Iterator<Item = &'a FieldMapping>,
    ) {
        let taken: HashMap<&str, SourceSpan> = fields
            .filter_map(|f| f.to.as_ref())
            .map(|to| (to.as_str(), to.span))
            .collect();
        let mut reported = Vec::new();
        for rule in roles {
            let to = rule.to.as_str();
            if let Some(first) = taken.get(to)
                && !reported.contains(&to)
            {
                reported.push(to);
                let line = self.line_of(*first);
                self.report(
                    ProblemKind::InvalidValue,
                    rule.to.span,
                    format!("a `role` and another rule both write the target field `{to}`"),
                )
                .label("written again here")
                .help(format!(
                    "line {line} maps an attribute to `{to}`; give the roles another field with to=\"...\""
                ));
            }
        }
    }
}
