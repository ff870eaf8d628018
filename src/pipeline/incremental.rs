//! Whether this run may read the source incrementally, and, if not, why.
//!
//! An incremental read patches the desired state of the last good read (accepted, its plan
//! stored) with what changed since its cookie, so it is only as right as that starting
//! point. Every doubt falls back to a complete read, and the plan says why: no good read
//! to start from, no cookie, another source or config, another server behind the address
//! (a cookie is the server's own clock or change log), a snapshot no longer in the store, a
//! cookie that does not parse, one older than `max-incremental-age`, or a complete read due
//! by `complete-every`. `decide` is pure (the caller reads the store, the server and the
//! clock), so each rule has a table test.

use chrono::{DateTime, Utc};

use super::read::{SourceReading, TargetRead, TargetReading};
use crate::config::{Every, ReadPolicy, duration_words};
use crate::store::{LastGoodRead, TargetBase};

/// How this run reads the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Only what changed since `since`, patched onto `base_run`'s desired state.
    Incremental { base_run: i64, since: String },
    /// Everything (with a cookie kept), because of `why`.
    Complete { why: String },
}

/// What the decision looks at, read by the caller.
pub(super) struct Facts<'a> {
    /// The source as described now.
    pub source: &'a str,
    /// The server's identity now.
    pub identity: &'a str,
    pub config_digest: &'a str,
    pub last: Option<&'a LastGoodRead>,
    pub now: DateTime<Utc>,
}

/// Decides how to read, by the rules in the module doc, in that order.
pub(super) fn decide(
    facts: &Facts<'_>,
    policy: &ReadPolicy,
    check_cookie: &dyn Fn(&str) -> Result<(), String>,
) -> Decision {
    let complete = |why: String| Decision::Complete { why };
    let Some(last) = facts.last else {
        return complete("there is no earlier good read to start from".into());
    };
    let run = last.run_id;
    let Some(read) = &last.read else {
        return complete(format!("the last good read (run {run}) kept no cookie"));
    };
    let Some(cookie) = &read.cookie else {
        return complete(format!("the last good read (run {run}) kept no cookie"));
    };
    if read.source != facts.source {
        return complete(format!(
            "the source is {} now, the last good read (run {run}) was of {}",
            facts.source, read.source
        ));
    }
    if last.config_digest != facts.config_digest {
        return complete(format!(
            "the config changed since the last good read (run {run}), so its desired state may not be this config's"
        ));
    }
    if read.server.as_deref() != Some(facts.identity) {
        return complete(format!(
            "the server at {} is not the one the last good read (run {run}) kept a cookie from \
             (another server, or one rebuilt or restored): its changes do not continue from that cookie",
            facts.source
        ));
    }
    if last.snapshot != read.desired {
        return complete(format!(
            "the desired state of the last good read (run {run}) is no longer whole in the state store"
        ));
    }
    if let Err(why) = check_cookie(cookie) {
        return complete(format!(
            "the cookie of the last good read (run {run}) cannot be used: {why}"
        ));
    }
    let age = seconds_between(read.read_at, facts.now);
    let max_age = *policy.max_incremental_age;
    if age > max_age {
        return complete(format!(
            "the cookie of the last good read (run {run}) is {} old, more than max-incremental-age \"{}\"",
            duration_words(age),
            duration_words(max_age)
        ));
    }
    match *policy.complete_every {
        Every::Seconds(every) => match last.last_complete_at {
            None => return complete("no complete read is on record".into()),
            Some(at) if seconds_between(at, facts.now) >= every => {
                return complete(format!(
                    "the last complete read was {} ago; complete-every is \"{}\"",
                    duration_words(seconds_between(at, facts.now)),
                    duration_words(every)
                ));
            }
            Some(_) => {}
        },
        Every::Runs(runs) if last.incremental_since_complete + 1 >= runs => {
            return complete(format!(
                "{} incremental reads since the last complete one; complete-every is \"{}\"",
                last.incremental_since_complete,
                Every::Runs(runs)
            ));
        }
        Every::Runs(_) => {}
    }
    Decision::Incremental {
        base_run: run,
        since: cookie.clone(),
    }
}

/// How far before the base run's read the target's changes are asked for: the target's
/// clock may be behind roster's, and an account changed just before the base listing
/// reached it is then read again, which is harmless (its row is replaced).
pub(super) const TARGET_CLOCK_MARGIN_SECS: i64 = 5 * 60;

/// How the target is read in a run that reads the source as `reading`: only what changed,
/// when the source is read incrementally, the target can list by change and the base
/// run's target snapshot is whole in the store; otherwise whole, with why when a listing
/// by change was possible but the base is missing.
pub(super) fn target_reading(
    reading: &SourceReading<'_>,
    lists_changes: bool,
    base: Option<TargetBase>,
) -> (TargetReading, Option<String>) {
    let SourceReading::Changes { base_run, .. } = *reading else {
        return (TargetReading::Whole, None);
    };
    if !lists_changes {
        return (TargetReading::Whole, None);
    }
    match base {
        Some(base) => (
            TargetReading::Changes {
                base_run,
                since: base.read_at - chrono::Duration::seconds(TARGET_CLOCK_MARGIN_SECS),
            },
            None,
        ),
        None => (
            TargetReading::Whole,
            Some(format!(
                "the target snapshot of run {base_run} is no longer whole in the state store"
            )),
        ),
    }
}

/// The plan's line about how the target was read, when a listing by change was possible.
pub(super) fn target_note(read: &TargetRead, base_missing: Option<&str>) -> Option<String> {
    match (read, base_missing) {
        (TargetRead::WholeInstead { why }, _) => Some(format!("target listed whole: {why}")),
        (TargetRead::Whole, Some(why)) => Some(format!("target listed whole: {why}")),
        (TargetRead::Whole, None) => None,
        (
            TargetRead::Changes {
                base_run,
                since,
                changed,
                accounts,
            },
            _,
        ) => Some(format!(
            "incremental target read: {} (meta.lastModified after {}) laid over the target \
             snapshot of run {base_run}; the target holds {accounts} accounts, as many as the \
             patched snapshot",
            crate::render::plural(*changed, "account changed", "accounts changed"),
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )),
    }
}

/// Whole seconds from `from` to `to`; zero when `to` is earlier (a clock set back).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_seconds().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::At;
    use crate::config::Spanned;
    use crate::store::{ReadKind, SourceReadRecord};
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn last(hours_ago: i64) -> LastGoodRead {
        let at = now() - Duration::hours(hours_ago);
        LastGoodRead {
            run_id: 7,
            config_digest: "cfg".into(),
            read: Some(SourceReadRecord {
                run_id: 7,
                source: "ldap://dir".into(),
                server: Some("ldap://dir base=uuid".into()),
                cookie: Some("ts:1".into()),
                kind: ReadKind::Incremental,
                desired: 3,
                changed: 1,
                deleted: 0,
                read_at: at,
            }),
            snapshot: 3,
            last_complete_at: Some(at - Duration::hours(1)),
            incremental_since_complete: 1,
        }
    }

    fn decide_with(last: Option<&LastGoodRead>, policy: &ReadPolicy, identity: &str) -> Decision {
        let facts = Facts {
            source: "ldap://dir",
            identity,
            config_digest: "cfg",
            last,
            now: now(),
        };
        decide(&facts, policy, &|c| {
            if c == "ts:1" {
                Ok(())
            } else {
                Err("damaged".into())
            }
        })
    }

    fn why(decision: Decision) -> String {
        match decision {
            Decision::Complete { why } => why,
            Decision::Incremental { .. } => panic!("expected a complete read, got {decision:?}"),
        }
    }

    #[test]
    fn a_fresh_cookie_from_the_same_server_and_config_reads_incrementally() {
        let policy = ReadPolicy::default();
        assert_eq!(
            decide_with(Some(&last(1)), &policy, "ldap://dir base=uuid"),
            Decision::Incremental {
                base_run: 7,
                since: "ts:1".into()
            }
        );
    }

    #[test]
    fn every_doubt_falls_back_to_a_complete_read_and_says_why() {
        let policy = ReadPolicy::default();
        let same = "ldap://dir base=uuid";
        let cases: Vec<(LastGoodRead, &str, &str)> = vec![
            (
                LastGoodRead {
                    read: None,
                    ..last(1)
                },
                same,
                "kept no cookie",
            ),
            (
                {
                    let mut l = last(1);
                    if let Some(r) = l.read.as_mut() {
                        r.cookie = None;
                    }
                    l
                },
                same,
                "kept no cookie",
            ),
            (
                {
                    let mut l = last(1);
                    if let Some(r) = l.read.as_mut() {
                        r.source = "ldap://other".into();
                    }
                    l
                },
                same,
                "the last good read (run 7) was of ldap://other",
            ),
            (
                LastGoodRead {
                    config_digest: "old".into(),
                    ..last(1)
                },
                same,
                "the config changed",
            ),
            (
                last(1),
                "ldap://dir base=other-uuid",
                "not the one the last good read",
            ),
            (
                LastGoodRead {
                    snapshot: 0,
                    ..last(1)
                },
                same,
                "no longer whole in the state store",
            ),
            (
                {
                    let mut l = last(1);
                    if let Some(r) = l.read.as_mut() {
                        r.cookie = Some("ts:x".into());
                    }
                    l
                },
                same,
                "cannot be used: damaged",
            ),
            (
                LastGoodRead {
                    last_complete_at: Some(now() - Duration::hours(2)),
                    ..last(24 * 8)
                },
                same,
                "is 8d old, more than max-incremental-age \"7d\"",
            ),
            (
                LastGoodRead {
                    last_complete_at: Some(now() - Duration::hours(25)),
                    ..last(1)
                },
                same,
                "the last complete read was 25h ago; complete-every is \"1d\"",
            ),
            (
                LastGoodRead {
                    last_complete_at: None,
                    ..last(1)
                },
                same,
                "no complete read is on record",
            ),
        ];
        for (last, identity, expected) in cases {
            let why = why(decide_with(Some(&last), &policy, identity));
            assert!(why.contains(expected), "{why:?} should say {expected:?}");
        }
        assert!(why(decide_with(None, &policy, same)).contains("no earlier good read"));
    }

    #[test]
    fn complete_every_n_runs_counts_the_incremental_reads_since_the_last_complete_one() {
        let policy = ReadPolicy {
            complete_every: Spanned::new(Every::Runs(3), At::Default),
            ..ReadPolicy::default()
        };
        let same = "ldap://dir base=uuid";
        let one = LastGoodRead {
            incremental_since_complete: 1,
            ..last(1)
        };
        assert!(matches!(
            decide_with(Some(&one), &policy, same),
            Decision::Incremental { .. }
        ));
        let two = LastGoodRead {
            incremental_since_complete: 2,
            ..last(1)
        };
        assert_eq!(
            why(decide_with(Some(&two), &policy, same)),
            "2 incremental reads since the last complete one; complete-every is \"3 runs\""
        );
    }
}
