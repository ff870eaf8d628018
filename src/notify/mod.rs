//! Notifications: telling people how a run ended, by email (SMTP) and webhooks (JSON, with
//! a `text` that Slack and Teams show as it is).
//!
//! A schedule that holds its removes, or fails, tells nobody unless someone is told: this
//! is how roster tells them. It is the one network code outside the connectors, and keeps
//! their rules: blocking clients on the calling thread, secrets (the SMTP password, a
//! webhook URL with a token in it) never in a log, the store or an error. A notification
//! that cannot be sent never fails the run: `send` returns how each one went, the caller
//! logs and records it on the run.
//!
//! What a notification says is read back from the store after the run ended (`RunReport`),
//! so it says what `roster show RUN` says.
//!
//! - `email.rs`: SMTP through lettre (STARTTLS, implicit TLS or none; AUTH from env/file);
//! - `webhook.rs`: a JSON POST through `crate::http`.

mod email;
mod webhook;

use std::fmt::Write;

use crate::config::{Notify, NotifyOn};
use crate::plan::{ActionKind, ActionStatus, Plan};
use crate::store::{Delivery, Outcome, RunRecord};

/// One finished run, as notifications tell it.
pub struct RunReport<'a> {
    pub run: &'a RunRecord,
    /// The plan the run made or applied, with the journal's statuses, when there is one.
    pub plan: Option<&'a Plan>,
}

/// Actions a cap still holds, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldCounts {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub delete: u64,
}

impl HeldCounts {
    pub fn total(&self) -> u64 {
        self.add + self.update + self.remove + self.delete
    }
}

impl RunReport<'_> {
    pub fn held(&self) -> HeldCounts {
        let mut held = HeldCounts::default();
        for a in self.plan.iter().flat_map(|p| &p.actions) {
            if a.status != ActionStatus::Held {
                continue;
            }
            match a.action {
                ActionKind::Add => held.add += 1,
                ActionKind::Update => held.update += 1,
                ActionKind::Remove => held.remove += 1,
                ActionKind::Delete => held.delete += 1,
            }
        }
        held
    }

    fn applied(&self) -> u64 {
        self.run.applied.map_or(0, |a| a.applied)
    }

    fn failed(&self) -> u64 {
        self.run.applied.map_or(0, |a| a.failed)
    }

    fn planned_changes(&self) -> u64 {
        self.plan.map_or(0, |p| {
            let s = &p.summary;
            s.add + s.update + s.remove + s.delete
        })
    }

    /// Whether the run ended in a way a human must hear about as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(
            self.run.outcome,
            Outcome::Error | Outcome::Failed | Outcome::Refused | Outcome::Interrupted
        ) || self.failed() > 0
    }

    /// Changes applied (apply, sync), or planned (a plan run).
    pub fn has_changes(&self) -> bool {
        match self.run.kind {
            crate::store::RunKind::Plan => self.planned_changes() > 0,
            _ => self.applied() > 0,
        }
    }

    /// Whether any of `on` matches this run.
    pub fn is_due(&self, on: &[NotifyOn]) -> bool {
        on.iter().any(|event| match event {
            NotifyOn::Always => true,
            NotifyOn::Changes => self.has_changes(),
            NotifyOn::Held => self.held().total() > 0,
            NotifyOn::Failure => self.is_failure(),
        })
    }

    /// The host's first label: a full name such as `sync1.example.com` would be a link in
    /// a chat message.
    fn host(&self) -> &str {
        self.run.host.split('.').next().unwrap_or_default()
    }

    /// One line people read in a chat or a subject, without links: no URL, no domain name,
    /// no error text (which may name a server); `roster show RUN` has the details.
    pub fn text(&self) -> String {
        let run = self.run;
        let mut text = format!(
            "roster {} (run {}) on {}: {}",
            run.kind,
            run.id,
            self.host(),
            run.outcome
        );
        let held = self.held().total();
        match run.outcome {
            Outcome::Refused => {
                text.push_str(", a safety check refused to plan; nothing was changed")
            }
            Outcome::Error | Outcome::Interrupted => text.push_str("; nothing more was changed"),
            Outcome::Cancelled => text.push_str("; nothing was applied"),
            _ => {}
        }
        if let Some(plan) = self.plan
            && run.kind == crate::store::RunKind::Plan
        {
            let s = &plan.summary;
            let _ = write!(
                text,
                ", {} to add, {} to update, {} to remove, {} to delete",
                s.add, s.update, s.remove, s.delete
            );
        }
        if run.applied.is_some() {
            let _ = write!(
                text,
                ", {} applied, {} failed",
                self.applied(),
                self.failed()
            );
        }
        if held > 0 {
            let _ = write!(text, ", {held} held by a cap (a human must review them)");
        }
        let _ = write!(text, ". Details: roster show {}", run.id);
        text
    }

    /// The webhook's JSON body.
    pub fn webhook_body(&self) -> serde_json::Value {
        let run = self.run;
        let held = self.held();
        let summary = self.plan.map(|p| &p.summary);
        let n = |f: fn(&crate::plan::Summary) -> u64| summary.map_or(0, f);
        serde_json::json!({
            "text": self.text(),
            "run_id": run.id,
            "kind": run.kind.as_str(),
            "outcome": run.outcome.as_str(),
            "host": run.host,
            "started_at": run.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "finished_at": run.finished_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "plan_id": run.plan_id,
            "error": run.error,
            "summary": {
                "add": n(|s| s.add),
                "update": n(|s| s.update),
                "remove": n(|s| s.remove),
                "delete": n(|s| s.delete),
                "held": held.total(),
                "unchanged": n(|s| s.unchanged),
                "rejected": n(|s| s.rejected),
                "applied": run.applied.map(|a| a.applied),
                "failed": run.applied.map(|a| a.failed),
            },
            "held": {
                "add": held.add,
                "update": held.update,
                "remove": held.remove,
                "delete": held.delete,
                "total": held.total(),
            },
        })
    }

    /// The email's subject.
    pub fn subject(&self) -> String {
        let mut subject = format!(
            "roster {} on {}: {}",
            self.run.kind,
            self.host(),
            self.run.outcome
        );
        let held = self.held().total();
        if self.run.applied.is_some() || held > 0 {
            let _ = write!(
                subject,
                " ({} applied, {} failed, {held} held)",
                self.applied(),
                self.failed()
            );
        }
        subject
    }

    /// The email's body: the line, the error, and the actions a human must look at.
    pub fn email_body(&self) -> String {
        const LISTED: usize = 50;
        let mut body = self.text();
        body.push_str("\n\n");
        if let Some(error) = &self.run.error {
            let _ = writeln!(body, "Error: {error}\n");
        }
        if let Some(plan) = self.plan {
            let s = &plan.summary;
            let _ = writeln!(
                body,
                "Plan {}: {} to add, {} to update, {} to remove, {} to delete, {} unchanged, {} rejected records.",
                plan.plan_id, s.add, s.update, s.remove, s.delete, s.unchanged, s.rejected
            );
            let notable: Vec<_> = plan
                .actions
                .iter()
                .filter(|a| matches!(a.status, ActionStatus::Held | ActionStatus::Failed))
                .collect();
            if !notable.is_empty() {
                body.push_str("\nActions a human must look at:\n");
            }
            for a in notable.iter().take(LISTED) {
                let why = match (&a.hold, &a.error) {
                    (Some(hold), _) => format!("held: {hold}"),
                    (None, Some(error)) => format!("failed: {error}"),
                    (None, None) => a.status.as_str().to_string(),
                };
                let _ = writeln!(
                    body,
                    "  {} {} {}  ({why})",
                    a.action.symbol(),
                    a.object().as_str(),
                    a.name()
                );
            }
            if notable.len() > LISTED {
                let _ = writeln!(body, "  ... and {} more", notable.len() - LISTED);
            }
        }
        let _ = writeln!(
            body,
            "\nEvery action with its outcome: roster show {} (CSV: --records, --errors).",
            self.run.id
        );
        body
    }
}

/// Sends every notification `notify` configures, if the run is one `on` asks for; returns
/// how each went (nothing when none was due). Never fails: a notification that cannot be
/// sent is a `Delivery` with its error, logged here.
pub fn send(notify: &Notify, report: &RunReport) -> Vec<Delivery> {
    if !report.is_due(&notify.on) {
        return Vec::new();
    }
    let mut deliveries = Vec::new();
    for notice in &notify.emails {
        deliveries.push(email::send(notice, report));
    }
    for hook in &notify.webhooks {
        deliveries.push(webhook::send(hook, &notify.http, report));
    }
    for d in &deliveries {
        match &d.error {
            None => log::info!("notified by {} to {}", d.channel, d.to),
            Some(error) => log::warn!(
                "the {} notification to {} was not sent: {error} (the run is not affected)",
                d.channel,
                d.to
            ),
        }
    }
    deliveries
}

#[cfg(test)]
mod tests;
