//! How each run read its source (`schema/0008_incremental_cookies.sql`), and where the next
//! incremental read starts.
//!
//! A run records its read with the load; the record counts only once the read was accepted
//! and the run's plan stored, so a cookie from a read that was refused, failed or never
//! planned is never used: `last_good_read` asks for both.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, parse_time};

/// Whether a read was of the whole source or only of what changed since a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Complete,
    Incremental,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadKind::Complete => "complete",
            ReadKind::Incremental => "incremental",
        }
    }

    fn parse(text: &str) -> Option<ReadKind> {
        match text {
            "complete" => Some(ReadKind::Complete),
            "incremental" => Some(ReadKind::Incremental),
            _ => None,
        }
    }
}

/// One run's source read, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReadRecord {
    pub run_id: i64,
    /// The source as described (its URL or path).
    pub source: String,
    /// The server's identity at the read, when the read was tracked.
    pub server: Option<String>,
    /// Where the next incremental read starts; `None` when the read kept none.
    pub cookie: Option<String>,
    pub kind: ReadKind,
    /// Desired users in the run's snapshot: what the next incremental read starts from.
    pub desired: u64,
    /// Records read (every record for a complete read, the changed ones otherwise).
    pub changed: u64,
    /// Explicit delete signals applied.
    pub deleted: u64,
    /// When the read started.
    pub read_at: DateTime<Utc>,
}

/// The newest good read before a run, with what decides whether the next read may be
/// incremental.
#[derive(Debug, Clone, PartialEq)]
pub struct LastGoodRead {
    pub run_id: i64,
    /// The config digest the run was made with: another mapping means another desired state.
    pub config_digest: String,
    /// The run's read record; `None` for a run from before reads were recorded.
    pub read: Option<SourceReadRecord>,
    /// Desired users the run's snapshot still holds (pruned snapshots hold none).
    pub snapshot: u64,
    /// When the newest good complete read started, if there is one.
    pub last_complete_at: Option<DateTime<Utc>>,
    /// Good incremental reads since that complete read.
    pub incremental_since_complete: u64,
}

/// A good read: its source was accepted and its plan stored.
const GOOD: &str = "r.source_accepted = 1 AND EXISTS (SELECT 1 FROM plans p WHERE p.run_id = r.id)";

impl Store {
    /// Records how `record.run_id` read its source (replacing an earlier record of it);
    /// `desired` is counted from the run's snapshot, whatever the record says.
    pub fn record_source_read(&self, record: &SourceReadRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO source_reads (run_id, source, server, cookie, kind, desired, changed, deleted, read_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, (SELECT count(*) FROM desired_users WHERE run_id = ?1), ?6, ?7, ?8)",
                params![
                    record.run_id,
                    record.source,
                    record.server,
                    record.cookie,
                    record.kind.as_str(),
                    record.changed,
                    record.deleted,
                    record.read_at.to_rfc3339(),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest good read (accepted, its plan stored) before `run_id`, whatever it was.
    pub fn last_good_read(&self, run_id: i64) -> Result<Option<LastGoodRead>> {
        let newest = self
            .conn
            .query_row(
                &format!(
                    "SELECT r.id, r.config_digest, s.run_id, s.source, s.server, s.cookie, s.kind,
                            s.desired, s.changed, s.deleted, s.read_at,
                            (SELECT count(*) FROM desired_users d WHERE d.run_id = r.id)
                     FROM runs r LEFT JOIN source_reads s ON s.run_id = r.id
                     WHERE {GOOD} AND r.id < ?1 ORDER BY r.id DESC LIMIT 1"
                ),
                [run_id],
                |row| {
                    let read = match row.get::<_, Option<i64>>(2)? {
                        None => None,
                        Some(id) => {
                            let kind: String = row.get(6)?;
                            Some(SourceReadRecord {
                                run_id: id,
                                source: row.get(3)?,
                                server: row.get(4)?,
                                cookie: row.get(5)?,
                                // An unknown word is a read not to start from.
                                kind: ReadKind::parse(&kind).unwrap_or(ReadKind::Complete),
                                desired: row.get::<_, i64>(7)?.max(0) as u64,
                                changed: row.get::<_, i64>(8)?.max(0) as u64,
                                deleted: row.get::<_, i64>(9)?.max(0) as u64,
                                read_at: parse_time(row.get(10)?),
                            })
                        }
                    };
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        read,
                        row.get::<_, i64>(11)?.max(0) as u64,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, config_digest, read, snapshot)) = newest else {
            return Ok(None);
        };
        // Runs from before reads were recorded were complete reads.
        let complete: Option<(i64, Option<String>)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT r.id, s.read_at FROM runs r LEFT JOIN source_reads s ON s.run_id = r.id
                     WHERE {GOOD} AND r.id < ?1 AND coalesce(s.kind, 'complete') = 'complete'
                     ORDER BY r.id DESC LIMIT 1"
                ),
                [run_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let (last_complete_at, incremental_since_complete) = match complete {
            None => (None, 0),
            Some((complete_id, at)) => {
                let since: i64 = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM runs r JOIN source_reads s ON s.run_id = r.id
                             WHERE {GOOD} AND r.id > ?1 AND r.id < ?2 AND s.kind = 'incremental'"
                        ),
                        params![complete_id, run_id],
                        |row| row.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                (at.map(parse_time), since.max(0) as u64)
            }
        };
        Ok(Some(LastGoodRead {
            run_id: id,
            config_digest,
            read,
            snapshot,
            last_complete_at,
            incremental_since_complete,
        }))
    }

    /// The read record of `run_id`, if it has one.
    pub fn source_read(&self, run_id: i64) -> Result<Option<SourceReadRecord>> {
        self.conn
            .query_row(
                "SELECT run_id, source, server, cookie, kind, desired, changed, deleted, read_at
                 FROM source_reads WHERE run_id = ?1",
                [run_id],
                |row| {
                    let kind: String = row.get(4)?;
                    Ok(SourceReadRecord {
                        run_id: row.get(0)?,
                        source: row.get(1)?,
                        server: row.get(2)?,
                        cookie: row.get(3)?,
                        kind: ReadKind::parse(&kind).unwrap_or(ReadKind::Complete),
                        desired: row.get::<_, i64>(5)?.max(0) as u64,
                        changed: row.get::<_, i64>(6)?.max(0) as u64,
                        deleted: row.get::<_, i64>(7)?.max(0) as u64,
                        read_at: parse_time(row.get(8)?),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredUser, Pair, Reject, TargetUser};
    use crate::plan::{FORMAT_VERSION, Plan, Summary};
    use crate::store::{Deletion, Loader, RunKind};

    use crate::store::temp_store as store;

    fn user(key: &str, username: &str, email: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            username: username.into(),
            email: Some(email.into()),
            ..DesiredUser::default()
        }
    }

    fn account(key: &str, username: &str) -> TargetUser {
        TargetUser {
            id: format!("t-{key}"),
            external_id: Some(key.into()),
            username: username.into(),
            active: true,
            ..TargetUser::default()
        }
    }

    fn plan(id: &str) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            plan_id: id.into(),
            created_at: Utc::now(),
            summary: Summary::default(),
            actions: Vec::new(),
            stored: None,
            mode: crate::config::Mode::Remove,
            config_digest: "cfg".into(),
            desired_digest: String::new(),
            forced: Vec::new(),
            notes: Vec::new(),
            remove_means: None,
            delete_means: None,
            target: "t".into(),
            max_removes: None,
            managed: None,
            target_accounts: None,
            initial: false,
        }
    }

    fn record(store: &Store, run_id: i64, kind: ReadKind, cookie: &str) {
        store
            .record_source_read(&SourceReadRecord {
                run_id,
                source: "ldap://dir".into(),
                server: Some("id".into()),
                cookie: Some(cookie.into()),
                kind,
                desired: 0,
                changed: 0,
                deleted: 0,
                read_at: Utc::now(),
            })
            .expect("record");
    }

    /// Each pair as `username: what` (the planner's input).
    fn pairs(store: &Store, run: i64) -> Vec<String> {
        let mut seen = Vec::new();
        store
            .for_each_pair(run, |pair| {
                seen.push(match pair {
                    Pair::Both {
                        desired, target, ..
                    } => format!(
                        "{} -> {} {}",
                        desired.username,
                        target.id,
                        desired.email.unwrap_or_default()
                    ),
                    Pair::SourceOnly(desired) => format!("{} new", desired.username),
                    Pair::TargetOnly { target, protected } => format!(
                        "{} alone{}",
                        target.id,
                        protected
                            .map(|p| format!(", protected: {p}"))
                            .unwrap_or_default()
                    ),
                })
            })
            .expect("pairs");
        seen.sort();
        seen
    }

    #[test]
    fn an_incremental_load_patches_the_base_and_removes_only_on_a_delete_signal() {
        let (_dir, mut store) = store();
        let base = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(base).expect("loader");
        for (key, name) in [
            ("k1", "alice"),
            ("k2", "bob"),
            ("k3", "carol"),
            ("k4", "dave"),
        ] {
            loader
                .desired(
                    &user(key, name, &format!("{name}@old")),
                    &format!("uid={name}"),
                )
                .expect("load");
        }
        loader
            .reject(&Reject {
                origin: "uid=erin".into(),
                key: Some("k5".into()),
                username: Some("erin".into()),
                reason: "invalid email".into(),
            })
            .expect("reject");
        loader.finish().expect("finish");

        let run = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        assert_eq!(loader.patch_from(base).expect("patch"), 4);
        for (key, name) in [
            ("k1", "alice"),
            ("k2", "bob"),
            ("k3", "carol"),
            ("k4", "dave"),
            ("k5", "erin"),
        ] {
            loader.target(&account(key, name)).expect("target");
        }
        // bob changed; carol was renamed (another DN, same key); dave is gone, said the source.
        loader
            .desired(&user("k2", "bob", "bob@new"), "uid=bob")
            .expect("load");
        loader
            .desired(&user("k3", "caroline", "carol@old"), "uid=caroline")
            .expect("load");
        loader.deleted("uid=dave", None);
        loader.deleted("uid=nobody", None);
        let counts = loader.finish().expect("finish");
        assert_eq!(
            (counts.desired, counts.rejected, counts.source),
            (3, 1, 4),
            "the counts are those of the whole patched state"
        );
        assert_eq!(
            counts.deleted, 1,
            "only dave's signal took a desired user out"
        );
        assert_eq!(
            pairs(&store, run),
            [
                "alice -> t-k1 alice@old",
                "bob -> t-k2 bob@new",
                "caroline -> t-k3 carol@old",
                "t-k4 alone",
                "t-k5 alone, protected: its source record was rejected (see `roster show`)",
            ],
            "alice, not read, is kept; only dave, deleted, is left alone; erin's reject still protects her"
        );
    }

    #[test]
    fn a_record_read_at_an_origin_replaces_what_the_base_held_there_under_another_key() {
        let (_dir, mut store) = store();
        let base = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(base).expect("loader");
        for (key, name) in [
            ("k1", "alice"),
            ("k2", "frank"),
            ("k3", "gina"),
            ("k4", "hal"),
        ] {
            loader
                .desired(
                    &user(key, name, &format!("{name}@old")),
                    &format!("uid={name}"),
                )
                .expect("load");
        }
        loader.finish().expect("finish");

        let run = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.patch_from(base).expect("patch");
        // frank's entry now maps to another key under the same username (had the base row
        // stayed, the two would clash as duplicate usernames); gina's is now rejected; hal's
        // is rejected, then deleted: the delete finds no desired user of the source there.
        loader
            .desired(&user("k9", "frank", "frank@new"), "uid=frank")
            .expect("load");
        for name in ["gina", "hal"] {
            loader
                .reject(&Reject {
                    origin: format!("uid={name}"),
                    key: None,
                    username: Some(name.into()),
                    reason: "invalid email".into(),
                })
                .expect("reject");
        }
        loader.deleted("uid=hal", None);
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.desired, counts.rejected), (2, 1));
        assert_eq!(
            counts.deleted, 0,
            "hal's signal found no desired user there"
        );
        assert_eq!(
            pairs(&store, run),
            ["alice new", "frank new"],
            "only the records read at each origin are left there"
        );
        let frank: String = store
            .conn
            .query_row(
                "SELECT key FROM desired_users WHERE run_id = ?1 AND origin = 'uid=frank'",
                [run],
                |r| r.get(0),
            )
            .expect("frank");
        assert_eq!(frank, "k9");
    }

    /// A base of alice, bob and carol, each read with its source id (`id-<name>`).
    fn base_with_ids(store: &mut Store) -> i64 {
        let base = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(base).expect("loader");
        for (key, name) in [("k1", "alice"), ("k2", "bob"), ("k3", "carol")] {
            let origin = format!("uid={name}");
            loader
                .source_id(&format!("ID-{name}"), &origin)
                .expect("id");
            loader
                .desired(&user(key, name, &format!("{name}@old")), &origin)
                .expect("load");
        }
        loader.finish().expect("finish");
        base
    }

    /// A new run whose load patches `base`'s desired state.
    fn patching(store: &mut Store, base: i64) -> (i64, Loader<'_>) {
        let run = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.patch_from(base).expect("patch");
        (run, loader)
    }

    #[test]
    fn a_delete_by_id_takes_out_that_record_and_never_a_newer_entry_at_its_origin() {
        let (_dir, mut store) = store();
        let base = base_with_ids(&mut store);
        let (run, mut loader) = patching(&mut store, base);
        // bob's entry was deleted and created again under the same DN (a new id), and the
        // read names the old one deleted after the new one; carol's entry was changed, then
        // deleted before the delete was read: the delete is of the very record read.
        loader.source_id("id-bob2", "uid=bob").expect("id");
        loader
            .desired(&user("k9", "bob", "bob@new"), "uid=bob")
            .expect("load");
        loader.source_id("id-carol", "uid=carol").expect("id");
        loader
            .desired(&user("k3", "carol", "carol@new"), "uid=carol")
            .expect("load");
        assert_eq!(
            loader.deleted_id("id-bob").expect("delete"),
            Deletion::Superseded {
                origin: "uid=bob".into()
            }
        );
        assert_eq!(
            loader.deleted_id("ID-CAROL").expect("delete"),
            Deletion::Taken {
                origin: "uid=carol".into()
            }
        );
        assert_eq!(
            loader.deleted_id("id-nobody").expect("delete"),
            Deletion::Unseen
        );
        assert_eq!(
            loader.origin_of("id-bob").expect("origin"),
            None,
            "a deleted id is forgotten"
        );
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.desired, counts.deleted), (2, 1));
        assert_eq!(pairs(&store, run), ["alice new", "bob new"]);
        let bob: String = store
            .conn
            .query_row(
                "SELECT key FROM desired_users WHERE run_id = ?1 AND origin = 'uid=bob'",
                [run],
                |r| r.get(0),
            )
            .expect("bob");
        assert_eq!(bob, "k9", "the new entry stays");
    }

    #[test]
    fn a_record_read_after_a_delete_signal_at_its_origin_stays() {
        let (_dir, mut store) = store();
        let base = base_with_ids(&mut store);
        let (run, mut loader) = patching(&mut store, base);
        // Deleted, then read again (created again) at the same origin: the record stays.
        assert_eq!(
            loader.deleted_id("id-alice").expect("delete"),
            Deletion::Taken {
                origin: "uid=alice".into()
            }
        );
        loader.source_id("id-alice2", "uid=alice").expect("id");
        loader
            .desired(&user("k7", "alice", "alice@new"), "uid=alice")
            .expect("load");
        // Read, then deleted by origin: the delete is the later word.
        loader
            .desired(&user("k2", "bob", "bob@new"), "uid=bob")
            .expect("load");
        loader.deleted("uid=bob", None);
        // Read with an id, then a delete at its origin naming another id (an AD tombstone
        // of the object that was there before): the record read stays.
        loader.source_id("id-carol2", "uid=carol").expect("id");
        loader
            .desired(&user("k8", "carol", "carol@new"), "uid=carol")
            .expect("load");
        assert_eq!(
            loader.deleted("uid=carol", Some("ID-CAROL")),
            Deletion::Superseded {
                origin: "uid=carol".into()
            }
        );
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.desired, counts.deleted), (2, 1));
        assert_eq!(pairs(&store, run), ["alice new", "carol new"]);
    }

    #[test]
    fn a_changed_record_whose_key_another_record_holds_is_a_duplicate_as_in_a_complete_read() {
        let (_dir, mut store) = store();
        let base = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(base).expect("loader");
        loader
            .desired(&user("k1", "alice", "a@x"), "uid=alice")
            .expect("load");
        loader
            .desired(&user("k1", "alias", "a@x"), "uid=alias")
            .expect("load");
        loader.finish().expect("finish");
        assert_eq!(store.reject_count(base).expect("rejects"), 2);

        let run = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let mut loader = store.loader(run).expect("loader");
        loader.patch_from(base).expect("patch");
        loader.target(&account("k1", "alice")).expect("target");
        loader
            .desired(&user("k1", "alice", "a@new"), "uid=alice")
            .expect("load");
        let counts = loader.finish().expect("finish");
        assert_eq!((counts.desired, counts.rejected), (0, 2));
        assert_eq!(
            pairs(&store, run),
            ["t-k1 alone, protected: its source record was rejected (see `roster show`)"]
        );
    }

    #[test]
    fn only_a_read_that_was_accepted_and_planned_is_a_starting_point() {
        let (_dir, store) = store();
        let good = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        record(&store, good, ReadKind::Complete, "c1");
        store.accept_source(good).expect("accept");
        store.save_plan(&plan("p1"), Some(good), "d").expect("plan");

        let refused = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        record(&store, refused, ReadKind::Incremental, "c2");
        let unplanned = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        record(&store, unplanned, ReadKind::Incremental, "c3");
        store.accept_source(unplanned).expect("accept");

        let now = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        let last = store
            .last_good_read(now)
            .expect("read")
            .expect("a good read");
        assert_eq!(last.run_id, good);
        assert_eq!(last.read.and_then(|r| r.cookie).as_deref(), Some("c1"));
        assert_eq!(last.incremental_since_complete, 0);
        assert!(last.last_complete_at.is_some());

        let next = store
            .begin_run(RunKind::Plan, "cfg", Utc::now())
            .expect("run");
        record(&store, now, ReadKind::Incremental, "c4");
        store.accept_source(now).expect("accept");
        store.save_plan(&plan("p2"), Some(now), "d").expect("plan");
        let last = store
            .last_good_read(next)
            .expect("read")
            .expect("a good read");
        assert_eq!((last.run_id, last.incremental_since_complete), (now, 1));
        assert_eq!(last.read.map(|r| r.kind), Some(ReadKind::Incremental));
    }
}
