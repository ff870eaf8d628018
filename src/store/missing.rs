//! Marks of managed accounts missing from the source, kept between runs for the grace
//! period (`remove-after`) and the drip order (`over-cap "drip"`).
//!
//! The planner decides which accounts are missing and what their marks become; the store
//! only keeps them. They are replaced whole after a plan, which the pipeline makes only on
//! a read that passed the completeness checks: a failed or refused read never advances a
//! mark, and an account that came back (or left the target) loses its mark.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::params;

use super::{Result, Store, StoreError};
use crate::model::MissingMark;

impl Store {
    /// The marks `owner`'s accounts carry: key → mark.
    pub fn missing_marks(&self, owner: &str) -> Result<HashMap<String, MissingMark>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, since, runs FROM missing_accounts WHERE owner = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([owner], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut marks = HashMap::new();
        for row in rows {
            let (key, since, runs) = row.map_err(|e| self.err(e))?;
            let since = DateTime::parse_from_rfc3339(&since)
                .map_err(|e| {
                    self.invalid(format!(
                        "missing_accounts: key {key:?}: since {since:?}: {e}"
                    ))
                })?
                .with_timezone(&Utc);
            let runs = u64::try_from(runs)
                .map_err(|_| self.invalid(format!("missing_accounts: key {key:?}: runs {runs}")))?;
            marks.insert(key, MissingMark { since, runs });
        }
        Ok(marks)
    }

    /// Replaces `owner`'s marks with `marks`, in one transaction.
    pub fn keep_missing_marks(&self, owner: &str, marks: &[(String, MissingMark)]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM missing_accounts WHERE owner = ?1", [owner])
            .map_err(|e| self.err(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO missing_accounts (owner, key, since, runs) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.err(e))?;
            for (key, mark) in marks {
                let since = mark.since.to_rfc3339_opts(SecondsFormat::Millis, true);
                let runs = i64::try_from(mark.runs).unwrap_or(i64::MAX);
                insert
                    .execute(params![owner, key, since, runs])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn invalid(&self, message: String) -> StoreError {
        StoreError::Invalid {
            path: self.path.display().to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_replaced_whole_and_kept_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let first = MissingMark {
            since: at("2026-12-01T10:00:00Z"),
            runs: 1,
        };
        store
            .keep_missing_marks("hr", &[("k1".into(), first), ("k2".into(), first)])
            .unwrap();
        store
            .keep_missing_marks("other", &[("k1".into(), first)])
            .unwrap();
        let later = MissingMark { runs: 2, ..first };
        store
            .keep_missing_marks("hr", &[("k2".into(), later)])
            .unwrap();
        let marks = store.missing_marks("hr").unwrap();
        assert_eq!(marks.len(), 1, "k1 came back: its mark is gone");
        assert_eq!(marks["k2"], later);
        assert_eq!(store.missing_marks("other").unwrap()["k1"], first);
    }
}
