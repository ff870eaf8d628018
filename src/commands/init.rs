//! `init`: a commented starter `roster.kdl` for a chosen source and target, which
//! `roster validate` accepts as written. The pieces are KDL files beside this one (one per
//! source, one per target, the policy), so what a new user reads is plain config, and a
//! test checks every combination. An existing file is never overwritten.

use std::io::Write;

use super::{Error, Global, exit};
use crate::cli::{InitArgs, InitSource, InitTarget};

const HEADER: &str = "\
// roster.kdl: what roster reads (source), what it keeps in line (target), how a source
// record becomes an account (user) and what roster may do (policy). Secrets are never
// written here: `env=\"NAME\"` reads an environment variable, `file=\"PATH\"` a file.
// Check it with `roster validate`, then `roster plan` shows what would change.

state \".roster/state.db\"                     // the state store, relative to this file
";

fn source(kind: InitSource) -> &'static str {
    match kind {
        InitSource::Ldap => include_str!("init/ldap.kdl"),
        InitSource::Csv => include_str!("init/csv.kdl"),
        InitSource::Servicenow => include_str!("init/servicenow.kdl"),
        InitSource::Freshservice => include_str!("init/freshservice.kdl"),
    }
}

fn target(kind: InitTarget) -> &'static str {
    match kind {
        InitTarget::Scim => include_str!("init/scim.kdl"),
    }
}

/// The starter config for `source` and `target`.
pub fn starter(source_kind: InitSource, target_kind: InitTarget) -> String {
    [
        HEADER,
        source(source_kind),
        target(target_kind),
        include_str!("init/policy.kdl"),
    ]
    .join("\n")
}

pub(super) fn init(global: &Global, args: InitArgs) -> Result<u8, Error> {
    let path = &global.config;
    let text = starter(args.source, args.target);
    // `create_new`: an existing config (or one made meanwhile) is never overwritten.
    let written = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => {
            super::emit(&format!(
                "Wrote {}. Fill in the URLs and names, set the secrets it names, then run \
                 `roster validate` and `roster plan`.\n",
                path.display()
            ));
            Ok(exit::OK)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Usage(format!(
            "{} exists already; roster init never overwrites a config (write another with -c FILE)",
            path.display()
        ))),
        Err(e) => Err(Error::Usage(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}
