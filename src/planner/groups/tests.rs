//! Table-driven tests of the group planner: one line per rule and edge.

use super::*;
use crate::config::{Cap, Mode, Policy};
use crate::model::MatchedBy;
use crate::plan::ActionStatus as Status;
use crate::plan::{CapName, Counted};
use crate::planner::Planned;

fn desired(key: &str, name: &str) -> DesiredGroup {
    DesiredGroup {
        key: key.into(),
        name: name.into(),
        all_users: false,
    }
}

fn target(id: &str, key: Option<&str>, name: &str, members: u64) -> TargetGroupState {
    TargetGroupState {
        id: id.into(),
        external_id: key.map(Into::into),
        name: name.into(),
        version: Some("W/\"1\"".into()),
        members,
    }
}

fn both(d: DesiredGroup, t: TargetGroupState) -> GroupPair {
    GroupPair::Both {
        desired: d,
        target: t,
        matched_by: MatchedBy::Key,
    }
}

/// A membership of `user` in group `g` (key `k-g`, id `t-g`), managed on both sides.
fn member(change: MemberChange, g: &str, user: &str) -> MemberPair {
    MemberPair {
        change,
        group_key: format!("k-{g}"),
        group_name: g.into(),
        group_id: Some(format!("t-{g}")),
        group_managed: true,
        user_key: Some(format!("k-{user}")),
        username: user.into(),
        user_id: Some(format!("t-{user}")),
        user_managed: true,
        protected: None,
    }
}

fn join(g: &str, user: &str) -> MemberPair {
    member(MemberChange::Join, g, user)
}

fn leave(g: &str, user: &str) -> MemberPair {
    member(MemberChange::Leave, g, user)
}

/// `kind object name status` per action.
fn outline(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            let name = match a.object() {
                ObjectKind::Membership => {
                    format!(
                        "{}>{}",
                        a.name(),
                        a.subject.member().map_or("?", |(g, _)| g.name.as_str())
                    )
                }
                _ => a.name().to_string(),
            };
            format!(
                "{} {} {name} {}",
                a.action.as_str(),
                a.object().as_str(),
                a.status.as_str()
            )
        })
        .collect()
}

fn plan(groups: Vec<GroupPair>, members: Vec<MemberPair>, policy: &Policy) -> GroupsPlanned {
    plan_groups(groups, members, policy)
}

#[test]
fn group_rules() {
    let delete = Policy {
        mode: Mode::Delete.into(),
        ..Policy::default()
    };
    let remove = Policy {
        mode: Mode::Remove.into(),
        ..Policy::default()
    };
    let add_only = Policy::default();
    let cases: Vec<(&str, Vec<GroupPair>, &Policy, &[&str])> = vec![
        (
            "new group",
            vec![GroupPair::SourceOnly(desired("k1", "Sales"))],
            &delete,
            &["add group Sales planned"],
        ),
        (
            "unchanged",
            vec![both(
                desired("k1", "Sales"),
                target("t1", Some("k1"), "Sales", 3),
            )],
            &delete,
            &[],
        ),
        (
            "renamed",
            vec![both(
                desired("k1", "Sales EU"),
                target("t1", Some("k1"), "Sales", 3),
            )],
            &delete,
            &["update group Sales EU planned"],
        ),
        (
            "gone, add-only: left",
            vec![GroupPair::TargetOnly {
                target: target("t1", Some("k1"), "Sales", 3),
                protected: None,
            }],
            &add_only,
            &[],
        ),
        (
            "gone, remove: left",
            vec![GroupPair::TargetOnly {
                target: target("t1", Some("k1"), "Sales", 3),
                protected: None,
            }],
            &remove,
            &[],
        ),
        (
            "gone, delete: deleted",
            vec![GroupPair::TargetOnly {
                target: target("t1", Some("k1"), "Sales", 3),
                protected: None,
            }],
            &delete,
            &["delete group Sales planned"],
        ),
        (
            "unmanaged: never deleted",
            vec![GroupPair::TargetOnly {
                target: target("t1", None, "Hand made", 3),
                protected: None,
            }],
            &delete,
            &[],
        ),
        (
            "rejected in the source: not deleted, shown",
            vec![GroupPair::TargetOnly {
                target: target("t1", Some("k1"), "Sales", 3),
                protected: Some("its source entry was rejected".into()),
            }],
            &delete,
            &["delete group Sales skipped"],
        ),
    ];
    for (name, groups, policy, want) in cases {
        let planned = plan(groups, vec![], policy);
        assert_eq!(outline(&planned.actions), want, "{name}");
    }
}

#[test]
fn an_unmanaged_group_with_the_name_is_adopted() {
    let planned = plan(
        vec![GroupPair::Both {
            desired: desired("k1", "Sales"),
            target: target("t1", None, "Sales", 3),
            matched_by: MatchedBy::Username,
        }],
        vec![],
        &Policy::default(),
    );
    let action = &planned.actions[0];
    assert_eq!(action.changes, [Change::new(Field::Key, None, Some("k1"))]);
    assert_eq!(
        action.reason(),
        "adopted: an unmanaged group has the same name"
    );
    assert_eq!(action.target_id.as_deref(), Some("t1"));
}

#[test]
fn membership_rules() {
    let unmanaged_user = MemberPair {
        user_managed: false,
        ..leave("Sales", "byhand")
    };
    let adopted_group = MemberPair {
        group_managed: false,
        ..leave("Sales", "bob")
    };
    let rejected = MemberPair {
        protected: Some("its source record was rejected".into()),
        ..leave("Sales", "carol")
    };
    let cases: Vec<(&str, MemberPair, &[&str])> = vec![
        (
            "joins",
            join("Sales", "alice"),
            &["add membership alice>Sales planned"],
        ),
        (
            "leaves",
            leave("Sales", "bob"),
            &["remove membership bob>Sales planned"],
        ),
        ("a member added by hand stays", unmanaged_user, &[]),
        ("a group being adopted loses nobody", adopted_group, &[]),
        (
            "a rejected user keeps the membership",
            rejected,
            &["remove membership carol>Sales skipped"],
        ),
    ];
    let remove = Policy {
        mode: Mode::Remove.into(),
        ..Policy::default()
    };
    for (name, pair, want) in cases {
        let planned = plan(vec![], vec![pair], &remove);
        assert_eq!(outline(&planned.actions), want, "{name}");
    }
    // add-only takes nothing away: the leave is shown, skipped, with the reason.
    let planned = plan(vec![], vec![leave("Sales", "bob")], &Policy::default());
    assert_eq!(
        outline(&planned.actions),
        ["remove membership bob>Sales skipped"]
    );
    assert!(planned.actions[0].reason().contains("mode add-only"));
}

#[test]
fn membership_actions_carry_the_group_and_the_member() {
    let planned = plan(
        vec![],
        vec![
            join("Sales/EU", "alice"),
            leave("Sales", "bob"),
            MemberPair {
                user_id: None,
                ..join("Sales", "new")
            },
        ],
        &Policy::default(),
    );
    let [add, remove, pending] = planned.actions.as_slice() else {
        panic!("three actions: {:?}", outline(&planned.actions));
    };
    assert_eq!(
        crate::plan::contract::subject_key(&add.subject),
        "k-Sales%2FEU/k-alice"
    );
    assert_eq!(
        add.subject
            .member()
            .map(|(g, u)| (g.key.as_str(), u.key.as_str())),
        Some(("k-Sales/EU", "k-alice"))
    );
    assert_eq!(add.target_id.as_deref(), Some("t-Sales/EU"));
    assert_eq!(
        add.changes,
        [
            Change::new(Field::Group, None, Some("Sales/EU")),
            Change::new(Field::Member, None, Some("t-alice"))
        ]
    );
    assert_eq!(add.reason(), "member of Sales/EU in the source");
    assert_eq!(
        remove.changes,
        [
            Change::new(Field::Group, Some("Sales"), None),
            Change::new(Field::Member, Some("t-bob"), None)
        ]
    );
    assert_eq!(
        (
            pending.subject.member().map(|(g, _)| g.name.as_str()),
            member_id(pending)
        ),
        (Some("Sales"), None)
    );
}

#[test]
fn member_remove_caps_hold_one_group_at_a_time() {
    let members = vec![
        leave("Sales", "a"),
        leave("Sales", "b"),
        leave("Sales", "c"),
        leave("Ops", "d"),
        join("Sales", "e"),
    ];
    let groups = vec![
        both(
            desired("k-Sales", "Sales"),
            target("t-Sales", Some("k-Sales"), "Sales", 10),
        ),
        both(
            desired("k-Ops", "Ops"),
            target("t-Ops", Some("k-Ops"), "Ops", 4),
        ),
    ];
    let cases: &[(Option<Cap>, &[&str], Option<&str>)] = &[
        (None, &["planned"; 5], None),
        (
            Some(Cap::Count(2)),
            &["held", "held", "held", "planned", "planned"],
            Some("3 member removes planned in Sales, max-member-removes is 2"),
        ),
        (Some(Cap::Count(3)), &["planned"; 5], None),
        (
            // 3 of 10 is 30 %; 1 of 4 is 25 %.
            Some(Cap::Percent(25.0)),
            &["held", "held", "held", "planned", "planned"],
            Some("3 member removes planned in Sales, max-member-removes is 25% of its 10 members"),
        ),
        (
            Some(Cap::Percent(20.0)),
            &["held", "held", "held", "held", "planned"],
            Some("3 member removes planned in Sales, max-member-removes is 20% of its 10 members"),
        ),
    ];
    for (cap, want, held) in cases {
        let policy = Policy {
            mode: Mode::Remove.into(),
            max_member_removes: cap.map(Into::into),
            ..Policy::default()
        };
        let planned = plan(groups.clone(), members.clone(), &policy);
        let statuses: Vec<&str> = planned.actions.iter().map(|a| a.status.as_str()).collect();
        assert_eq!(&statuses, want, "{cap:?}");
        assert_eq!(held_by(&planned.actions[0]).as_deref(), *held, "{cap:?}");
    }
}

fn user_add(key: &str, username: &str, status: Status) -> Action {
    user_action(ActionKind::Add, key, username, status)
}

fn user_action(kind: ActionKind, key: &str, username: &str, status: Status) -> Action {
    let user = UserRef {
        key: key.into(),
        username: username.into(),
    };
    let mut action = Action::change_user(kind, user, Vec::new(), Vec::new());
    if status == Status::Held {
        // What holds it, as the user planner says it: "3 adds planned, max-adds is 2".
        let (counted, name) = match kind {
            ActionKind::Add => (Counted::Adds(3), CapName::MaxAdds),
            ActionKind::Update => (Counted::Updates(3), CapName::MaxUpdates),
            _ => (
                Counted::Removals {
                    count: 3,
                    deactivations: 0,
                },
                CapName::MaxRemoves,
            ),
        };
        action.hold(Hold::Cap {
            counted,
            name,
            limit: Limit::Count(2),
        });
    }
    action.status = status;
    action
}

#[test]
fn merge_orders_groups_after_users_and_follows_the_user_adds() {
    let users = Planned {
        actions: vec![
            user_add("k-new", "new", Status::Planned),
            user_add("k-late", "late", Status::Held),
        ],
        summary: Default::default(),
        missing: Vec::new(),
    };
    let pending = |user: &str| MemberPair {
        user_id: None,
        ..join("Sales", user)
    };
    let groups = plan(
        vec![
            GroupPair::TargetOnly {
                target: target("t-Old", Some("k-Old"), "Old", 1),
                protected: None,
            },
            GroupPair::SourceOnly(desired("k-Sales", "Sales")),
            both(
                desired("k-Ops", "Ops"),
                target("t-Ops", Some("k-Ops"), "Ops (old)", 1),
            ),
        ],
        vec![
            leave("Ops", "zed"),
            pending("new"),
            pending("late"),
            pending("ghost"),
            join("Ops", "alice"),
        ],
        &Policy {
            mode: Mode::Delete.into(),
            ..Policy::default()
        },
    );
    let merged = merge(users, groups);
    assert_eq!(
        outline(&merged.actions),
        [
            "add user new planned",
            "add user late held",
            "add group Sales planned",
            "update group Ops planned",
            "add membership alice>Ops planned",
            "add membership ghost>Sales skipped",
            "add membership late>Sales held",
            "add membership new>Sales planned",
            "remove membership zed>Ops planned",
            "delete group Old planned",
        ]
    );
    let seqs: Vec<u32> = merged.actions.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u32>>());
    assert_eq!(
        held_by(&merged.actions[6]).as_deref(),
        Some("waits for the add of user late, which is held (3 adds planned, max-adds is 2)")
    );
}

#[test]
fn a_held_user_removal_holds_the_user_s_membership_removals() {
    let users = Planned {
        actions: vec![
            user_action(ActionKind::Remove, "k-held", "held", Status::Held),
            user_action(ActionKind::Delete, "k-gone", "gone", Status::Planned),
        ],
        summary: Default::default(),
        missing: Vec::new(),
    };
    let groups = plan(
        vec![],
        vec![
            leave("Sales", "held"),
            leave("Sales", "gone"),
            leave("Sales", "left"),
        ],
        &Policy {
            mode: Mode::Delete.into(),
            ..Policy::default()
        },
    );
    let merged = merge(users, groups);
    assert_eq!(
        outline(&merged.actions),
        [
            "remove user held held",
            "delete user gone planned",
            "remove membership gone>Sales planned",
            "remove membership held>Sales held",
            "remove membership left>Sales planned",
        ]
    );
    assert_eq!(
        held_by(&merged.actions[3]).as_deref(),
        Some("the removal of user held is held (3 removes planned, max-removes is 2)")
    );
}

/// The text of what holds an action, as the plan shows it.
fn held_by(a: &Action) -> Option<String> {
    a.hold.as_ref().map(ToString::to_string)
}
