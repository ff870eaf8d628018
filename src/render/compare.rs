//! `roster plan --compare FILE`: what changed between a reviewed plan and the plan of now,
//! so a reviewer can see whether the plan they approved still holds.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::shown;
use crate::plan::contract::subject_key;
use crate::plan::{Action, Plan};

/// Actions keyed by what they do to which object, in the order of the contract's names
/// (the order the differences are listed in).
fn keyed(
    plan: &Plan,
) -> BTreeMap<(&'static str, std::borrow::Cow<'_, str>, &'static str), &Action> {
    plan.actions
        .iter()
        .map(|a| {
            (
                (
                    a.object().as_str(),
                    subject_key(&a.subject),
                    a.action.as_str(),
                ),
                a,
            )
        })
        .collect()
}

/// The differences, one line each; empty when both plans do the same.
pub fn compare(reviewed: &Plan, now: &Plan) -> Vec<String> {
    let (old, new) = (keyed(reviewed), keyed(now));
    let mut lines = Vec::new();
    for (key, a) in &new {
        match old.get(key) {
            None => lines.push(format!(
                "  + {} {} {}  (not in the reviewed plan)",
                a.action.as_str(),
                a.object().as_str(),
                shown(a.name())
            )),
            Some(b) if b.changes != a.changes || b.status != a.status || b.name() != a.name() => {
                let mut why = Vec::new();
                if b.changes != a.changes {
                    why.push("other changes".to_string());
                }
                if b.status != a.status {
                    why.push(format!(
                        "{} instead of {}",
                        a.status.as_str(),
                        b.status.as_str()
                    ));
                }
                if b.name() != a.name() {
                    why.push(format!(
                        "username {} instead of {}",
                        shown(a.name()),
                        shown(b.name())
                    ));
                }
                lines.push(format!(
                    "  ~ {} {} {}  ({})",
                    a.action.as_str(),
                    a.object().as_str(),
                    shown(a.name()),
                    why.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    for (key, b) in &old {
        if !new.contains_key(key) {
            lines.push(format!(
                "  - {} {} {}  (no longer planned)",
                b.action.as_str(),
                b.object().as_str(),
                shown(b.name())
            ));
        }
    }
    lines
}

/// The comparison as a block of text for the human and Markdown outputs.
pub fn comparison(reviewed: &Plan, now: &Plan) -> String {
    let lines = compare(reviewed, now);
    let mut out = String::new();
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "Compared with the reviewed plan {}: the same actions.",
            shown(&reviewed.plan_id)
        );
    } else {
        let _ = writeln!(
            out,
            "Compared with the reviewed plan {}: {} differences.",
            shown(&reviewed.plan_id),
            lines.len()
        );
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
