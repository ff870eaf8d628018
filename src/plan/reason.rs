//! Why an action exists (`Reason`) and which cap keeps it back (`Hold`).
//!
//! Both exist only to explain the plan to people: their `Display` is the text the plan has
//! always shown (and the plan file carries), and nothing in apply looks at them. They are
//! parsed back from that text for plans read from a file or from the store; a parse that
//! does not give back exactly the text it read is refused, so what is shown after a round
//! trip is always what was planned.

use std::fmt;

use chrono::{NaiveDateTime, Timelike};

use crate::config::{Cap, Grace};
use crate::plan::Field;

/// One reason for an action. An action has one or more, shown joined with "; ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A user or group in the source that the target does not have.
    NotInTarget,
    /// Added inactive because the source has the account out of service.
    CreatedInactive,
    /// An unmanaged account with the same username is taken over.
    AdoptedAccount,
    /// A managed account whose key no source record has any more, taken over by username.
    Rekeyed,
    /// The source has the account out of service.
    Deactivated,
    /// The source has the account back after roster deactivated it.
    Reactivated,
    /// Someone else deactivated the account: roster leaves it alone.
    InactiveInTarget,
    /// The account, written by an earlier roster without an owner, gets this config's.
    OwnerRecorded,
    /// The source renamed the user, and the target cannot change a username.
    CannotRename,
    /// Fields the source changed, in the order of the changes.
    Changed(Vec<Field>),
    /// A managed account gone from the source, taken out of service (mode remove).
    GoneRemove,
    /// A managed account gone from the source, deleted (mode delete).
    GoneDelete,
    /// A removal not planned, and why (the store's words).
    NotRemoved(String),
    /// The `group-all` group.
    GroupAll,
    /// An unmanaged group with the same name is taken over.
    AdoptedGroup,
    /// The group was renamed in the source.
    Renamed,
    /// A managed group gone from the source (mode delete).
    GroupGone,
    /// A group delete not planned, and why (the store's words).
    NotDeleted(String),
    /// A member of the group (by name) in the source.
    MemberOf(String),
    /// Not a member of the group (by name) in the source.
    NotMemberOf(String),
    /// A membership removal not planned, and why (the store's words).
    NotRemovedFrom { group: String, why: String },
    /// A membership removal not planned because mode add-only takes nothing away.
    AddOnlyKeepsMember(String),
    /// A membership of a user that the plan does not create.
    UserNotCreated,
    /// Changes left out because the target was seen dropping these fields (apply read
    /// them back and they had not stuck).
    TargetIgnores(Vec<Field>),
    /// A removal waiting out `remove-after`: how long the account has been missing.
    Missing(Missing),
}

/// How long a managed account has been missing from the source, against `remove-after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Missing since `since` (UTC, to the minute), removed once `after` has passed.
    Since { since: NaiveDateTime, after: Grace },
    /// Missing in `runs` runs in a row, removed at `after` runs.
    Runs { runs: u64, after: u64 },
}

impl Missing {
    /// Missing since `since`, shown (and kept) to the minute.
    pub fn since(since: chrono::DateTime<chrono::Utc>, after: Grace) -> Missing {
        let since = since.naive_utc();
        let since = since
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(since);
        Missing::Since { since, after }
    }
}

const SINCE_FORMAT: &str = "%Y-%m-%d %H:%M UTC";

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Since { since, after } => write!(
                f,
                "missing since {}, removed after {after}",
                since.format(SINCE_FORMAT)
            ),
            Missing::Runs { runs, after } => {
                write!(f, "missing {runs} of {}", Grace::Runs(*after))
            }
        }
    }
}

impl Missing {
    fn parse(text: &str) -> Option<Missing> {
        if let Some(rest) = text.strip_prefix("missing since ") {
            let (since, after) = rest.split_once(", removed after ")?;
            let since = NaiveDateTime::parse_from_str(since, SINCE_FORMAT).ok()?;
            let after = Grace::parse(after).filter(|g| !matches!(g, Grace::Runs(_)))?;
            return Some(Missing::Since { since, after });
        }
        let (runs, after) = text.strip_prefix("missing ")?.split_once(" of ")?;
        match Grace::parse(after)? {
            Grace::Runs(after) => Some(Missing::Runs {
                runs: runs.parse().ok()?,
                after,
            }),
            Grace::Hours(_) | Grace::Days(_) => None,
        }
    }
}

const ADD_ONLY_KEEPS: &str = "mode add-only only adds memberships (use mode remove)";

/// The reasons whose text has no payload, for parsing.
const FIXED: [Reason; 15] = [
    Reason::NotInTarget,
    Reason::OwnerRecorded,
    Reason::CannotRename,
    Reason::CreatedInactive,
    Reason::AdoptedAccount,
    Reason::Rekeyed,
    Reason::Deactivated,
    Reason::Reactivated,
    Reason::InactiveInTarget,
    Reason::GoneRemove,
    Reason::GoneDelete,
    Reason::GroupAll,
    Reason::AdoptedGroup,
    Reason::Renamed,
    Reason::GroupGone,
];

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotInTarget => f.write_str("in the source, not in the target"),
            Reason::CreatedInactive => {
                f.write_str("out of service in the source: created inactive")
            }
            Reason::AdoptedAccount => {
                f.write_str("adopted: an unmanaged account has the same username")
            }
            Reason::Rekeyed => f.write_str(
                "re-keyed: the account's key is no longer in the source and the username matches",
            ),
            Reason::Deactivated => {
                f.write_str("out of service in the source (disabled or expired): deactivated")
            }
            Reason::Reactivated => f.write_str("back in the source after roster deactivated it"),
            Reason::InactiveInTarget => {
                f.write_str("inactive in the target and not deactivated by roster: left as it is")
            }
            Reason::OwnerRecorded => f.write_str(
                "owner recorded on the target (the account was written by an earlier roster without one)",
            ),
            Reason::CannotRename => f.write_str(
                "renamed in the source, and the target cannot change a username: not applied \
                 (delete the account in the target and the next sync adds it under the new username, \
                 or give the source user its old username back)",
            ),
            Reason::Changed(fields) => {
                f.write_str("changed in the source: ")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                Ok(())
            }
            Reason::GoneRemove => {
                f.write_str("managed account no longer in the source (mode remove)")
            }
            Reason::GoneDelete => {
                f.write_str("managed account no longer in the source (mode delete)")
            }
            Reason::NotRemoved(why) => write!(f, "not removed: {why}"),
            Reason::GroupAll => {
                f.write_str("group-all: the group every synced user is a member of")
            }
            Reason::AdoptedGroup => f.write_str("adopted: an unmanaged group has the same name"),
            Reason::Renamed => f.write_str("renamed in the source"),
            Reason::GroupGone => f.write_str("managed group no longer in the source (mode delete)"),
            Reason::NotDeleted(why) => write!(f, "not deleted: {why}"),
            Reason::MemberOf(group) => write!(f, "member of {group} in the source"),
            Reason::NotMemberOf(group) => write!(f, "not a member of {group} in the source"),
            Reason::NotRemovedFrom { group, why } => write!(f, "not removed from {group}: {why}"),
            Reason::AddOnlyKeepsMember(group) => {
                write!(f, "not removed from {group}: {ADD_ONLY_KEEPS}")
            }
            Reason::UserNotCreated => f.write_str("not added: the plan does not create the user"),
            Reason::TargetIgnores(fields) => {
                f.write_str("the target ignores ")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{field}`")?;
                }
                f.write_str(": not sent, since apply saw it dropped (")?;
                f.write_str(if fields.contains(&Field::Active) {
                    "this provider cannot deactivate accounts this way: use mode delete, or \
                     deprovision them in the provider)"
                } else {
                    "stop mapping it, or fix it in the provider; it is tried again after a week)"
                })
            }
            Reason::Missing(missing) => write!(f, "{missing}"),
        }
    }
}

impl Reason {
    /// The reasons as one text, as the plan shows them.
    pub fn join(reasons: &[Reason]) -> String {
        Joined(reasons).to_string()
    }

    /// The reasons a text shows, or `None` when it is not a text `join` writes.
    /// `field` reads a field name as the contract spells it.
    pub fn parse_all(text: &str, field: &dyn Fn(&str) -> Option<Field>) -> Option<Vec<Reason>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        // A payload (a group's name, the store's words) may itself hold "; ": the pieces are
        // tried shortest first, and the split taken is one under which every piece parses.
        let parts: Vec<&str> = text.split("; ").collect();
        fn from(parts: &[&str], field: &dyn Fn(&str) -> Option<Field>) -> Option<Vec<Reason>> {
            if parts.is_empty() {
                return Some(Vec::new());
            }
            (1..=parts.len()).find_map(|n| {
                let reason = Reason::parse(&parts[..n].join("; "), field)?;
                let mut rest = from(&parts[n..], field)?;
                rest.insert(0, reason);
                Some(rest)
            })
        }
        // Every action of a plan read back goes through here: the texts are compared as
        // they are written, never rendered into strings first.
        let mut reasons = from(&parts, field).filter(|reasons| reads_as(&Joined(reasons), text))?;
        // Built front to back with room to spare: kept exactly, one per action of a plan.
        reasons.shrink_to_fit();
        Some(reasons)
    }

    /// One reason from its text.
    fn parse(text: &str, field: &dyn Fn(&str) -> Option<Field>) -> Option<Reason> {
        if let Some(fixed) = FIXED.iter().find(|r| reads_as(r, text)) {
            return Some(fixed.clone());
        }
        let reason = if let Some(names) = text.strip_prefix("changed in the source: ") {
            let fields: Option<Vec<Field>> = names.split(", ").map(field).collect();
            Reason::Changed(fields?)
        } else if let Some(rest) = text.strip_prefix("not removed from ") {
            match rest
                .strip_suffix(ADD_ONLY_KEEPS)
                .and_then(|g| g.strip_suffix(": "))
            {
                Some(group) => Reason::AddOnlyKeepsMember(group.to_string()),
                // A group name holding ": " is split at its first one: it reads the same.
                None => {
                    let (group, why) = rest.split_once(": ")?;
                    Reason::NotRemovedFrom {
                        group: group.to_string(),
                        why: why.to_string(),
                    }
                }
            }
        } else if let Some(why) = text.strip_prefix("not removed: ") {
            Reason::NotRemoved(why.to_string())
        } else if let Some(why) = text.strip_prefix("not deleted: ") {
            Reason::NotDeleted(why.to_string())
        } else if let Some(rest) = text.strip_prefix("not a member of ") {
            Reason::NotMemberOf(rest.strip_suffix(" in the source")?.to_string())
        } else if let Some(rest) = text.strip_prefix("member of ") {
            Reason::MemberOf(rest.strip_suffix(" in the source")?.to_string())
        } else if reads_as(&Reason::UserNotCreated, text) {
            Reason::UserNotCreated
        } else if let Some(rest) = text.strip_prefix("the target ignores ") {
            let (names, _) = rest.split_once(": not sent, since ")?;
            let fields: Option<Vec<Field>> = names
                .split(", ")
                .map(|n| n.strip_prefix('`')?.strip_suffix('`'))
                .map(|n| n.and_then(field))
                .collect();
            // The rest of the text is rebuilt from the fields; `parse_all` compares.
            Reason::TargetIgnores(fields?)
        } else if let Some(missing) = Missing::parse(text) {
            Reason::Missing(missing)
        } else {
            return None;
        };
        Some(reason)
    }
}

/// Reasons as `Reason::join` writes them.
struct Joined<'a>(&'a [Reason]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, reason) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{reason}")?;
        }
        Ok(())
    }
}

/// Whether `shown` displays as exactly `text`, compared as it is written (no string made).
fn reads_as(shown: &dyn fmt::Display, text: &str) -> bool {
    /// What of `text` is still to match; a mismatch stops the writing.
    struct Rest<'a>(&'a str);
    impl fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.0.strip_prefix(s) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(())
                }
                None => Err(fmt::Error),
            }
        }
    }
    let mut rest = Rest(text);
    fmt::write(&mut rest, format_args!("{shown}")).is_ok() && rest.0.is_empty()
}

/// The user caps, by their policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapName {
    MaxRemoves,
    MaxRemovePercent,
    MaxAdds,
    MaxUpdates,
    MaxDeletes,
    MaxChanges,
}

impl CapName {
    const ALL: [CapName; 6] = [
        CapName::MaxRemoves,
        CapName::MaxRemovePercent,
        CapName::MaxAdds,
        CapName::MaxUpdates,
        CapName::MaxDeletes,
        CapName::MaxChanges,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CapName::MaxRemoves => "max-removes",
            CapName::MaxRemovePercent => "max-remove-percent",
            CapName::MaxAdds => "max-adds",
            CapName::MaxUpdates => "max-updates",
            CapName::MaxDeletes => "max-deletes",
            CapName::MaxChanges => "max-changes",
        }
    }
}

/// What a user cap counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Removes, deletes and deactivations, counted together; how many were deactivations.
    Removals {
        count: u64,
        deactivations: u64,
    },
    Adds(u64),
    Updates(u64),
    /// Deletes on their own (`max-deletes`).
    Deletes(u64),
    /// Every user action (`max-changes`).
    Changes(u64),
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Counted::Removals {
                count,
                deactivations: 0,
            } => write!(f, "{} planned", plural_noun(count, "remove")),
            Counted::Removals {
                count,
                deactivations,
            } if deactivations == count => {
                write!(f, "{} planned", plural_noun(count, "deactivation"))
            }
            Counted::Removals {
                count,
                deactivations,
            } => write!(
                f,
                "{} planned ({deactivations} of them deactivation{})",
                plural_noun(count, "remove"),
                if deactivations == 1 { "" } else { "s" }
            ),
            Counted::Adds(count) => write!(f, "{} planned", plural_noun(count, "add")),
            Counted::Updates(count) => write!(f, "{} planned", plural_noun(count, "update")),
            Counted::Deletes(count) => write!(f, "{} planned", plural_noun(count, "delete")),
            Counted::Changes(count) => write!(f, "{} planned", plural_noun(count, "change")),
        }
    }
}

impl Counted {
    /// How many actions the cap counted.
    pub fn count(self) -> u64 {
        match self {
            Counted::Removals { count, .. }
            | Counted::Adds(count)
            | Counted::Updates(count)
            | Counted::Deletes(count)
            | Counted::Changes(count) => count,
        }
    }

    fn parse(text: &str) -> Option<Counted> {
        let (count, rest) = text.split_once(' ')?;
        let count: u64 = count.parse().ok()?;
        let noun = rest.split(' ').next()?.trim_end_matches('s');
        let counted = match noun {
            "remove" => match rest.split_once(" (") {
                Some((_, of)) => Counted::Removals {
                    count,
                    deactivations: of.split(' ').next()?.parse().ok()?,
                },
                None => Counted::Removals {
                    count,
                    deactivations: 0,
                },
            },
            "deactivation" => Counted::Removals {
                count,
                deactivations: count,
            },
            "add" => Counted::Adds(count),
            "update" => Counted::Updates(count),
            "delete" => Counted::Deletes(count),
            "change" => Counted::Changes(count),
            _ => return None,
        };
        Some(counted)
    }
}

/// A cap as a hold shows it: a count, or a percent of a base (managed accounts, or a
/// group's members).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Count(u64),
    Percent {
        percent: f64,
        of: u64,
    },
    /// A percent of every account in the target (`max-adds`: managed or not).
    PercentOfTarget {
        percent: f64,
        of: u64,
    },
}

impl Limit {
    /// `cap` measured against `base`.
    pub fn new(cap: Cap, base: u64) -> Limit {
        match cap {
            Cap::Count(n) => Limit::Count(n),
            Cap::Percent(percent) => Limit::Percent { percent, of: base },
        }
    }

    /// `cap` measured against the `size` of the whole target.
    pub fn of_target(cap: Cap, size: u64) -> Limit {
        match cap {
            Cap::Count(n) => Limit::Count(n),
            Cap::Percent(percent) => Limit::PercentOfTarget { percent, of: size },
        }
    }

    /// How many actions the limit lets through.
    pub fn allows(self) -> u64 {
        let share = |percent: f64, of: u64| (percent * of as f64 / 100.0).floor() as u64;
        match self {
            Limit::Count(n) => n,
            Limit::Percent { percent, of } | Limit::PercentOfTarget { percent, of } => {
                share(percent, of)
            }
        }
    }
}

/// Which cap keeps an action back, with the counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// A user cap (`max-removes`, ...) that the `counted` actions exceed; a percent is of the
    /// managed accounts.
    Cap {
        counted: Counted,
        name: CapName,
        limit: Limit,
    },
    /// `max-member-removes`, exceeded by `count` removals from the group (by name); a percent
    /// is of the group's members.
    MemberRemoves {
        count: u64,
        group: String,
        limit: Limit,
    },
    /// A membership removal held with its user's removal.
    WithUserRemoval { username: String, by: Box<Hold> },
    /// A membership that waits for its user's add, which is held.
    WaitsForUserAdd { username: String, by: Box<Hold> },
    /// Over a remove or delete cap under `over-cap "drip"`: the `going` accounts missing
    /// longest go in this run, and this one waits.
    Dripped { by: Box<Hold>, going: u64 },
}

const DRIP_INFIX: &str = "; over-cap drip: the ";
const DRIP_SUFFIX: &str = " missing longest go first, the rest wait";

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Cap {
                counted,
                name,
                limit,
            } => match limit {
                Limit::Count(n) => write!(f, "{counted}, {} is {n}", name.as_str()),
                Limit::Percent { percent, of } => write!(
                    f,
                    "{counted}, {} is {percent}% of {of} managed accounts",
                    name.as_str()
                ),
                Limit::PercentOfTarget { percent, of } => write!(
                    f,
                    "{counted}, {} is {percent}% of {of} accounts in the target",
                    name.as_str()
                ),
            },
            Hold::MemberRemoves {
                count,
                group,
                limit,
            } => {
                write!(f, "{count} member removes planned in {group}, ")?;
                match limit {
                    Limit::Count(n) => write!(f, "max-member-removes is {n}"),
                    Limit::Percent { percent, of } | Limit::PercentOfTarget { percent, of } => {
                        write!(f, "max-member-removes is {percent}% of its {of} members")
                    }
                }
            }
            Hold::WithUserRemoval { username, by } => {
                write!(f, "the removal of user {username} is held ({by})")
            }
            Hold::WaitsForUserAdd { username, by } => write!(
                f,
                "waits for the add of user {username}, which is held ({by})"
            ),
            Hold::Dripped { by, going } => write!(f, "{by}{DRIP_INFIX}{going}{DRIP_SUFFIX}"),
        }
    }
}

impl Hold {
    /// A hold from its text, or `None` when it is not a text `Display` writes.
    pub fn parse(text: &str) -> Option<Hold> {
        Hold::parse_loose(text).filter(|hold| hold.to_string() == text)
    }

    fn parse_loose(text: &str) -> Option<Hold> {
        let nested = |rest: &str, infix: &str| -> Option<(String, Box<Hold>)> {
            let (username, by) = rest.split_once(infix)?;
            let by = Hold::parse(by.strip_suffix(')')?)?;
            Some((username.to_string(), Box::new(by)))
        };
        if let Some(rest) = text.strip_prefix("the removal of user ") {
            let (username, by) = nested(rest, " is held (")?;
            return Some(Hold::WithUserRemoval { username, by });
        }
        if let Some(rest) = text.strip_prefix("waits for the add of user ") {
            let (username, by) = nested(rest, ", which is held (")?;
            return Some(Hold::WaitsForUserAdd { username, by });
        }
        if let Some((by, going)) = text
            .strip_suffix(DRIP_SUFFIX)
            .and_then(|t| t.rsplit_once(DRIP_INFIX))
        {
            return Some(Hold::Dripped {
                by: Box::new(Hold::parse(by)?),
                going: going.parse().ok()?,
            });
        }
        if let Some((count, rest)) = text.split_once(" member removes planned in ") {
            let (group, cap) = rest.rsplit_once(", max-member-removes is ")?;
            return Some(Hold::MemberRemoves {
                count: count.parse().ok()?,
                group: group.to_string(),
                limit: parse_limit(cap, "% of its ", " members")?,
            });
        }
        let (counted, rest) = text.split_once(", ")?;
        let (name, cap) = rest.split_once(" is ")?;
        let name = CapName::ALL.into_iter().find(|n| n.as_str() == name)?;
        let limit = match cap.strip_suffix(" accounts in the target") {
            Some(cap) => match parse_limit(cap, "% of ", "")? {
                Limit::Percent { percent, of } => Limit::PercentOfTarget { percent, of },
                Limit::Count(_) | Limit::PercentOfTarget { .. } => return None,
            },
            None => parse_limit(cap, "% of ", " managed accounts")?,
        };
        Some(Hold::Cap {
            counted: Counted::parse(counted)?,
            name,
            limit,
        })
    }
}

/// `10` or `5% of 200 managed accounts` (with the words of the cap in question).
fn parse_limit(text: &str, of: &str, unit: &str) -> Option<Limit> {
    match text.split_once(of) {
        Some((percent, base)) => Some(Limit::Percent {
            percent: percent.parse().ok()?,
            of: base.strip_suffix(unit)?.parse().ok()?,
        }),
        None => Some(Limit::Count(text.parse().ok()?)),
    }
}

/// "1 remove", "3 removes".
fn plural_noun(count: u64, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::contract::user_field;

    fn every_reason() -> Vec<Reason> {
        let mut all = FIXED.to_vec();
        all.extend([
            Reason::Changed(vec![
                Field::Username,
                Field::Name,
                Field::Email,
                Field::Phone,
                Field::Attribute("title".into()),
            ]),
            Reason::NotRemoved("its source record was rejected (see `roster show`)".into()),
            Reason::NotDeleted("a rejected source record has this group's key".into()),
            Reason::MemberOf("Sales; East".into()),
            Reason::NotMemberOf("Ops".into()),
            Reason::NotRemovedFrom {
                group: "Ops".into(),
                why: "its source record was rejected (see `roster show`)".into(),
            },
            Reason::AddOnlyKeepsMember("Sales: EMEA".into()),
            Reason::UserNotCreated,
            Reason::TargetIgnores(vec![Field::Active]),
            Reason::TargetIgnores(vec![Field::Phone, Field::Attribute("title".into())]),
            Reason::Missing(Missing::since(
                chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:59Z")
                    .unwrap()
                    .with_timezone(&chrono::Utc),
                Grace::Hours(72),
            )),
            Reason::Missing(Missing::since(chrono::Utc::now(), Grace::Days(3))),
            Reason::Missing(Missing::Runs { runs: 1, after: 3 }),
        ]);
        all
    }

    #[test]
    fn a_text_reads_as_a_reason_only_when_it_is_all_of_it() {
        let changed = Reason::Changed(vec![Field::Name, Field::Email]);
        assert!(reads_as(&changed, "changed in the source: name, email"));
        assert!(!reads_as(&changed, "changed in the source: name"));
        assert!(!reads_as(
            &changed,
            "changed in the source: name, email, phone"
        ));
        assert!(!reads_as(&changed, ""));
        let both = [Reason::NotInTarget, changed];
        assert!(reads_as(&Joined(&both), &Reason::join(&both)));
        assert_eq!(
            Reason::join(&both),
            format!("{}; {}", both[0], both[1]),
            "joined with \"; \""
        );
        let parsed = Reason::parse_all(&Reason::join(&both), &user_field).expect("reads back");
        assert_eq!(parsed, both);
        assert_eq!(parsed.capacity(), parsed.len(), "kept exactly");
    }

    #[test]
    fn missing_accounts_read_as_people_expect() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:59Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            Missing::since(since, Grace::Hours(72)).to_string(),
            "missing since 2026-12-01 10:00 UTC, removed after 72h"
        );
        assert_eq!(
            Missing::Runs { runs: 1, after: 3 }.to_string(),
            "missing 1 of 3 runs"
        );
        for text in [
            "missing since 2026-12-01, removed after 72h",
            "missing since 2026-12-01 10:00 UTC, removed after 3 runs",
            "missing 1 of 72h",
            "missing one of 3 runs",
        ] {
            assert_eq!(Reason::parse_all(text, &user_field), None, "{text}");
        }
    }

    #[test]
    fn every_reason_reads_back_from_its_text() {
        for reason in every_reason() {
            let text = reason.to_string();
            assert_eq!(
                Reason::parse_all(&text, &user_field),
                Some(vec![reason.clone()]),
                "{text}"
            );
        }
        let joined = vec![Reason::MemberOf("A; B".into()), Reason::UserNotCreated];
        let text = Reason::join(&joined);
        assert_eq!(
            text,
            "member of A; B in the source; not added: the plan does not create the user"
        );
        assert_eq!(Reason::parse_all(&text, &user_field), Some(joined));
        assert_eq!(Reason::parse_all("", &user_field), Some(Vec::new()));
    }

    #[test]
    fn unknown_reason_texts_are_refused() {
        for text in [
            "because",
            "member of Sales",
            "changed in the source: ",
            "in the source",
        ] {
            assert_eq!(Reason::parse_all(text, &user_field), None, "{text}");
        }
    }

    #[test]
    fn holds_read_back_from_their_text() {
        let cap = Hold::Cap {
            counted: Counted::Removals {
                count: 12,
                deactivations: 0,
            },
            name: CapName::MaxRemoves,
            limit: Limit::Count(10),
        };
        let holds = vec![
            cap.clone(),
            Hold::Cap {
                counted: Counted::Removals {
                    count: 2,
                    deactivations: 1,
                },
                name: CapName::MaxRemovePercent,
                limit: Limit::Percent {
                    percent: 2.5,
                    of: 10,
                },
            },
            Hold::Cap {
                counted: Counted::Removals {
                    count: 1,
                    deactivations: 1,
                },
                name: CapName::MaxRemoves,
                limit: Limit::Count(0),
            },
            Hold::Cap {
                counted: Counted::Adds(1),
                name: CapName::MaxAdds,
                limit: Limit::Count(0),
            },
            Hold::Cap {
                counted: Counted::Updates(30),
                name: CapName::MaxUpdates,
                limit: Limit::Percent {
                    percent: 5.0,
                    of: 200,
                },
            },
            Hold::MemberRemoves {
                count: 3,
                group: "Sales, EMEA".into(),
                limit: Limit::Percent {
                    percent: 10.0,
                    of: 20,
                },
            },
            Hold::MemberRemoves {
                count: 2,
                group: "Ops".into(),
                limit: Limit::Count(1),
            },
            Hold::WithUserRemoval {
                username: "carol".into(),
                by: Box::new(cap.clone()),
            },
            Hold::WaitsForUserAdd {
                username: "alice".into(),
                by: Box::new(cap.clone()),
            },
            Hold::Cap {
                counted: Counted::Deletes(4),
                name: CapName::MaxDeletes,
                limit: Limit::Count(0),
            },
            Hold::Cap {
                counted: Counted::Changes(120),
                name: CapName::MaxChanges,
                limit: Limit::Percent {
                    percent: 10.0,
                    of: 1000,
                },
            },
            Hold::Cap {
                counted: Counted::Adds(40),
                name: CapName::MaxAdds,
                limit: Limit::PercentOfTarget {
                    percent: 2.5,
                    of: 0,
                },
            },
            Hold::Dripped {
                by: Box::new(cap.clone()),
                going: 10,
            },
            Hold::WithUserRemoval {
                username: "dave".into(),
                by: Box::new(Hold::Dripped {
                    by: Box::new(cap),
                    going: 10,
                }),
            },
        ];
        for hold in holds {
            let text = hold.to_string();
            assert_eq!(Hold::parse(&text), Some(hold), "{text}");
        }
        assert_eq!(
            Hold::parse("12 removes planned, max-removes is 10").map(|h| h.to_string()),
            Some("12 removes planned, max-removes is 10".to_string())
        );
        assert_eq!(Hold::parse("by a cap"), None);
    }
}
