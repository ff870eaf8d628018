//! Table-driven tests of the pure planner: one line per rule and edge.

use std::collections::BTreeMap;

use super::*;
use crate::config::{Cap, Mode, Policy};
use crate::plan::ActionStatus as Status;
use crate::plan::Allowance;

/// `super::plan_users`, held to the same plan through the store's draft: every test of the
/// planner is also a test of the sink a plan run uses (`store::Draft`).
fn plan_users(pairs: impl IntoIterator<Item = Pair>, policy: &Policy, managed: u64) -> Planned {
    planned_both_ways(
        pairs.into_iter().collect(),
        policy,
        Context::managed(managed),
    )
}

/// Plans `pairs` into a `Vec` and into the store's draft, and asserts that the draft reads
/// back as the same actions (order, numbers, statuses, holds) with the same summary.
fn planned_both_ways(pairs: Vec<Pair>, policy: &Policy, context: Context) -> Planned {
    let mut listed = Planner::new(policy, context.clone());
    pairs.iter().cloned().for_each(|p| listed.push(p));
    let listed = listed.finish();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::store::Store::open(&dir.path().join("state.db")).expect("store");
    let mut drafted = Planner::with_sink(policy, context, store.draft().expect("draft"));
    pairs.into_iter().for_each(|p| drafted.push(p));
    let drafted = drafted.finish();
    drafted.actions.close().expect("draft written");
    let stored = store.drafted().expect("draft counted");
    let mut read = Vec::new();
    stored
        .source
        .each(&mut |a| {
            read.push(a.clone());
            Ok(())
        })
        .expect("draft read");
    assert_eq!(
        read, listed.actions,
        "the draft holds the plan the list holds"
    );
    assert_eq!(drafted.summary, listed.summary);
    assert_eq!(drafted.missing, listed.missing);
    let tallied: u64 = stored.tally.iter().map(|t| t.count).sum();
    assert_eq!(tallied, listed.actions.len() as u64);
    listed
}

fn desired(key: &str, username: &str) -> DesiredUser {
    DesiredUser {
        key: key.into(),
        username: username.into(),
        name: Some(format!("{username} name")),
        email: Some(format!("{username}@example.com")),
        phones: Vec::new(),
        fields: BTreeMap::new(),
        active: true,
    }
}

fn inactive(key: &str, username: &str) -> DesiredUser {
    DesiredUser {
        active: false,
        ..desired(key, username)
    }
}

fn target(id: &str, key: Option<&str>, username: &str) -> TargetUser {
    TargetUser {
        id: id.into(),
        external_id: key.map(Into::into),
        username: username.into(),
        name: Some(format!("{username} name")),
        email: Some(format!("{username}@example.com")),
        phones: Vec::new(),
        fields: BTreeMap::new(),
        active: true,
        version: Some("W/\"1\"".into()),
        owner: None,
    }
}

fn both(d: DesiredUser, t: TargetUser) -> Pair {
    Pair::Both {
        desired: d,
        target: t,
        matched_by: MatchedBy::Key,
        deactivated_by_roster: false,
    }
}

fn gone(t: TargetUser) -> Pair {
    Pair::TargetOnly {
        target: t,
        protected: None,
    }
}

fn policy(mode: Mode, max_removes: u64) -> Policy {
    Policy {
        mode: mode.into(),
        max_removes: Cap::Count(max_removes).into(),
        ..Policy::default()
    }
}

/// `kind:username:status` per action, for compact assertions.
fn outline(p: &Planned) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| format!("{}:{}:{}", a.action.as_str(), a.name(), a.status.as_str()))
        .collect()
}

fn changes(p: &Planned) -> Vec<(String, Option<String>, Option<String>)> {
    p.actions
        .iter()
        .flat_map(|a| {
            a.changes.iter().map(|c| {
                let text = |v: &Option<Box<str>>| v.as_deref().map(String::from);
                (c.field.to_string(), text(&c.before), text(&c.after))
            })
        })
        .collect()
}

#[test]
fn source_only_is_an_add_with_every_field() {
    let mut d = desired("k1", "alice");
    d.phones = vec!["+1 555 0100".into()];
    d.fields
        .insert("nickName".into(), FieldValue::Set("al".into()));
    d.fields.insert("title".into(), FieldValue::Clear);
    let p = plan_users([Pair::SourceOnly(d)], &Policy::default(), 0);
    assert_eq!(outline(&p), ["add:alice:planned"]);
    let fields: Vec<_> = changes(&p).into_iter().map(|c| c.0).collect();
    // A Clear on an add has nothing to clear.
    assert_eq!(
        fields,
        [
            "externalId",
            "username",
            "name",
            "email",
            "phone",
            "nickName"
        ]
    );
    assert_eq!(p.actions[0].seq, 1);
}

#[test]
fn identical_users_are_unchanged() {
    let p = plan_users(
        [both(
            desired("k1", "alice"),
            target("t1", Some("k1"), "alice"),
        )],
        &Policy::default(),
        1,
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.summary.unchanged, 1);
}

#[test]
fn field_rules() {
    struct Case {
        name: &'static str,
        desired: fn(&mut DesiredUser),
        target: fn(&mut TargetUser),
        expect: &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
    }
    let cases = [
        Case {
            name: "changed email",
            desired: |d| d.email = Some("new@example.com".into()),
            target: |_| {},
            expect: &[("email", Some("alice@example.com"), Some("new@example.com"))],
        },
        Case {
            name: "email differing only in case",
            desired: |d| d.email = Some("ALICE@example.com".into()),
            target: |_| {},
            expect: &[],
        },
        Case {
            name: "missing name leaves the target's",
            desired: |d| d.name = None,
            target: |t| t.name = Some("Other".into()),
            expect: &[],
        },
        Case {
            name: "rename",
            desired: |d| d.username = "alice2".into(),
            target: |_| {},
            expect: &[("username", Some("alice"), Some("alice2"))],
        },
        Case {
            name: "new phone is added",
            desired: |d| d.phones = vec!["+1 555 0100".into()],
            target: |_| {},
            expect: &[("phone", None, Some("+1 555 0100"))],
        },
        Case {
            name: "phone differing only in punctuation",
            desired: |d| d.phones = vec!["+1 (555) 010-0".into()],
            target: |t| t.phones = vec!["+1.555.0100".into()],
            expect: &[],
        },
        Case {
            name: "phones are never removed",
            desired: |d| d.phones = vec![],
            target: |t| t.phones = vec!["+1 555 0100".into()],
            expect: &[],
        },
        Case {
            name: "second phone added, first kept",
            desired: |d| d.phones = vec!["1".into(), "2".into()],
            target: |t| t.phones = vec!["1".into(), "9".into()],
            expect: &[("phone", None, Some("2"))],
        },
        Case {
            name: "alias cleared",
            desired: |d| {
                d.fields.insert("nickName".into(), FieldValue::Clear);
            },
            target: |t| {
                t.fields.insert("nickName".into(), "al".into());
            },
            expect: &[("nickName", Some("al"), None)],
        },
        Case {
            name: "alias clear on empty target is no change",
            desired: |d| {
                d.fields.insert("nickName".into(), FieldValue::Clear);
            },
            target: |_| {},
            expect: &[],
        },
        Case {
            name: "attribute missing leaves target",
            desired: |_| {},
            target: |t| {
                t.fields.insert("title".into(), "CEO".into());
            },
            expect: &[],
        },
        Case {
            name: "attribute set",
            desired: |d| {
                d.fields
                    .insert("title".into(), FieldValue::Set("CTO".into()));
            },
            target: |t| {
                t.fields.insert("title".into(), "CEO".into());
            },
            expect: &[("title", Some("CEO"), Some("CTO"))],
        },
    ];
    for case in cases {
        let mut d = desired("k1", "alice");
        (case.desired)(&mut d);
        let mut t = target("t1", Some("k1"), "alice");
        (case.target)(&mut t);
        let p = plan_users([both(d, t)], &Policy::default(), 1);
        let got = changes(&p);
        let want: Vec<_> = case
            .expect
            .iter()
            .map(|(f, b, a)| (f.to_string(), b.map(Into::into), a.map(Into::into)))
            .collect();
        assert_eq!(got, want, "case: {}", case.name);
        if !want.is_empty() {
            assert_eq!(p.actions.len(), 1, "case: {}", case.name);
            assert_eq!(
                (p.actions[0].action, p.actions[0].status),
                (ActionKind::Update, Status::Planned),
                "case: {}",
                case.name
            );
        }
    }
}

#[test]
fn adoption_by_username_sets_the_external_id() {
    let pair = Pair::Both {
        desired: desired("k1", "alice"),
        target: target("t1", None, "alice"),
        matched_by: MatchedBy::Username,
        deactivated_by_roster: false,
    };
    let p = plan_users([pair], &Policy::default(), 0);
    assert_eq!(outline(&p), ["update:alice:planned"]);
    assert_eq!(
        changes(&p),
        [("externalId".into(), None, Some("k1".into()))]
    );
    assert!(
        p.actions[0].reason().contains("adopted"),
        "{}",
        p.actions[0].reason()
    );
}

#[test]
fn a_username_folded_by_the_target_is_not_a_change() {
    let pair = Pair::Both {
        desired: desired("k1", "Alice.Pond"),
        target: target("t1", Some("k1"), "alice.pond"),
        matched_by: MatchedBy::Key,
        deactivated_by_roster: false,
    };
    let p = plan_users([pair], &Policy::default(), 0);
    assert!(
        changes(&p).iter().all(|(field, _, _)| field != "userName"),
        "{:?}",
        changes(&p)
    );
}

#[test]
fn modes_decide_what_happens_to_managed_accounts_missing_from_the_source() {
    for (mode, want) in [
        (Mode::AddOnly, vec![]),
        (Mode::Remove, vec!["remove:bob:planned".to_string()]),
        (Mode::Delete, vec!["delete:bob:planned".to_string()]),
    ] {
        let p = plan_users(
            [gone(target("t2", Some("k2"), "bob"))],
            &policy(mode, 10),
            1,
        );
        assert_eq!(outline(&p), want, "mode {mode:?}");
    }
}

#[test]
fn unmanaged_accounts_are_never_touched() {
    for mode in [Mode::AddOnly, Mode::Remove, Mode::Delete] {
        let p = plan_users([gone(target("t9", None, "byhand"))], &policy(mode, 100), 0);
        assert!(p.actions.is_empty(), "mode {mode:?}");
        assert_eq!(p.summary.unmanaged, 1);
    }
}

#[test]
fn protected_accounts_are_not_removed() {
    let pair = Pair::TargetOnly {
        target: target("t2", Some("k2"), "bob"),
        protected: Some("rejected".into()),
    };
    let p = plan_users([pair.clone()], &policy(Mode::Delete, 100), 1);
    assert_eq!(outline(&p), ["delete:bob:skipped"]);
    assert!(p.actions[0].reason().contains("rejected"));
    assert!(
        plan_users([pair], &policy(Mode::AddOnly, 100), 1)
            .actions
            .is_empty()
    );
}

#[test]
fn already_inactive_accounts_are_not_removed_again_but_are_deleted() {
    let mut t = target("t2", Some("k2"), "bob");
    t.active = false;
    assert!(
        plan_users([gone(t.clone())], &policy(Mode::Remove, 10), 1)
            .actions
            .is_empty()
    );
    assert_eq!(
        outline(&plan_users([gone(t)], &policy(Mode::Delete, 10), 1)),
        ["delete:bob:planned"]
    );
}

#[test]
fn inactive_accounts_are_left_alone_unless_roster_deactivated_them() {
    let mut d = desired("k1", "alice");
    d.name = Some("Changed".into());
    let mut t = target("t1", Some("k1"), "alice");
    t.active = false;
    let p = plan_users([both(d.clone(), t.clone())], &Policy::default(), 1);
    assert_eq!(outline(&p), ["update:alice:skipped"]);
    let pair = Pair::Both {
        desired: d,
        target: t,
        matched_by: MatchedBy::Key,
        deactivated_by_roster: true,
    };
    let p = plan_users([pair], &Policy::default(), 1);
    assert_eq!(outline(&p), ["update:alice:planned"]);
    assert!(changes(&p).contains(&("active".into(), Some("false".into()), Some("true".into()))));
}

#[test]
fn remove_caps() {
    // (removes planned, managed accounts, max-removes, max-remove-percent, held?)
    let cases: &[(usize, u64, u64, Option<f64>, bool)] = &[
        (0, 10, 0, None, false),
        (1, 10, 0, None, true),          // default cap 0 holds any remove
        (3, 10, 3, None, false),         // exactly at the cap
        (4, 10, 3, None, true),          // one over
        (5, 100, 100, Some(5.0), false), // exactly 5 %
        (6, 100, 100, Some(5.0), true),  // 6 % > 5 %
        (1, 30, 100, Some(3.0), true),   // 3.33 % > 3 %: no rounding down
        (1, 34, 100, Some(3.0), false),  // 2.94 %
    ];
    for &(removes, managed, max, percent, held) in cases {
        let pairs: Vec<Pair> = (0..removes)
            .map(|i| {
                gone(target(
                    &format!("t{i}"),
                    Some(&format!("k{i}")),
                    &format!("u{i}"),
                ))
            })
            .collect();
        let pol = Policy {
            mode: Mode::Remove.into(),
            max_removes: Cap::Count(max).into(),
            max_remove_percent: percent.map(Into::into),
            ..Policy::default()
        };
        let p = plan_users(pairs, &pol, managed);
        let statuses: HashSet<Status> = p.actions.iter().map(|a| a.status).collect();
        let want = if removes == 0 {
            HashSet::new()
        } else {
            HashSet::from([if held { Status::Held } else { Status::Planned }])
        };
        assert_eq!(
            statuses, want,
            "removes {removes} managed {managed} max {max} percent {percent:?}"
        );
        if held {
            let why = held_by(&p.actions[0]).unwrap_or_default();
            let noun = if removes == 1 { "remove" } else { "removes" };
            assert!(why.contains(&format!("{removes} {noun} planned")), "{why}");
        }
    }
}

#[test]
fn caps_hold_only_their_kind() {
    let pairs = vec![
        Pair::SourceOnly(desired("k1", "alice")),
        gone(target("t2", Some("k2"), "bob")),
        gone(target("t3", Some("k3"), "carol")),
    ];
    let p = plan_users(pairs, &policy(Mode::Delete, 1), 3);
    assert_eq!(
        outline(&p),
        ["add:alice:planned", "delete:bob:held", "delete:carol:held"]
    );
    assert_eq!(
        held_by(&p.actions[1]).as_deref(),
        Some("2 removes planned, max-removes is 1")
    );
}

#[test]
fn add_and_update_caps() {
    let pairs = vec![
        Pair::SourceOnly(desired("k1", "a")),
        Pair::SourceOnly(desired("k2", "b")),
    ];
    let pol = Policy {
        max_adds: Some(Cap::Count(1).into()),
        ..Policy::default()
    };
    assert_eq!(
        outline(&plan_users(pairs.clone(), &pol, 0)),
        ["add:a:held", "add:b:held"]
    );
    let pol = Policy {
        max_adds: Some(Cap::Count(2).into()),
        ..Policy::default()
    };
    assert_eq!(
        outline(&plan_users(pairs, &pol, 0)),
        ["add:a:planned", "add:b:planned"]
    );
    let mut d = desired("k1", "a");
    d.name = Some("New".into());
    let pol = Policy {
        max_updates: Some(Cap::Percent(10.0).into()),
        ..Policy::default()
    };
    assert_eq!(
        outline(&plan_users(
            [both(d, target("t1", Some("k1"), "a"))],
            &pol,
            5
        )),
        ["update:a:held"]
    );
}

#[test]
fn actions_are_ordered_and_numbered() {
    let pairs = vec![
        gone(target("t3", Some("k3"), "zed")),
        Pair::SourceOnly(desired("k2", "bob")),
        Pair::SourceOnly(desired("k1", "amy")),
    ];
    let p = plan_users(pairs, &policy(Mode::Remove, 5), 1);
    assert_eq!(
        outline(&p),
        ["add:amy:planned", "add:bob:planned", "remove:zed:planned"]
    );
    assert_eq!(
        p.actions.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn source_completeness() {
    let pol = Policy::default(); // max-source-shrink-percent 20
    let read = |count, last_good, managed| SourceRead {
        count,
        last_good,
        managed,
    };
    assert!(
        check_source(read(0, None, 0), &pol).is_ok(),
        "empty source, empty target"
    );
    let err = check_source(read(0, None, 5), &pol)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no users") && err.contains("5 managed"),
        "{err}"
    );
    assert!(
        check_source(read(80, Some(100), 100), &pol).is_ok(),
        "shrink exactly 20 %"
    );
    assert!(
        check_source(read(79, Some(100), 100), &pol).is_err(),
        "shrink 21 %"
    );
    assert!(
        check_source(read(120, Some(100), 100), &pol).is_ok(),
        "growth"
    );
    let strict = Policy {
        max_source_shrink_percent: 0.0.into(),
        ..Policy::default()
    };
    assert!(check_source(read(99, Some(100), 100), &strict).is_err());
}

/// Accounts the source keeps but has out of service (`disabled "inactive"`): one line per
/// (desired active?, target active?, deactivated by roster?, mode) and what is planned.
#[test]
fn out_of_service_accounts_are_synced_inactive() {
    let t_active = || target("t1", Some("k1"), "alice");
    let t_inactive = || TargetUser {
        active: false,
        ..t_active()
    };
    let pair = |d: DesiredUser, t: TargetUser, by_roster: bool| Pair::Both {
        desired: d,
        target: t,
        matched_by: MatchedBy::Key,
        deactivated_by_roster: by_roster,
    };
    type Case = (
        &'static str,
        Pair,
        Mode,
        &'static [&'static str],
        &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
    );
    let cases: Vec<Case> = vec![
        (
            "active in the target: deactivated, in add-only mode too",
            pair(inactive("k1", "alice"), t_active(), false),
            Mode::AddOnly,
            &["update:alice:planned"],
            &[("active", Some("true"), Some("false"))],
        ),
        (
            "deactivated in remove mode the same way (an update, not a remove)",
            pair(inactive("k1", "alice"), t_active(), false),
            Mode::Remove,
            &["update:alice:planned"],
            &[("active", Some("true"), Some("false"))],
        ),
        (
            "not in the target: created inactive",
            Pair::SourceOnly(inactive("k1", "alice")),
            Mode::AddOnly,
            &["add:alice:planned"],
            &[
                ("externalId", None, Some("k1")),
                ("username", None, Some("alice")),
                ("name", None, Some("alice name")),
                ("email", None, Some("alice@example.com")),
                ("active", None, Some("false")),
            ],
        ),
        (
            "already inactive because roster deactivated it: nothing to do",
            pair(inactive("k1", "alice"), t_inactive(), true),
            Mode::AddOnly,
            &[],
            &[],
        ),
        (
            "inactive by someone else, and out of service in the source: nothing to do",
            pair(inactive("k1", "alice"), t_inactive(), false),
            Mode::AddOnly,
            &[],
            &[],
        ),
        (
            "in service again after roster deactivated it: reactivated",
            pair(desired("k1", "alice"), t_inactive(), true),
            Mode::AddOnly,
            &["update:alice:planned"],
            &[("active", Some("false"), Some("true"))],
        ),
        (
            "in service, deactivated by someone else: left alone as before",
            pair(
                DesiredUser {
                    name: Some("New".into()),
                    ..desired("k1", "alice")
                },
                t_inactive(),
                false,
            ),
            Mode::AddOnly,
            &["update:alice:skipped"],
            &[("name", Some("alice name"), Some("New"))],
        ),
    ];
    for (what, pair, mode, want, want_changes) in cases {
        let p = plan_users([pair], &policy(mode, 10), 1);
        assert_eq!(outline(&p), *want, "{what}");
        let want_changes: Vec<(String, Option<String>, Option<String>)> = want_changes
            .iter()
            .map(|(f, b, a)| (f.to_string(), b.map(Into::into), a.map(Into::into)))
            .collect();
        assert_eq!(changes(&p), want_changes, "{what}");
    }
}

#[test]
fn a_deactivation_with_field_changes_is_one_update() {
    let d = DesiredUser {
        name: Some("Alice L".into()),
        ..inactive("k1", "alice")
    };
    let p = plan_users(
        [both(d, target("t1", Some("k1"), "alice"))],
        &policy(Mode::AddOnly, 10),
        1,
    );
    assert_eq!(outline(&p), ["update:alice:planned"]);
    assert_eq!(
        p.actions[0].reason(),
        "out of service in the source (disabled or expired): deactivated; changed in the source: name"
    );
    assert!(p.actions[0].deactivates());
}

#[test]
fn deactivations_count_toward_the_remove_caps_and_are_held_with_the_removes() {
    // Two deactivations and one remove against max-removes 2: all three held, by one reason.
    let pairs = vec![
        both(inactive("k1", "alice"), target("t1", Some("k1"), "alice")),
        both(inactive("k2", "bob"), target("t2", Some("k2"), "bob")),
        gone(target("t3", Some("k3"), "carol")),
        Pair::SourceOnly(inactive("k4", "dave")),
        both(
            DesiredUser {
                name: Some("Erin E".into()),
                ..desired("k5", "erin")
            },
            target("t5", Some("k5"), "erin"),
        ),
    ];
    let p = plan_users(pairs, &policy(Mode::Remove, 2), 4);
    assert_eq!(
        outline(&p),
        [
            "add:dave:planned",
            "update:alice:held",
            "update:bob:held",
            "update:erin:planned",
            "remove:carol:held",
        ],
        "an inactive add and an ordinary update are not removals"
    );
    for a in p.actions.iter().filter(|a| a.status == Status::Held) {
        assert_eq!(
            held_by(a).as_deref(),
            Some("3 removes planned (2 of them deactivations), max-removes is 2"),
            "{}",
            a.name()
        );
    }

    // In add-only mode the deactivations alone meet the percent cap.
    let pairs = vec![
        both(inactive("k1", "alice"), target("t1", Some("k1"), "alice")),
        both(inactive("k2", "bob"), target("t2", Some("k2"), "bob")),
    ];
    let pol = Policy {
        max_removes: Cap::Count(100).into(),
        max_remove_percent: Some(10.0.into()),
        ..Policy::default()
    };
    let p = plan_users(pairs, &pol, 10);
    assert_eq!(outline(&p), ["update:alice:held", "update:bob:held"]);
    assert_eq!(
        held_by(&p.actions[0]).as_deref(),
        Some("2 deactivations planned, max-remove-percent is 10% of 10 managed accounts")
    );

    // Within the caps they go ahead, and they do not count toward max-updates.
    let pairs = vec![both(
        inactive("k1", "alice"),
        target("t1", Some("k1"), "alice"),
    )];
    let pol = Policy {
        max_removes: Cap::Count(1).into(),
        max_updates: Some(Cap::Count(0).into()),
        ..Policy::default()
    };
    let p = plan_users(pairs, &pol, 10);
    assert_eq!(outline(&p), ["update:alice:planned"]);
}

/// The text of what holds an action, as the plan shows it.
fn held_by(a: &Action) -> Option<String> {
    a.hold.as_ref().map(ToString::to_string)
}

mod thresholds_per_kind {
    use super::*;
    use crate::config::{Grace, OverCap};

    fn adds(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair::SourceOnly(desired(&format!("a{i}"), &format!("add{i:02}"))))
            .collect()
    }

    fn gones(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| {
                gone(target(
                    &format!("t{i}"),
                    Some(&format!("g{i}")),
                    &format!("gone{i:02}"),
                ))
            })
            .collect()
    }

    fn updates(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| {
                let mut t = target(
                    &format!("u{i}"),
                    Some(&format!("u{i}")),
                    &format!("upd{i:02}"),
                );
                t.name = Some("old".into());
                both(desired(&format!("u{i}"), &format!("upd{i:02}")), t)
            })
            .collect()
    }

    fn statuses(p: &Planned, kind: ActionKind) -> Vec<Status> {
        let mut s: Vec<Status> = p
            .actions
            .iter()
            .filter(|a| a.action == kind)
            .map(|a| a.status)
            .collect();
        s.dedup();
        s
    }

    fn context(managed: u64, target_accounts: u64) -> Context {
        Context {
            managed,
            target_accounts,
            ..Context::default()
        }
    }

    fn run(pairs: Vec<Pair>, policy: &Policy, context: Context) -> Planned {
        planned_both_ways(pairs, policy, context)
    }

    #[test]
    fn each_kind_is_held_over_its_own_cap_and_says_which_and_how_many() {
        let cap = |n| Some(Cap::Count(n).into());
        // (policy, pairs, kind held, held_by of the first held action)
        let cases: Vec<(Policy, Vec<Pair>, ActionKind, &str)> = vec![
            (
                Policy {
                    max_adds: cap(2),
                    ..policy(Mode::AddOnly, 0)
                },
                adds(3),
                ActionKind::Add,
                // The add of another kind's case is one more add.
                "4 adds planned, max-adds is 2",
            ),
            (
                Policy {
                    max_updates: cap(1),
                    ..policy(Mode::AddOnly, 0)
                },
                updates(2),
                ActionKind::Update,
                "2 updates planned, max-updates is 1",
            ),
            (
                Policy {
                    max_deletes: cap(1),
                    ..policy(Mode::Delete, 100)
                },
                gones(2),
                ActionKind::Delete,
                "2 deletes planned, max-deletes is 1",
            ),
            (
                policy(Mode::Remove, 1),
                gones(2),
                ActionKind::Remove,
                "2 removes planned, max-removes is 1",
            ),
        ];
        for (policy, pairs, kind, why) in cases {
            let mut pairs = pairs;
            // Some of every other kind, within their caps, to show they are not held.
            pairs.extend(adds(1).into_iter().map(|p| match p {
                Pair::SourceOnly(mut d) => {
                    d.key = "other".into();
                    d.username = "zz-other".into();
                    Pair::SourceOnly(d)
                }
                p => p,
            }));
            let p = run(pairs, &policy, context(100, 100));
            assert_eq!(statuses(&p, kind), [Status::Held], "{why}");
            let held = p
                .actions
                .iter()
                .find(|a| a.action == kind)
                .and_then(held_by);
            assert_eq!(held.as_deref(), Some(why));
            if kind != ActionKind::Add {
                assert_eq!(statuses(&p, ActionKind::Add), [Status::Planned], "{why}");
            }
        }
    }

    #[test]
    fn without_max_deletes_max_removes_caps_deletes_as_it_always_has() {
        let p = run(gones(3), &policy(Mode::Delete, 2), context(100, 100));
        assert_eq!(statuses(&p, ActionKind::Delete), [Status::Held]);
        assert_eq!(
            held_by(&p.actions[0]).as_deref(),
            Some("3 removes planned, max-removes is 2")
        );
        // With max-deletes, deletes are counted on their own.
        let own = Policy {
            max_deletes: Some(Cap::Count(3).into()),
            ..policy(Mode::Delete, 2)
        };
        let p = run(gones(3), &own, context(100, 100));
        assert_eq!(statuses(&p, ActionKind::Delete), [Status::Planned]);
    }

    #[test]
    fn percents_are_of_the_managed_accounts_and_adds_of_the_target() {
        // 10 % of 20 accounts in the target allows 2 adds, whatever the managed count.
        let pol = Policy {
            max_adds: Some(Cap::Percent(10.0).into()),
            ..policy(Mode::AddOnly, 0)
        };
        let p = run(adds(2), &pol, context(0, 20));
        assert_eq!(statuses(&p, ActionKind::Add), [Status::Planned]);
        let p = run(adds(3), &pol, context(100, 20));
        assert_eq!(
            held_by(&p.actions[0]).as_deref(),
            Some("3 adds planned, max-adds is 10% of 20 accounts in the target")
        );
        // An empty target: a percent of nothing holds every add (the pipeline notes it).
        let p = run(adds(1), &pol, context(0, 0));
        assert_eq!(statuses(&p, ActionKind::Add), [Status::Held]);
        // --initial: no cap counts the adds, not even max-changes.
        let initial = Context {
            initial: true,
            ..context(0, 0)
        };
        let pol = Policy {
            max_changes: Some(Cap::Count(0).into()),
            ..pol
        };
        let p = run(adds(3), &pol, initial);
        assert_eq!(statuses(&p, ActionKind::Add), [Status::Planned]);
        // max-removes as a percent: 5 % of 40 managed accounts allows 2.
        let pct = Policy {
            max_removes: Cap::Percent(5.0).into(),
            ..policy(Mode::Remove, 0)
        };
        assert_eq!(
            statuses(&run(gones(2), &pct, context(40, 40)), ActionKind::Remove),
            [Status::Planned]
        );
        assert_eq!(
            statuses(&run(gones(3), &pct, context(40, 40)), ActionKind::Remove),
            [Status::Held]
        );
    }

    #[test]
    fn max_changes_holds_everything_still_planned_when_all_kinds_together_exceed_it() {
        let pol = Policy {
            max_changes: Some(Cap::Count(3).into()),
            ..policy(Mode::Remove, 10)
        };
        let mut pairs = adds(2);
        pairs.extend(updates(1));
        pairs.extend(gones(1));
        let p = run(pairs.clone(), &pol, context(10, 10));
        assert!(p.actions.iter().all(|a| a.status == Status::Held));
        assert_eq!(
            held_by(&p.actions[0]).as_deref(),
            Some("4 changes planned, max-changes is 3")
        );
        assert_eq!(p.actions[3].released_by(), Some(Allowance::Removes));
        assert_eq!(p.actions[0].released_by(), Some(Allowance::Adds));
        // What a kind's own cap holds is not counted again.
        let pol = Policy {
            max_adds: Some(Cap::Count(1).into()),
            ..pol
        };
        let p = run(pairs, &pol, context(10, 10));
        assert_eq!(statuses(&p, ActionKind::Add), [Status::Held]);
        assert_eq!(statuses(&p, ActionKind::Update), [Status::Planned]);
        assert_eq!(statuses(&p, ActionKind::Remove), [Status::Planned]);
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn marked(since: &str, runs: u64) -> MissingMark {
        MissingMark {
            since: at(since),
            runs,
        }
    }

    #[test]
    fn remove_after_hours_waits_from_the_first_run_that_missed_the_account() {
        let pol = Policy {
            remove_after: Some(Grace::Hours(72).into()),
            ..policy(Mode::Remove, 10)
        };
        let now = at("2026-12-04T09:59:00Z");
        let marks = HashMap::from([
            ("g0".to_string(), marked("2026-12-01T10:00:00Z", 3)),
            ("g1".to_string(), marked("2026-12-01T09:59:00Z", 3)),
        ]);
        let p = run(
            gones(3),
            &pol,
            Context {
                now,
                marks,
                ..context(10, 10)
            },
        );
        assert_eq!(
            outline(&p),
            [
                "remove:gone00:skipped",
                "remove:gone01:planned",
                "remove:gone02:skipped"
            ]
        );
        assert_eq!(
            p.actions[0].reason(),
            "managed account no longer in the source (mode remove); \
             missing since 2026-12-01 10:00 UTC, removed after 72h"
        );
        assert_eq!(
            p.actions[2].reason(),
            "managed account no longer in the source (mode remove); \
             missing since 2026-12-04 09:59 UTC, removed after 72h",
            "a new mark starts now"
        );
        // Every missing account's mark is handed back, one run more; gone02's is new.
        let mut missing = p.missing.clone();
        missing.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            missing,
            [
                ("g0".into(), marked("2026-12-01T10:00:00Z", 4)),
                ("g1".into(), marked("2026-12-01T09:59:00Z", 4)),
                (
                    "g2".into(),
                    MissingMark {
                        since: now,
                        runs: 1
                    }
                ),
            ]
        );
    }

    #[test]
    fn remove_after_runs_counts_this_run_and_an_account_back_is_no_longer_marked() {
        let pol = Policy {
            remove_after: Some(Grace::Runs(3).into()),
            ..policy(Mode::Delete, 10)
        };
        let marks = HashMap::from([
            ("g0".to_string(), marked("2026-12-01T10:00:00Z", 2)),
            ("g1".to_string(), marked("2026-12-01T10:00:00Z", 1)),
            // Back in the source: it pairs, and gets no mark.
            ("u0".to_string(), marked("2026-12-01T10:00:00Z", 2)),
        ]);
        let mut pairs = gones(2);
        pairs.extend(updates(1));
        let p = run(
            pairs,
            &pol,
            Context {
                marks,
                ..context(10, 10)
            },
        );
        assert_eq!(
            outline(&p),
            [
                "update:upd00:planned",
                "delete:gone00:planned",
                "delete:gone01:skipped"
            ]
        );
        assert!(p.actions[2].reason().ends_with("; missing 2 of 3 runs"));
        assert!(p.missing.iter().all(|(key, _)| key != "u0"));
        assert_eq!(p.summary.skipped, 0, "the summary is recounted by the plan");
    }

    #[test]
    fn drip_lets_the_cap_s_worth_go_missing_longest_first_and_holds_the_rest() {
        let pol = Policy {
            over_cap: OverCap::Drip.into(),
            ..policy(Mode::Remove, 2)
        };
        let marks = HashMap::from([
            ("g3".to_string(), marked("2026-11-01T10:00:00Z", 9)),
            ("g1".to_string(), marked("2026-11-15T10:00:00Z", 5)),
            ("g0".to_string(), marked("2026-11-20T10:00:00Z", 2)),
        ]);
        let p = run(
            gones(5),
            &pol,
            Context {
                now: at("2026-12-01T10:00:00Z"),
                marks,
                ..context(100, 100)
            },
        );
        let going: Vec<&str> = p
            .actions
            .iter()
            .filter(|a| a.status == Status::Planned)
            .map(|a| a.name())
            .collect();
        assert_eq!(going, ["gone01", "gone03"]);
        let held: Vec<&Action> = p
            .actions
            .iter()
            .filter(|a| a.status == Status::Held)
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(
            held_by(held[0]).as_deref(),
            Some(
                "5 removes planned, max-removes is 2; over-cap drip: the 2 missing longest go \
                 first, the rest wait"
            )
        );
        assert_eq!(held[0].released_by(), Some(Allowance::Removes));
        // A percent cap drips its share: 2 % of 100 is 2.
        let pct = Policy {
            max_remove_percent: Some(2.0.into()),
            ..Policy {
                over_cap: OverCap::Drip.into(),
                ..policy(Mode::Remove, 100)
            }
        };
        let p = run(gones(5), &pct, context(100, 100));
        assert_eq!(
            p.actions
                .iter()
                .filter(|a| a.status == Status::Planned)
                .count(),
            2
        );
        // Adds and updates over their caps are held whole, drip or not.
        let adds_capped = Policy {
            max_adds: Some(Cap::Count(1).into()),
            ..pol
        };
        let p = run(adds(3), &adds_capped, context(100, 100));
        assert_eq!(statuses(&p, ActionKind::Add), [Status::Held]);
    }
}

#[test]
fn an_account_without_an_owner_gets_this_configs_and_one_with_it_is_left_alone() {
    let policy = Policy::default();
    let plan = |t: TargetUser| {
        let mut planner = Planner::new(
            &policy,
            Context {
                managed: 2,
                ..Context::default()
            },
        )
        .recording_owner("employees");
        planner.push(both(desired("k1", "alice"), t));
        planner.finish()
    };
    // Written by an earlier roster: a bare key, no owner.
    let planned = plan(target("t1", Some("k1"), "alice"));
    assert_eq!(planned.actions.len(), 1);
    let action = &planned.actions[0];
    assert_eq!(action.action, ActionKind::Update);
    assert_eq!(
        action.changes,
        [Change::new(Field::Owner, None, Some("employees"))]
    );
    assert_eq!(action.reasons, [Reason::OwnerRecorded]);

    // Already the config's: nothing to do.
    let owned = TargetUser {
        owner: Some("employees".into()),
        ..target("t1", Some("k1"), "alice")
    };
    assert!(plan(owned).actions.is_empty());

    // Someone else deactivated it: not roster's to touch, not even to stamp.
    let inactive = TargetUser {
        active: false,
        ..target("t1", Some("k1"), "alice")
    };
    assert!(plan(inactive).actions.is_empty());

    // A target that keeps no owners (no recording_owner): no stamp.
    let mut planner = Planner::new(
        &policy,
        Context {
            managed: 2,
            ..Context::default()
        },
    );
    planner.push(both(
        desired("k1", "alice"),
        target("t1", Some("k1"), "alice"),
    ));
    assert!(planner.finish().actions.is_empty());
}

#[test]
fn a_rename_the_target_cannot_make_is_skipped_with_what_to_do() {
    let policy = Policy::default();
    let renamed = DesiredUser {
        email: Some("robert@example.com".into()),
        ..desired("k1", "robert")
    };
    let mut planner = Planner::new(
        &policy,
        Context {
            managed: 2,
            ..Context::default()
        },
    )
    .without_renames();
    planner.push(both(renamed.clone(), target("t1", Some("k1"), "bob")));
    // A plain email change on a target without renames is planned as usual.
    planner.push(both(
        DesiredUser {
            email: Some("new@example.com".into()),
            ..desired("k2", "carol")
        },
        target("t2", Some("k2"), "carol"),
    ));
    let planned = planner.finish();
    let by_name = |name: &str| {
        planned
            .actions
            .iter()
            .find(|a| a.name() == name)
            .expect("an action")
    };
    let rename = by_name("robert");
    assert_eq!(rename.status, Status::Skipped);
    assert_eq!(rename.reasons, [Reason::CannotRename]);
    assert!(
        Reason::CannotRename
            .to_string()
            .contains("delete the account in the target")
    );
    assert_eq!(by_name("carol").status, Status::Planned);

    // Where the target renames, the same pair is a planned update.
    let mut planner = Planner::new(
        &policy,
        Context {
            managed: 2,
            ..Context::default()
        },
    );
    planner.push(both(renamed, target("t1", Some("k1"), "bob")));
    assert_eq!(planner.finish().actions[0].status, Status::Planned);
}
