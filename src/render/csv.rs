//! `roster show --format csv`: every action with its outcome, and every rejected record,
//! one row each, for a report people open in a spreadsheet. Every cell goes through
//! `text::spreadsheet_cell`: a username such as `=HYPERLINK(...)` stays text, and control
//! characters are escaped.

use crate::model::Reject;
use crate::plan::contract::ActionJson;
use crate::plan::{Plan, Reason};

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
