//! Creating an object that may exist already, the same way for users and groups.
//!
//! An add may find its object in the target: an earlier apply of the plan created it and
//! died before journaling so (the add is then marked interrupted and looked up first), or
//! someone made it by hand and the target refuses the create as a duplicate. Either way the
//! existing object is found by name and adopted when it is roster's own (same key) or
//! unmanaged; one managed under another key is never taken.

use super::ActionError;
use crate::target::{Target, TargetError};

/// An object an add creates, with how to find and adopt one that exists already.
pub(super) trait Creation {
    /// The object as the target has it.
    type Existing;

    fn find(&self, target: &dyn Target) -> Result<Option<Self::Existing>, TargetError>;

    /// Creates it; returns its target id.
    fn create(&self, target: &dyn Target) -> Result<String, TargetError>;

    /// Takes over `existing` (or refuses to); returns its target id.
    fn adopt(&self, existing: Self::Existing, target: &dyn Target) -> Result<String, ActionError>;
}

/// Create → (conflict) → find → adopt. Returns the target id of the object.
pub(super) fn create_or_adopt(
    creation: &impl Creation,
    target: &dyn Target,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    if interrupted && let Some(existing) = creation.find(target)? {
        return creation.adopt(existing, target).map(Some);
    }
    match creation.create(target) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.is_conflict() => match creation.find(target)? {
            Some(existing) => creation.adopt(existing, target).map(Some),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}
