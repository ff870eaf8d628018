//! Config problems as miette diagnostics. (Being written.)

use miette::Diagnostic;

/// One problem in the config, pointing at its span.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct ConfigProblem {
    pub message: String,
}

/// Everything wrong with a config, reported at once.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    #[diagnostic(code(roster::config::read))]
    Read { path: String, message: String },
    #[error("{} problem(s) in the config", problems.len())]
    #[diagnostic(code(roster::config::invalid))]
    Invalid {
        #[related]
        problems: Vec<ConfigProblem>,
    },
}
