//! The errors a command can end with. Each says what happened and what to do; none carries
//! a secret. Config errors keep their miette labels; the rest are plain messages.

use miette::Diagnostic;

use crate::apply::ApplyError;
use crate::config::ConfigError;
use crate::pipeline::PipelineError;
use crate::store::StoreError;
use crate::target::TargetError;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    #[diagnostic(code(roster::store))]
    Store(#[from] StoreError),
    /// No plan was made: a refusal, or a side that could not be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    #[diagnostic(code(roster::target))]
    Target(#[from] TargetError),
    #[error(transparent)]
    #[diagnostic(code(roster::apply))]
    Apply(#[from] ApplyError),
    #[error("plan file {path}: {message}")]
    #[diagnostic(code(roster::plan_file))]
    PlanFile { path: String, message: String },
    #[error("{0}")]
    #[diagnostic(code(roster::usage))]
    Usage(String),
    /// Asked to confirm where nobody can answer (a schedule, CI without `--auto-approve`).
    #[error(
        "refusing to apply without confirmation: there is no terminal to ask on; \
         review a saved plan and apply it (`roster plan --out FILE`, then `roster apply FILE`), or pass --auto-approve"
    )]
    #[diagnostic(code(roster::usage))]
    NoTerminal,
}
