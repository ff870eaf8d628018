//! LDAP source. (Being written.)

use crate::config::LdapSource;
use crate::model::SourceRecord;

use super::{Source, SourceError};

pub struct LdapDirectory {
    config: LdapSource,
}

impl LdapDirectory {
    pub fn new(config: LdapSource) -> Self {
        LdapDirectory { config }
    }
}

impl Source for LdapDirectory {
    fn describe(&self) -> String {
        self.config.url.value.clone()
    }

    fn read_users(
        &mut self,
        _attrs: &[String],
        _sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        Ok(0)
    }
}
