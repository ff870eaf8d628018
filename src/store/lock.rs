//! The state lock: one row in `lock` while a plan, apply or sync runs, so that two runs never
//! interleave their snapshots or apply the same plan twice. Taking it never waits: a second
//! run fails at once and names the holder.

use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError};

/// Who holds the lock, for the message a second run prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub lock_id: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
    /// The holder ran on this host (so whether it is alive can be told).
    pub here: bool,
    /// The holder ran on this host and its process is gone (or its pid now belongs to a
    /// process that started later): the lock is left over.
    pub dead: bool,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the state is locked by `roster {}` (pid {} on {}, since {}, lock id {})",
            self.command, self.pid, self.host, self.since, self.lock_id
        )?;
        if self.dead {
            write!(
                f,
                "; that process is no longer running: release the lock with `roster unlock {}`",
                self.lock_id
            )?;
        }
        Ok(())
    }
}

/// Releases the lock when dropped.
pub struct LockGuard {
    store: Store,
    lock_id: String,
}

impl LockGuard {
    pub fn lock_id(&self) -> &str {
        &self.lock_id
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Err(e) = self
            .store
            .conn
            .execute("DELETE FROM lock WHERE lock_id = ?1", [&self.lock_id])
        {
            log::warn!("could not release the state lock {}: {e}", self.lock_id);
        }
    }
}

pub(crate) fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22), if
/// it exists.
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that took a lock is still running: its pid exists and, when the lock
/// recorded it, started at the same moment (a pid is reused once its process is gone).
fn process_alive(pid: u32, started: Option<i64>) -> bool {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    match (started, process_start(pid)) {
        (Some(recorded), Some(now)) => recorded == now,
        _ => true,
    }
}

fn new_lock_id() -> String {
    let mut bytes = [0u8; 8];
    // A clash would need two runs to start at once and draw the same 64 bits; if the random
    // source fails, the pid and time still tell locks apart.
    if getrandom::fill(&mut bytes).is_err() {
        let t = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64
            ^ u64::from(std::process::id());
        bytes = t.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Takes the state lock for `command`, or fails at once naming the holder.
    pub fn lock(&self, command: &str, now: DateTime<Utc>) -> Result<LockGuard> {
        let guard_store = self.reopen()?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        if let Some(holder) = self.holder()? {
            return Err(StoreError::Locked(holder));
        }
        let lock_id = new_lock_id();
        tx.execute(
            "INSERT INTO lock (singleton, lock_id, host, pid, command, since, process_start) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![lock_id, hostname(), std::process::id(), command, now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), process_start(std::process::id())],
        )
        .map_err(|e| match self.holder() {
            // Lost a race with another run starting at the same moment.
            Ok(Some(holder)) => StoreError::Locked(holder),
            _ => self.err(e),
        })?;
        // Holding the lock, this is the only run on the state: a run still marked running
        // is one whose process died without finishing it.
        let interrupted = self.mark_interrupted(now)?;
        if interrupted > 0 {
            log::warn!(
                "{} earlier {} ended without finishing (killed or crashed): marked interrupted",
                interrupted,
                if interrupted == 1 { "run" } else { "runs" }
            );
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(LockGuard {
            store: guard_store,
            lock_id,
        })
    }

    /// The current holder of the lock, if any.
    pub fn holder(&self) -> Result<Option<LockHolder>> {
        self.conn
            .query_row(
                "SELECT lock_id, host, pid, command, since, process_start FROM lock WHERE singleton = 1",
                [],
                |r| {
                    let host: String = r.get(1)?;
                    let pid: u32 = r.get(2)?;
                    let here = host == hostname();
                    Ok(LockHolder {
                        lock_id: r.get(0)?,
                        here,
                        dead: here && !process_alive(pid, r.get(5)?),
                        host,
                        pid,
                        command: r.get(3)?,
                        since: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Releases a lock by id (`roster unlock`). Returns the holder that was released.
    /// Refuses while the holder is alive on this host, and for a holder on another host
    /// (whose life cannot be seen from here) unless `force`: releasing the lock of a running
    /// apply lets a second run create the same accounts again.
    pub fn unlock(&self, lock_id: &str, force: bool) -> Result<Option<LockHolder>> {
        let holder = self.holder()?.filter(|h| h.lock_id == lock_id);
        match &holder {
            Some(h) if h.here && !h.dead => return Err(StoreError::HolderAlive(h.clone())),
            Some(h) if !h.here && !force => return Err(StoreError::HolderElsewhere(h.clone())),
            _ => {}
        }
        if holder.is_some() {
            self.conn
                .execute("DELETE FROM lock WHERE lock_id = ?1", [lock_id])
                .map_err(|e| self.err(e))?;
        }
        Ok(holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, RunKind};

    use crate::store::temp_store as store;

    /// A lock row as another run would have left it.
    fn plant(store: &Store, host: &str, pid: u32, start: Option<i64>) {
        store
            .conn
            .execute(
                "INSERT INTO lock (singleton, lock_id, host, pid, command, since, process_start)
                 VALUES (1, 'abc', ?1, ?2, 'apply', '2026-01-01T00:00:00Z', ?3)",
                params![host, pid, start],
            )
            .expect("lock row");
    }

    fn locked(store: &Store) -> bool {
        store.holder().expect("holder").is_some()
    }

    #[test]
    fn a_live_holder_on_this_host_is_never_released() {
        let (_dir, store) = store();
        let guard = store.lock("apply", Utc::now()).expect("lock");
        for force in [false, true] {
            let err = store.unlock(guard.lock_id(), force).expect_err("refused");
            assert!(matches!(err, StoreError::HolderAlive(_)), "{err}");
            assert!(err.to_string().contains("still running"), "{err}");
        }
        assert!(locked(&store));
    }

    #[test]
    fn a_holder_on_another_host_needs_force() {
        let (_dir, store) = store();
        plant(&store, "elsewhere.example", 1, None);
        let err = store.unlock("abc", false).expect_err("refused");
        assert!(err.to_string().contains("may still be going"), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(locked(&store));
        let released = store.unlock("abc", true).expect("released");
        assert_eq!(released.map(|h| h.host), Some("elsewhere.example".into()));
        assert!(!locked(&store));
    }

    #[test]
    fn a_dead_holder_or_a_reused_pid_is_released() {
        let (_dir, store) = store();
        // Our own pid, but started at another moment: the pid was reused.
        let me = std::process::id();
        let started = process_start(me).expect("own start time");
        plant(&store, &hostname(), me, Some(started + 1));
        let holder = store.holder().expect("holder").expect("a holder");
        assert!(holder.dead, "a reused pid is not the holder");
        assert!(store.unlock("abc", false).expect("released").is_some());

        // A pid no process has (above the kernel's pid_max).
        plant(&store, &hostname(), 4_194_305, None);
        assert!(store.unlock("abc", false).expect("released").is_some());
        assert!(!locked(&store));
    }

    #[test]
    fn runs_left_running_are_marked_interrupted_by_the_next_lock() {
        let (_dir, store) = store();
        let killed = store
            .begin_run(RunKind::Apply, "digest", Utc::now())
            .expect("run");
        let guard = store.lock("plan", Utc::now()).expect("lock");
        drop(guard);
        let run = store.run(killed).expect("run").expect("exists");
        assert_eq!(run.outcome, Outcome::Interrupted);
        assert!(run.error.is_some_and(|e| e.contains("without finishing")));
    }
}
