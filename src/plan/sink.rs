//! Where a plan's user actions are collected while they are planned, and the families the
//! caps count them in. The planner fills a sink; a `Vec` holds a small plan, the state
//! store's draft a large one (`store::draft`). Both the planner and the store know this
//! module; neither knows the other.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Action, ActionKind, Allowance, CapName, Hold};
use crate::config::{Cap, Policy};
use crate::model::MissingMark;

/// Where the planner puts the user actions it makes, and what the caps ask of them: how
/// many are planned, and holding them. A cap holds every planned action of its family or
/// none (under `over-cap "drip"` all but the first N in drip order), so counts and holds
/// by family are all it needs, never the whole list at once.
pub trait Sink {
    /// Takes one action as planned, with the family the caps count it in and, for the drip
    /// order, since when and for how many runs its account has been missing (this run's
    /// time and 0 for an action whose account is not missing).
    fn push(&mut self, action: Action, family: Family, since: (DateTime<Utc>, u64));
    /// Puts the actions in plan order: adds, updates, removes, deletes; by name, then keys
    /// within a kind, in the order they came where those are the same (`order`).
    fn order(&mut self);
    /// The planned user actions of `family`.
    fn planned(&self, family: Family, policy: &Policy) -> u64;
    /// Of those, how many deactivate an account.
    fn deactivations(&self, family: Family, policy: &Policy) -> u64;
    /// Holds the planned user actions of `family` by `hold`, but for the first `going` in
    /// drip order (missing longest first, then by name, then in plan order).
    fn hold_family(
        &mut self,
        family: Family,
        policy: &Policy,
        hold: &Hold,
        going: u64,
        drip: &Drip,
    );
    /// The planned user actions of every family (but the adds, with `but_adds`).
    fn planned_changes(&self, but_adds: bool) -> u64;
    /// Holds those by `hold`.
    fn hold_changes(&mut self, hold: &Hold, but_adds: bool);
    /// Numbers the actions in plan order, from 1.
    fn number(&mut self);
}

/// What the drip order of an in-memory list needs: the marks of the missing accounts.
pub struct Drip<'a> {
    pub since: &'a HashMap<&'a str, MissingMark>,
    pub now: DateTime<Utc>,
}

/// The kinds of user action the caps count, each with its own caps. The remove family
/// counts removes and deactivations (updates that take an account out of service because
/// the source has it out of service), and deletes too unless `max-deletes` caps them on
/// their own: what `max-removes` has always covered, so a config that sets only it is not
/// loosened. A directory where half the accounts suddenly look disabled is the same
/// disaster as one where they vanish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Adds,
    Updates,
    Removals,
    Deletes,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Adds,
        Family::Updates,
        Family::Removals,
        Family::Deletes,
    ];

    /// The family a user action is counted in under `policy`.
    pub fn of(action: &Action, policy: &Policy) -> Family {
        match action.action {
            ActionKind::Add => Family::Adds,
            ActionKind::Delete if policy.max_deletes.is_some() => Family::Deletes,
            _ if action.counts_as_removal() => Family::Removals,
            _ => Family::Updates,
        }
    }

    /// The caps of this family, in the order they are checked, with the base each percent
    /// is measured against (`managed` accounts, or every account in the target for adds).
    pub fn caps(self, policy: &Policy) -> Vec<(Cap, CapName)> {
        let value = |cap: &Option<crate::config::PolicyValue<Cap>>| cap.as_ref().map(|c| c.value);
        match self {
            Family::Adds => value(&policy.max_adds)
                .map(|c| (c, CapName::MaxAdds))
                .into_iter()
                .collect(),
            Family::Updates => value(&policy.max_updates)
                .map(|c| (c, CapName::MaxUpdates))
                .into_iter()
                .collect(),
            Family::Removals => std::iter::once((policy.max_removes.value, CapName::MaxRemoves))
                .chain(
                    policy
                        .max_remove_percent
                        .map(|p| (Cap::Percent(p.value), CapName::MaxRemovePercent)),
                )
                .collect(),
            Family::Deletes => value(&policy.max_deletes)
                .map(|c| (c, CapName::MaxDeletes))
                .into_iter()
                .collect(),
        }
    }

    /// Whether `over-cap "drip"` applies: to the removes and the deletes only.
    pub fn drips(self) -> bool {
        matches!(self, Family::Removals | Family::Deletes)
    }

    /// The `--allow-<kind>` flags that release this family at apply.
    pub fn allowances(self) -> &'static [Allowance] {
        match self {
            Family::Adds => &[Allowance::Adds],
            Family::Updates => &[Allowance::Updates],
            // Deletes counted with the removes are released with them, or by their own flag.
            Family::Removals => &[Allowance::Removes, Allowance::Deletes],
            Family::Deletes => &[Allowance::Deletes],
        }
    }
}
