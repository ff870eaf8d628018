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

use miette::NamedSource;
use sha2::{Digest, Sha256};

use super::{Config, ConfigError, ConfigFile, Policy};
use checker::{Block, Checker};

mod checker;
mod depth;
mod groups;
mod http;
mod notify;
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
    let notify = file.notify(&top);
    let (policy, policy_file) = match top.get("policy") {
        Some(node) => file.policy_node(node),
        None => (Some(Policy::default()), None),
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
    match (state, source, target, user, group, policy, notify) {
        (
            Some(state),
            Some(source),
            Some(target),
            Some(user),
            Some(group),
            Some(policy),
            Some(notify),
        ) if problems.is_empty() => Ok(Config {
            path: path.to_path_buf(),
            source_text: NamedSource::new(path.display().to_string(), text.to_string()),
            policy_text,
            state,
            source,
            target,
            user,
            group,
            policy,
            notify,
            digest: hex(&digest.finalize()),
        }),
        _ => Err(ConfigError::Invalid { problems }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TOP: Block = Block {
    place: "at the top level",
    name: "top level",
    nodes: &[
        "state", "source", "target", "user", "group", "policy", "notify",
    ],
    repeatable: &[],
};

const BLOCKS: [&Block; 12] = [
    &TOP,
    &source::LDAP,
    &target::SCIM,
    &user::USER,
    &policy::POLICY,
    &source::CSV,
    &source::LDIF,
    &groups::GROUP,
    &source::SERVICENOW,
    &source::FRESHSERVICE,
    &notify::NOTIFY,
    &notify::EMAIL,
];
