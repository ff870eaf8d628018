//! Rendered plans as a reviewer sees them, as insta snapshots in `snapshots/`: a plan with
//! every kind of action and status, in the human, Markdown and JSON forms.

use chrono::{TimeZone, Utc};
use roster::config::Mode;
use roster::plan::{Action, ActionKind, Change, FORMAT_VERSION, ObjectKind, Plan, Status};
use roster::render;

fn action(
    seq: u32,
    kind: ActionKind,
    username: &str,
    status: Status,
    changes: &[(&str, Option<&str>, Option<&str>)],
) -> Action {
    Action {
        seq,
        action: kind,
        object: ObjectKind::User,
        key: format!("key-{username}"),
        username: username.into(),
        status,
        reason: match kind {
            ActionKind::Add => "in the source, not in the target".into(),
            ActionKind::Update => "changed in the source: email, phone".into(),
            _ => "managed account no longer in the source (mode remove)".into(),
        },
        changes: changes
            .iter()
            .map(|(f, b, a)| Change::new(f, *b, *a))
            .collect(),
        held_by: (status == Status::Held).then(|| "12 removes planned, max-removes is 10".into()),
        target_id: (kind != ActionKind::Add).then(|| format!("id-{username}")),
        target_version: None,
        target_digest: None,
    }
}

fn sample() -> Plan {
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        plan_id: "20261122T120000Z-0000abcd".into(),
        created_at: Utc
            .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
            .single()
            .expect("time"),
        summary: Default::default(),
        actions: vec![
            action(
                1,
                ActionKind::Add,
                "alice",
                Status::Planned,
                &[
                    ("externalId", None, Some("key-alice")),
                    ("username", None, Some("alice")),
                    ("name", None, Some("Alice Liddell")),
                    ("email", None, Some("alice@example.com")),
                    ("phone", None, Some("+1 555 0100")),
                ],
            ),
            action(
                2,
                ActionKind::Update,
                "bob",
                Status::Planned,
                &[
                    (
                        "email",
                        Some("bob@old.example.com"),
                        Some("bob@example.com"),
                    ),
                    ("phone", None, Some("+1 555 0101")),
                    ("nickName", Some("bobby"), None),
                    (
                        "title",
                        Some("Senior engineer in the platform team, Berlin office"),
                        Some("Staff engineer in the platform team, Paris office"),
                    ),
                ],
            ),
            action(
                3,
                ActionKind::Update,
                "dora",
                Status::Skipped,
                &[("name", Some("Dora"), Some("Dora E."))],
            ),
            action(
                4,
                ActionKind::Remove,
                "carol",
                Status::Held,
                &[("active", Some("true"), Some("false"))],
            ),
            action(5, ActionKind::Delete, "erin", Status::Held, &[]),
        ],
        mode: Mode::Remove,
        config_digest: "c0ffee".into(),
        desired_digest: "d1ce".into(),
        forced: Vec::new(),
        target: "https://example.com/scim/v2".into(),
    };
    plan.actions[3].reason = "managed account no longer in the source (mode remove)".into();
    plan.actions[2].reason =
        "inactive in the target and not deactivated by roster: left as it is".into();
    plan.summary.unchanged = 40;
    plan.summary.rejected = 1;
    plan.summary.unmanaged = 2;
    plan.recount();
    plan
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn human() {
    snapshot("render_human", &render::human(&sample()));
}

#[test]
fn markdown() {
    snapshot("render_markdown", &render::markdown(&sample()));
}

#[test]
fn json() {
    snapshot("render_json", &render::json(&sample()));
}

#[test]
fn no_changes() {
    let mut plan = sample();
    plan.actions.clear();
    plan.summary.rejected = 0;
    plan.summary.unmanaged = 0;
    plan.recount();
    snapshot("render_no_changes", &render::human(&plan));
}

#[test]
fn json_round_trips() {
    let plan = sample();
    let back: Plan = serde_json::from_str(&render::json(&plan)).expect("JSON");
    assert_eq!(back, plan);
}
