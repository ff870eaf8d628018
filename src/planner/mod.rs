//! The planner: a pure function from the two snapshots and a policy to a list of actions.
//!
//! It knows nothing of LDAP, SCIM, SQL, the network or the clock. The store pairs desired and
//! target users (by key, then by username) and streams the pairs here; the planner decides,
//! pair by pair, what to do and why, and then applies the caps to the whole list. Everything
//! here can be tested with plain values, and is (see the tests at the bottom).

use std::collections::HashSet;

use crate::config::{Cap, Mode, Policy};
use crate::model::{DesiredUser, FieldValue, TargetUser, phone_digits};
pub use crate::model::{MatchedBy, Pair};
use crate::plan::{
    Action, ActionKind, ActionStatus, CapName, Change, Counted, Field, Hold, Limit, ObjectKind,
    Reason, Summary, UserRef,
};

/// The planner's result before the plan gets its id and digests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planned {
    pub actions: Vec<Action>,
    pub summary: Summary,
}

/// Plans the user actions for `pairs` under `policy`. `managed` is the number of managed
/// accounts in the target (the base of the percent caps).
pub fn plan_users(pairs: impl IntoIterator<Item = Pair>, policy: &Policy, managed: u64) -> Planned {
    let mut planner = Planner::new(policy);
    pairs.into_iter().for_each(|pair| planner.push(pair));
    planner.finish(managed)
}

/// The planner as a fold, for pairs that arrive one at a time (from the store's join):
/// only the actions are kept, never the snapshots.
pub struct Planner<'p> {
    policy: &'p Policy,
    actions: Vec<Action>,
    summary: Summary,
    /// The owner a target that keeps owners should record with this config's accounts.
    owner: Option<&'p str>,
    /// The target can change a username (LoginTC cannot).
    renames: bool,
}

impl<'p> Planner<'p> {
    pub fn new(policy: &'p Policy) -> Self {
        Planner {
            policy,
            actions: Vec::new(),
            summary: Summary::default(),
            owner: None,
            renames: true,
        }
    }

    /// The target cannot change a username: an update that would is skipped, with why and
    /// what to do, instead of failing at apply.
    pub fn without_renames(mut self) -> Self {
        self.renames = false;
        self
    }

    /// The target keeps an owner with each account: an account paired by key that records
    /// none (written by an earlier roster) gets `owner`, with an update the plan shows.
    pub fn recording_owner(mut self, owner: &'p str) -> Self {
        self.owner = Some(owner);
        self
    }

    pub fn push(&mut self, pair: Pair) {
        match pair {
            Pair::SourceOnly(desired) => self.actions.push(add(&desired)),
            Pair::Both {
                desired,
                target,
                matched_by,
                deactivated_by_roster,
            } => match update(
                &desired,
                &target,
                matched_by,
                deactivated_by_roster,
                TargetCan {
                    owner: self.owner,
                    renames: self.renames,
                },
            ) {
                Some(action) => self.actions.push(action),
                None => self.summary.unchanged += 1,
            },
            Pair::TargetOnly { target, protected } => {
                if !target.is_managed() {
                    self.summary.unmanaged += 1;
                } else if let Some(why) = protected {
                    // Shown, not silently dropped: what would have happened, and why it won't.
                    if let Some(action) = removal(&target, *self.policy.mode) {
                        self.actions.push(action.skipped(Reason::NotRemoved(why)));
                    }
                } else if let Some(action) = removal(&target, *self.policy.mode) {
                    self.actions.push(action);
                }
            }
        }
    }

    /// Orders the actions, applies the caps and numbers them.
    pub fn finish(mut self, managed: u64) -> Planned {
        order(&mut self.actions);
        apply_caps(&mut self.actions, self.policy, managed);
        for (i, action) in self.actions.iter_mut().enumerate() {
            action.seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
        Planned {
            actions: self.actions,
            summary: self.summary,
        }
    }
}

fn add(desired: &DesiredUser) -> Action {
    let mut changes = vec![
        Change::new(Field::Key, None, Some(&desired.key)),
        Change::new(Field::Username, None, Some(&desired.username)),
    ];
    if let Some(name) = &desired.name {
        changes.push(Change::new(Field::Name, None, Some(name)));
    }
    if let Some(email) = &desired.email {
        changes.push(Change::new(Field::Email, None, Some(email)));
    }
    for phone in &desired.phones {
        changes.push(Change::new(Field::Phone, None, Some(phone)));
    }
    for (field, value) in &desired.fields {
        if let FieldValue::Set(v) = value {
            changes.push(Change::new(Field::Attribute(field.clone()), None, Some(v)));
        }
    }
    let mut reasons = vec![Reason::NotInTarget];
    if !desired.active {
        changes.push(Change::new(Field::Active, None, Some("false")));
        reasons.push(Reason::CreatedInactive);
    }
    Action::add_user(&desired.key, &desired.username, reasons, changes)
}

/// The field changes that bring `target` in line with `desired`, by the field rules:
/// a field the source does not carry is left alone; phones are only ever added.
fn field_changes(desired: &DesiredUser, target: &TargetUser) -> Vec<Change> {
    let mut changes = Vec::new();
    // userName compares case-insensitively in SCIM (RFC 7643 §4.1.1), as accounts are matched:
    // a target that folds it to lowercase must not get the same update every run.
    if desired.username.to_lowercase() != target.username.to_lowercase() {
        changes.push(Change::new(
            Field::Username,
            Some(&target.username),
            Some(&desired.username),
        ));
    }
    if let Some(name) = &desired.name
        && target.name.as_deref() != Some(name.as_str())
    {
        changes.push(Change::new(Field::Name, target.name.as_deref(), Some(name)));
    }
    // Email addresses are compared case-insensitively: targets often fold them.
    if let Some(email) = &desired.email
        && !target
            .email
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(email))
    {
        changes.push(Change::new(
            Field::Email,
            target.email.as_deref(),
            Some(email),
        ));
    }
    let mut known: HashSet<String> = target.phones.iter().map(|p| phone_digits(p)).collect();
    for phone in &desired.phones {
        if known.insert(phone_digits(phone)) {
            changes.push(Change::new(Field::Phone, None, Some(phone)));
        }
    }
    for (field, value) in &desired.fields {
        let current = target.fields.get(field).map(String::as_str);
        let attribute = || Field::Attribute(field.clone());
        match value {
            FieldValue::Set(v) if current != Some(v.as_str()) => {
                changes.push(Change::new(attribute(), current, Some(v)));
            }
            FieldValue::Clear if current.is_some() => {
                changes.push(Change::new(attribute(), current, None))
            }
            _ => {}
        }
    }
    changes
}

fn update(
    desired: &DesiredUser,
    target: &TargetUser,
    matched_by: MatchedBy,
    deactivated_by_roster: bool,
    can: TargetCan<'_>,
) -> Option<Action> {
    let owner = can.owner;
    let mut changes = Vec::new();
    let mut reasons = Vec::new();
    if target.external_id.as_deref() != Some(desired.key.as_str()) {
        changes.push(Change::new(
            Field::Key,
            target.external_id.as_deref(),
            Some(&desired.key),
        ));
        reasons.push(match (&target.external_id, matched_by) {
            (None, _) => Reason::AdoptedAccount,
            (Some(_), _) => Reason::Rekeyed,
        });
    }
    let fields = field_changes(desired, target);
    let mut status = ActionStatus::Planned;
    match (desired.active, target.active) {
        (true, true) => {}
        (false, true) => {
            // Not a removal (the account stays, in every mode), but the remove caps count it.
            changes.push(Change::new(Field::Active, Some("true"), Some("false")));
            reasons.push(Reason::Deactivated);
        }
        (true, false) if deactivated_by_roster => {
            changes.push(Change::new(Field::Active, Some("false"), Some("true")));
            reasons.push(Reason::Reactivated);
        }
        // An account roster deactivated and the source still has out of service: roster's
        // account, kept inactive and in line.
        (false, false) if deactivated_by_roster => {}
        (_, false) => {
            if !fields.is_empty() || !changes.is_empty() {
                // An account someone else deactivated is not roster's to change.
                status = ActionStatus::Skipped;
                reasons.push(Reason::InactiveInTarget);
            }
        }
    }
    // A username the target cannot change: the whole update waits, visibly, for a human
    // (other changes would leave the account half in line under a name the source dropped).
    if !can.renames
        && status == ActionStatus::Planned
        && fields.iter().any(|c| c.field == Field::Username)
    {
        status = ActionStatus::Skipped;
        reasons.push(Reason::CannotRename);
    }
    // The owner, where the target keeps one and the account records none: only on an
    // account roster keeps in line (not one someone else deactivated). A key change writes
    // the owner with the key already.
    if let Some(owner) = owner
        && status == ActionStatus::Planned
        && (target.active || deactivated_by_roster)
        && target.owner.as_deref() != Some(owner)
        && target.external_id.as_deref() == Some(desired.key.as_str())
    {
        changes.push(Change::new(
            Field::Owner,
            target.owner.as_deref(),
            Some(owner),
        ));
        reasons.push(Reason::OwnerRecorded);
    }
    if !fields.is_empty() && status == ActionStatus::Planned {
        let names: Vec<&Field> = fields.iter().map(|c| &c.field).collect();
        reasons.push(Reason::Changed(dedup(&names)));
    }
    changes.extend(fields);
    if changes.is_empty() {
        return None;
    }
    let user = UserRef {
        key: desired.key.clone(),
        username: desired.username.clone(),
    };
    let mut action = Action::change_user(ActionKind::Update, user, reasons, changes).on_target(
        &target.id,
        target.version.as_deref(),
        Some(target.digest()),
    );
    action.status = status;
    Some(action)
}

/// What the target can do, as the update of one account needs to know.
#[derive(Debug, Clone, Copy)]
struct TargetCan<'a> {
    owner: Option<&'a str>,
    renames: bool,
}

fn dedup(fields: &[&Field]) -> Vec<Field> {
    let mut seen = HashSet::new();
    fields
        .iter()
        .copied()
        .filter(|f| seen.insert(*f))
        .cloned()
        .collect()
}

fn removal(target: &TargetUser, mode: Mode) -> Option<Action> {
    let (kind, reason, changes) = match mode {
        Mode::AddOnly => return None,
        Mode::Remove if !target.active => return None,
        Mode::Remove => (
            ActionKind::Remove,
            Reason::GoneRemove,
            vec![Change::new(Field::Active, Some("true"), Some("false"))],
        ),
        Mode::Delete => (ActionKind::Delete, Reason::GoneDelete, Vec::new()),
    };
    let user = UserRef {
        key: target.external_id.clone().unwrap_or_default(),
        username: target.username.clone(),
    };
    Some(
        Action::change_user(kind, user, vec![reason], changes).on_target(
            &target.id,
            target.version.as_deref(),
            Some(target.digest()),
        ),
    )
}

/// Adds first, then updates, removes and deletes; by username within a kind, so that the
/// same input always gives the same plan.
fn order(actions: &mut [Action]) {
    actions.sort_by(|a, b| {
        (a.action, a.name(), a.subject.keys()).cmp(&(b.action, b.name(), b.subject.keys()))
    });
}

/// Whether `count` actions exceed `cap` measured against `base` accounts.
/// Exactly at the cap is allowed; a percent cap compares `count / base` with the percent
/// exactly (no rounding), so 5 % of 100 allows 5 and holds 6.
pub fn exceeds(count: u64, cap: Cap, base: u64) -> bool {
    match cap {
        Cap::Count(max) => count > max,
        // count * 100 > percent * base, in floating point only for the percent.
        Cap::Percent(percent) => (count as f64) * 100.0 > percent * (base as f64),
    }
}

/// Holds every action of a capped kind when their number exceeds a cap: a cap is a
/// tripwire, so none of them goes through, not the first N.
///
/// The remove caps count removes, deletes and deactivations (updates that take an account
/// out of service because the source has it out of service) together: a directory where
/// half the accounts suddenly look disabled is the same disaster as one where they vanish.
/// Each action belongs to one cap family only, so a held deactivation is released with the
/// removes (`--allow-removes`).
fn apply_caps(actions: &mut [Action], policy: &Policy, managed: u64) {
    fn is_removal(a: &Action) -> bool {
        a.counts_as_removal()
    }
    fn is_add(a: &Action) -> bool {
        a.action == ActionKind::Add
    }
    fn is_update(a: &Action) -> bool {
        a.action == ActionKind::Update && !a.deactivates()
    }
    let planned = |matches: fn(&Action) -> bool| {
        actions
            .iter()
            .filter(|a| a.object() == ObjectKind::User)
            .filter(|a| a.status == ActionStatus::Planned && matches(a))
            .count() as u64
    };
    let removals = Counted::Removals {
        count: planned(is_removal),
        deactivations: planned(Action::deactivates),
    };

    let remove_caps = std::iter::once((Cap::Count(*policy.max_removes), CapName::MaxRemoves))
        .chain(
            policy
                .max_remove_percent
                .map(|p| (Cap::Percent(p.value), CapName::MaxRemovePercent)),
        );
    let mut checks: Vec<CapCheck> = remove_caps
        .map(|(cap, name)| CapCheck {
            matches: is_removal,
            counted: removals,
            cap: Some(cap),
            name,
        })
        .collect();
    checks.push(CapCheck {
        matches: is_add,
        counted: Counted::Adds(planned(is_add)),
        cap: policy.max_adds.map(|c| c.value),
        name: CapName::MaxAdds,
    });
    checks.push(CapCheck {
        matches: is_update,
        counted: Counted::Updates(planned(is_update)),
        cap: policy.max_updates.map(|c| c.value),
        name: CapName::MaxUpdates,
    });

    for CapCheck {
        matches,
        counted,
        cap,
        name,
    } in checks
    {
        let Some(cap) = cap.filter(|cap| exceeds(counted.count(), *cap, managed)) else {
            continue;
        };
        let hold = Hold::Cap {
            counted,
            name,
            limit: Limit::new(cap, managed),
        };
        for action in actions
            .iter_mut()
            .filter(|a| a.object() == ObjectKind::User)
            .filter(|a| a.status == ActionStatus::Planned && matches(a))
        {
            action.hold(hold.clone());
        }
    }
}

/// One cap and the actions it counts.
struct CapCheck {
    matches: fn(&Action) -> bool,
    counted: Counted,
    cap: Option<Cap>,
    name: CapName,
}

/// What the store knows about this run's source read, for the completeness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRead {
    /// Usable users the source returned (rejected records not counted).
    pub count: u64,
    /// Usable users in the last read that passed these checks, if any.
    pub last_good: Option<u64>,
    /// Managed accounts in the target.
    pub managed: u64,
}

/// Why a source read is refused: it looks partial.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SourceRefusal {
    #[error(
        "the source returned no users while the target has {managed} managed accounts; \
         refusing to plan (check the source's base-dn and filter, or use --force)"
    )]
    Empty { managed: u64 },
    #[error(
        "the source shrank from {last} to {count} users ({shrink:.1}%), more than \
         max-source-shrink-percent {max}; refusing to plan (use --force if this is intended)"
    )]
    Shrank {
        last: u64,
        count: u64,
        /// The shrink, in percent of `last`.
        shrink: f64,
        /// `max-source-shrink-percent`.
        max: f64,
    },
}

/// Refuses a source read that looks partial: empty while the target has managed accounts,
/// or shrunk by more than `max-source-shrink-percent` since the last good read. (A read that
/// failed part-way never gets this far: it is an error.) The refusal says what and by how much.
pub fn check_source(read: SourceRead, policy: &Policy) -> Result<(), SourceRefusal> {
    if read.count == 0 && read.managed > 0 {
        return Err(SourceRefusal::Empty {
            managed: read.managed,
        });
    }
    if let Some(last) = read.last_good
        && last > read.count
    {
        let shrink = (last - read.count) as f64 * 100.0 / last as f64;
        if shrink > *policy.max_source_shrink_percent {
            return Err(SourceRefusal::Shrank {
                last,
                count: read.count,
                shrink,
                max: *policy.max_source_shrink_percent,
            });
        }
    }
    Ok(())
}

pub mod groups;

#[cfg(test)]
mod tests;
