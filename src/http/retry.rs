//! The one retry policy of every HTTP connector.
//!
//! A source read and a target apply both run unattended, behind servers that shed load with
//! 429 and 503 and drop a connection now and then. So a failed request is sent again when the
//! failure is transient, a bounded number of times, after a wait:
//! - **Bounded**: at most `MAX_RETRIES` retries after the first attempt; after an overload
//!   answer (429, 503) up to `MAX_OVERLOAD_RETRIES`, since the server said it did not act on
//!   the request and the client sends fewer at once meanwhile (`limit.rs`), so that a run
//!   that finds its target busy slows down rather than fails actions.
//! - **Exponential backoff with jitter**: `FIRST_BACKOFF`, doubled for each further retry, up
//!   to `MAX_BACKOFF`; each wait is drawn between half the backoff and the whole of it, so that
//!   the apply's worker threads, failed together, do not come back together.
//! - **`Retry-After` is honoured** (never resent earlier than the server asked) up to
//!   `MAX_RETRY_AFTER_SECS`; a server that asks for longer is not going to recover within a
//!   run's retries, so the failure goes to the caller at once (connectors say "run again later").
//! - **Nothing is applied twice.** 429 and 503 mean the server did not process the request:
//!   anything may be resent. After any other 5xx or a dropped connection the server may have
//!   acted on it, so the request is resent only when the caller marked it `Resend::Safe`.

use std::time::Duration;

use super::client::Failure;

/// Retries after the first attempt of a request.
pub const MAX_RETRIES: u32 = 3;
/// Retries after the first attempt when the last answer was an overload (429, 503).
pub const MAX_OVERLOAD_RETRIES: u32 = 8;
/// Backoff before the first retry; doubled for each further one, up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured by waiting; a longer one is an error.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// Whether a request may be sent again after a failure that may have come after the server
/// acted on it (a 5xx other than 503, a dropped connection, a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Sending it twice has the effect of sending it once: reads, deletes, conditional
    /// changes, token grants.
    Safe,
    /// A second copy could act again (a POST that creates, a PATCH that appends): resent
    /// only after 429 or 503, which say it was not processed.
    OnlyUnprocessed,
}

/// Where in its range a wait falls: 0 is half the backoff, 1 the whole of it.
#[derive(Debug, Clone, Copy)]
pub struct Jitter(f64);

impl Jitter {
    /// A fresh random draw. Without randomness (no OS source) the whole backoff is waited,
    /// which is never too early.
    pub fn random() -> Jitter {
        match getrandom::u32() {
            Ok(n) => Jitter(f64::from(n) / f64::from(u32::MAX)),
            Err(_) => Jitter(1.0),
        }
    }

    /// A fixed point of the range (clamped to 0..=1), for tests.
    #[cfg(test)]
    pub fn at(fraction: f64) -> Jitter {
        Jitter(if fraction.is_nan() {
            1.0
        } else {
            fraction.clamp(0.0, 1.0)
        })
    }
}

/// The backoff before retry number `retries + 1`, before jitter.
pub fn backoff(retries: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32.checked_shl(retries).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

/// How many retries a request may have had when it failed this way.
pub fn retries_allowed(failure: &Failure) -> u32 {
    if failure.was_not_processed() {
        MAX_OVERLOAD_RETRIES
    } else {
        MAX_RETRIES
    }
}

/// How long to wait before retry number `retries + 1`, or `None` to give up.
pub fn retry_wait(
    failure: &Failure,
    resend: Resend,
    retries: u32,
    jitter: Jitter,
) -> Option<Duration> {
    if retries >= retries_allowed(failure) || !failure.is_transient() {
        return None;
    }
    if !failure.was_not_processed() && resend != Resend::Safe {
        return None;
    }
    let full = backoff(retries);
    let wait = full / 2 + (full / 2).mul_f64(jitter.0);
    match failure.retry_after() {
        Some(secs) if secs > MAX_RETRY_AFTER_SECS => None,
        Some(secs) => Some(wait.max(Duration::from_secs(secs))),
        None => Some(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> Failure {
        Failure::Status {
            status,
            retry_after,
            body: String::new(),
            retries: 0,
        }
    }

    fn transport() -> Failure {
        Failure::Transport {
            message: "reset".into(),
            retries: 0,
        }
    }

    fn wait(failure: &Failure, resend: Resend, retries: u32) -> Option<Duration> {
        retry_wait(failure, resend, retries, Jitter::at(1.0))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn jitter_keeps_each_wait_between_half_the_backoff_and_all_of_it() {
        for retries in 0..MAX_RETRIES {
            let full = backoff(retries);
            let low = retry_wait(&status(500, None), Resend::Safe, retries, Jitter::at(0.0));
            let high = retry_wait(&status(500, None), Resend::Safe, retries, Jitter::at(1.0));
            assert_eq!(low, Some(full / 2));
            assert_eq!(high, Some(full));
            for _ in 0..200 {
                let drawn = retry_wait(&status(502, None), Resend::Safe, retries, Jitter::random())
                    .expect("retried");
                assert!(drawn >= full / 2 && drawn <= full, "{drawn:?} for {full:?}");
            }
        }
        assert_eq!(Jitter::at(7.0).0, 1.0);
        assert_eq!(Jitter::at(f64::NAN).0, 1.0);
    }

    #[test]
    fn retries_are_bounded_and_only_for_transient_failures() {
        assert_eq!(
            wait(&status(500, None), Resend::Safe, 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            wait(&status(502, None), Resend::Safe, 2),
            Some(Duration::from_secs(2))
        );
        assert_eq!(wait(&status(500, None), Resend::Safe, MAX_RETRIES), None);
        // An overload answer: the server did not act, and the client sends fewer meanwhile.
        assert!(wait(&status(429, None), Resend::OnlyUnprocessed, MAX_RETRIES).is_some());
        assert!(wait(&status(503, None), Resend::Safe, MAX_OVERLOAD_RETRIES - 1).is_some());
        assert_eq!(
            wait(&status(429, None), Resend::Safe, MAX_OVERLOAD_RETRIES),
            None
        );
        assert_eq!(wait(&status(404, None), Resend::Safe, 0), None);
        assert_eq!(wait(&status(400, Some(1)), Resend::Safe, 0), None);
        assert_eq!(wait(&status(401, None), Resend::Safe, 0), None);
        // Not implemented is final: a provider without an endpoint is not asked again.
        assert_eq!(wait(&status(501, None), Resend::Safe, 0), None);
        assert_eq!(wait(&status(505, None), Resend::Safe, 0), None);
        assert_eq!(
            wait(&transport(), Resend::Safe, 1),
            Some(Duration::from_secs(1))
        );
        let unbuilt = Failure::Request("bad header".into());
        assert_eq!(wait(&unbuilt, Resend::Safe, 0), None);
    }

    #[test]
    fn retry_after_is_a_floor_up_to_the_cap() {
        for jitter in [0.0, 0.5, 1.0] {
            assert_eq!(
                retry_wait(&status(429, Some(5)), Resend::Safe, 0, Jitter::at(jitter)),
                Some(Duration::from_secs(5))
            );
        }
        assert_eq!(
            wait(&status(429, Some(MAX_RETRY_AFTER_SECS)), Resend::Safe, 0),
            Some(Duration::from_secs(MAX_RETRY_AFTER_SECS))
        );
        assert_eq!(wait(&status(429, Some(61)), Resend::Safe, 0), None);
        assert_eq!(wait(&status(503, Some(3600)), Resend::Safe, 0), None);
        // A backoff longer than Retry-After wins.
        assert_eq!(
            wait(&status(503, Some(1)), Resend::Safe, 2),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_request_that_may_have_been_processed_is_resent_only_when_safe() {
        let unsafe_ = Resend::OnlyUnprocessed;
        assert_eq!(wait(&transport(), unsafe_, 0), None);
        assert_eq!(wait(&status(500, None), unsafe_, 0), None);
        assert_eq!(wait(&status(502, None), unsafe_, 0), None);
        assert!(wait(&status(503, None), unsafe_, 0).is_some());
        assert!(wait(&status(429, None), unsafe_, 0).is_some());
        assert!(wait(&transport(), Resend::Safe, 0).is_some());
        assert!(wait(&status(500, None), Resend::Safe, 0).is_some());
    }
}
