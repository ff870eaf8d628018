//! Resuming: what an earlier, interrupted apply of the same plan did, from the journal.
//!
//! Actions the journal has as applied are not done again (and are counted as such); an
//! action journaled as started but never finished was in flight when the run died, so
//! its call may or may not have reached the target: it is redone, looking first.

use std::collections::HashMap;

use super::{ApplyError, ApplyReport};
use crate::plan::{ActionStatus, Plan};
use crate::store::Store;

/// What is left to do.
pub(super) struct Resumed {
    /// Indices of the actions to apply, in plan order.
    pub todo: Vec<usize>,
    /// Per action: its call was in flight when an earlier apply stopped.
    pub interrupted: Vec<bool>,
}

/// Gives the plan the journal's applied statuses and counts what is applied, held and
/// skipped already.
pub(super) fn from_journal(
    plan: &mut Plan,
    store: &Store,
    report: &mut ApplyReport,
) -> Result<Resumed, ApplyError> {
    let journal = store.journal_progress(&plan.plan_id)?;
    Ok(resume(plan, &journal, report))
}

fn resume(
    plan: &mut Plan,
    journal: &HashMap<u32, ActionStatus>,
    report: &mut ApplyReport,
) -> Resumed {
    let mut interrupted = vec![false; plan.actions.len()];
    for (i, action) in plan.actions.iter_mut().enumerate() {
        match journal.get(&action.seq) {
            Some(ActionStatus::Applied) => {
                action.status = ActionStatus::Applied;
                report.already_applied += 1;
            }
            Some(ActionStatus::Applying) => interrupted[i] = true,
            _ => {}
        }
    }
    let todo = (0..plan.actions.len())
        .filter(|&i| {
            matches!(
                plan.actions[i].status,
                ActionStatus::Planned | ActionStatus::Failed | ActionStatus::Applying
            ) || interrupted[i]
        })
        .collect();
    for a in &plan.actions {
        match a.status {
            ActionStatus::Held => report.held += 1,
            ActionStatus::Skipped => report.skipped += 1,
            _ => {}
        }
    }
    Resumed { todo, interrupted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, FORMAT_VERSION, Summary};

    #[test]
    fn applied_actions_are_not_redone_and_interrupted_ones_are() {
        let statuses = [
            ActionStatus::Planned,
            ActionStatus::Planned,
            ActionStatus::Planned,
            ActionStatus::Held,
            ActionStatus::Skipped,
            ActionStatus::Failed,
        ];
        let actions = statuses
            .iter()
            .enumerate()
            .map(|(i, &status)| {
                let mut a = Action::add_user("k", &format!("u{i}"), Vec::new(), Vec::new());
                a.seq = i as u32 + 1;
                a.status = status;
                a
            })
            .collect();
        let mut plan = Plan {
            format_version: FORMAT_VERSION,
            plan_id: "p".into(),
            created_at: chrono::Utc::now(),
            summary: Summary::default(),
            actions,
            stored: None,
            mode: crate::config::Mode::AddOnly,
            config_digest: String::new(),
            desired_digest: String::new(),
            forced: Vec::new(),
            notes: Vec::new(),
            remove_means: None,
            delete_means: None,
            target: String::new(),
            max_removes: None,
            managed: None,
            target_accounts: None,
            initial: false,
        };
        let journal = HashMap::from([(1, ActionStatus::Applied), (2, ActionStatus::Applying)]);
        let mut report = ApplyReport::default();
        let resumed = resume(&mut plan, &journal, &mut report);
        assert_eq!(resumed.todo, [1, 2, 5]);
        assert_eq!(
            resumed.interrupted,
            [false, true, false, false, false, false]
        );
        assert_eq!(plan.actions[0].status, ActionStatus::Applied);
        assert_eq!(
            (report.already_applied, report.held, report.skipped),
            (1, 1, 1)
        );
    }
}
