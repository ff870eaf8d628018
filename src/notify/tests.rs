use chrono::Utc;

use super::*;
use crate::store::{AppliedCounts, RunKind};

fn run(kind: RunKind, outcome: Outcome, applied: Option<AppliedCounts>) -> RunRecord {
    RunRecord {
        id: 7,
        kind,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
        host: "sync1.corp.example.com".into(),
        pid: 42,
        outcome,
        error: Some("target https://scim.example.com/v2: HTTP 500".into()),
        source_count: Some(3),
        target_count: Some(3),
        rejected: Some(0),
        plan_id: None,
        applied,
        notifications: Vec::new(),
    }
}

fn counts(applied: u64, failed: u64, held: u64) -> Option<AppliedCounts> {
    Some(AppliedCounts {
        applied,
        failed,
        held,
    })
}

#[test]
fn each_event_matches_its_runs_only() {
    use NotifyOn::*;
    let cases = [
        (
            run(RunKind::Sync, Outcome::Applied, counts(2, 0, 0)),
            vec![Changes, Always],
        ),
        (run(RunKind::Sync, Outcome::NoChanges, None), vec![Always]),
        (
            run(RunKind::Sync, Outcome::Failed, counts(1, 1, 0)),
            vec![Changes, Failure, Always],
        ),
        (
            run(RunKind::Sync, Outcome::Refused, None),
            vec![Failure, Always],
        ),
        (
            run(RunKind::Apply, Outcome::Error, None),
            vec![Failure, Always],
        ),
        (run(RunKind::Sync, Outcome::Cancelled, None), vec![Always]),
    ];
    for (run, due) in &cases {
        let report = RunReport { run, plan: None };
        for event in [Changes, Held, Failure, Always] {
            assert_eq!(
                report.is_due(&[event]),
                due.contains(&event),
                "{:?} {:?} on {event:?}",
                run.kind,
                run.outcome
            );
        }
    }
}

#[test]
fn the_text_has_no_link_and_no_error_text() {
    let run = run(RunKind::Sync, Outcome::Error, None);
    let text = RunReport {
        run: &run,
        plan: None,
    }
    .text();
    assert_eq!(
        text,
        "roster sync (run 7) on sync1: error; nothing more was changed. Details: roster show 7"
    );
    assert!(!text.contains("example.com"));
}

#[test]
fn a_webhook_is_named_by_its_scheme_and_host_only() {
    assert_eq!(
        webhook::describe("https://hooks.slack.com/services/T0/B0/secret"),
        "https://hooks.slack.com"
    );
    assert_eq!(
        webhook::describe("http://127.0.0.1:8080/hook?token=abc"),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        webhook::describe("not a url"),
        "a webhook whose URL cannot be read"
    );
}
