//! The plan: what roster intends to do to the target, action by action, and why.
//!
//! `Plan` is also the plan file and the `--format json` output: its serialized field names
//! are the interface contract (DESIGN.md), so they are spelled out here and never renamed.
//! Actions and statuses are closed enums; the reason on each action exists to explain the
//! plan to people and never steers apply.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Mode;

/// Version of the plan file format. Apply refuses files of another version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub plan_id: String,
    pub created_at: DateTime<Utc>,
    pub summary: Summary,
    pub actions: Vec<Action>,
    /// The sync mode the plan was made in.
    pub mode: Mode,
    /// sha256 of the config and policy text the plan was made with.
    pub config_digest: String,
    /// sha256 of the mapped source (desired state) the plan was made from.
    pub desired_digest: String,
    /// Safety checks that `--force` overrode for this plan, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<String>,
    /// The target the plan is for (its URL), so a plan is not applied elsewhere by mistake.
    pub target: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub delete: u64,
    /// Actions of any kind held by a cap (also counted under their kind).
    pub held: u64,
    /// Users present on both sides with nothing to change.
    pub unchanged: u64,
    /// Source records not used (see `roster show`).
    pub rejected: u64,
    /// Target accounts without an externalId: never touched, only counted.
    #[serde(default)]
    pub unmanaged: u64,
    /// Changes not planned because a rule forbids them (e.g. an inactive target account).
    #[serde(default)]
    pub skipped: u64,
    /// Source group members that are not synced users (group sync only): ignored, counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ignored_members: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Anything for apply to do (held actions count: they are changes waiting for a human).
    pub fn has_changes(&self) -> bool {
        self.add + self.update + self.remove + self.delete > 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub seq: u32,
    pub action: ActionKind,
    pub object: ObjectKind,
    pub key: String,
    pub username: String,
    pub status: Status,
    pub reason: String,
    pub changes: Vec<Change>,
    /// Which cap holds the action, with the counts, when its status is `held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The target's id of the object the action touches (none for an add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The object's version when planned (SCIM ETag), for conditional requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// A digest of the object's content when planned: how apply tells that it changed where
    /// the target has no versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_digest: Option<String>,
}

impl Action {
    /// The value a change sets for `field`, if the action changes it.
    pub fn after(&self, field: &str) -> Option<&str> {
        self.changes
            .iter()
            .find(|c| c.field == field)
            .and_then(|c| c.after.as_deref())
    }

    /// An update that takes a user's account out of service (`active: true -> false`)
    /// because the source has the account out of service.
    pub fn deactivates(&self) -> bool {
        self.object == ObjectKind::User
            && self.action == ActionKind::Update
            && self.changes.iter().any(|c| {
                c.field == "active"
                    && c.before.as_deref() == Some("true")
                    && c.after.as_deref() == Some("false")
            })
    }

    /// What the remove caps count, hold together and `--allow-removes` releases: removes,
    /// deletes, and updates that deactivate an account.
    pub fn counts_as_removal(&self) -> bool {
        self.action.is_removal() || self.deactivates()
    }
}

/// One field of one object, before and after. `None` is "no value".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Change {
    pub fn new(field: &str, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            field: field.to_string(),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Add,
    Update,
    Remove,
    Delete,
}

impl ActionKind {
    /// The Terraform-style symbol shown in the human plan.
    pub fn symbol(self) -> char {
        match self {
            ActionKind::Add => '+',
            ActionKind::Update => '~',
            ActionKind::Remove => '-',
            ActionKind::Delete => '-',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Add => "add",
            ActionKind::Update => "update",
            ActionKind::Remove => "remove",
            ActionKind::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        [
            ActionKind::Add,
            ActionKind::Update,
            ActionKind::Remove,
            ActionKind::Delete,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Removes and deletes take accounts away: the remove caps count them together.
    pub fn is_removal(self) -> bool {
        matches!(self, ActionKind::Remove | ActionKind::Delete)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    User,
    Group,
    Membership,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
            ObjectKind::Membership => "membership",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectKind> {
        [ObjectKind::User, ObjectKind::Group, ObjectKind::Membership]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// To be applied.
    Planned,
    /// Kept back by a cap until a human releases it.
    Held,
    /// Journaled as started; the call's outcome is not known yet (or the run died).
    Applying,
    Applied,
    Failed,
    /// Not to be applied (a rule forbids it, or it became unnecessary).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Held => "held",
            Status::Applying => "applying",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Planned,
            Status::Held,
            Status::Applying,
            Status::Applied,
            Status::Failed,
            Status::Skipped,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl Plan {
    /// A copy of everything but the actions.
    pub fn clone_header(&self) -> Plan {
        Plan {
            format_version: self.format_version,
            plan_id: self.plan_id.clone(),
            created_at: self.created_at,
            summary: self.summary.clone(),
            actions: Vec::new(),
            mode: self.mode,
            config_digest: self.config_digest.clone(),
            desired_digest: self.desired_digest.clone(),
            forced: self.forced.clone(),
            target: self.target.clone(),
        }
    }

    /// Recounts the summary from the actions (after statuses changed).
    pub fn recount(&mut self) {
        let mut s = Summary {
            unchanged: self.summary.unchanged,
            rejected: self.summary.rejected,
            unmanaged: self.summary.unmanaged,
            ignored_members: self.summary.ignored_members,
            ..Summary::default()
        };
        for a in &self.actions {
            if a.status == Status::Skipped {
                s.skipped += 1;
                continue;
            }
            match a.action {
                ActionKind::Add => s.add += 1,
                ActionKind::Update => s.update += 1,
                ActionKind::Remove => s.remove += 1,
                ActionKind::Delete => s.delete += 1,
            }
            if a.status == Status::Held {
                s.held += 1;
            }
        }
        self.summary = s;
    }
}
