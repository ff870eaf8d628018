//! How many requests a client has in flight: fewer when the server says it is overloaded.
//!
//! A server that sheds load answers 429 (or 503 with `Retry-After`). Sending as many again
//! right after only earns more of them, so every client adapts, additive increase,
//! multiplicative decrease (AIMD, as TCP does):
//! - **Halved on overload**: the limit becomes half of what was in flight (at least 1). One
//!   burst of refusals halves it once: a refusal of a request sent before the last decrease
//!   says nothing new.
//! - **One more after a run of successes**: after as many answers in a row as the limit, from
//!   requests sent since the last change, the limit goes up by one; once it is above the most
//!   ever in flight, there is no limit again. It never goes above what the callers send at
//!   once (the apply's `concurrency` threads), since it only ever limits them.
//! - **`Retry-After` holds everyone**: no request of the client starts before the time the
//!   server asked for (at most `MAX_RETRY_AFTER_SECS`; the retry policy, `retry.rs`, decides
//!   whether the refused request itself goes again).
//!
//! The decisions are `Limits`, which knows no clock and no thread; `Admission` is the gate
//! the threads wait at.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::retry::MAX_RETRY_AFTER_SECS;

/// The limit and what it is decided from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight now.
    pub in_flight: usize,
    /// At most this many in flight; `None`: as many as the callers send.
    pub limit: Option<usize>,
    /// The most ever in flight.
    pub peak: usize,
    /// Changes of the limit so far; a request remembers the one it was sent under.
    pub epoch: u64,
    /// Answers in a row since the last change.
    pub successes: usize,
}

/// A change of the limit, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Down { from: usize, to: usize },
    Up { from: usize, to: Option<usize> },
}

impl Limits {
    /// Whether one more request may start now.
    pub fn admits(&self) -> bool {
        self.limit.is_none_or(|limit| self.in_flight < limit)
    }

    /// A request starts; returns the epoch it is sent under.
    pub fn start(&mut self) -> u64 {
        self.in_flight += 1;
        self.peak = self.peak.max(self.in_flight);
        self.epoch
    }

    /// The request sent under `epoch` was refused as overload (it is still counted in
    /// flight).
    pub fn overloaded(&mut self, epoch: u64) -> Option<Change> {
        if epoch != self.epoch {
            return None;
        }
        let from = self.limit.unwrap_or(self.in_flight).max(1);
        let to = (from / 2).max(1);
        self.limit = Some(to);
        self.epoch += 1;
        self.successes = 0;
        (to != from).then_some(Change::Down { from, to })
    }

    /// The request sent under `epoch` was answered (whatever the answer, the server was not
    /// overloaded).
    pub fn answered(&mut self, epoch: u64) -> Option<Change> {
        let limit = self.limit?;
        if epoch != self.epoch {
            return None;
        }
        self.successes += 1;
        if self.successes < limit {
            return None;
        }
        let to = (limit < self.peak).then_some(limit + 1);
        self.limit = to;
        self.epoch += 1;
        self.successes = 0;
        Some(Change::Up { from: limit, to })
    }

    /// A request ended (after `overloaded`, `answered` or neither, as after a dropped
    /// connection).
    pub fn end(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

#[derive(Debug, Default)]
struct Gate {
    limits: Limits,
    /// No request starts before this (a `Retry-After`).
    resume_at: Option<Instant>,
    /// Threads waiting in `enter`: a request that ends wakes them only if there are any (a
    /// `Condvar` wakes through a system call whether anyone waits or not, and every request
    /// ends).
    waiting: usize,
}

/// The gate every request of one client passes, on every thread.
#[derive(Debug, Default)]
pub struct Admission {
    /// Names the server in the log lines of a change.
    name: String,
    gate: Mutex<Gate>,
    changed: Condvar,
}

/// A request let through; ends when answered, refused or dropped.
pub struct Ticket<'a> {
    admission: &'a Admission,
    epoch: u64,
    /// Ended already (answered or refused): dropping it ends nothing more.
    ended: bool,
}

impl Admission {
    pub fn new(name: impl Into<String>) -> Admission {
        Admission {
            name: name.into(),
            ..Admission::default()
        }
    }

    /// Waits until the limit lets one more request start and no `Retry-After` holds.
    pub fn enter(&self) -> Ticket<'_> {
        let mut gate = self.lock();
        loop {
            let now = Instant::now();
            let hold = match gate.resume_at {
                Some(at) if at > now => Some(at - now),
                _ if !gate.limits.admits() => None,
                _ => break,
            };
            gate.waiting += 1;
            gate = match hold {
                Some(hold) => self
                    .changed
                    .wait_timeout(gate, hold)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0),
                None => self
                    .changed
                    .wait(gate)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
            gate.waiting -= 1;
        }
        let epoch = gate.limits.start();
        Ticket {
            admission: self,
            epoch,
            ended: false,
        }
    }

    /// A request ends, `decide` saying under the same lock what its answer changes; the
    /// threads waiting to start one are woken if there are any.
    fn leave(&self, decide: impl FnOnce(&mut Gate) -> Option<Change>) -> Option<Change> {
        let (change, waiting) = {
            let mut gate = self.lock();
            let change = decide(&mut gate);
            gate.limits.end();
            (change, gate.waiting > 0)
        };
        if waiting {
            self.changed.notify_all();
        }
        change
    }

    /// What the limits are now (for tests and the log).
    pub fn limits(&self) -> Limits {
        self.lock().limits.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        // Nothing panics while the lock is held; a poisoned lock still holds valid counts.
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log(&self, change: Option<Change>, status: Option<u16>) {
        match change {
            Some(Change::Down { from, to }) => log::info!(
                "{}: answered {}: at most {to} requests at a time (was {from})",
                self.name,
                status.unwrap_or(429)
            ),
            Some(Change::Up { from, to: Some(to) }) => log::info!(
                "{}: answering again: at most {to} requests at a time (was {from})",
                self.name
            ),
            Some(Change::Up { from, to: None }) => log::info!(
                "{}: answering again: requests no longer limited (was {from} at a time)",
                self.name
            ),
            None => {}
        }
    }
}

impl Ticket<'_> {
    /// The server refused the request as overloaded (`status` 429 or 503), asking for
    /// `retry_after` seconds.
    pub fn overloaded(self, status: u16, retry_after: Option<u64>) {
        self.end(Some(status), |gate, epoch| {
            if let Some(secs) = retry_after.filter(|&s| s <= MAX_RETRY_AFTER_SECS) {
                let at = Instant::now() + Duration::from_secs(secs);
                gate.resume_at = Some(gate.resume_at.map_or(at, |r| r.max(at)));
            }
            gate.limits.overloaded(epoch)
        });
    }

    /// The server answered (not an overload).
    pub fn answered(self) {
        self.end(None, |gate, epoch| gate.limits.answered(epoch));
    }

    /// Ends the request as the server answered it (`status` when it refused it), `decide`
    /// saying what the answer changes, and logs the change.
    fn end(mut self, status: Option<u16>, decide: impl FnOnce(&mut Gate, u64) -> Option<Change>) {
        self.ended = true;
        let epoch = self.epoch;
        let change = self.admission.leave(|gate| decide(gate, epoch));
        self.admission.log(change, status);
    }
}

impl Drop for Ticket<'_> {
    /// A request that ended with neither answer (a dropped connection, a timeout).
    fn drop(&mut self) {
        if !self.ended {
            self.admission.leave(|_| None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` requests started under the current epoch.
    fn start(limits: &mut Limits, n: usize) -> Vec<u64> {
        (0..n).map(|_| limits.start()).collect()
    }

    #[test]
    fn a_burst_of_refusals_halves_the_limit_once_and_successes_win_it_back() {
        let mut limits = Limits::default();
        let epochs = start(&mut limits, 8);
        assert!(limits.admits(), "no limit before the first refusal");
        // Six of the eight refused: halved once, from the eight in flight.
        assert_eq!(
            limits.overloaded(epochs[0]),
            Some(Change::Down { from: 8, to: 4 })
        );
        for &e in &epochs[1..6] {
            assert_eq!(limits.overloaded(e), None);
        }
        for _ in 0..8 {
            limits.end();
        }
        // Successes of requests sent before the change do not count.
        assert_eq!(limits.answered(epochs[7]), None);
        // Refused again at four: two.
        let e = limits.start();
        assert_eq!(limits.overloaded(e), Some(Change::Down { from: 4, to: 2 }));
        limits.end();
        assert_eq!(limits.limit, Some(2));
        // Two answers in a row: three; three more: four; ... past the peak: no limit.
        let mut ups = Vec::new();
        while limits.limit.is_some() {
            let e = limits.start();
            limits.end();
            if let Some(change) = limits.answered(e) {
                ups.push(change);
            }
        }
        assert_eq!(
            ups,
            [
                Change::Up {
                    from: 2,
                    to: Some(3)
                },
                Change::Up {
                    from: 3,
                    to: Some(4)
                },
                Change::Up {
                    from: 4,
                    to: Some(5)
                },
                Change::Up {
                    from: 5,
                    to: Some(6)
                },
                Change::Up {
                    from: 6,
                    to: Some(7)
                },
                Change::Up {
                    from: 7,
                    to: Some(8)
                },
                Change::Up { from: 8, to: None },
            ]
        );
    }

    #[test]
    fn the_limit_never_goes_below_one_and_holds_requests_back() {
        let mut limits = Limits::default();
        let e = limits.start();
        assert_eq!(limits.overloaded(e), None, "one in flight: stays one");
        assert_eq!(limits.limit, Some(1));
        assert!(!limits.admits(), "the one in flight still counts");
        limits.end();
        assert!(limits.admits());
        let e = limits.start();
        assert_eq!(limits.overloaded(e), None);
        assert_eq!(limits.limit, Some(1));
    }

    #[test]
    fn tickets_count_in_flight_and_retry_after_holds_everyone() {
        let admission = Admission::new("double");
        let a = admission.enter();
        let b = admission.enter();
        assert_eq!(admission.limits().in_flight, 2);
        a.overloaded(429, Some(0));
        assert_eq!(admission.limits().limit, Some(1));
        assert_eq!(admission.limits().in_flight, 1);
        b.answered();
        assert_eq!(admission.limits().in_flight, 0);
        // A Retry-After of 0 s holds nobody; the next request passes at once.
        let c = admission.enter();
        c.answered();
        // One answer in a row at a limit of one: two, still below nothing (peak two).
        assert_eq!(admission.limits().limit, Some(2));
    }

    #[test]
    fn a_request_held_back_by_the_limit_starts_when_one_in_flight_ends() {
        let admission = std::sync::Arc::new(Admission::new("double"));
        let first = admission.enter();
        let second = admission.enter();
        second.overloaded(429, None);
        assert_eq!(admission.limits().limit, Some(1));
        let (entered, started) = std::sync::mpsc::channel();
        // Not scoped: should it never be let through, the test fails rather than hangs.
        let held = std::sync::Arc::clone(&admission);
        let waiter = std::thread::spawn(move || {
            let ticket = held.enter();
            let _ = entered.send(());
            ticket.answered();
        });
        // Held back while the first is in flight (a thread that has not got there yet is
        // not through either).
        assert!(started.recv_timeout(Duration::from_millis(50)).is_err());
        first.answered();
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("the held request starts once the first ends");
        waiter.join().expect("waiter");
        assert_eq!(admission.limits().in_flight, 0);
        assert_eq!(admission.lock().waiting, 0);
    }

    #[test]
    fn a_dropped_ticket_ends_its_request_once() {
        let admission = Admission::new("double");
        let a = admission.enter();
        let b = admission.enter();
        drop(a);
        assert_eq!(admission.limits().in_flight, 1);
        b.answered();
        assert_eq!(admission.limits().in_flight, 0);
    }
}
