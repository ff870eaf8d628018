//! SCIM 2.0 target. (Being written.)

use crate::config::ScimTarget;
use crate::model::{DesiredUser, TargetUser};

use super::{Target, TargetError, UserUpdate};

pub struct ScimService {
    base: String,
}

impl ScimService {
    pub fn new(config: &ScimTarget, _fields: Vec<String>) -> Result<Self, TargetError> {
        Ok(ScimService {
            base: config.url.value.clone(),
        })
    }
}

impl Target for ScimService {
    fn describe(&self) -> String {
        self.base.clone()
    }
    fn list_users(&self, _sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        Ok(0)
    }
    fn get_user(&self, _id: &str) -> Result<Option<TargetUser>, TargetError> {
        Ok(None)
    }
    fn find_user(&self, _username: &str) -> Result<Option<TargetUser>, TargetError> {
        Ok(None)
    }
    fn create_user(&self, _user: &DesiredUser) -> Result<TargetUser, TargetError> {
        Err(TargetError::Setup("not written".into()))
    }
    fn update_user(
        &self,
        _id: &str,
        _version: Option<&str>,
        _update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        Err(TargetError::Setup("not written".into()))
    }
    fn delete_user(&self, _id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        Err(TargetError::Setup("not written".into()))
    }
}
