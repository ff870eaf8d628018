//! How group and membership actions read in a plan: the object's name (`Sales`,
//! `alice → Sales`) and a summary of the group actions, since the contract's summary counts
//! every object together.

use std::fmt::Write;

use crate::plan::{Action, ActionKind, ActionStatus, ObjectKind, Plan, Subject};

/// The name an action is shown under: the username, the group name, or `user → group`.
pub(super) fn object_name(action: &Action) -> String {
    match &action.subject {
        Subject::Membership(m) => format!("{} → {}", m.user.username, m.group.name),
        _ => action.name().to_string(),
    }
}

/// Whether the plan has any group or membership action.
pub(super) fn has_groups(plan: &Plan) -> bool {
    plan.count_where(|object, _, _| object != ObjectKind::User) > 0
}

/// ` Of these, groups: 1 to add, ...; memberships: 2 to add, 1 to remove.`, and the count
/// of ignored group members; empty when there is nothing to say.
pub(super) fn summary_note(plan: &Plan) -> String {
    let mut note = String::new();
    if has_groups(plan) {
        let count = |object: ObjectKind, kind: ActionKind| {
            plan.count_where(|o, k, status| {
                o == object && k == kind && status != ActionStatus::Skipped
            })
        };
        let _ = write!(
            note,
            " Of these, groups: {} to add, {} to update, {} to delete; memberships: {} to add, {} to remove.",
            count(ObjectKind::Group, ActionKind::Add),
            count(ObjectKind::Group, ActionKind::Update),
            count(ObjectKind::Group, ActionKind::Delete),
            count(ObjectKind::Membership, ActionKind::Add),
            count(ObjectKind::Membership, ActionKind::Remove),
        );
    }
    match plan.summary.ignored_members {
        0 => {}
        1 => note.push_str(" 1 group member is not a synced user (ignored)."),
        n => {
            let _ = write!(note, " {n} group members are not synced users (ignored).");
        }
    }
    note
}
