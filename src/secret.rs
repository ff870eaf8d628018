//! Secrets (bind passwords, tokens) are named in the config by where to find them, never
//! by value, and are read only when a connector needs them. `Secret` cannot be printed:
//! its `Debug` and `Display` say `<redacted>`, so a secret cannot reach a log, a plan, the
//! state store or an error message by accident.

use std::fmt;
use std::path::PathBuf;

/// Where a secret lives: `env="NAME"` or `file="/run/secrets/x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// Why a secret could not be read. Names where it was looked for, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file {path}: {message}")]
    File { path: String, message: String },
    #[error("secret file {0} is empty")]
    FileEmpty(String),
}

impl SecretRef {
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EnvEmpty(name.clone())),
                Ok(v) => Ok(Secret(v)),
                Err(_) => Err(SecretError::EnvMissing(name.clone())),
            },
            SecretRef::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                // Files written by `echo` end in a newline that is not part of the secret.
                let value = text.trim_end_matches(['\r', '\n']);
                if value.is_empty() {
                    return Err(SecretError::FileEmpty(path.display().to_string()));
                }
                Ok(Secret(value.to_string()))
            }
        }
    }
}

/// A secret value. Read it with `expose`, only where it is sent to the system it is for.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret that does not come from the config, such as an OAuth access token a
    /// connector was issued, so that it cannot be printed either.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
