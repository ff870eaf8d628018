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
    /// The holder ran on this host and its process is gone: the lock is left over.
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

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
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
            "INSERT INTO lock (singleton, lock_id, host, pid, command, since) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![lock_id, hostname(), std::process::id(), command, now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)],
        )
        .map_err(|e| match self.holder() {
            // Lost a race with another run starting at the same moment.
            Ok(Some(holder)) => StoreError::Locked(holder),
            _ => self.err(e),
        })?;
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
                "SELECT lock_id, host, pid, command, since FROM lock WHERE singleton = 1",
                [],
                |r| {
                    let host: String = r.get(1)?;
                    let pid: u32 = r.get(2)?;
                    Ok(LockHolder {
                        lock_id: r.get(0)?,
                        dead: host == hostname() && !process_alive(pid),
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
    pub fn unlock(&self, lock_id: &str) -> Result<Option<LockHolder>> {
        let holder = self.holder()?.filter(|h| h.lock_id == lock_id);
        if holder.is_some() {
            self.conn
                .execute("DELETE FROM lock WHERE lock_id = ?1", [lock_id])
                .map_err(|e| self.err(e))?;
        }
        Ok(holder)
    }
}
