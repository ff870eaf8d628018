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
//! parser. Each block has its own file: `source/`, `target`, `user`, `groups`, `policy`,
//! `notify`;
//! `http` reads the options every HTTP connector's block takes.

use std::path::Path;

use kdl::KdlDocument;
use miette::NamedSource;
use sha2::{Digest, Sha256};

use super::{Config, ConfigError, ConfigFile, Policy};
use checker::{Block, Checker, optional};

mod checker;
mod depth;
mod groups;
mod http;
mod notify;
mod policy;
mod read_policy;
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
    let notify = file.notify(&top);
    let (policy, policy_file) = match top.get("policy") {
        Some(node) => file.policy_node(node),
        None => (Some(Policy::default()), None),
    };
    if let (Some(target), Some(policy)) = (&target, &policy)
        && policy.group_all.is_some()
    {
        // Inline, the `group-all` line; from a policy file, the line that names the file.
        let policy_node = top.get("policy");
        let span = policy_node
            .and_then(|n| n.children())
            .and_then(|d| d.get("group-all"))
            .map(|n| n.span())
            .or(policy_node.map(|n| n.span()));
        if let Some(span) = span {
            file.target_has_groups(target, span, "group-all");
        }
    }
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
        // Luma's bulk upload cannot take a contact out: a mode that would is refused here,
        // rather than remove actions that fail at every apply.
        if let (super::TargetConfig::Luma(_), Some(policy), Some(node)) =
            (target, policy.as_ref(), top.get("target"))
            && policy.mode.value != super::Mode::AddOnly
        {
            let span = match policy.mode.span {
                super::At::File {
                    file: super::ConfigFile::Config,
                    span,
                } => span,
                _ => node.name().span(),
            };
            file.report(
                checker::ProblemKind::Unsupported,
                span,
                "Luma's bulk upload adds and updates contacts; it cannot deactivate or delete one",
            )
            .label("mode for target \"luma\"")
            .help("use mode \"add-only\" (the default), and take contacts out in Luma");
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

    let plan_signing_key = top.get("plan-signing-key").map(|n| file.secret(n));

    let mut problems = file.finish();
    let mut policy_text = None;
    let mut policy_source = None;
    if let Some(policy_file) = policy_file {
        policy_text = Some(policy_file.text_as_read());
        policy_source = Some(policy_file.text.clone());
        problems.extend(policy_file.finish());
    }
    match (
        state,
        source,
        target,
        user,
        group,
        policy,
        optional(plan_signing_key),
        notify,
        owner,
    ) {
        (
            Some(state),
            Some(source),
            Some(target),
            Some(user),
            Some(group),
            Some(policy),
            Some(plan_signing_key),
            Some(notify),
            Some(owner),
        ) if problems.is_empty() => {
            // Only now: a text with problems (one nested too deep among them) never reaches
            // the KDL parser again.
            let digest = digest(&doc, policy_source.as_deref());
            Ok(Config {
                path: path.to_path_buf(),
                source_text: NamedSource::new(path.display().to_string(), text.to_string()),
                policy_text,
                state,
                source,
                target,
                user,
                group,
                policy,
                plan_signing_key,
                notify,
                owner,
                digest,
            })
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

/// sha256 of the canonical config and policy file (hex).
fn digest(config: &KdlDocument, policy: Option<&str>) -> String {
    let mut digest = Sha256::new();
    digest.update(b"config\0");
    digest.update(canonical(config).as_bytes());
    if let Some(policy) = policy {
        digest.update(b"\0policy\0");
        match KdlDocument::parse(policy) {
            Ok(doc) => digest.update(canonical(&doc).as_bytes()),
            // It parsed once already; should it not, the text itself still pins it down.
            Err(_) => digest.update(policy.as_bytes()),
        }
    }
    hex(&digest.finalize())
}

/// A KDL document as its values say it: no comments (slashdashed nodes included), no
/// whitespace, numbers and strings in one spelling. Two texts that differ only in those
/// give the same canonical form, so editing a comment does not make saved plans stale, while
/// any value, node or argument that changes does. Built from the document rather than from
/// `Config`, so that a setting added later is covered without anyone remembering to.
fn canonical(doc: &KdlDocument) -> String {
    let mut doc = doc.clone();
    doc.clear_format_recursive();
    doc.to_string()
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
        "state",
        "owner",
        "source",
        "target",
        "user",
        "group",
        "policy",
        "plan-signing-key",
        "notify",
    ],
    repeatable: &[],
};

const BLOCKS: [&Block; 22] = [
    &TOP,
    &source::LDAP,
    &target::SCIM,
    &target::COMPATIBILITY,
    &target::LOGINTC,
    &target::FILE,
    &target::XMATTERS,
    &user::USER,
    &policy::POLICY,
    &source::CSV,
    &source::LDIF,
    &groups::GROUP,
    &source::SERVICENOW,
    &source::FRESHSERVICE,
    &source::REST,
    &source::CHERWELL,
    &source::AUTH_BASIC,
    &source::AUTH_BEARER,
    &source::AUTH_API_KEY,
    &source::AUTH_OAUTH,
    &notify::NOTIFY,
    &notify::EMAIL,
];
