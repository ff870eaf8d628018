//! The units of a diff: a desired object and the target object it was matched with, or
//! either alone. The store's keyed joins produce them, the planner consumes them.
//!
//! They live in the model, not in the planner, so that the store (which builds them) and
//! the planner (which decides on them) both depend only on the model, never on each other.

use super::{DesiredUser, TargetUser};

/// How a desired user found its target account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The target's externalId is the user's key.
    Key,
    /// Same username; the account is adopted (its externalId set to the key).
    Username,
}

/// One unit of the diff, as the store's keyed join produces it.
#[derive(Debug, Clone)]
pub enum Pair {
    Both {
        desired: DesiredUser,
        target: TargetUser,
        matched_by: MatchedBy,
        /// roster itself deactivated this account (it is reactivated on return).
        deactivated_by_roster: bool,
    },
    SourceOnly(DesiredUser),
    TargetOnly {
        target: TargetUser,
        /// Why the account must not be removed even though no source user matches it
        /// (its source record was rejected this run), if so.
        protected: Option<String>,
    },
}

/// A group as the source wants it in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub key: String,
    pub name: String,
    /// The `group-all` group (every synced user), rather than a source group.
    pub all_users: bool,
}

/// What the planner needs of a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupState {
    pub id: String,
    pub external_id: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// Its members in the target (the base of a percent `max-member-removes`).
    pub members: u64,
}

impl TargetGroupState {
    /// The same digest as `TargetGroup::digest` of the group this state was stored from.
    pub fn digest(&self) -> String {
        super::groups::group_digest(&self.id, self.external_id.as_deref(), &self.name)
    }
}

/// One unit of the group diff, as the store's join produces it.
#[derive(Debug, Clone)]
pub enum GroupPair {
    Both {
        desired: DesiredGroup,
        target: TargetGroupState,
        matched_by: MatchedBy,
    },
    SourceOnly(DesiredGroup),
    TargetOnly {
        target: TargetGroupState,
        /// Why the group must not be deleted though no source group matches it, if so.
        protected: Option<String>,
    },
}

/// Whether a membership is wanted and missing, or present and not wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// A member in the source, not (yet) in the target.
    Join,
    /// A member in the target, not in the source.
    Leave,
}

/// A membership present on one side only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPair {
    pub change: MemberChange,
    pub group_key: String,
    /// The name the group has (or gets) in the target.
    pub group_name: String,
    /// The group's target id; `None` when the group is created by this plan.
    pub group_id: Option<String>,
    /// The group is roster's: paired by key (its externalId is the group's key).
    pub group_managed: bool,
    /// The user's key: the source user's, or the target account's externalId.
    pub user_key: Option<String>,
    pub username: String,
    /// The user's target id; `None` when the user is created by this plan.
    pub user_id: Option<String>,
    /// The target account is roster's (carries an externalId).
    pub user_managed: bool,
    /// Why the membership must not be removed (the user's source record was rejected).
    pub protected: Option<String>,
}
