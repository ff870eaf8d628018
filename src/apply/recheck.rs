//! The policy in force, checked again at apply: every action of the plan, before any target
//! call.
//!
//! A plan is sealed (`plan::seal`), so an edited file never gets this far; this check is the
//! second wall, and the one that also covers a plan the planner got wrong. It asks what the
//! planner asked, from the plan alone: the mode (no delete outside `delete` mode, no remove
//! in `add-only`), the count caps (a removal, add or update over its cap stays held unless
//! the human released it at apply), and ownership (only accounts and groups roster manages,
//! named by their key, are removed, deleted or updated). Percent caps are measured against
//! the managed accounts the plan records when its policy has one; the live ownership of
//! each account is checked against the target by the staleness check (`stale.rs`).

use super::Release;
use crate::config::{Cap, Mode, OverCap, Policy};
use crate::plan::{Action, ActionKind, ActionStatus, ObjectKind, Plan, Subject};
use crate::planner::{Family, exceeds};

/// One action the policy in force does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seq: u32,
    /// What the action does, e.g. `delete user bob`.
    pub action: String,
    /// The rule it breaks, in words.
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "action {} ({}): {}", self.seq, self.action, self.rule)
    }
}

/// Every action of `plan` still to apply that `policy` (the policy in force, with the
/// plan's mode) does not allow, given what the human released (`release`), in plan order.
pub fn recheck(plan: &Plan, policy: &Policy, release: Release) -> Vec<Violation> {
    let mode = *policy.mode;
    let mut violations = Vec::new();
    for action in plan.actions.iter().filter(|a| pending(a)) {
        let mut refuse = |rule: String| {
            violations.push(Violation {
                seq: action.seq,
                action: describe(action),
                rule,
            })
        };
        if let Some(rule) = mode_rule(action, mode) {
            refuse(rule);
        }
        if let Some(rule) = ownership_rule(action) {
            refuse(rule);
        }
    }
    violations.extend(cap_rules(plan, policy, release));
    violations.sort_by_key(|v| v.seq);
    violations
}

/// Anything apply might still send to the target.
fn pending(action: &Action) -> bool {
    !matches!(action.status, ActionStatus::Applied | ActionStatus::Skipped)
}

fn describe(action: &Action) -> String {
    format!(
        "{} {} {}",
        action.action.as_str(),
        action.object().as_str(),
        action.name()
    )
}

fn mode_rule(action: &Action, mode: Mode) -> Option<String> {
    match (action.action, action.object(), mode) {
        (ActionKind::Delete, _, Mode::AddOnly | Mode::Remove) => Some(format!(
            "deletes are allowed only in mode \"delete\", and the mode is {:?}",
            mode.as_str()
        )),
        (ActionKind::Remove, _, Mode::AddOnly) => Some(
            "nothing is removed in mode \"add-only\" (memberships the directory no longer \
             grants are skipped)"
                .to_string(),
        ),
        _ => None,
    }
}

/// Only what roster manages is changed or taken away: an account or group it names by the
/// key it gave it, and members that are its accounts.
fn ownership_rule(action: &Action) -> Option<String> {
    let takes_away = action.action.is_removal() || action.action == ActionKind::Update;
    match &action.subject {
        Subject::User(user) if takes_away && user.key.is_empty() => {
            Some("the account carries no key of roster's: roster does not manage it".into())
        }
        Subject::Group(group) if takes_away && group.key.is_empty() => {
            Some("the group carries no key of roster's: roster does not manage it".into())
        }
        Subject::Membership(m) if action.action == ActionKind::Remove && m.user.key.is_empty() => {
            Some("the member is not an account roster manages".into())
        }
        Subject::User(_) | Subject::Group(_) if takes_away && action.target_id.is_none() => {
            Some("the plan names no target object for it".into())
        }
        _ => None,
    }
}

/// The caps, as the planner applies them to users: over a cap, every action of the family
/// it counts must be held, unless the human released them now (`--allow-<kind> N` releases
/// up to N of that kind beyond the cap, `--force` everything). Under `over-cap "drip"` the
/// planner lets the cap's worth through, which this allows too. `max-changes` counts what is
/// left of every family once the releases are taken off. A plan made with `--initial` has
/// adds no cap counts.
fn cap_rules(plan: &Plan, policy: &Policy, release: Release) -> Vec<Violation> {
    if release.force {
        return Vec::new();
    }
    let users: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| a.object() == ObjectKind::User && a.status == ActionStatus::Planned)
        .filter(|a| !(plan.initial && a.action == ActionKind::Add))
        .collect();
    let mut violations = Vec::new();
    // What max-changes counts: of each family, what the planner let through its own caps
    // and the human did not release whole.
    let mut left = Vec::new();
    let mut left_count = 0;
    let drip = *policy.over_cap == OverCap::Drip;
    for family in Family::ALL {
        let actions: Vec<&Action> = users
            .iter()
            .copied()
            .filter(|a| Family::of(a, policy) == family)
            .collect();
        let n = actions.len() as u64;
        let allowed: u64 = family
            .allowances()
            .iter()
            .map(|&k| release.allowed(k))
            .sum();
        let base = match family {
            // Plans from before target_accounts was recorded measured adds on the managed.
            Family::Adds => plan.target_accounts.or(plan.managed),
            _ => plan.managed,
        };
        let mut through = n;
        let mut broken = None;
        for (cap, name) in family.caps(policy) {
            let Some(limit) = over_cap(through, cap, base, family) else {
                continue;
            };
            // Over the cap, the planner let nothing through (or, dripping, the cap's worth):
            // the rest must have been held, and released now.
            let lets = match (drip && family.drips(), cap, base) {
                (true, Cap::Count(max), _) => max,
                (true, Cap::Percent(p), Some(base)) => (p * base as f64 / 100.0).floor() as u64,
                _ => 0,
            };
            through = through.min(lets);
            if allowed < n - through {
                broken = Some(format!("{} is {limit}", name.as_str()));
                break;
            }
        }
        if let Some(over) = broken {
            let flag = family.allowances()[0].flag();
            violations.extend(actions.iter().map(|a| Violation {
                seq: a.seq,
                action: describe(a),
                rule: format!(
                    "{n} planned where {over}: over a cap they are held until released at \
                     apply ({flag} N or --force)"
                ),
            }));
            continue;
        }
        if allowed < n && through > 0 {
            left_count += through;
            left.extend(actions);
        }
    }
    if let Some(cap) = policy.max_changes.map(|c| c.value) {
        let n = left_count;
        if let Some(limit) = over_cap(n, cap, plan.managed, Family::Updates) {
            violations.extend(left.iter().map(|a| Violation {
                seq: a.seq,
                action: describe(a),
                rule: format!(
                    "{n} changes planned where max-changes is {limit}: over a cap they are \
                     held until released at apply (--allow-<kind> N for each kind, or --force)"
                ),
            }));
        }
    }
    violations
}

/// The limit in words when `n` actions exceed `cap`; a percent cap needs the base it was
/// measured against, and a plan that recorded none had no percent cap to check.
fn over_cap(n: u64, cap: Cap, base: Option<u64>, family: Family) -> Option<String> {
    let over = match (cap, base) {
        (Cap::Percent(_), None) => false,
        (cap, base) => exceeds(n, cap, base.unwrap_or(0)),
    };
    if !over {
        return None;
    }
    Some(match cap {
        Cap::Count(max) => max.to_string(),
        Cap::Percent(p) if family == Family::Adds => {
            format!("{p}% of {} accounts in the target", base.unwrap_or(0))
        }
        Cap::Percent(p) => format!("{p}% of {} managed accounts", base.unwrap_or(0)),
    })
}

/// The refusal message: what was refused and why, for the first few actions.
pub fn message(plan_id: &str, violations: &[Violation]) -> String {
    const SHOWN: usize = 10;
    let mut text = format!(
        "refusing to apply plan {plan_id}: {} action{} break the policy in force; nothing was applied",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations.iter().take(SHOWN) {
        text.push_str(&format!("\n  {v}"));
    }
    if violations.len() > SHOWN {
        text.push_str(&format!("\n  ... and {} more", violations.len() - SHOWN));
    }
    text.push_str("\nmake a new plan with `roster plan`");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FORMAT_VERSION, GroupRef, Summary, UserRef};

    fn user(seq: u32, kind: ActionKind, status: ActionStatus, key: &str) -> Action {
        let mut a = Action::change_user(
            kind,
            UserRef {
                key: key.into(),
                username: format!("u{seq}"),
            },
            Vec::new(),
            Vec::new(),
        );
        if kind != ActionKind::Add {
            a = a.on_target(&format!("id{seq}"), None, None);
        }
        a.seq = seq;
        a.status = status;
        a
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            plan_id: "p".into(),
            created_at: chrono::Utc::now(),
            summary: Summary::default(),
            actions,
            stored: None,
            mode: Mode::AddOnly,
            config_digest: String::new(),
            desired_digest: String::new(),
            forced: Vec::new(),
            target: String::new(),
            max_removes: None,
            managed: None,
            target_accounts: None,
            initial: false,
            notes: Vec::new(),
            remove_means: None,
            delete_means: None,
        }
    }

    fn policy(mode: Mode, max_removes: u64) -> Policy {
        Policy {
            mode: mode.into(),
            max_removes: Cap::Count(max_removes).into(),
            ..Policy::default()
        }
    }

    fn refused(actions: Vec<Action>, policy: &Policy, release: Release) -> Vec<u32> {
        recheck(&plan(actions), policy, release)
            .iter()
            .map(|v| v.seq)
            .collect()
    }

    use ActionKind::{Add, Delete, Remove, Update};
    use ActionStatus::{Applied, Held, Planned, Skipped};

    #[test]
    fn the_mode_decides_what_may_be_taken_away() {
        let none = Release::default();
        let cases: [(Mode, ActionKind, &[u32]); 6] = [
            (Mode::AddOnly, Remove, &[1]),
            (Mode::AddOnly, Delete, &[1]),
            (Mode::Remove, Remove, &[]),
            (Mode::Remove, Delete, &[1]),
            (Mode::Delete, Delete, &[]),
            (Mode::AddOnly, Update, &[]),
        ];
        for (mode, kind, expected) in cases {
            let actions = vec![user(1, kind, Planned, "k1")];
            assert_eq!(
                refused(actions, &policy(mode, 10), none),
                expected,
                "{mode:?} {kind:?}"
            );
        }
        // A held delete is as wrong as a planned one; an applied or skipped one is history.
        let actions = vec![
            user(1, Delete, Held, "k1"),
            user(2, Delete, Applied, "k2"),
            user(3, Delete, Skipped, "k3"),
        ];
        assert_eq!(refused(actions, &policy(Mode::Remove, 10), none), [1]);
    }

    #[test]
    fn over_a_cap_removals_stay_held_unless_released_at_apply() {
        let three = || {
            (1..=3)
                .map(|seq| user(seq, Remove, Planned, &format!("k{seq}")))
                .collect::<Vec<_>>()
        };
        let p = policy(Mode::Remove, 2);
        assert_eq!(refused(three(), &p, Release::default()), [1, 2, 3]);
        let allow = |n| Release {
            allow_adds: None,
            allow_updates: None,
            allow_deletes: None,
            allow_removes: Some(n),
            force: false,
        };
        assert_eq!(refused(three(), &p, allow(3)), Vec::<u32>::new());
        assert_eq!(refused(three(), &p, allow(1)), [1, 2, 3]);
        let force = Release {
            allow_adds: None,
            allow_updates: None,
            allow_deletes: None,
            allow_removes: None,
            force: true,
        };
        assert_eq!(refused(three(), &p, force), Vec::<u32>::new());
        // Held ones are not counted: they are not going anywhere.
        let mut held = three();
        held.iter_mut().for_each(|a| a.status = Held);
        assert_eq!(refused(held, &p, Release::default()), Vec::<u32>::new());
        // Within the cap, nothing to say.
        assert_eq!(
            refused(three(), &policy(Mode::Remove, 3), Release::default()),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn adds_over_max_adds_are_refused_unless_forced() {
        let p = Policy {
            max_adds: Some(Cap::Count(1).into()),
            ..policy(Mode::AddOnly, 0)
        };
        let adds = || vec![user(1, Add, Planned, "k1"), user(2, Add, Planned, "k2")];
        assert_eq!(refused(adds(), &p, Release::default()), [1, 2]);
        let force = Release {
            allow_adds: None,
            allow_updates: None,
            allow_deletes: None,
            allow_removes: None,
            force: true,
        };
        assert_eq!(refused(adds(), &p, force), Vec::<u32>::new());
    }

    #[test]
    fn percent_caps_are_measured_against_the_managed_accounts_the_plan_recorded() {
        // 5 % of 40 managed accounts allows 2 removals; 3 are over it.
        let p = Policy {
            max_remove_percent: Some(5.0.into()),
            ..policy(Mode::Remove, 100)
        };
        let three = || {
            (1..=3)
                .map(|seq| user(seq, Remove, Planned, &format!("k{seq}")))
                .collect::<Vec<_>>()
        };
        let with_base = |managed| {
            let mut plan = plan(three());
            plan.managed = managed;
            recheck(&plan, &p, Release::default())
                .iter()
                .map(|v| v.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(with_base(Some(40)), [1, 2, 3]);
        assert_eq!(with_base(Some(60)), Vec::<u32>::new(), "5 % of 60 is 3");
        let message = recheck(
            &{
                let mut plan = plan(three());
                plan.managed = Some(40);
                plan
            },
            &p,
            Release::default(),
        )[0]
        .to_string();
        assert!(
            message.contains("max-remove-percent is 5% of 40"),
            "{message}"
        );
        // Released at apply with --allow-removes covering them.
        let mut released = plan(three());
        released.managed = Some(40);
        let allow = Release {
            allow_adds: None,
            allow_updates: None,
            allow_deletes: None,
            allow_removes: Some(3),
            force: false,
        };
        assert!(recheck(&released, &p, allow).is_empty());
    }

    #[test]
    fn only_what_roster_manages_is_changed_or_taken_away() {
        let p = policy(Mode::Delete, 10);
        let none = Release::default();
        assert_eq!(refused(vec![user(1, Remove, Planned, "")], &p, none), [1]);
        assert_eq!(refused(vec![user(1, Update, Planned, "")], &p, none), [1]);
        let mut no_id = user(2, Delete, Planned, "k2");
        no_id.target_id = None;
        assert_eq!(refused(vec![no_id], &p, none), [2]);
        let mut leave = Action::membership(
            Remove,
            GroupRef {
                key: "g".into(),
                name: "Sales".into(),
            },
            UserRef {
                key: String::new(),
                username: "hand-made".into(),
            },
            crate::plan::Reason::NotInTarget,
            Vec::new(),
        );
        leave.seq = 3;
        assert_eq!(refused(vec![leave], &p, none), [3]);
    }

    #[test]
    fn the_message_names_each_action_and_its_rule() {
        let violations = recheck(
            &plan(vec![user(4, Delete, Planned, "k4")]),
            &policy(Mode::Remove, 10),
            Release::default(),
        );
        let text = message("p", &violations);
        assert!(
            text.contains("action 4 (delete user u4): deletes are allowed only in mode \"delete\""),
            "{text}"
        );
        assert!(text.contains("nothing was applied"), "{text}");
    }

    fn allow(kind: crate::plan::Allowance, n: u64) -> Release {
        use crate::plan::Allowance::*;
        let mut r = Release::default();
        match kind {
            Adds => r.allow_adds = Some(n),
            Updates => r.allow_updates = Some(n),
            Removes => r.allow_removes = Some(n),
            Deletes => r.allow_deletes = Some(n),
        }
        r
    }

    #[test]
    fn each_kind_over_its_cap_is_refused_unless_its_own_flag_covers_it() {
        use crate::plan::Allowance;
        let cap = |n| Some(Cap::Count(n).into());
        let cases: [(ActionKind, Policy, Allowance); 4] = [
            (
                Add,
                Policy {
                    max_adds: cap(1),
                    ..policy(Mode::AddOnly, 0)
                },
                Allowance::Adds,
            ),
            (
                Update,
                Policy {
                    max_updates: cap(1),
                    ..policy(Mode::AddOnly, 0)
                },
                Allowance::Updates,
            ),
            (Remove, policy(Mode::Remove, 1), Allowance::Removes),
            (
                Delete,
                Policy {
                    max_deletes: cap(1),
                    ..policy(Mode::Delete, 100)
                },
                Allowance::Deletes,
            ),
        ];
        for (kind, p, flag) in cases {
            let two = || vec![user(1, kind, Planned, "k1"), user(2, kind, Planned, "k2")];
            assert_eq!(refused(two(), &p, Release::default()), [1, 2], "{kind:?}");
            assert_eq!(
                refused(two(), &p, allow(flag, 2)),
                Vec::<u32>::new(),
                "{kind:?}"
            );
            assert_eq!(
                refused(two(), &p, allow(flag, 1)),
                [1, 2],
                "{kind:?}: too few"
            );
            for other in Allowance::ALL.into_iter().filter(|&k| k != flag) {
                if (flag, other) == (Allowance::Removes, Allowance::Deletes) {
                    continue;
                }
                assert_eq!(
                    refused(two(), &p, allow(other, 2)),
                    [1, 2],
                    "{kind:?} released by {other:?}"
                );
            }
        }
        // Without max-deletes, deletes are capped (and released) with the removes.
        let shared = policy(Mode::Delete, 1);
        let deletes = || {
            vec![
                user(1, Delete, Planned, "k1"),
                user(2, Delete, Planned, "k2"),
            ]
        };
        assert_eq!(refused(deletes(), &shared, Release::default()), [1, 2]);
        assert!(refused(deletes(), &shared, allow(Allowance::Removes, 2)).is_empty());
    }

    #[test]
    fn max_changes_counts_what_the_releases_leave() {
        use crate::plan::Allowance;
        let p = Policy {
            max_changes: Some(Cap::Count(2).into()),
            ..policy(Mode::Remove, 10)
        };
        let three = || {
            vec![
                user(1, Add, Planned, "k1"),
                user(2, Add, Planned, "k2"),
                user(3, Remove, Planned, "k3"),
            ]
        };
        assert_eq!(refused(three(), &p, Release::default()), [1, 2, 3]);
        assert_eq!(
            refused(three(), &p, allow(Allowance::Adds, 2)),
            Vec::<u32>::new()
        );
        assert_eq!(refused(three(), &p, allow(Allowance::Adds, 1)), [1, 2, 3]);
        // An initial plan's adds are counted by no cap.
        let mut initial = plan(three());
        initial.initial = true;
        assert!(recheck(&initial, &p, Release::default()).is_empty());
    }

    #[test]
    fn a_drip_plan_lets_the_cap_s_worth_through_and_no_more() {
        use crate::config::OverCap;
        use crate::plan::Allowance;
        let p = Policy {
            over_cap: OverCap::Drip.into(),
            ..policy(Mode::Remove, 2)
        };
        let removes = |n: u32| {
            (1..=n)
                .map(|seq| user(seq, Remove, Planned, &format!("k{seq}")))
                .collect::<Vec<_>>()
        };
        assert!(refused(removes(2), &p, Release::default()).is_empty());
        assert_eq!(refused(removes(3), &p, Release::default()), [1, 2, 3]);
        // The 3 held ones released at apply: 2 through the drip and 3 released.
        assert!(refused(removes(5), &p, allow(Allowance::Removes, 3)).is_empty());
        assert_eq!(
            refused(removes(5), &p, allow(Allowance::Removes, 2)),
            [1, 2, 3, 4, 5]
        );
        // Without drip the same release does not cover a plan of 5.
        let hold = policy(Mode::Remove, 2);
        assert_eq!(
            refused(removes(5), &hold, allow(Allowance::Removes, 3)),
            [1, 2, 3, 4, 5]
        );
    }
}
