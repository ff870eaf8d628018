//! The state of targets that cannot be listed, kept between runs.
//!
//! A file target has no API to read back what it holds: the file may have been picked up
//! and moved by the system that imports it, or hold only the last run's changes. So the
//! store keeps what the connector last wrote (its own JSON, opaque here), and the next plan
//! diffs against that. It is replaced only after the write succeeded.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

impl Store {
    /// What the target `target` (`TargetConfig::kept_state_key`) held after its last
    /// successful apply; `None` before the first.
    pub fn kept_state(&self, target: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT content FROM kept_target_state WHERE target = ?1")
            .and_then(|mut s| s.query_row([target], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Records what the target holds now, after `plan_id` wrote it.
    pub fn keep_state(&self, target: &str, content: &str, plan_id: &str, at: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO kept_target_state (target, content, plan_id, at) VALUES (?1, ?2, ?3, ?4)",
                params![target, content, plan_id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn kept_state_is_replaced_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        assert_eq!(store.kept_state("file:/x.csv").expect("read"), None);
        store
            .keep_state("file:/x.csv", "[1]", "p1", "2026-01-01T00:00:00Z")
            .expect("keep");
        store
            .keep_state("file:/x.csv", "[2]", "p2", "2026-01-02T00:00:00Z")
            .expect("keep");
        assert_eq!(
            store.kept_state("file:/x.csv").expect("read").as_deref(),
            Some("[2]")
        );
        assert_eq!(store.kept_state("file:/y.csv").expect("read"), None);
    }
}
