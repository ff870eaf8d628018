//! The changes a target is known to drop (`schema/0009_scim_ignored_fields.sql`).
//!
//! Some SCIM providers accept a change and keep something else (`active` ignored, phones
//! dropped). Apply reads changes back and fails such an action; it records here which field
//! of which target was dropped, so that the next plans leave the change out and say why,
//! rather than plan it, fail it and plan it again every run. A record is only believed for
//! a while (the caller says since when): after that the change is tried again, which costs
//! one failed action if the provider still drops it.

use rusqlite::params;

use super::{Result, Store};

impl Store {
    /// Records that `target` dropped `fields` (the plan's field names) at `at`.
    pub fn record_ignored(&self, target: &str, fields: &[String], at: &str) -> Result<()> {
        for field in fields {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO target_ignored_fields (target, field, seen_at) VALUES (?1, ?2, ?3)",
                    params![target, field, at],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The fields `target` was seen dropping at or after `since` (RFC 3339, UTC), by name.
    pub fn ignored_fields(&self, target: &str, since: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT field FROM target_ignored_fields WHERE target = ?1 AND seen_at >= ?2 ORDER BY field",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![target, since], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_fields_are_kept_per_target_and_age_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        let t = "https://scim.example.com/v2";
        store
            .record_ignored(
                t,
                &["active".into(), "phone".into()],
                "2026-01-02T00:00:00.000Z",
            )
            .expect("record");
        store
            .record_ignored(
                "https://other/v2",
                &["title".into()],
                "2026-01-02T00:00:00.000Z",
            )
            .expect("record");
        assert_eq!(
            store
                .ignored_fields(t, "2026-01-01T00:00:00.000Z")
                .expect("read"),
            ["active", "phone"]
        );
        assert!(
            store
                .ignored_fields(t, "2026-01-03T00:00:00.000Z")
                .expect("read")
                .is_empty(),
            "too old to believe"
        );
        store
            .record_ignored(t, &["active".into()], "2026-01-05T00:00:00.000Z")
            .expect("seen again");
        assert_eq!(
            store
                .ignored_fields(t, "2026-01-03T00:00:00.000Z")
                .expect("read"),
            ["active"]
        );
    }
}
