//! `runs`: the history of runs, filtered by time, outcome and kind, as a table people read
//! or as JSON / CSV rows for programs and spreadsheets (the same columns in both).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use super::{Error, Global, exit};
use crate::cli::{RunsArgs, RunsFormat};
use crate::store::{Outcome, RunFilter, RunKind, RunRecord};

pub(super) fn runs(global: &Global, args: RunsArgs) -> Result<u8, Error> {
    let filter = filter(&args)?;
    let store = global.store()?;
    let runs = store.runs(&filter)?;
    let out = match args.format {
        RunsFormat::Human => table(&runs),
        RunsFormat::Json => {
            let rows: Vec<serde_json::Value> = runs.iter().map(json_row).collect();
            serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
        }
        RunsFormat::Csv => csv(&runs),
    };
    super::emit(&out);
    Ok(exit::OK)
}

/// The store's filter from the command line: dates and times checked, words parsed.
fn filter(args: &RunsArgs) -> Result<RunFilter, Error> {
    let since = args
        .since
        .as_deref()
        .map(|s| time_bound(s, "--since", Bound::Start))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| time_bound(s, "--until", Bound::End))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(Error::Usage(format!(
            "--since {} is not before --until {}: no run can match",
            args.since.as_deref().unwrap_or_default(),
            args.until.as_deref().unwrap_or_default()
        )));
    }
    // clap has checked the words against the same lists.
    let outcomes = args
        .status
        .iter()
        .filter_map(|s| Outcome::parse(s))
        .collect();
    let kinds = args.kind.iter().filter_map(|k| RunKind::parse(k)).collect();
    Ok(RunFilter {
        since,
        until,
        outcomes,
        kinds,
        limit: (args.limit > 0).then_some(args.limit),
    })
}

/// Which end of a day a bare date stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// `--since 2024-05-01`: from its first instant.
    Start,
    /// `--until 2024-05-01`: the whole day included, so up to the next midnight.
    End,
}

/// An RFC 3339 time, or a date taken in UTC.
fn time_bound(text: &str, flag: &str, bound: Bound) -> Result<DateTime<Utc>, Error> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        Error::Usage(format!(
            "{flag} {text:?} is neither a date (2024-05-01) nor an RFC 3339 time \
             (2024-05-01T08:00:00Z, 2024-05-01T08:00:00+02:00)"
        ))
    })?;
    let date = match bound {
        Bound::Start => Some(date),
        Bound::End => date.succ_opt(),
    };
    date.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| Error::Usage(format!("{flag} {text:?} is out of range")))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn duration_secs(r: &RunRecord) -> Option<f64> {
    r.finished_at
        .map(|f| (f - r.started_at).num_milliseconds() as f64 / 1000.0)
}

/// The notifications in one cell: `email it-ops@example.com: sent; webhook https://hooks.example.com: failed`.
fn notifications_cell(r: &RunRecord) -> String {
    r.notifications
        .iter()
        .map(|d| {
            format!(
                "{} {}: {}",
                d.channel,
                d.to,
                if d.error.is_none() { "sent" } else { "failed" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn table(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:>5}  {:<6} {:<20} {:>9}  {:<11} {:>7} {:>7} {:>6} {:>7} {:>6} {:>5}  plan\n",
        "id",
        "kind",
        "started",
        "duration",
        "outcome",
        "source",
        "target",
        "reject",
        "applied",
        "failed",
        "held"
    );
    for r in runs {
        let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let c = |f: fn(&crate::store::AppliedCounts) -> u64| {
            r.applied
                .as_ref()
                .map(|a| f(a).to_string())
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "{:>5}  {:<6} {:<20} {:>9}  {:<11} {:>7} {:>7} {:>6} {:>7} {:>6} {:>5}  {}\n",
            r.id,
            r.kind,
            time(r.started_at),
            duration_secs(r)
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
            r.outcome,
            n(r.source_count),
            n(r.target_count),
            n(r.rejected),
            c(|a| a.applied),
            c(|a| a.failed),
            c(|a| a.held),
            r.plan_id.as_deref().unwrap_or("-")
        ));
    }
    if runs.is_empty() {
        out.push_str("(no runs match)\n");
    }
    out
}

/// One run for programs: every column, `null` where the run has no value.
pub(super) fn json_row(r: &RunRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "kind": r.kind.as_str(),
        "started_at": time(r.started_at),
        "finished_at": r.finished_at.map(time),
        "duration_seconds": duration_secs(r),
        "outcome": r.outcome.as_str(),
        "error": r.error,
        "host": r.host,
        "pid": r.pid,
        "source_count": r.source_count,
        "target_count": r.target_count,
        "rejected": r.rejected,
        "applied": r.applied.map(|a| a.applied),
        "failed": r.applied.map(|a| a.failed),
        "held": r.applied.map(|a| a.held),
        "plan_id": r.plan_id,
        "notifications": r.notifications.iter().map(|d| serde_json::json!({
            "channel": d.channel.as_str(),
            "to": d.to,
            "sent": d.error.is_none(),
            "error": d.error,
        })).collect::<Vec<_>>(),
    })
}

const CSV_HEADER: [&str; 16] = [
    "id",
    "kind",
    "started_at",
    "finished_at",
    "duration_seconds",
    "outcome",
    "error",
    "host",
    "pid",
    "source_count",
    "target_count",
    "rejected",
    "applied",
    "failed",
    "held",
    "plan_id",
];

fn csv(runs: &[RunRecord]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = CSV_HEADER.to_vec();
    header.push("notifications");
    // Writing to a Vec cannot fail.
    let _ = out.write_record(&header);
    for r in runs {
        let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let c = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let _ = out.write_record([
            r.id.to_string(),
            r.kind.to_string(),
            time(r.started_at),
            r.finished_at.map(time).unwrap_or_default(),
            duration_secs(r)
                .map(|d| format!("{d:.3}"))
                .unwrap_or_default(),
            r.outcome.to_string(),
            r.error.clone().unwrap_or_default(),
            r.host.clone(),
            r.pid.to_string(),
            n(r.source_count),
            n(r.target_count),
            n(r.rejected),
            c(r.applied.map(|a| a.applied)),
            c(r.applied.map(|a| a.failed)),
            c(r.applied.map(|a| a.held)),
            r.plan_id.clone().unwrap_or_default(),
            notifications_cell(r),
        ]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_since_is_its_midnight_and_until_includes_the_day() {
        let since = time_bound("2024-05-01", "--since", Bound::Start).unwrap();
        let until = time_bound("2024-05-01", "--until", Bound::End).unwrap();
        assert_eq!(time(since), "2024-05-01T00:00:00Z");
        assert_eq!(time(until), "2024-05-02T00:00:00Z");
    }

    #[test]
    fn a_time_keeps_its_offset() {
        let t = time_bound("2024-05-01T08:00:00+02:00", "--since", Bound::Start).unwrap();
        assert_eq!(time(t), "2024-05-01T06:00:00Z");
    }

    #[test]
    fn anything_else_is_refused_naming_the_flag() {
        let e = time_bound("yesterday", "--since", Bound::Start).unwrap_err();
        assert!(e.to_string().contains("--since \"yesterday\""), "{e}");
        let e = time_bound("2024-05-01 08:00", "--until", Bound::End).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }
}
