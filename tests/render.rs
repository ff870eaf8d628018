//! Rendered plans as a reviewer sees them, as insta snapshots in `snapshots/`: a plan with
//! every kind of action and status, in the human, Markdown and JSON forms.

use chrono::{TimeZone, Utc};
use roster::config::Mode;
use roster::plan::contract::{self, user_field};
use roster::plan::{
    Action, ActionKind, ActionStatus as Status, CapName, Change, Counted, FORMAT_VERSION, Field,
    Hold, Limit, Plan, Reason, UserRef,
};
use roster::render;

fn action(
    seq: u32,
    kind: ActionKind,
    username: &str,
    status: Status,
    changes: &[(&str, Option<&str>, Option<&str>)],
) -> Action {
    let reasons = match kind {
        ActionKind::Add => vec![Reason::NotInTarget],
        ActionKind::Update => vec![Reason::Changed(vec![Field::Email, Field::Phone])],
        _ => vec![Reason::GoneRemove],
    };
    let changes = changes
        .iter()
        .map(|(f, b, a)| Change::new(user_field(f).expect("a field"), *b, *a))
        .collect();
    let user = UserRef {
        key: format!("key-{username}"),
        username: username.into(),
    };
    let mut action = Action::change_user(kind, user, reasons, changes);
    action.seq = seq;
    if kind != ActionKind::Add {
        action.target_id = Some(format!("id-{username}"));
    }
    if status == Status::Held {
        action.hold(Hold::Cap {
            counted: Counted::Removals {
                count: 12,
                deactivations: 0,
            },
            name: CapName::MaxRemoves,
            limit: Limit::Count(10),
        });
    }
    action.status = status;
    action
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
        stored: None,
        mode: Mode::Remove,
        config_digest: "c0ffee".into(),
        desired_digest: "d1ce".into(),
        forced: Vec::new(),
        notes: Vec::new(),
        remove_means: None,
        delete_means: None,
        target: "https://example.com/scim/v2".into(),
        max_removes: None,
        managed: None,
        target_accounts: None,
        initial: false,
    };
    plan.actions[3].reasons = vec![Reason::GoneRemove];
    plan.actions[2].reasons = vec![Reason::InactiveInTarget];
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
    let back: Plan =
        contract::read(serde_json::from_str(&render::json(&plan)).expect("JSON")).expect("a plan");
    assert_eq!(back, plan);
}

/// A plan of `n` adds and `n` updates, each with a few changes.
fn large(n: u32) -> Plan {
    let mut plan = sample();
    plan.actions.clear();
    for i in 0..n {
        let user = format!("user{i:05}");
        let mail = format!("{user}@example.com");
        plan.actions.push(action(
            2 * i + 1,
            ActionKind::Add,
            &user,
            Status::Planned,
            &[
                ("externalId", None, Some(&format!("key-{user}"))),
                ("username", None, Some(&user)),
                ("email", None, Some(&mail)),
            ],
        ));
        plan.actions.push(action(
            2 * i + 2,
            ActionKind::Update,
            &format!("old{i:05}"),
            Status::Planned,
            &[("email", Some("old@example.com"), Some(&mail))],
        ));
    }
    plan.recount();
    plan
}

#[test]
fn a_plan_too_large_for_a_comment_is_shortened_to_a_summary_and_the_first_changes() {
    let text = render::markdown_within(&large(40), 4_000, Some("plan.json"));
    assert!(text.len() <= 4_000, "{} bytes", text.len());
    snapshot("render_markdown_shortened", &text);
}

#[test]
fn a_markdown_plan_always_fits_a_github_comment() {
    let plan = large(5_000);
    let text = render::markdown(&plan);
    assert!(text.len() <= render::COMMENT_LIMIT, "{} bytes", text.len());
    assert!(text.contains("too large for a comment"), "shortened");
    assert!(text.contains("| `+` | add | 5000 | 0 | 0 |"), "counts kept");
    // A plan that fits is shown whole.
    assert!(!render::markdown(&sample()).contains("too large"));
}

#[test]
fn colour_is_only_in_the_coloured_rendering() {
    let plain = render::human(&sample());
    assert!(!plain.contains('\u{1b}'));
    let coloured = render::human_in(&sample(), render::Colour::Always);
    assert!(
        coloured.contains("  \u{1b}[32m+\u{1b}[0m user alice"),
        "{coloured}"
    );
    assert!(
        coloured.contains("      \u{1b}[33m~\u{1b}[0m email:"),
        "{coloured}"
    );
    assert!(
        coloured.contains("  \u{1b}[31m-\u{1b}[0m user carol"),
        "{coloured}"
    );
    // Without the codes, the same text.
    let stripped = coloured
        .replace("\u{1b}[32m", "")
        .replace("\u{1b}[33m", "")
        .replace("\u{1b}[31m", "")
        .replace("\u{1b}[2m", "")
        .replace("\u{1b}[0m", "");
    assert_eq!(stripped, plain);
}
