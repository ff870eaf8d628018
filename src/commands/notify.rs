//! After every plan, apply and sync: tell the people the `notify` block names, and record on
//! the run how that went. Nothing here can change how the run ended or its exit code.

use super::{Session, show};
use crate::notify::{self, RunReport};

/// Sends the run's notifications, if any are configured and due, and records them on the
/// run. A failure is logged (by `notify::send`) and recorded; it is never an error.
pub(super) fn after_run(session: &Session, run_id: i64) {
    let Some(config) = &session.config.notify else {
        return;
    };
    let store = &session.store;
    let run = match store.run(run_id) {
        Ok(Some(run)) => run,
        Ok(None) => return,
        Err(e) => {
            log::warn!("cannot read run {run_id} back to notify about it: {e}");
            return;
        }
    };
    let plan = match show::run_plan(store, &run) {
        Ok(plan) => plan,
        Err(e) => {
            log::warn!("cannot read the plan of run {run_id} to notify about it: {e}");
            None
        }
    };
    let report = RunReport {
        run: &run,
        plan: plan.as_ref(),
    };
    let deliveries = notify::send(config, &report);
    if deliveries.is_empty() {
        return;
    }
    if let Err(e) = store.record_notifications(run_id, &deliveries) {
        log::warn!("cannot record the notifications of run {run_id}: {e}");
    }
}
