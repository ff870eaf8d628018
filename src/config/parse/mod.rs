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
//!
//! This file only orchestrates. `checker` is the generic part (the node schema walker,
//! problem gathering and masking), `values` reads the kinds of value every block uses,
//! `suggest` is the one "did you mean", and `depth` keeps deep nesting away from the KDL
//! parser. Each block has its own file: `source/`, `target`, `user`, `groups`, `policy`;
//! `http` reads the options every HTTP connector's block takes.

use std::path::Path;

use miette::NamedSource;
use sha2::{Digest, Sha256};

use super::{Config, ConfigError, ConfigFile, Policy};
use checker::{Block, Checker};

mod checker;
mod depth;
mod groups;
mod http;
mod policy;
mod source;
mod suggest;
mod target;
mod user;
mod values;

/// Parses the config file at `path` whose text is `text`. Relative paths in it (state,
/// policy file, CA files) resolve against the directory of `path`; a policy file it names is
/// read from disk. Every problem found, in the config and in the policy file, is in the error.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut file = Checker::new(
        ConfigFile::Config,
        path.display().to_string(),
        text.to_string(),
        dir,
    );
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
    if let (Some(target), Some(user), Some(group)) = (&target, &user, &group) {
        let group_span = top.get("group").map(|n| n.name().span());
        file.target_can_hold(target, user, group.as_ref(), group_span);
        // `disabled "inactive"` syncs accounts as inactive: the target needs an active flag.
        let inactive = matches!(
            &source,
            Some(super::SourceConfig::Ldap(super::LdapSource {
                active_directory: Some(super::ActiveDirectory {
                    disabled: super::DisabledAccounts::Inactive
                }),
                ..
            }))
        );
        let disabled_node = top
            .get("source")
            .and_then(|n| n.children())
            .and_then(|d| d.get("disabled"));
        if let (true, Some(node)) = (inactive, disabled_node) {
            file.target_has_active_flag(target, node.span());
        }
        let default_email = policy.as_ref().is_some_and(|p| p.default_email.is_some());
        if let (Some(node), None, false) = (top.get("user"), &user.email, default_email)
            && target.capabilities().needs_email
        {
            file.report(
                checker::ProblemKind::MissingNode,
                node.name().span(),
                "the target requires an email for every user, and the user block maps none",
            )
            .label("no `email` here")
            .help("add email \"mail\" to the user block, or default-email \"{username}@example.com\" to the policy");
        }
    }
    let owner = match top.get("owner") {
        Some(node) => file.owner(node),
        None => Some(derived_owner(path)),
    };

    let mut digest = Sha256::new();
    digest.update(text.as_bytes());
    let mut problems = file.finish();
    let mut policy_text = None;
    if let Some(policy_file) = policy_file {
        digest.update(policy_file.text.as_bytes());
        policy_text = Some(policy_file.text_as_read());
        problems.extend(policy_file.finish());
    }
    match (state, source, target, user, group, policy, owner) {
        (
            Some(state),
            Some(source),
            Some(target),
            Some(user),
            Some(group),
            Some(policy),
            Some(owner),
        ) if problems.is_empty() => Ok(Config {
            path: path.to_path_buf(),
            source_text: NamedSource::new(path.display().to_string(), text.to_string()),
            policy_text,
            state,
            source,
            target,
            user,
            group,
            owner,
            policy,
            digest: hex(&digest.finalize()),
        }),
        _ => Err(ConfigError::Invalid { problems }),
    }
}

/// The owner of a config that names none: its file name without the extension
/// (`employees.kdl` → `employees`). Ownership records live in the config's state store, so
/// only configs sharing a store need names that differ, and two files beside each other do.
fn derived_owner(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "roster".to_string())
}

impl Checker<'_> {
    /// `owner "hr-sync"`: a short name, kept with every account this config owns.
    fn owner(&mut self, node: &kdl::KdlNode) -> Option<String> {
        let value = self.leaf_string(node, "owner \"hr-sync\"")?;
        let name = value.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            self.report(
                checker::ProblemKind::InvalidValue,
                value.span,
                "`owner` is a name of 1 to 64 printable characters",
            )
            .label("not a usable owner name")
            .help("name the config's job, e.g. owner \"hr-sync\"");
            return None;
        }
        Some(name.to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TOP: Block = Block {
    place: "at the top level",
    name: "top level",
    nodes: &[
        "state", "owner", "source", "target", "user", "group", "policy",
    ],
    repeatable: &[],
};

const BLOCKS: [&Block; 11] = [
    &TOP,
    &source::LDAP,
    &target::SCIM,
    &target::LOGINTC,
    &user::USER,
    &policy::POLICY,
    &source::CSV,
    &source::LDIF,
    &groups::GROUP,
    &source::SERVICENOW,
    &source::FRESHSERVICE,
];
