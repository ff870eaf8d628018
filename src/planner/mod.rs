//! The planner: a pure function from the two snapshots and a policy to a list of actions.
//!
//! It knows nothing of LDAP, SCIM, SQL, the network or the clock. The store pairs desired and
//! target users (by key, then by username) and streams the pairs here; the planner decides,
//! pair by pair, what to do and why, and then applies the caps to the whole list. Everything
//! here can be tested with plain values, and is (see the tests at the bottom).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::{Cap, Grace, Mode, OverCap, Policy};
use crate::model::{DesiredUser, FieldValue, TargetUser, phone_digits};
pub use crate::model::{MatchedBy, MissingMark, Pair};
pub use crate::plan::sink::{Drip, Family, Sink};
use crate::plan::{
    Action, ActionKind, ActionStatus, CapName, Change, Counted, Field, Hold, Limit, Missing,
    ObjectKind, Reason, Summary, UserRef,
};

/// The planner's result before the plan gets its id and digests: the actions in `A` (a
/// `Vec` for tests and small plans, the store's draft for a plan run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planned<A = Vec<Action>> {
    pub actions: A,
    pub summary: Summary,
    /// The managed accounts missing from the source that roster would take away, with their
    /// marks as this run leaves them (for the store to keep: every other mark is cleared).
    pub missing: Vec<(String, MissingMark)>,
}

/// What the planner is told besides the pairs and the policy: the bases of the percent
/// caps, the time and the marks of accounts already missing (the planner reads no clock and
/// no store), and whether this is an initial load.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Managed accounts in the target (the base of the percent caps but `max-adds`).
    pub managed: u64,
    /// Every account in the target (the base of a percent `max-adds`).
    pub target_accounts: u64,
    /// This run's time, for the marks of accounts missing from now on.
    pub now: DateTime<Utc>,
    /// The marks the store keeps, by account key.
    pub marks: HashMap<String, MissingMark>,
    /// `--initial`: no cap counts the adds.
    pub initial: bool,
}

impl Context {
    /// The percent bases only (both the managed accounts), at no particular time, with no
    /// marks: what plans without grace periods need.
    pub fn managed(managed: u64) -> Context {
        Context {
            managed,
            target_accounts: managed,
            ..Context::default()
        }
    }
}

/// Plans the user actions for `pairs` under `policy`. `managed` is the number of managed
/// accounts in the target (the base of the percent caps).
pub fn plan_users(pairs: impl IntoIterator<Item = Pair>, policy: &Policy, managed: u64) -> Planned {
    let mut planner = Planner::new(policy, Context::managed(managed));
    pairs.into_iter().for_each(|pair| planner.push(pair));
    planner.finish()
}

/// The planner as a fold, for pairs that arrive one at a time (from the store's join):
/// only the actions are kept, never the snapshots, and they go into a `Sink` as they are
/// made (a `Vec`, or the store's draft, so that memory does not grow with the directory).
pub struct Planner<'p, S: Sink = Vec<Action>> {
    policy: &'p Policy,
    context: Context,
    actions: S,
    summary: Summary,
    missing: Vec<(String, MissingMark)>,
    /// The owner a target that keeps owners should record with this config's accounts.
    owner: Option<&'p str>,
    /// The target can change a username (LoginTC cannot).
    renames: bool,
}

impl<'p> Planner<'p> {
    pub fn new(policy: &'p Policy, context: Context) -> Self {
        Planner::with_sink(policy, context, Vec::new())
    }
}

impl<'p, S: Sink> Planner<'p, S> {
    /// A planner that puts its actions into `sink`.
    pub fn with_sink(policy: &'p Policy, context: Context, sink: S) -> Self {
        Planner {
            policy,
            context,
            actions: sink,
            summary: Summary::default(),
            missing: Vec::new(),
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
            Pair::SourceOnly(desired) => self.emit(add(&desired), None),
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
                Some(action) => self.emit(action, None),
                None => self.summary.unchanged += 1,
            },
            Pair::TargetOnly { target, protected } => {
                if !target.is_managed() {
                    self.summary.unmanaged += 1;
                } else if let Some(why) = protected {
                    // Shown, not silently dropped: what would have happened, and why it won't.
                    if let Some(action) = removal(&target, *self.policy.mode) {
                        self.emit(action.skipped(Reason::NotRemoved(why)), None);
                    }
                } else if let Some(action) = removal(&target, *self.policy.mode) {
                    let (action, mark) = self.after_grace(action);
                    self.emit(action, Some(mark));
                }
            }
        }
    }

    /// Hands one action to the sink, with what the caps need to know of it.
    fn emit(&mut self, action: Action, mark: Option<MissingMark>) {
        let family = Family::of(&action, self.policy);
        let since = mark.map_or((self.context.now, 0), |m| (m.since, m.runs));
        self.actions.push(action, family, since);
    }

    /// Marks the account of a removal missing (from now, or one run more), and under
    /// `remove-after` leaves the removal out until the grace period has passed.
    fn after_grace(&mut self, mut action: Action) -> (Action, MissingMark) {
        let key = action.subject.keys().0.to_string();
        let mark = match self.context.marks.get(&key) {
            Some(mark) => MissingMark {
                since: mark.since,
                runs: mark.runs.saturating_add(1),
            },
            None => MissingMark {
                since: self.context.now,
                runs: 1,
            },
        };
        self.missing.push((key, mark));
        let Some(grace) = self.policy.remove_after.map(|g| g.value) else {
            return (action, mark);
        };
        let waiting = match grace {
            Grace::Runs(after) => (mark.runs < after).then_some(Missing::Runs {
                runs: mark.runs,
                after,
            }),
            Grace::Hours(_) | Grace::Days(_) => {
                let passed = grace
                    .duration()
                    .is_some_and(|d| self.context.now - mark.since >= d);
                (!passed).then(|| Missing::since(mark.since, grace))
            }
        };
        if let Some(missing) = waiting {
            action.status = ActionStatus::Skipped;
            action.reasons.push(Reason::Missing(missing));
        }
        (action, mark)
    }

    /// Orders the actions, applies the caps and numbers them.
    pub fn finish(mut self) -> Planned<S> {
        self.actions.order();
        let since: HashMap<&str, MissingMark> = self
            .missing
            .iter()
            .map(|(key, mark)| (key.as_str(), *mark))
            .collect();
        let caps = Caps {
            policy: self.policy,
            context: &self.context,
            drip: Drip {
                since: &since,
                now: self.context.now,
            },
        };
        caps.apply(&mut self.actions);
        self.actions.number();
        drop(since);
        Planned {
            actions: self.actions,
            summary: self.summary,
            missing: self.missing,
        }
    }
}

impl Sink for Vec<Action> {
    fn push(&mut self, action: Action, _: Family, _: (DateTime<Utc>, u64)) {
        Vec::push(self, action);
    }

    fn order(&mut self) {
        order(self);
    }

    fn planned(&self, family: Family, policy: &Policy) -> u64 {
        self.iter().filter(|a| in_family(a, family, policy)).count() as u64
    }

    fn deactivations(&self, family: Family, policy: &Policy) -> u64 {
        self.iter()
            .filter(|a| in_family(a, family, policy) && a.deactivates())
            .count() as u64
    }

    fn hold_family(
        &mut self,
        family: Family,
        policy: &Policy,
        hold: &Hold,
        going: u64,
        drip: &Drip,
    ) {
        let mut indices: Vec<usize> = (0..self.len())
            .filter(|&i| in_family(&self[i], family, policy))
            .collect();
        if going > 0 {
            // Missing longest first (the earliest mark, then the most runs: two runs may fall
            // in the same instant); an account without a mark (a deactivation) is new.
            let since = |a: &Action| {
                let mark = drip.since.get(a.subject.keys().0);
                (
                    mark.map_or(drip.now, |m| m.since),
                    std::cmp::Reverse(mark.map_or(0, |m| m.runs)),
                )
            };
            indices.sort_by_key(|&i| (since(&self[i]), self[i].name().to_string()));
        }
        let skip = usize::try_from(going).unwrap_or(usize::MAX);
        for &i in indices.iter().skip(skip) {
            self[i].hold(hold.clone());
        }
    }

    fn planned_changes(&self, but_adds: bool) -> u64 {
        self.iter().filter(|a| counted_change(a, but_adds)).count() as u64
    }

    fn hold_changes(&mut self, hold: &Hold, but_adds: bool) {
        for action in self.iter_mut().filter(|a| counted_change(a, but_adds)) {
            action.hold(hold.clone());
        }
    }

    fn number(&mut self) {
        for (i, action) in self.iter_mut().enumerate() {
            action.seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
    }
}

fn in_family(a: &Action, family: Family, policy: &Policy) -> bool {
    is_planned_user(a) && Family::of(a, policy) == family
}

fn counted_change(a: &Action, but_adds: bool) -> bool {
    is_planned_user(a) && !(but_adds && a.action == ActionKind::Add)
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

/// The caps, applied to the planned actions through their sink.
struct Caps<'a> {
    policy: &'a Policy,
    context: &'a Context,
    /// Since when (and for how many runs) each missing account has been missing, for the
    /// drip order of an in-memory list.
    drip: Drip<'a>,
}

impl Caps<'_> {
    /// Over a cap, every action of its family is held: a cap is a tripwire, so none of them
    /// goes through, not the first N. Under `over-cap "drip"` the removes and deletes over
    /// their cap are the exception: the cap's worth of them, missing longest first, go. Then
    /// `max-changes` counts what is still planned, of every family together.
    fn apply(&self, actions: &mut impl Sink) {
        for family in Family::ALL {
            if family == Family::Adds && self.context.initial {
                continue;
            }
            for (cap, name) in family.caps(self.policy) {
                self.check(actions, family, cap, name);
            }
        }
        if let Some(cap) = self.policy.max_changes.map(|c| c.value) {
            let count = actions.planned_changes(self.context.initial);
            if exceeds(count, cap, self.context.managed) {
                let hold = Hold::Cap {
                    counted: Counted::Changes(count),
                    name: CapName::MaxChanges,
                    limit: Limit::new(cap, self.context.managed),
                };
                actions.hold_changes(&hold, self.context.initial);
            }
        }
    }

    fn check(&self, actions: &mut impl Sink, family: Family, cap: Cap, name: CapName) {
        let count = actions.planned(family, self.policy);
        let (base, limit) = match family {
            Family::Adds => (
                self.context.target_accounts,
                Limit::of_target(cap, self.context.target_accounts),
            ),
            _ => (self.context.managed, Limit::new(cap, self.context.managed)),
        };
        if !exceeds(count, cap, base) {
            return;
        }
        let counted = match family {
            Family::Adds => Counted::Adds(count),
            Family::Updates => Counted::Updates(count),
            Family::Deletes => Counted::Deletes(count),
            Family::Removals => Counted::Removals {
                count,
                deactivations: actions.deactivations(family, self.policy),
            },
        };
        let hold = Hold::Cap {
            counted,
            name,
            limit,
        };
        let drip = family.drips() && *self.policy.over_cap == OverCap::Drip;
        let (held, going) = match drip {
            true => {
                let going = limit.allows();
                (
                    Hold::Dripped {
                        by: Box::new(hold),
                        going,
                    },
                    going,
                )
            }
            false => (hold, 0),
        };
        actions.hold_family(family, self.policy, &held, going, &self.drip);
    }
}

fn is_planned_user(a: &Action) -> bool {
    a.object() == ObjectKind::User && a.status == ActionStatus::Planned
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
pub mod ignored;

#[cfg(test)]
mod tests;
