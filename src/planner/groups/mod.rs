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
//! Membership actions name their group and user (`Subject::Membership`), and carry the
//! group's name as the change `Field::Group` and the member's target id as the change
//! `Field::Member` (absent while the user is still to be created).

use std::collections::HashMap;

use super::{Planned, exceeds};
use crate::config::{Cap, Mode, Policy};
pub use crate::model::{DesiredGroup, GroupPair, MemberChange, MemberPair, TargetGroupState};
use crate::plan::{
    Action, ActionKind, ActionStatus, Change, Field, GroupRef, Hold, Limit, ObjectKind, Reason,
    Subject, UserRef,
};

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
                if let Some(action) = group_delete(&target, *policy.mode) {
                    out.actions.push(match protected {
                        Some(why) => action.skipped(Reason::NotDeleted(why)),
                        None => action,
                    });
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
                let action = membership(&member, ActionKind::Remove);
                let group = member.group_name.clone();
                out.actions.push(if let Some(why) = &member.protected {
                    action.skipped(Reason::NotRemovedFrom {
                        group,
                        why: why.clone(),
                    })
                } else if policy.mode == Mode::AddOnly {
                    // add-only means nothing is taken away; shown, so that the stale access
                    // is seen and can be removed deliberately in remove mode.
                    action.skipped(Reason::AddOnlyKeepsMember(group))
                } else {
                    action
                });
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
        Reason::GroupAll
    } else {
        Reason::NotInTarget
    };
    Action::add_group(&desired.key, &desired.name, reason)
}

fn group_update(desired: &DesiredGroup, target: &TargetGroupState) -> Option<Action> {
    let mut changes = Vec::new();
    let mut reasons = Vec::new();
    if target.external_id.as_deref() != Some(desired.key.as_str()) {
        changes.push(Change::new(
            Field::Key,
            target.external_id.as_deref(),
            Some(&desired.key),
        ));
        reasons.push(Reason::AdoptedGroup);
    }
    if target.name != desired.name {
        changes.push(Change::new(
            Field::GroupName,
            Some(&target.name),
            Some(&desired.name),
        ));
        reasons.push(Reason::Renamed);
    }
    if changes.is_empty() {
        return None;
    }
    let subject = Subject::group(&desired.key, &desired.name);
    Some(
        Action::new(ActionKind::Update, subject, reasons, changes).on_target(
            &target.id,
            target.version.as_deref(),
            Some(target.digest()),
        ),
    )
}

/// Only managed groups are deleted, and only in `delete` mode.
fn group_delete(target: &TargetGroupState, mode: Mode) -> Option<Action> {
    let key = target.external_id.as_deref()?;
    if mode != Mode::Delete {
        return None;
    }
    let subject = Subject::group(key, &target.name);
    Some(
        Action::new(
            ActionKind::Delete,
            subject,
            vec![Reason::GroupGone],
            Vec::new(),
        )
        .on_target(&target.id, target.version.as_deref(), Some(target.digest())),
    )
}

fn membership(member: &MemberPair, kind: ActionKind) -> Action {
    let (group, id) = (Some(member.group_name.as_str()), member.user_id.as_deref());
    let (reason, changes) = match kind {
        ActionKind::Add => (
            Reason::MemberOf(member.group_name.clone()),
            vec![
                Change::new(Field::Group, None, group),
                Change::new(Field::Member, None, id),
            ],
        ),
        _ => (
            Reason::NotMemberOf(member.group_name.clone()),
            vec![
                Change::new(Field::Group, group, None),
                Change::new(Field::Member, id, None),
            ],
        ),
    };
    let group = GroupRef {
        key: member.group_key.clone(),
        name: member.group_name.clone(),
    };
    let user = UserRef {
        key: member.user_key.clone().unwrap_or_default(),
        username: member.username.clone(),
    };
    // A change with neither side (the id of a user still to be created) says nothing.
    let changes = changes
        .into_iter()
        .filter(|c| c.before.is_some() || c.after.is_some())
        .collect();
    let mut action = Action::membership(kind, group, user, reason, changes);
    action.target_id = member.group_id.clone();
    action
}

/// The member's target id a membership action carries (none while its user is still to
/// be created).
fn member_id(action: &Action) -> Option<&str> {
    action
        .change(&Field::Member)
        .and_then(|c| c.after.as_deref().or(c.before.as_deref()))
}

/// Holds every planned removal of a group when they exceed `max-member-removes` for it.
fn hold_member_removes(actions: &mut [Action], cap: Cap, sizes: &HashMap<String, u64>) {
    let is_removal = |a: &Action| {
        a.object() == ObjectKind::Membership
            && a.action == ActionKind::Remove
            && a.status == ActionStatus::Planned
    };
    let mut counts: HashMap<String, u64> = HashMap::new();
    for a in actions.iter().filter(|a| is_removal(a)) {
        if let Some((group, _)) = a.subject.member() {
            *counts.entry(group.key.clone()).or_default() += 1;
        }
    }
    for a in actions.iter_mut().filter(|a| is_removal(a)) {
        let Some((group, _)) = a.subject.member() else {
            continue;
        };
        let count = counts.get(&group.key).copied().unwrap_or(0);
        let base = sizes.get(&group.key).copied().unwrap_or(0);
        if exceeds(count, cap, base) {
            let hold = Hold::MemberRemoves {
                count,
                group: group.name.clone(),
                limit: Limit::new(cap, base),
            };
            a.hold(hold);
        }
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
    let mut facts = UserFacts::default();
    for a in &actions {
        facts.take(a);
    }
    actions.extend(settle(&facts, groups.actions));
    for (i, action) in actions.iter_mut().enumerate() {
        action.seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    Planned {
        actions,
        summary: users.summary,
        missing: users.missing,
    }
}

/// What the memberships need to know of the user actions, per user key: the adds and the
/// removals (with the username and, when the action is held, what holds it), and the
/// removals that wait out `remove-after`. Taken from the user actions in plan order (the
/// last of a key wins), from memory or from the store's draft.
#[derive(Debug, Default)]
pub struct UserFacts {
    adds: HashMap<String, (String, Option<Hold>)>,
    removals: HashMap<String, (String, Option<Hold>)>,
    waiting: HashMap<String, Reason>,
    /// Only these keys are kept, when set (the users the memberships name).
    wanted: Option<std::collections::HashSet<String>>,
}

impl UserFacts {
    /// Facts to be kept only of the users `group_actions`' memberships name.
    pub fn for_memberships(group_actions: &[Action]) -> UserFacts {
        UserFacts {
            wanted: Some(
                group_actions
                    .iter()
                    .filter_map(|a| a.subject.member().map(|(_, user)| user.key.clone()))
                    .collect(),
            ),
            ..UserFacts::default()
        }
    }

    /// Takes what `a` (a user action) says, if it says anything the memberships need.
    pub fn take(&mut self, a: &Action) {
        let Subject::User(user) = &a.subject else {
            return;
        };
        if self.wanted.as_ref().is_some_and(|w| !w.contains(&user.key)) {
            return;
        }
        let held = || {
            a.hold
                .as_deref()
                .cloned()
                .filter(|_| a.status == ActionStatus::Held)
        };
        match a.action {
            ActionKind::Add => {
                self.adds
                    .insert(user.key.clone(), (user.username.clone(), held()));
            }
            ActionKind::Remove | ActionKind::Delete => {
                self.removals
                    .insert(user.key.clone(), (user.username.clone(), held()));
            }
            ActionKind::Update => {}
        }
        if a.status == ActionStatus::Skipped
            && let Some(why @ Reason::Missing(_)) = a.reasons.last()
        {
            self.waiting.insert(user.key.clone(), why.clone());
        }
    }
}

/// The group actions as they follow the user actions `users` describes, in the order apply
/// needs (see `merge`); not numbered.
pub fn settle(users: &UserFacts, mut group_actions: Vec<Action>) -> Vec<Action> {
    let (adds, removals, waiting) = (&users.adds, &users.removals, &users.waiting);
    for a in &mut group_actions {
        if a.status != ActionStatus::Planned {
            continue;
        }
        let Some((_, user)) = a.subject.member() else {
            continue;
        };
        let user_held = |list: &HashMap<String, (String, Option<Hold>)>| {
            list.get(&user.key)
                .and_then(|(username, by)| Some((username.clone(), Box::new(by.clone()?))))
        };
        if a.action == ActionKind::Remove {
            if let Some(why) = waiting.get(&user.key) {
                a.status = ActionStatus::Skipped;
                a.reasons.push(why.clone());
            } else if let Some((username, by)) = user_held(removals) {
                a.hold(Hold::WithUserRemoval { username, by });
            }
            continue;
        }
        // A membership without a member id waits for the add that creates its user.
        if member_id(a).is_some() {
            continue;
        }
        if !adds.contains_key(&user.key) {
            a.status = ActionStatus::Skipped;
            a.reasons.push(Reason::UserNotCreated);
        } else if let Some((username, by)) = user_held(adds) {
            a.hold(Hold::WaitsForUserAdd { username, by });
        }
    }
    group_actions.sort_by(|a, b| {
        let group = |a: &Action| match a.subject.member() {
            Some((group, _)) => group.name.to_lowercase(),
            None => a.name().to_lowercase(),
        };
        (rank(a), group(a), a.name(), a.subject.keys()).cmp(&(
            rank(b),
            group(b),
            b.name(),
            b.subject.keys(),
        ))
    });
    group_actions
}

fn rank(a: &Action) -> u8 {
    match (a.object(), a.action) {
        (ObjectKind::Group, ActionKind::Add) => 0,
        (ObjectKind::Group, ActionKind::Update) => 1,
        (ObjectKind::Membership, ActionKind::Add) => 2,
        (ObjectKind::Membership, _) => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests;
