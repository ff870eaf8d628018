//! The group planner: groups and memberships, from the store's pairs to actions. Pure, like
//! the user planner: no I/O, no clock, no protocol.
//!
//! The store pairs desired and target groups (by key, then by name for unmanaged groups)
//! and lists every membership that exists on one side only (`MemberPair`). Here:
//! - a group only in the source is added; a paired group is renamed, or adopted (its
//!   externalId set) when it was made by hand; a managed group gone from the source is
//!   deleted in `delete` mode and left alone otherwise;
//! - a membership only in the source is added. When its user (or group) is created by the
//!   same plan, the action has no id for it yet: apply takes the id that add created
//!   (`merge` holds such a membership while that add is held);
//! - a membership only in the target is removed (in `remove` and `delete` mode; in
//!   `add-only` it is shown as skipped), but only from a group roster manages (paired by
//!   key) and only for a user roster manages (externalId): members added by hand are never
//!   touched. A user whose source record was rejected keeps its memberships.
//!   Leaving a group never removes the user;
//! - `max-member-removes` holds all of one group's removals when they exceed it.
//!
//! Membership actions are keyed `<group key>/<user key>` (a `/` or `%` in the group key
//! written `%2F` / `%25`, so the key splits back unambiguously), name the user in
//! `username`, and carry the group's name as the change `group` and the member's target id
//! as the change `member` (absent while the user is still to be created).

use std::collections::HashMap;

use super::{MatchedBy, Planned, exceeds};
use crate::config::{Cap, Mode, Policy};
use crate::plan::{Action, ActionKind, Change, ObjectKind, Status};

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

/// The group planner's result, before it is merged with the users'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupsPlanned {
    pub actions: Vec<Action>,
    /// Groups present on both sides with nothing to change.
    pub unchanged: u64,
    /// Members of managed groups that are not roster's accounts: never removed, counted.
    pub unmanaged_members: u64,
}

/// Plans group and membership actions.
pub fn plan_groups(
    groups: impl IntoIterator<Item = GroupPair>,
    members: impl IntoIterator<Item = MemberPair>,
    policy: &Policy,
) -> GroupsPlanned {
    let mut out = GroupsPlanned::default();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for pair in groups {
        match pair {
            GroupPair::SourceOnly(desired) => out.actions.push(group_add(&desired)),
            GroupPair::Both {
                desired, target, ..
            } => {
                sizes.insert(desired.key.clone(), target.members);
                match group_update(&desired, &target) {
                    Some(action) => out.actions.push(action),
                    None => out.unchanged += 1,
                }
            }
            GroupPair::TargetOnly { target, protected } => {
                if let Some(mut action) = group_delete(&target, *policy.mode) {
                    if let Some(why) = protected {
                        action.status = Status::Skipped;
                        action.reason = format!("not deleted: {why}");
                    }
                    out.actions.push(action);
                }
            }
        }
    }
    for member in members {
        match member.change {
            MemberChange::Join => out.actions.push(membership(&member, ActionKind::Add)),
            MemberChange::Leave if !member.group_managed => {}
            MemberChange::Leave if !member.user_managed => out.unmanaged_members += 1,
            MemberChange::Leave => {
                let mut action = membership(&member, ActionKind::Remove);
                if let Some(why) = &member.protected {
                    action.status = Status::Skipped;
                    action.reason = format!("not removed from {}: {why}", member.group_name);
                } else if policy.mode == Mode::AddOnly {
                    // add-only means nothing is taken away; shown, so that the stale access
                    // is seen and can be removed deliberately in remove mode.
                    action.status = Status::Skipped;
                    action.reason = format!(
                        "not removed from {}: mode add-only only adds memberships (use mode remove)",
                        member.group_name
                    );
                }
                out.actions.push(action);
            }
        }
    }
    if let Some(cap) = policy.max_member_removes {
        hold_member_removes(&mut out.actions, cap.value, &sizes);
    }
    out
}

fn group_add(desired: &DesiredGroup) -> Action {
    let reason = if desired.all_users {
        "group-all: the group every synced user is a member of"
    } else {
        "in the source, not in the target"
    };
    Action {
        seq: 0,
        action: ActionKind::Add,
        object: ObjectKind::Group,
        key: desired.key.clone(),
        username: desired.name.clone(),
        status: Status::Planned,
        reason: reason.to_string(),
        changes: vec![
            Change::new("externalId", None, Some(&desired.key)),
            Change::new("displayName", None, Some(&desired.name)),
        ],
        held_by: None,
        target_id: None,
        target_version: None,
        target_digest: None,
    }
}

fn group_update(desired: &DesiredGroup, target: &TargetGroupState) -> Option<Action> {
    let mut changes = Vec::new();
    let mut reasons = Vec::new();
    if target.external_id.as_deref() != Some(desired.key.as_str()) {
        changes.push(Change::new(
            "externalId",
            target.external_id.as_deref(),
            Some(&desired.key),
        ));
        reasons.push("adopted: an unmanaged group has the same name");
    }
    if target.name != desired.name {
        changes.push(Change::new(
            "displayName",
            Some(&target.name),
            Some(&desired.name),
        ));
        reasons.push("renamed in the source");
    }
    if changes.is_empty() {
        return None;
    }
    Some(Action {
        seq: 0,
        action: ActionKind::Update,
        object: ObjectKind::Group,
        key: desired.key.clone(),
        username: desired.name.clone(),
        status: Status::Planned,
        reason: reasons.join("; "),
        changes,
        held_by: None,
        target_id: Some(target.id.clone()),
        target_version: target.version.clone(),
        target_digest: None,
    })
}

/// Only managed groups are deleted, and only in `delete` mode.
fn group_delete(target: &TargetGroupState, mode: Mode) -> Option<Action> {
    let key = target.external_id.clone()?;
    if mode != Mode::Delete {
        return None;
    }
    Some(Action {
        seq: 0,
        action: ActionKind::Delete,
        object: ObjectKind::Group,
        key,
        username: target.name.clone(),
        status: Status::Planned,
        reason: "managed group no longer in the source (mode delete)".to_string(),
        changes: Vec::new(),
        held_by: None,
        target_id: Some(target.id.clone()),
        target_version: target.version.clone(),
        target_digest: None,
    })
}

fn membership(member: &MemberPair, kind: ActionKind) -> Action {
    let (group, id) = (Some(member.group_name.as_str()), member.user_id.as_deref());
    let (reason, changes) = match kind {
        ActionKind::Add => (
            format!("member of {} in the source", member.group_name),
            vec![
                Change::new("group", None, group),
                Change::new("member", None, id),
            ],
        ),
        _ => (
            format!("not a member of {} in the source", member.group_name),
            vec![
                Change::new("group", group, None),
                Change::new("member", id, None),
            ],
        ),
    };
    Action {
        seq: 0,
        action: kind,
        object: ObjectKind::Membership,
        key: membership_key(
            &member.group_key,
            member.user_key.as_deref().unwrap_or_default(),
        ),
        username: member.username.clone(),
        status: Status::Planned,
        reason,
        // A change with neither side (the id of a user still to be created) says nothing.
        changes: changes
            .into_iter()
            .filter(|c| c.before.is_some() || c.after.is_some())
            .collect(),
        held_by: None,
        target_id: member.group_id.clone(),
        target_version: None,
        target_digest: None,
    }
}

/// `<group key>/<user key>`, the group key escaped so that the first `/` separates them.
pub fn membership_key(group_key: &str, user_key: &str) -> String {
    format!(
        "{}/{user_key}",
        group_key.replace('%', "%25").replace('/', "%2F")
    )
}

/// The group key and user key of a membership action's key.
pub fn split_membership_key(key: &str) -> Option<(String, String)> {
    let (group, user) = key.split_once('/')?;
    Some((
        group.replace("%2F", "/").replace("%25", "%"),
        user.to_string(),
    ))
}

/// The group name and member id a membership action carries.
pub fn membership_parts(action: &Action) -> (Option<&str>, Option<&str>) {
    fn side(c: &Change) -> Option<&str> {
        c.after.as_deref().or(c.before.as_deref())
    }
    let find = |field: &str| {
        action
            .changes
            .iter()
            .find(|c| c.field == field)
            .and_then(side)
    };
    (find("group"), find("member"))
}

/// Holds every planned removal of a group when they exceed `max-member-removes` for it.
fn hold_member_removes(actions: &mut [Action], cap: Cap, sizes: &HashMap<String, u64>) {
    let group_of = |a: &Action| split_membership_key(&a.key).map(|(g, _)| g);
    let is_removal =
        |a: &Action| a.object == ObjectKind::Membership && a.action == ActionKind::Remove;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for a in actions
        .iter()
        .filter(|a| is_removal(a) && a.status == Status::Planned)
    {
        if let Some(group) = group_of(a) {
            *counts.entry(group).or_default() += 1;
        }
    }
    for a in actions
        .iter_mut()
        .filter(|a| is_removal(a) && a.status == Status::Planned)
    {
        let Some(group) = group_of(a) else { continue };
        let count = counts.get(&group).copied().unwrap_or(0);
        let base = sizes.get(&group).copied().unwrap_or(0);
        if exceeds(count, cap, base) {
            let name = membership_parts(a).0.unwrap_or(&group).to_string();
            a.status = Status::Held;
            a.held_by = Some(format!(
                "{count} member removes planned in {name}, {}",
                cap_text(cap, base)
            ));
        }
    }
}

fn cap_text(cap: Cap, base: u64) -> String {
    match cap {
        Cap::Count(n) => format!("max-member-removes is {n}"),
        Cap::Percent(p) => format!("max-member-removes is {p}% of its {base} members"),
    }
}

/// Appends the group actions to the user actions, in the order apply needs: users, then
/// groups added and changed, memberships added, memberships removed, groups deleted.
/// A membership whose user is added by this plan follows that add: held while it is held,
/// skipped when the plan has no such add. A membership removal of a user whose own removal
/// is held by a cap is held with it, so that a tripped remove cap also leaves the user's
/// access as it is. Numbers every action.
pub fn merge(users: Planned, groups: GroupsPlanned) -> Planned {
    let mut actions = users.actions;
    let held_users = |kinds: &[ActionKind]| -> HashMap<String, (String, Option<String>)> {
        actions
            .iter()
            .filter(|a| a.object == ObjectKind::User && kinds.contains(&a.action))
            .map(|a| {
                let held = (a.status == Status::Held)
                    .then(|| a.held_by.clone().unwrap_or_else(|| "by a cap".into()));
                (a.key.clone(), (a.username.clone(), held))
            })
            .collect()
    };
    // Per user key: the username and, when the action is held, what holds it.
    let adds = held_users(&[ActionKind::Add]);
    let removals = held_users(&[ActionKind::Remove, ActionKind::Delete]);
    let mut group_actions = groups.actions;
    for a in &mut group_actions {
        if a.object != ObjectKind::Membership || a.status != Status::Planned {
            continue;
        }
        let user_key = split_membership_key(&a.key)
            .map(|(_, u)| u)
            .unwrap_or_default();
        let user_held = |list: &HashMap<String, (String, Option<String>)>| {
            list.get(&user_key)
                .and_then(|(username, by)| Some((username.clone(), by.clone()?)))
        };
        if a.action == ActionKind::Remove {
            if let Some((username, by)) = user_held(&removals) {
                a.status = Status::Held;
                a.held_by = Some(format!("the removal of user {username} is held ({by})"));
            }
            continue;
        }
        // A membership without a member id waits for the add that creates its user.
        if membership_parts(a).1.is_some() {
            continue;
        }
        if !adds.contains_key(&user_key) {
            a.status = Status::Skipped;
            a.reason = format!("{}; not added: the plan does not create the user", a.reason);
        } else if let Some((username, by)) = user_held(&adds) {
            a.status = Status::Held;
            a.held_by = Some(format!(
                "waits for the add of user {username}, which is held ({by})"
            ));
        }
    }
    group_actions.sort_by(|a, b| {
        let group = |a: &Action| match a.object {
            ObjectKind::Membership => membership_parts(a).0.unwrap_or_default().to_lowercase(),
            _ => a.username.to_lowercase(),
        };
        (rank(a), group(a), &a.username, &a.key).cmp(&(rank(b), group(b), &b.username, &b.key))
    });
    actions.extend(group_actions);
    for (i, action) in actions.iter_mut().enumerate() {
        action.seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    Planned {
        actions,
        summary: users.summary,
    }
}

fn rank(a: &Action) -> u8 {
    match (a.object, a.action) {
        (ObjectKind::Group, ActionKind::Add) => 0,
        (ObjectKind::Group, ActionKind::Update) => 1,
        (ObjectKind::Membership, ActionKind::Add) => 2,
        (ObjectKind::Membership, _) => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests;
