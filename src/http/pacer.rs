//! The rate-limit gate: a target's `rate-limit` is a promise to its operator, so it holds
//! across every thread that shares a client, and every attempt (retries included) takes a slot.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests start at least `interval` apart, whichever thread sends them.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    /// The earliest start of the next request.
    next: Mutex<Instant>,
}

impl Pacer {
    /// A gate for `per_second` requests a second. The error is the whole message.
    pub fn new(per_second: f64) -> Result<Pacer, String> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "rate-limit must be a positive number of requests per second, not {per_second}"
            ));
        }
        Ok(Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        })
    }

    /// Takes the next free slot and sleeps until it. The lock is held only to book the slot,
    /// so waiting threads queue in booking order without blocking each other.
    pub fn wait(&self) {
        let slot = {
            // Nothing panics while the lock is held; a poisoned lock still holds a valid time.
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        let now = Instant::now();
        if slot > now {
            std::thread::sleep(slot - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_requests() {
        let pacer = Pacer::new(50.0).expect("valid rate");
        let start = Instant::now();
        for _ in 0..6 {
            pacer.wait();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        assert!(Pacer::new(0.0).is_err());
        assert!(Pacer::new(f64::NAN).is_err());
        assert!(Pacer::new(-1.0).is_err());
    }

    #[test]
    fn pacer_holds_across_threads() {
        let pacer = Pacer::new(100.0).expect("valid rate");
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..4 {
                        pacer.wait();
                    }
                });
            }
        });
        // 12 slots, 10 ms apart: the last starts 11 intervals after the first.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }
}
