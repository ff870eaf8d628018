//! The `user` block: how a source record becomes a desired user (key, username, the fixed
//! fields, phones, aliases and attributes; the `role` rules are parsed by `groups`).

use std::collections::HashMap;

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::checker::{Block, Checker, Children, ProblemKind, optional};
use crate::config::{FieldMapping, FieldOnInvalid, FieldSource, Normalize, Spanned, UserMapping};

pub(super) const USER: Block = Block {
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

pub(super) const NORMALIZE_HELP: &str = "normalize is a list separated by commas of lowercase, \
     uppercase, trim, title, collapse-spaces, ascii: \"trim,collapse-spaces,lowercase\"";

pub(super) const EXPRESSION_HELP: &str = "an expression is written in braces: \"{givenName} {sn}\", \
     \"{mail | lower}\", \"{coalesce(mail, userPrincipalName)}\"; filters: lower, upper, trim, \
     truncate(N), replace(REGEX, WITH), split(SEP), first, default(VALUE), date(FORMAT); \
     functions: coalesce; write {{ and }} for literal braces";

/// The names the plan gives roster's own fields (`plan::contract::user_field`): a mapping's
/// `to=` may not take one, or the plan could not tell the mapped attribute from roster's field
/// when it is read back (`to="active"` would read as the account's state).
pub(super) const PLAN_FIELD_NAMES: &[&str] = &[
    "externalId",
    "username",
    "name",
    "email",
    "phone",
    "active",
    "owner",
];

impl Checker<'_> {
    /// `to=` names a target field of the mapping's own; refuses the plan's names for roster's
    /// fields (`PLAN_FIELD_NAMES`).
    pub(super) fn mapped_field_name(&mut self, to: &Spanned<String>) -> bool {
        if !PLAN_FIELD_NAMES.contains(&to.as_str()) {
            return true;
        }
        self.report(
            ProblemKind::InvalidValue,
            to.span,
            format!(
                "`to=\"{}\"` is the name of one of roster's own fields in a plan",
                to.as_str()
            ),
        )
        .label("roster's field")
        .help(
            "map it with its own node (`username`, `name`, `email`, `phone`), or name the \
             target attribute as the target spells it (SCIM: `userName`, `displayName`, \
             `emails`); roster manages `externalId`, `active` and the owner itself",
        );
        false
    }

    /// `user { ... }`
    pub(super) fn user(&mut self, top: &Children) -> Option<UserMapping> {
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

    /// `username "uid" normalize="lowercase"`, `alias "mail" to="nickName"`,
    /// `name "{givenName} {sn}"`, `attribute "Org" to="organization" value="Acme Corp"`.
    pub(super) fn field(
        &mut self,
        node: &KdlNode,
        with_to: bool,
        example: &str,
    ) -> Option<FieldMapping> {
        self.no_children(node);
        let name = node.name().value();
        let props: &[&str] = if with_to {
            &["to", "normalize", "on-invalid", "value"]
        } else {
            &["normalize", "on-invalid"]
        };
        let entries = self.entries(node, props);
        let value = entries
            .props
            .get("value")
            .map(|entry| self.string(node, entry));
        let attr = match (&value, entries.args.as_slice()) {
            // `value=` needs no attribute: the argument, if any, is the rule's label.
            (Some(_), []) => Some((Spanned::new(name.to_string(), node.name().span()), None)),
            (Some(_), [label]) => self.string(node, label).map(|l| (l, None)),
            _ => self.one_arg(node, &entries.args, example).and_then(|e| {
                let written = self.name_string(node, e)?;
                let source = self.expression(node, e)?;
                Some((written, Some(source)))
            }),
        };
        let (to, to_ok) = match entries.props.get("to") {
            Some(entry) => {
                let to = self.name_string(node, entry);
                let ok = to.as_ref().is_some_and(|to| self.mapped_field_name(to));
                (to, ok)
            }
            None if with_to => {
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
        let on_invalid = match entries.props.get("on-invalid") {
            Some(entry) => self.field_on_invalid(node, entry).map(Some),
            None => Some(None),
        };
        if !to_ok {
            return None;
        }
        let (attr, source) = attr?;
        let source = match value {
            Some(value) => FieldSource::Static(value?),
            None => source?,
        };
        Some(FieldMapping {
            attr,
            source,
            to,
            normalize: normalize?,
            on_invalid: on_invalid?,
        })
    }

    /// What a field's argument is: an attribute name, or (with a brace) an expression,
    /// compiled here so that its errors are config errors pointing into the value.
    fn expression(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<FieldSource> {
        let KdlValue::String(text) = entry.value() else {
            return None;
        };
        if !crate::expr::is_template(text) {
            return Some(FieldSource::Attribute);
        }
        match crate::expr::Template::compile(text) {
            Ok(template) => Some(FieldSource::Template(template)),
            Err(error) => {
                self.expression_error(node, entry, text, error);
                None
            }
        }
    }

    /// Reports an expression `validate` refuses, pointing at the part that is wrong.
    pub(super) fn expression_error(
        &mut self,
        node: &KdlNode,
        entry: &KdlEntry,
        text: &str,
        error: crate::expr::CompileError,
    ) {
        let span = self.span_in_string(entry, text, error.at, error.len);
        self.report(
            ProblemKind::InvalidValue,
            span,
            format!(
                "`{}` is not a valid expression: {}",
                node.name().value(),
                error.why
            ),
        )
        .label("here")
        .help(EXPRESSION_HELP);
    }

    /// `on-invalid="default"|"skip"|"fail"` on a field.
    fn field_on_invalid(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<FieldOnInvalid> {
        let value = self.string(node, entry)?;
        let name = node.name().value();
        // The key and username have no default: a record without them is no user.
        let options: &[(&str, FieldOnInvalid)] = if name == "username" {
            &[
                ("skip", FieldOnInvalid::Skip),
                ("fail", FieldOnInvalid::Fail),
            ]
        } else {
            &[
                ("default", FieldOnInvalid::Default),
                ("skip", FieldOnInvalid::Skip),
                ("fail", FieldOnInvalid::Fail),
            ]
        };
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == value.as_str()) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let allowed = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.unknown_value(
            entry.span(),
            &value,
            &names,
            format!("unknown on-invalid \"{}\" for `{name}`", value.as_str()),
            "not a valid on-invalid".to_string(),
            format!("`on-invalid` of `{name}` is one of {allowed}"),
        );
        None
    }

    pub(super) fn normalize(&mut self, node: &KdlNode, entry: &KdlEntry) -> Option<Vec<Normalize>> {
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

    pub(super) fn phones(&mut self, node: &KdlNode) -> Option<Vec<Spanned<String>>> {
        self.names(node, "phone \"telephoneNumber\" \"mobile\"")
    }

    /// Two rules writing the same target field would fight over it.
    pub(super) fn check_targets_unique<'a>(
        &mut self,
        fields: impl Iterator<Item = &'a FieldMapping>,
    ) {
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
}

/// `"trim,lowercase"` → `[Trim, Lowercase]`; the first unknown item on error.
pub(super) fn parse_normalize(value: &str) -> Result<Vec<Normalize>, String> {
    value
        .split(',')
        .map(|item| {
            let item = item.trim();
            Normalize::ALL
                .into_iter()
                .find(|n| n.as_str() == item)
                .ok_or_else(|| item.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn normalize_lists() {
        assert_eq!(
            parse_normalize("trim,lowercase"),
            Ok(vec![Normalize::Trim, Normalize::Lowercase])
        );
        assert_eq!(
            parse_normalize(" lowercase "),
            Ok(vec![Normalize::Lowercase])
        );
        assert_eq!(parse_normalize("trim,upper"), Err("upper".to_string()));
        assert_eq!(
            parse_normalize("trim,collapse-spaces,title,ascii,uppercase"),
            Ok(vec![
                Normalize::Trim,
                Normalize::CollapseSpaces,
                Normalize::Title,
                Normalize::Ascii,
                Normalize::Uppercase
            ])
        );
        assert_eq!(parse_normalize("trim,"), Err(String::new()));
    }
}

#[cfg(test)]
mod plan_field_names {
    use super::PLAN_FIELD_NAMES;
    use crate::plan::Field;
    use crate::plan::contract::user_field;

    #[test]
    fn every_reserved_name_is_one_of_rosters_fields_in_the_plan() {
        for name in PLAN_FIELD_NAMES {
            let field = user_field(name).expect("a field");
            assert!(!matches!(field, Field::Attribute(_)), "{name}");
        }
        assert!(matches!(user_field("title"), Some(Field::Attribute(_))));
    }
}
