//! KDL → `Config`. (Being written.)

use std::path::Path;

use super::{Config, ConfigError};

pub fn parse(_path: &Path, _text: &str) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid {
        problems: Vec::new(),
    })
}
