//! The rate-limit gate: a target's `rate-limit` is a promise to its operator, so it holds
//! across every thread that shares a client, and every attempt (retries included) takes a slot.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Requests start at least `interval` apart, and never more than `per_window` of them in
/// any one second, whichever thread sends them, and whichever client of the process: the
/// starts are kept per server (scheme, host and port) and rate, for every pacer of the
/// process, since one run opens its target more than once (to plan, then to apply).
#[derive(Debug)]
pub struct Pacer {
    per_second: f64,
    interval: Duration,
    /// The most starts any one second may hold: the whole part of the rate (at least 1).
    per_window: usize,
}

/// The starts of the last second, oldest first.
type Starts = Arc<Mutex<VecDeque<Instant>>>;

/// The second the rate is counted in, and a tenth more: a request reaches the server later
/// than it is let go (a new connection, a TLS handshake), by different amounts, which could
/// otherwise bring one second's first request into the second before it as the server
/// counts. Saturated, the rate is then `per_window` in 1.1 s.
const WINDOW: Duration = Duration::from_millis(1100);

/// The starts of every server a pacer of this process talks to, by server and rate.
fn starts_of(server: &str, per_second: f64) -> Starts {
    static SERVERS: OnceLock<Mutex<HashMap<(String, u64), Starts>>> = OnceLock::new();
    let servers = SERVERS.get_or_init(Mutex::default);
    let mut servers = servers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    servers
        .entry((server.to_string(), per_second.to_bits()))
        .or_default()
        .clone()
}

/// The server part of a URL: what is before the path.
fn server_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?', '#']) {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
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
            per_second,
            interval: Duration::from_secs_f64(1.0 / per_second),
            per_window: (per_second.floor() as usize).max(1),
        })
    }

    /// Waits until a request may start, and books that start. A start is booked at the
    /// moment it is let through (never a slot in the future that a late thread could
    /// miss), so the starts themselves keep the rule: `interval` apart, `per_window` a
    /// second.
    pub fn wait(&self, url: &str) {
        let starts = starts_of(server_of(url), self.per_second);
        loop {
            let wait = {
                // Nothing panics while the lock is held; a poisoned lock still holds valid times.
                let mut starts = starts
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                match self.earliest(&starts, now) {
                    Some(at) if at > now => at - now,
                    _ => {
                        starts.push_back(now);
                        while starts.len() > self.per_window {
                            starts.pop_front();
                        }
                        return;
                    }
                }
            };
            std::thread::sleep(wait);
        }
    }

    /// The earliest moment the next request may start, given the last starts.
    fn earliest(&self, starts: &VecDeque<Instant>, now: Instant) -> Option<Instant> {
        let spaced = starts.back().map(|&last| last + self.interval);
        let windowed = (starts.len() >= self.per_window)
            .then(|| starts.front().map(|&oldest| oldest + WINDOW))
            .flatten();
        [spaced, windowed]
            .into_iter()
            .flatten()
            .max()
            .map(|at| at.max(now))
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
            pacer.wait("http://spaced.test/a");
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

    /// The starts of many threads: never two closer than the interval, never more than the
    /// whole rate in any one second (a half-open window starting at any start).
    #[test]
    fn no_second_holds_more_starts_than_the_rate() {
        let pacer = Pacer::new(40.0).expect("valid rate");
        let starts = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..15 {
                        pacer.wait("https://windowed.test:8443/scim/v2/Users");
                        starts.lock().expect("starts").push(Instant::now());
                    }
                });
            }
        });
        let mut booked: Vec<Instant> = starts_of("https://windowed.test:8443", 40.0)
            .lock()
            .expect("booked")
            .iter()
            .copied()
            .collect();
        booked.sort();
        assert_eq!(booked.len(), 40, "the last second's starts are kept");
        for pair in booked.windows(2) {
            assert!(pair[1] - pair[0] >= pacer.interval);
        }
        assert_eq!(starts.lock().expect("starts").len(), 60);
    }

    #[test]
    fn a_rate_below_one_keeps_one_start_per_interval() {
        let pacer = Pacer::new(0.5).expect("valid rate");
        assert_eq!(
            (pacer.per_window, pacer.interval),
            (1, Duration::from_secs(2))
        );
        let now = Instant::now();
        let starts = VecDeque::from([now]);
        assert_eq!(
            pacer.earliest(&starts, now),
            Some(now + Duration::from_secs(2))
        );
        let pacer = Pacer::new(2.5).expect("valid rate");
        let starts = VecDeque::from([now, now + pacer.interval]);
        // Two in the second already: the third waits for the first to leave it.
        assert_eq!(pacer.earliest(&starts, now), Some(now + WINDOW));
    }

    #[test]
    fn pacers_of_one_server_share_its_starts() {
        assert_eq!(server_of("https://h.test:1/scim?x=1"), "https://h.test:1");
        assert_eq!(server_of("http://h.test?x"), "http://h.test");
        assert_eq!(server_of("http://h.test"), "http://h.test");
        // Two clients of one server (a plan's and an apply's), the same rate: one window.
        let (a, b) = (Pacer::new(3.0), Pacer::new(3.0));
        let (a, b) = (a.expect("valid"), b.expect("valid"));
        a.wait("http://shared.test/Users");
        b.wait("http://shared.test/Groups");
        assert_eq!(
            starts_of("http://shared.test", 3.0)
                .lock()
                .expect("starts")
                .len(),
            2
        );
        assert!(
            starts_of("http://other.test", 3.0)
                .lock()
                .expect("starts")
                .is_empty()
        );
    }

    #[test]
    fn pacer_holds_across_threads() {
        let pacer = Pacer::new(100.0).expect("valid rate");
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..4 {
                        pacer.wait("http://threads.test");
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
