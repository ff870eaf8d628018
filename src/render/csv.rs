//! `roster show --format csv`: every action with its outcome, and every rejected record,
//! one row each, for a report people open in a spreadsheet. Every cell goes through
//! `text::spreadsheet_cell`: a username such as `=HYPERLINK(...)` stays text, and control
//! characters are escaped.
//!
//! one row each, for a report people open in a spreadsheet. `--records` and `--errors` are
//! the two reports xMatters exports for a sync: the records (every action and its outcome)
//! and the errors (rejected records and failed actions), each with its own columns.

use crate::model::Reject;
use crate::plan::contract::ActionJson;
use crate::plan::{ActionStatus, Plan, Reason};

const HEADER: [&str; 10] = [
    "record", "seq", "action", "object", "key", "username", "status", "reason", "error", "changes",
];

pub fn csv(plan: Option<&Plan>, rejects: &[Reject]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = out.write_record(HEADER);
    for a in plan.iter().flat_map(|p| &p.actions) {
        let reason = Reason::join(&a.reasons);
        let error = a.error.as_deref().unwrap_or_default();
        let row = ActionJson::from(a);
        let changes: Vec<String> = a
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    c.field,
                    c.before.as_deref().unwrap_or(""),
                    c.after.as_deref().unwrap_or("")
                )
            })
            .collect();
        let status = match &a.hold {
            Some(cap) => format!("{} ({cap})", a.status.as_str()),
            None => a.status.as_str().to_string(),
        };
        let _ = write_safe(
            &mut out,
            [
                "action",
                &a.seq.to_string(),
                a.action.as_str(),
                a.object().as_str(),
                &row.key,
                &row.username,
                &status,
                &reason,
                error,
                &changes.join("; "),
            ],
        );
    }
    for r in rejects {
        let _ = write_safe(
            &mut out,
            [
                "reject",
                "",
                "",
                "user",
                r.key.as_deref().unwrap_or(""),
                r.username.as_deref().unwrap_or(""),
                "rejected",
                &r.reason,
                "",
                &r.origin,
            ],
        );
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Writes a row of cells from data, each made safe for a spreadsheet.
fn write_safe<'a, W: std::io::Write>(
    out: &mut csv::Writer<W>,
    row: impl IntoIterator<Item = &'a str>,
) -> csv::Result<()> {
    out.write_record(
        row.into_iter()
            .map(|cell| crate::text::spreadsheet_cell(cell).into_owned()),
    )
}

const RECORDS_HEADER: [&str; 11] = [
    "seq",
    "action",
    "object",
    "key",
    "username",
    "status",
    "held_by",
    "reason",
    "error",
    "changes",
    "target_id",
];

/// `roster show --records`: the records of a sync, every action with its outcome.
pub fn records_csv(plan: Option<&Plan>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = out.write_record(RECORDS_HEADER);
    for a in plan.iter().flat_map(|p| &p.actions) {
        let row = ActionJson::from(a);
        let cells = [
            a.seq.to_string(),
            row.action,
            row.object,
            row.key,
            row.username,
            row.status,
            row.held_by.unwrap_or_default(),
            Reason::join(&a.reasons),
            a.error.clone().unwrap_or_default(),
            changes(a),
            row.target_id.unwrap_or_default(),
        ];
        let _ = write_safe(&mut out, cells.iter().map(String::as_str));
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

const ERRORS_HEADER: [&str; 8] = [
    "kind", "seq", "origin", "action", "object", "key", "username", "error",
];

/// `roster show --errors`: the error report, every rejected source record (`rejected`, with
/// its origin and reason) and every failed action (`failed`, with its error).
pub fn errors_csv(plan: Option<&Plan>, rejects: &[Reject]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(ERRORS_HEADER);
    for r in rejects {
        let _ = write_safe(
            &mut out,
            [
                "rejected",
                "",
                &r.origin,
                "",
                "user",
                r.key.as_deref().unwrap_or(""),
                r.username.as_deref().unwrap_or(""),
                &r.reason,
            ],
        );
    }
    let failed = plan
        .iter()
        .flat_map(|p| &p.actions)
        .filter(|a| a.status == ActionStatus::Failed);
    for a in failed {
        let row = ActionJson::from(a);
        let cells = [
            "failed".to_string(),
            a.seq.to_string(),
            String::new(),
            row.action,
            row.object,
            row.key,
            row.username,
            a.error.clone().unwrap_or_default(),
        ];
        let _ = write_safe(&mut out, cells.iter().map(String::as_str));
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// `field: before -> after; ...`
fn changes(a: &crate::plan::Action) -> String {
    a.changes
        .iter()
        .map(|c| {
            format!(
                "{}: {} -> {}",
                c.field,
                c.before.as_deref().unwrap_or(""),
                c.after.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
