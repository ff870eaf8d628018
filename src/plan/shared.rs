//! One read of a stored plan's actions, shared by the readers that need them at the same
//! time (issue 16).
//!
//! Publishing a plan kept in the store is several passes over every action at once: the
//! seal's digest, the plan printed on stdout, the plan file. Each pass used to read the
//! store's draft and decode every row again (a B-tree walk in plan order, the `changes`
//! JSON, the contract's strict conversion). `share` reads the source once, on a thread of
//! its own, and hands every decoded action to each reader in batches over a bounded
//! channel: the decoding is done once, and memory holds a few batches per reader, never the
//! plan.
//!
//! The rules that keep it safe:
//! - a reader sees every action or an error, never a plan cut short: the stream ends with
//!   an explicit `End`, and a stream that stops without it (the reading thread died) is an
//!   error;
//! - a reader that stops early (its writer failed) or is dropped unread no longer holds
//!   the others up: sending to it fails and it is left out; the read stops when no reader
//!   is left;
//! - the first pass of each reader is the shared one; any further pass reads the source
//!   again on the caller's thread, as an unshared source would.
//!
//! A reader must read or be dropped: one kept unread while the others read would hold them
//! once its channel is full. `commands::run::publish` hands each reader to the thread that
//! reads it, which drops it when done.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::{Action, ActionSource};

/// Actions per message.
const BATCH: usize = 256;
/// Messages in flight per reader: bounds memory when a reader is slower than the read.
const IN_FLIGHT: usize = 8;

enum Msg {
    Actions(Arc<Vec<Action>>),
    /// The read failed: every reader fails with this.
    Failed(String),
    /// Every action was sent.
    End,
}

/// `readers` sources that each yield `source`'s actions, read from `source` once. With one
/// reader there is nothing to share: `source` itself.
pub fn share(source: &Arc<dyn ActionSource>, readers: usize) -> Vec<Arc<dyn ActionSource>> {
    if readers <= 1 {
        return vec![Arc::clone(source); readers];
    }
    let mut senders = Vec::with_capacity(readers);
    let mut shared: Vec<Arc<dyn ActionSource>> = Vec::with_capacity(readers);
    for _ in 0..readers {
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        senders.push(Some(tx));
        shared.push(Arc::new(Shared {
            source: Arc::clone(source),
            feed: Mutex::new(Some(rx)),
        }));
    }
    let source = Arc::clone(source);
    // Detached: it ends when the read ends or no reader is left, whichever comes first.
    std::thread::spawn(move || broadcast(source.as_ref(), senders));
    shared
}

/// Reads `source` once and sends every action to each reader still there.
fn broadcast(source: &dyn ActionSource, mut to: Vec<Option<SyncSender<Msg>>>) {
    let mut batch: Vec<Action> = Vec::with_capacity(BATCH);
    let read = source.each_owned(&mut |action| {
        batch.push(action);
        if batch.len() == BATCH {
            let full = Arc::new(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
            if !send(&mut to, || Msg::Actions(Arc::clone(&full))) {
                return Err(std::io::Error::other("no reader is left"));
            }
        }
        Ok(())
    });
    match read {
        Ok(()) => {
            if !batch.is_empty() {
                let rest = Arc::new(batch);
                send(&mut to, || Msg::Actions(Arc::clone(&rest)));
            }
            send(&mut to, || Msg::End);
        }
        Err(e) => {
            send(&mut to, || Msg::Failed(e.to_string()));
        }
    }
}

/// Sends `msg()` to every reader still there, leaving out those that are gone; whether
/// any is left.
fn send(to: &mut [Option<SyncSender<Msg>>], msg: impl Fn() -> Msg) -> bool {
    for slot in to.iter_mut() {
        if let Some(tx) = slot
            && tx.send(msg()).is_err()
        {
            *slot = None;
        }
    }
    to.iter().any(Option::is_some)
}

/// One reader of a shared read.
#[derive(Debug)]
struct Shared {
    source: Arc<dyn ActionSource>,
    /// The shared stream, until the first pass takes it.
    feed: Mutex<Option<Receiver<Msg>>>,
}

impl ActionSource for Shared {
    fn each(&self, each: &mut dyn FnMut(&Action) -> std::io::Result<()>) -> std::io::Result<()> {
        let feed = self
            .feed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(feed) = feed else {
            return self.source.each(each);
        };
        for msg in feed {
            match msg {
                Msg::Actions(batch) => batch.iter().try_for_each(&mut *each)?,
                Msg::Failed(why) => return Err(std::io::Error::other(why)),
                Msg::End => return Ok(()),
            }
        }
        Err(std::io::Error::other(
            "the shared read of the plan's actions stopped before its end",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `count` actions, or a failure after `fail_after` of them; counts its reads.
    #[derive(Debug)]
    struct Numbers {
        count: usize,
        fail_after: Option<usize>,
        reads: AtomicUsize,
    }

    impl ActionSource for Numbers {
        fn each(
            &self,
            each: &mut dyn FnMut(&Action) -> std::io::Result<()>,
        ) -> std::io::Result<()> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            for i in 0..self.count {
                if self.fail_after == Some(i) {
                    return Err(std::io::Error::other("the store went away"));
                }
                each(&action(i))?;
            }
            Ok(())
        }
    }

    fn action(i: usize) -> Action {
        Action::add_user(&format!("k{i}"), &format!("u{i}"), Vec::new(), Vec::new())
    }

    fn numbers(count: usize, fail_after: Option<usize>) -> Arc<Numbers> {
        Arc::new(Numbers {
            count,
            fail_after,
            reads: AtomicUsize::new(0),
        })
    }

    fn keys(source: &dyn ActionSource) -> std::io::Result<Vec<String>> {
        let mut keys = Vec::new();
        source.each(&mut |a| {
            keys.push(a.subject.keys().0.to_string());
            Ok(())
        })?;
        Ok(keys)
    }

    #[test]
    fn every_reader_sees_every_action_in_order_from_one_read() {
        let source = numbers(BATCH * 3 + 7, None);
        let dyn_source: Arc<dyn ActionSource> = source.clone();
        let readers = share(&dyn_source, 3);
        let expected: Vec<String> = (0..BATCH * 3 + 7).map(|i| format!("k{i}")).collect();
        let seen: Vec<Vec<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = readers
                .into_iter()
                .map(|r| s.spawn(move || keys(r.as_ref()).expect("read")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect()
        });
        for keys in seen {
            assert_eq!(keys, expected);
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1, "read once for all");
    }

    #[test]
    fn a_failed_read_fails_every_reader_rather_than_ending_their_plan_short() {
        let source: Arc<dyn ActionSource> = numbers(BATCH * 4, Some(BATCH + 3));
        let readers = share(&source, 2);
        std::thread::scope(|s| {
            for r in readers {
                s.spawn(move || {
                    let err = keys(r.as_ref()).expect_err("a failed read is an error");
                    assert!(err.to_string().contains("the store went away"), "{err}");
                });
            }
        });
    }

    #[test]
    fn a_reader_dropped_unread_or_stopping_early_holds_no_other_up() {
        let source: Arc<dyn ActionSource> = numbers(BATCH * IN_FLIGHT * 4, None);
        let mut readers = share(&source, 3);
        drop(readers.pop());
        let quitter = readers.pop().expect("reader");
        let stopped = quitter.each(&mut |_| Err(std::io::Error::other("stdout closed")));
        assert!(stopped.is_err());
        drop(quitter);
        let all = keys(readers[0].as_ref()).expect("read");
        assert_eq!(all.len(), BATCH * IN_FLIGHT * 4);
    }

    #[test]
    fn a_second_pass_reads_the_source_again() {
        let source = numbers(10, None);
        let dyn_source: Arc<dyn ActionSource> = source.clone();
        let readers = share(&dyn_source, 2);
        let (first, other) = (&readers[0], &readers[1]);
        let t = std::thread::scope(|s| {
            let h = s.spawn(|| keys(other.as_ref()).expect("read"));
            let once = keys(first.as_ref()).expect("first pass");
            let again = keys(first.as_ref()).expect("second pass");
            assert_eq!(once, again);
            h.join().expect("join")
        });
        assert_eq!(t.len(), 10);
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }
}
