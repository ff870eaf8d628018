//! The planner: a pure function from the two snapshots and a policy to a list of actions.
//!
//! It knows nothing of LDAP, SCIM, SQL, the network or the clock. The store pairs desired and
//! target users (by key, then by username) and streams the pairs here; the planner decides,
//! pair by pair, what to do and why, and then applies the caps to the whole list. Everything
//! here can be tested with plain values, and is (see the tests at the bottom).

use std::collections::HashSet;

use crate::config::{Cap, Mode, Policy};
use crate::model::{DesiredUser, FieldValue, TargetUser, phone_digits};
use crate::plan::{Action, ActionKind, Change, ObjectKind, Status, Summary};

/// How a desired user found its target account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The target's externalId is the user's key.
    Key,
    /// Same username; the account is adopted (its externalId set to the key).
    Username,
}

/// One unit of the diff, as the store's keyed join produces it.
#[derive(Debug, Clone)]
pub enum Pair {
    Both {
        desired: DesiredUser,
        target: TargetUser,
        matched_by: MatchedBy,
        /// roster itself deactivated this account (it is reactivated on return).
        deactivated_by_roster: bool,
    },
    SourceOnly(DesiredUser),
    TargetOnly {
        target: TargetUser,
        /// Why the account must not be removed even though no source user matches it
        /// (its source record was rejected this run), if so.
        protected: Option<String>,
    },
}

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
}

impl<'p> Planner<'p> {
    pub fn new(policy: &'p Policy) -> Self {
        Planner {
            policy,
            actions: Vec::new(),
            summary: Summary::default(),
        }
    }

    pub fn push(&mut self, pair: Pair) {
        match pair {
            Pair::SourceOnly(desired) => self.actions.push(add(&desired)),
            Pair::Both {
                desired,
                target,
                matched_by,
                deactivated_by_roster,
            } => match update(&desired, &target, matched_by, deactivated_by_roster) {
                Some(action) => self.actions.push(action),
                None => self.summary.unchanged += 1,
            },
            Pair::TargetOnly { target, protected } => {
                if !target.is_managed() {
                    self.summary.unmanaged += 1;
                } else if let Some(why) = protected {
                    // Shown, not silently dropped: what would have happened, and why it won't.
                    if let Some(mut action) = removal(&target, *self.policy.mode) {
                        action.status = Status::Skipped;
                        action.reason = format!("not removed: {why}");
                        self.actions.push(action);
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
        Change::new("externalId", None, Some(&desired.key)),
        Change::new("username", None, Some(&desired.username)),
    ];
    if let Some(name) = &desired.name {
        changes.push(Change::new("name", None, Some(name)));
    }
    if let Some(email) = &desired.email {
        changes.push(Change::new("email", None, Some(email)));
    }
    for phone in &desired.phones {
        changes.push(Change::new("phone", None, Some(phone)));
    }
    for (field, value) in &desired.fields {
        if let FieldValue::Set(v) = value {
            changes.push(Change::new(field, None, Some(v)));
        }
    }
    let reason = if desired.active {
        "in the source, not in the target"
    } else {
        changes.push(Change::new("active", None, Some("false")));
        "in the source, not in the target; out of service in the source: created inactive"
    };
    Action {
        seq: 0,
        action: ActionKind::Add,
        object: ObjectKind::User,
        key: desired.key.clone(),
        username: desired.username.clone(),
        status: Status::Planned,
        reason: reason.to_string(),
        changes,
        held_by: None,
        target_id: None,
        target_version: None,
        target_digest: None,
    }
}

/// The field changes that bring `target` in line with `desired`, by the field rules:
/// a field the source does not carry is left alone; phones are only ever added.
fn field_changes(desired: &DesiredUser, target: &TargetUser) -> Vec<Change> {
    let mut changes = Vec::new();
    if desired.username != target.username {
        changes.push(Change::new(
            "username",
            Some(&target.username),
            Some(&desired.username),
        ));
    }
    if let Some(name) = &desired.name
        && target.name.as_deref() != Some(name.as_str())
    {
        changes.push(Change::new("name", target.name.as_deref(), Some(name)));
    }
    // Email addresses are compared case-insensitively: targets often fold them.
    if let Some(email) = &desired.email
        && !target
            .email
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(email))
    {
        changes.push(Change::new("email", target.email.as_deref(), Some(email)));
    }
    let mut known: HashSet<String> = target.phones.iter().map(|p| phone_digits(p)).collect();
    for phone in &desired.phones {
        if known.insert(phone_digits(phone)) {
            changes.push(Change::new("phone", None, Some(phone)));
        }
    }
    for (field, value) in &desired.fields {
        let current = target.fields.get(field).map(String::as_str);
        match value {
            FieldValue::Set(v) if current != Some(v.as_str()) => {
                changes.push(Change::new(field, current, Some(v)));
            }
            FieldValue::Clear if current.is_some() => {
                changes.push(Change::new(field, current, None))
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
) -> Option<Action> {
    let mut changes = Vec::new();
    let mut reasons = Vec::new();
    if target.external_id.as_deref() != Some(desired.key.as_str()) {
        changes.push(Change::new(
            "externalId",
            target.external_id.as_deref(),
            Some(&desired.key),
        ));
        reasons.push(match (&target.external_id, matched_by) {
            (None, _) => "adopted: an unmanaged account has the same username".to_string(),
            (Some(_), _) => {
                "re-keyed: the account's key is no longer in the source and the username matches"
                    .to_string()
            }
        });
    }
    let fields = field_changes(desired, target);
    let mut status = Status::Planned;
    match (desired.active, target.active) {
        (true, true) => {}
        (false, true) => {
            // Not a removal (the account stays, in every mode), but the remove caps count it.
            changes.push(Change::new("active", Some("true"), Some("false")));
            reasons.push("out of service in the source (disabled or expired): deactivated".into());
        }
        (true, false) if deactivated_by_roster => {
            changes.push(Change::new("active", Some("false"), Some("true")));
            reasons.push("back in the source after roster deactivated it".to_string());
        }
        // An account roster deactivated and the source still has out of service: roster's
        // account, kept inactive and in line.
        (false, false) if deactivated_by_roster => {}
        (_, false) => {
            if !fields.is_empty() || !changes.is_empty() {
                // An account someone else deactivated is not roster's to change.
                status = Status::Skipped;
                reasons.push(
                    "inactive in the target and not deactivated by roster: left as it is"
                        .to_string(),
                );
            }
        }
    }
    if !fields.is_empty() && status == Status::Planned {
        let names: Vec<&str> = fields.iter().map(|c| c.field.as_str()).collect();
        reasons.push(format!(
            "changed in the source: {}",
            dedup(&names).join(", ")
        ));
    }
    changes.extend(fields);
    if changes.is_empty() {
        return None;
    }
    Some(Action {
        seq: 0,
        action: ActionKind::Update,
        object: ObjectKind::User,
        key: desired.key.clone(),
        username: desired.username.clone(),
        status,
        reason: reasons.join("; "),
        changes,
        held_by: None,
        target_id: Some(target.id.clone()),
        target_version: target.version.clone(),
        target_digest: Some(target.digest()),
    })
}

fn dedup<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    names.iter().copied().filter(|n| seen.insert(*n)).collect()
}

fn removal(target: &TargetUser, mode: Mode) -> Option<Action> {
    let key = target.external_id.clone().unwrap_or_default();
    let (kind, reason, changes) = match mode {
        Mode::AddOnly => return None,
        Mode::Remove if !target.active => return None,
        Mode::Remove => (
            ActionKind::Remove,
            "managed account no longer in the source (mode remove)",
            vec![Change::new("active", Some("true"), Some("false"))],
        ),
        Mode::Delete => (
            ActionKind::Delete,
            "managed account no longer in the source (mode delete)",
            Vec::new(),
        ),
    };
    Some(Action {
        seq: 0,
        action: kind,
        object: ObjectKind::User,
        key,
        username: target.username.clone(),
        status: Status::Planned,
        reason: reason.to_string(),
        changes,
        held_by: None,
        target_id: Some(target.id.clone()),
        target_version: target.version.clone(),
        target_digest: Some(target.digest()),
    })
}

/// Adds first, then updates, removes and deletes; by username within a kind, so that the
/// same input always gives the same plan.
fn order(actions: &mut [Action]) {
    actions.sort_by(|a, b| (a.action, &a.username, &a.key).cmp(&(b.action, &b.username, &b.key)));
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

fn cap_text(cap: Cap, name: &str, base: u64) -> String {
    match cap {
        Cap::Count(n) => format!("{name} is {n}"),
        Cap::Percent(p) => format!("{name} is {p}% of {base} managed accounts"),
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
            .filter(|a| a.object == ObjectKind::User)
            .filter(|a| a.status == Status::Planned && matches(a))
            .count() as u64
    };
    let removals = planned(is_removal);
    let deactivations = planned(Action::deactivates);
    let removal_noun = if deactivations == 0 {
        format!("{} planned", plural_noun(removals, "remove"))
    } else if deactivations == removals {
        format!("{} planned", plural_noun(removals, "deactivation"))
    } else {
        format!(
            "{} planned ({deactivations} of them deactivation{})",
            plural_noun(removals, "remove"),
            if deactivations == 1 { "" } else { "s" }
        )
    };

    let remove_caps = std::iter::once((Cap::Count(*policy.max_removes), "max-removes")).chain(
        policy
            .max_remove_percent
            .map(|p| (Cap::Percent(p.value), "max-remove-percent")),
    );
    let mut checks: Vec<CapCheck> = remove_caps
        .map(|(cap, name)| CapCheck {
            matches: is_removal,
            count: removals,
            what: removal_noun.clone(),
            cap: Some(cap),
            name,
        })
        .collect();
    for (matches, noun, cap, name) in [
        (
            is_add as fn(&Action) -> bool,
            "add",
            policy.max_adds.map(|c| c.value),
            "max-adds",
        ),
        (
            is_update,
            "update",
            policy.max_updates.map(|c| c.value),
            "max-updates",
        ),
    ] {
        let count = planned(matches);
        checks.push(CapCheck {
            matches,
            count,
            what: format!("{} planned", plural_noun(count, noun)),
            cap,
            name,
        });
    }

    for CapCheck {
        matches,
        count,
        what,
        cap,
        name,
    } in checks
    {
        let Some(cap) = cap.filter(|cap| exceeds(count, *cap, managed)) else {
            continue;
        };
        let reason = format!("{what}, {}", cap_text(cap, name, managed));
        for action in actions
            .iter_mut()
            .filter(|a| a.object == ObjectKind::User)
            .filter(|a| a.status == Status::Planned && matches(a))
        {
            action.status = Status::Held;
            action.held_by = Some(reason.clone());
        }
    }
}

/// One cap and the actions it counts.
struct CapCheck {
    matches: fn(&Action) -> bool,
    count: u64,
    /// "3 removes planned", for the reason of held actions.
    what: String,
    cap: Option<Cap>,
    name: &'static str,
}

/// "1 remove", "3 removes".
fn plural_noun(count: u64, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
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

/// Refuses a source read that looks partial: empty while the target has managed accounts,
/// or shrunk by more than `max-source-shrink-percent` since the last good read. (A read that
/// failed part-way never gets this far: it is an error.) The refusal says what and by how much.
pub fn check_source(read: SourceRead, policy: &Policy) -> Result<(), String> {
    if read.count == 0 && read.managed > 0 {
        return Err(format!(
            "the source returned no users while the target has {} managed accounts; \
             refusing to plan (check the source's base-dn and filter, or use --force)",
            read.managed
        ));
    }
    if let Some(last) = read.last_good
        && last > read.count
    {
        let shrink = (last - read.count) as f64 * 100.0 / last as f64;
        if shrink > *policy.max_source_shrink_percent {
            return Err(format!(
                "the source shrank from {last} to {} users ({shrink:.1}%), more than \
                 max-source-shrink-percent {}; refusing to plan (use --force if this is intended)",
                read.count, policy.max_source_shrink_percent
            ));
        }
    }
    Ok(())
}

pub mod groups;

#[cfg(test)]
mod tests;
