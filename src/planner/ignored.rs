//! Changes the target is known to drop, left out of the plan with the reason.
//!
//! Apply reads changes back; a change a provider accepted and did not keep (`active` on a
//! provider that cannot deactivate, dropped phones) fails its action, and the store records
//! the field for that target. Planning it again every run would fail it again every run, and
//! a remove that never takes effect would look like work in progress forever. So: a user
//! update or remove whose changes are all such fields is `skipped`, with the reason; one
//! that also changes other fields keeps those, without the dropped ones, and says so.
//! Pure: the fields come from the store, read by the pipeline.

use crate::plan::{Action, ActionKind, ActionStatus, Field, ObjectKind, Reason};

/// Leaves the changes to `ignored` fields out of the user updates and removes in `actions`.
pub fn leave_out_ignored(actions: &mut [Action], ignored: &[Field]) {
    if ignored.is_empty() {
        return;
    }
    for action in actions.iter_mut() {
        let applicable = action.object() == ObjectKind::User
            && matches!(action.action, ActionKind::Update | ActionKind::Remove)
            && matches!(action.status, ActionStatus::Planned | ActionStatus::Held);
        if !applicable {
            continue;
        }
        let mut dropped: Vec<Field> = Vec::new();
        for change in &action.changes {
            if ignored.contains(&change.field) && !dropped.contains(&change.field) {
                dropped.push(change.field.clone());
            }
        }
        if dropped.is_empty() {
            continue;
        }
        let kept = action.changes.iter().any(|c| !ignored.contains(&c.field));
        // A remove is its `active` change: without it there is nothing to do.
        if kept && action.action == ActionKind::Update {
            action.changes.retain(|c| !ignored.contains(&c.field));
            action.reasons.push(Reason::TargetIgnores(dropped));
        } else {
            action.status = ActionStatus::Skipped;
            action.hold = None;
            action.reasons.push(Reason::TargetIgnores(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Change, UserRef};

    fn user_action(kind: ActionKind, changes: Vec<Change>) -> Action {
        let user = UserRef {
            key: "k".into(),
            username: "amy".into(),
        };
        Action::change_user(kind, user, vec![Reason::GoneRemove], changes)
            .on_target("id-1", None, None)
    }

    #[test]
    fn changes_to_ignored_fields_are_left_out_with_the_reason() {
        let active = || Change::new(Field::Active, Some("true"), Some("false"));
        let phone = || Change::new(Field::Phone, None, Some("+1 555"));
        let name = || Change::new(Field::Name, Some("A"), Some("Amy"));
        let mut actions = vec![
            user_action(ActionKind::Remove, vec![active()]),
            user_action(ActionKind::Update, vec![name(), phone()]),
            user_action(ActionKind::Update, vec![phone()]),
            user_action(ActionKind::Update, vec![name()]),
            user_action(ActionKind::Delete, Vec::new()),
        ];
        leave_out_ignored(&mut actions, &[Field::Active, Field::Phone]);
        let statuses: Vec<ActionStatus> = actions.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            [
                ActionStatus::Skipped,
                ActionStatus::Planned,
                ActionStatus::Skipped,
                ActionStatus::Planned,
                ActionStatus::Planned,
            ]
        );
        assert!(
            actions[0].reason().contains("the target ignores `active`")
                && actions[0].reason().contains("mode delete"),
            "{}",
            actions[0].reason()
        );
        assert_eq!(actions[1].changes, [name()], "the name is still sent");
        assert!(actions[1].reason().contains("ignores `phone`"));
        assert!(!actions[3].reason().contains("ignores"));
        let mut untouched = vec![user_action(ActionKind::Remove, vec![active()])];
        leave_out_ignored(&mut untouched, &[]);
        assert_eq!(untouched[0].status, ActionStatus::Planned);
    }
}
