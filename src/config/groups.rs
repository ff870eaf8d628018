//! The typed settings of group sync: the `group` block (which source entries are groups and
//! how they are named and keyed) and the `role` rules of the `user` block (a target field
//! set from the first rule that matches a user).
//!
//! They live apart from the user settings because they are optional: a config without a
//! `group` block and without roles syncs users only, exactly as before.

use super::Spanned;

/// `group { ... }`: where the source's groups are and how they map to target groups.
#[derive(Debug, Clone)]
pub struct GroupMapping {
    /// Which of the source's groups are read; its form depends on the kind of source.
    pub scope: GroupScope,
    /// The attribute (LDAP) or field (REST) holding the group's name (SCIM displayName).
    /// Default `cn` for LDAP, `name` for ServiceNow and Freshservice.
    pub name: Spanned<String>,
    /// The attribute or field holding the group's stable key (SCIM externalId). Default
    /// `entryUUID` for LDAP, `sys_id` for ServiceNow, `id` for Freshservice.
    pub key: Spanned<String>,
    /// Members that are groups themselves are replaced by their members (LDAP only).
    pub nested: bool,
}

/// Which groups a `group` block selects, in the terms of its source.
#[derive(Debug, Clone)]
pub enum GroupScope {
    /// An LDAP directory (and the file sources, which have no groups): the subtrees searched
    /// (at least one) and the filter that says which entries are groups (default:
    /// groupOfNames, groupOfUniqueNames and posixGroup).
    Directory {
        base_dns: Vec<Spanned<String>>,
        filter: Spanned<String>,
    },
    /// ServiceNow: an encoded query on `sys_user_group` (default `active=true`); members
    /// come from `sys_user_grmember`.
    ServiceNow { query: Spanned<String> },
    /// Freshservice: every requester group, with its members.
    Freshservice,
}

/// The default `filter` of the `group` block: the three standard group classes.
pub const DEFAULT_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))";

/// The target field a `role` rule writes when it has no `to=`.
pub const DEFAULT_ROLE_FIELD: &str = "userType";

/// `role "Lead" when="title" contains="Engineer 4" to="userType"`: one rule of an ordered
/// list. For each target field, the first rule that matches a user gives its value.
#[derive(Debug, Clone)]
pub struct RoleRule {
    /// The value written to the target field.
    pub value: Spanned<String>,
    /// The target field (default `userType`).
    pub to: Spanned<String>,
    pub condition: RoleCondition,
}

/// When a role rule matches a user.
#[derive(Debug, Clone)]
pub enum RoleCondition {
    /// `when="ATTR"` with `equals=`, `contains=` or `matches=`: any value of the attribute.
    Attribute {
        attr: Spanned<String>,
        test: AttributeTest,
    },
    /// `when="{title == 'CEO'}"`: an expression, true or false for the user (a missing
    /// attribute in it rejects the record; `title is defined and ...` tests for one).
    Expression(crate::expr::Template),
    /// `in-group="NAME"`: the user is a member of the source group of that name (after
    /// nested groups are flattened, when `nested #true`).
    InGroup(Spanned<String>),
    /// `default=#true`: always; the rule for users no earlier rule matched.
    Default,
}

/// How an attribute value is tested. `equals` and `contains` ignore case, as directory
/// attributes like `title` compare; `matches` is a regular expression exactly as written
/// (prefix it with `(?i)` to ignore case).
#[derive(Debug, Clone)]
pub enum AttributeTest {
    /// The whole value, lowercased.
    Equals(String),
    /// A part of the value, lowercased.
    Contains(String),
    Matches(regex::Regex),
}

impl AttributeTest {
    /// `equals=` or `contains=` as written in the config.
    pub fn equals(value: &str) -> AttributeTest {
        AttributeTest::Equals(value.to_lowercase())
    }

    pub fn contains(value: &str) -> AttributeTest {
        AttributeTest::Contains(value.to_lowercase())
    }

    pub fn test(&self, value: &str) -> bool {
        match self {
            AttributeTest::Equals(want) => value.to_lowercase() == *want,
            AttributeTest::Contains(part) => value.to_lowercase().contains(part.as_str()),
            AttributeTest::Matches(re) => re.is_match(value),
        }
    }
}
