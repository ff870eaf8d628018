//! The apply's journal writer: one thread with its own store connection, the only one that
//! writes while the workers call the target, committing many journal writes at a time.
//!
//! The rule it keeps: **an action is journaled as started, committed, before its call**. The
//! work items are started in windows: one transaction marks the next `window` items
//! `applying` before any of their calls, and workers take an item only once its start is
//! committed (the next window is committed while the current one is worked through, so they
//! rarely wait). How an action ended, and what apply records with it (ownership,
//! deactivations, dropped fields), is sent to the writer, which commits whatever has come in
//! together: under load, hundreds of finishes in one transaction.
//!
//! What a crash leaves: actions of the current window not yet called are `applying`, and so
//! are actions whose call ended but whose finish was not committed yet. Both are what
//! `applying` always meant to a resumed apply ("may or may not have reached the target":
//! an add is looked up before it is created again, `resume.rs`); the window only makes that
//! set larger, by at most `window` actions, each costing one lookup more when resumed.
//! Durability is the store's (`synchronous=NORMAL` in WAL mode): a commit survives a killed
//! process; a power cut may lose the last commits, which then resume the same way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{ApplyError, now};
use crate::plan::ActionStatus;
use crate::store::{Store, StoreError};

/// Work items started by one transaction, at most.
const MAX_WINDOW: usize = 512;
/// Messages committed by one transaction, at most.
const MAX_GROUP: usize = 2048;
/// How long finishes wait for others to share their commit, at most.
const GROUP_WAIT: Duration = Duration::from_millis(10);
/// How long the writer sleeps between looks at the finishes come in, while it waits.
const NAP: Duration = Duration::from_millis(1);

/// What apply records about an account besides the journal, committed with the action's
/// finish (never before the call that made it true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// The config owner created or adopted the account (`Store::record_owned`).
    Owned { target_id: String, key: String },
    /// The owner deleted it (`Store::forget_owned`).
    ForgetOwned { target_id: String },
    /// roster took it out of service (`Store::record_deactivated`).
    Deactivated { target_id: String, key: String },
    /// It is in service again, or gone (`Store::forget_deactivated`).
    ForgetDeactivated { target_id: String },
    /// The target dropped these fields of a change (`Store::record_ignored`).
    Ignored { target: String, fields: Vec<String> },
}

/// How one action ended.
#[derive(Debug, Clone)]
pub(super) struct Finish {
    pub seq: u32,
    pub status: ActionStatus,
    pub error: Option<String>,
    pub result_id: Option<String>,
}

enum Message {
    /// An action's records and, unless a batch target only staged it, how it ended.
    Done {
        finish: Option<Finish>,
        records: Vec<Record>,
        at: String,
    },
    /// Workers are close to the end of the started items.
    Wake,
}

/// What the writer has committed, as the workers wait on it.
struct Started {
    /// Items `0..items` are journaled as started.
    items: usize,
    /// A start is asked for and not committed yet.
    asked: bool,
    /// The writer stopped on an error: no item is started any more.
    stopped: bool,
}

/// The workers' side of the writer: shared by reference.
pub(super) struct Journal<'a> {
    plan_id: &'a str,
    owner: &'a str,
    sender: Mutex<Option<Sender<Message>>>,
    started: Mutex<Started>,
    changed: Condvar,
    /// The next item a worker takes.
    next: AtomicUsize,
    len: usize,
    window: usize,
}

impl<'a> Journal<'a> {
    fn new(
        plan_id: &'a str,
        owner: &'a str,
        len: usize,
        concurrency: usize,
        sender: Sender<Message>,
    ) -> Self {
        Journal {
            plan_id,
            owner,
            sender: Mutex::new(Some(sender)),
            started: Mutex::new(Started {
                items: 0,
                asked: false,
                stopped: false,
            }),
            changed: Condvar::new(),
            next: AtomicUsize::new(0),
            len,
            // Enough that a window lasts many commits, small enough that a crash leaves
            // few actions to look up.
            window: (concurrency * 32).clamp(32, MAX_WINDOW),
        }
    }

    /// The next item to work on, once its start is committed; `None` when there is none
    /// left or the writer stopped.
    pub fn take(&self) -> Option<usize> {
        let item = self.next.fetch_add(1, Ordering::SeqCst);
        if item >= self.len {
            return None;
        }
        let mut started = self.lock();
        loop {
            if started.stopped {
                return None;
            }
            // Ask for the next window while half of this one is still to go.
            let low = started.items < self.len && started.items <= item + self.window / 2;
            if low && !started.asked {
                started.asked = true;
                self.send(Message::Wake);
            }
            if item < started.items {
                return Some(item);
            }
            started = self
                .changed
                .wait(started)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Hands how an action ended, and its records, to the writer.
    pub fn finish(&self, finish: Finish, records: Vec<Record>) {
        self.send(Message::Done {
            finish: Some(finish),
            records,
            at: now(),
        });
    }

    /// Hands the records of an action a batch target staged (it stays `applying` until
    /// `finish_batch`).
    pub fn record(&self, records: Vec<Record>) {
        if !records.is_empty() {
            self.send(Message::Done {
                finish: None,
                records,
                at: now(),
            });
        }
    }

    fn send(&self, message: Message) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A writer that stopped has said why (its error ends the apply).
        if let Some(sender) = sender.as_ref() {
            let _ = sender.send(message);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Started> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes what the writer committed.
    fn publish(&self, items: usize, stopped: bool) {
        let mut started = self.lock();
        started.items = items;
        started.asked = false;
        started.stopped |= stopped;
        self.changed.notify_all();
    }
}

/// The actions each work item journals as started, in one list: a `Vec` an item cost some
/// 40 bytes and an allocation an action, held for the whole apply.
pub(super) struct ItemSeqs {
    seqs: Vec<u32>,
    /// Where each item's actions end in `seqs`.
    ends: Vec<usize>,
}

impl ItemSeqs {
    /// `seqs(item)` for each of `items`, in their order.
    pub fn of<T, I: IntoIterator<Item = u32>>(items: &[T], seqs: impl Fn(&T) -> I) -> ItemSeqs {
        let mut all = ItemSeqs {
            seqs: Vec::with_capacity(items.len()),
            ends: Vec::with_capacity(items.len()),
        };
        for item in items {
            all.seqs.extend(seqs(item));
            all.ends.push(all.seqs.len());
        }
        all
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The actions of items `from..to`.
    fn of_items(&self, from: usize, to: usize) -> &[u32] {
        let end = |item: usize| item.checked_sub(1).map_or(0, |last| self.ends[last]);
        &self.seqs[end(from)..end(to)]
    }
}

/// Runs `work` with a journal writer for `seqs` (per work item, the actions it journals as
/// started), on the writer's own connection `store`: `work` gets the workers' side and returns
/// when they are done; the writer then commits what is left and ends. A journal error
/// stops the workers from taking more items and is the result. `owner` is the config's
/// owner, whom `Record::Owned` records.
pub(super) fn with_writer<R>(
    store: Store,
    (plan_id, owner): (&str, &str),
    seqs: &ItemSeqs,
    concurrency: usize,
    work: impl FnOnce(&Journal<'_>) -> Result<R, ApplyError>,
) -> Result<R, ApplyError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let journal = Journal::new(plan_id, owner, seqs.len(), concurrency, sender);
    std::thread::scope(|scope| {
        let shared = &journal;
        let writer = scope.spawn(move || write(shared, &store, seqs, &receiver));
        let result = {
            // When the workers are done (or panicked), the writer commits what they sent and
            // ends.
            let _closing = Closing(&journal);
            work(&journal)
        };
        let written = match writer.join() {
            Ok(written) => written,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        written.map_err(ApplyError::Store)?;
        result
    })
}

/// Closes the workers' side of the channel when dropped.
struct Closing<'j, 'a>(&'j Journal<'a>);

impl Drop for Closing<'_, '_> {
    fn drop(&mut self) {
        self.0
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

/// The writer's loop: starts windows ahead of the workers, commits finishes in groups.
fn write(
    journal: &Journal<'_>,
    store: &Store,
    seqs: &ItemSeqs,
    receiver: &Receiver<Message>,
) -> Result<(), StoreError> {
    let (len, half) = (journal.len, journal.window / 2);
    let mut started = 0;
    let mut open = true;
    loop {
        let taken = journal.next.load(Ordering::SeqCst).min(len);
        let start_more = open && started < len && started <= taken + half;
        let mut messages = Vec::new();
        if !start_more {
            if !open {
                break;
            }
            match receiver.recv() {
                Ok(message) => messages.push(message),
                Err(_) => open = false,
            }
        }
        // Finishes wait for company a little (a commit costs about the same for one row as
        // for hundreds); starts the workers are about to need do not. The writer naps and
        // then takes what came in, rather than waking for each message: under load, a wake
        // for each finish cost more than its row.
        let until = Instant::now() + GROUP_WAIT;
        while open && messages.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(message) => {
                    messages.push(message);
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
                Err(TryRecvError::Empty) => {}
            }
            let taken = journal.next.load(Ordering::SeqCst).min(len);
            let hurry = start_more || (started < len && started <= taken + half);
            let wait = until.saturating_duration_since(Instant::now());
            if hurry || wait.is_zero() {
                break;
            }
            std::thread::sleep(wait.min(NAP));
        }
        let taken = journal.next.load(Ordering::SeqCst).min(len);
        let start_more = open && started < len && started <= taken + half;
        // Never more than one window ahead of the items taken.
        let to = if start_more {
            (taken + journal.window).min(len).max(started)
        } else {
            started
        };
        let done = messages.iter().any(|m| matches!(m, Message::Done { .. }));
        if !done && to == started {
            continue;
        }
        let at = now();
        let committed = store.journal_batch(|s| {
            for message in &messages {
                if let Message::Done {
                    finish,
                    records,
                    at,
                } = message
                {
                    write_done(s, journal, finish.as_ref(), records, at)?;
                }
            }
            for seq in seqs.of_items(started, to) {
                s.journal_start(journal.plan_id, *seq, &at)?;
            }
            Ok(())
        });
        if let Err(e) = committed {
            journal.publish(started, true);
            return Err(e);
        }
        started = to;
        journal.publish(started, false);
    }
    // Nobody waits any more; should anyone, nothing more is started.
    journal.publish(started, true);
    Ok(())
}

/// One action's records and finish, in the writer's transaction.
fn write_done(
    store: &Store,
    journal: &Journal<'_>,
    finish: Option<&Finish>,
    records: &[Record],
    at: &str,
) -> Result<(), StoreError> {
    let (plan_id, owner) = (journal.plan_id, journal.owner);
    for record in records {
        match record {
            Record::Owned { target_id, key } => {
                store.record_owned(owner, target_id, key, plan_id, at)?;
            }
            Record::ForgetOwned { target_id } => store.forget_owned(owner, target_id)?,
            Record::Deactivated { target_id, key } => {
                store.record_deactivated(target_id, key, plan_id, at)?;
            }
            Record::ForgetDeactivated { target_id } => store.forget_deactivated(target_id)?,
            Record::Ignored { target, fields } => store.record_ignored(target, fields, at)?,
        }
    }
    if let Some(f) = finish {
        store.journal_finish(
            plan_id,
            f.seq,
            f.status,
            f.error.as_deref(),
            f.result_id.as_deref(),
            at,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The writer against a real (temporary) store: what the journal holds while the work
    //! runs, and what it holds when the work stops half-way.

    use std::collections::HashMap;

    use super::*;
    use crate::apply::groups::tests::scripted_plan;
    use crate::plan::{Action, Change, Field};

    fn stored_plan(n: usize) -> (tempfile::TempDir, Store, Vec<u32>) {
        let actions = (0..n)
            .map(|i| {
                let name = format!("u{i:04}");
                let changes = vec![Change::new(Field::Username, None, Some(&name))];
                Action::add_user(&format!("k-{name}"), &name, Vec::new(), changes)
            })
            .collect();
        let plan = scripted_plan("p", actions);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        store
            .save_plan(&plan, None, &crate::plan::seal::seal(&plan, None).digest)
            .expect("saved");
        let seqs = plan.actions.iter().map(|a| a.seq).collect();
        (dir, store, seqs)
    }

    fn statuses(store: &Store) -> HashMap<u32, ActionStatus> {
        let journal = store.journal("p").expect("journal");
        journal.into_iter().map(|e| (e.seq, e.status)).collect()
    }

    #[test]
    fn the_items_actions_are_found_by_item_whatever_their_number() {
        let items: Vec<Vec<u32>> = vec![vec![1], vec![], vec![2, 3, 4], vec![5]];
        let seqs = ItemSeqs::of(&items, Clone::clone);
        assert_eq!(seqs.len(), 4);
        assert_eq!(seqs.of_items(0, 0), &[] as &[u32]);
        assert_eq!(seqs.of_items(0, 1), &[1]);
        assert_eq!(seqs.of_items(1, 2), &[] as &[u32]);
        assert_eq!(seqs.of_items(1, 3), &[2, 3, 4]);
        assert_eq!(seqs.of_items(2, 4), &[2, 3, 4, 5]);
        assert_eq!(seqs.of_items(0, 4), &[1, 2, 3, 4, 5]);
        assert_eq!(seqs.of_items(4, 4), &[] as &[u32]);
    }

    #[test]
    fn every_item_is_journaled_started_before_it_is_handed_out_and_finished_after() {
        let n = 700;
        let (_dir, store, seqs) = stored_plan(n);
        let per_item = ItemSeqs::of(&seqs, |&s| [s]);
        let reads = store.reopen().expect("reader");
        let taken = with_writer(
            store.reopen().expect("writer"),
            ("p", "o"),
            &per_item,
            4,
            |j| {
                let mut taken = Vec::new();
                while let Some(item) = j.take() {
                    let now = statuses(&reads);
                    // Committed before the call: another connection sees it.
                    assert_eq!(now[&seqs[item]], ActionStatus::Applying, "item {item}");
                    // Started ahead of the workers by one window at most.
                    let ahead = now
                        .values()
                        .filter(|&&s| s != ActionStatus::Planned)
                        .count();
                    assert!(
                        ahead <= item + 1 + j.window,
                        "{ahead} started at item {item}"
                    );
                    let finish = Finish {
                        seq: seqs[item],
                        status: ActionStatus::Applied,
                        error: None,
                        result_id: Some(format!("id-{item}")),
                    };
                    let owned = Record::Owned {
                        target_id: format!("id-{item}"),
                        key: format!("k-{item}"),
                    };
                    j.finish(finish, vec![owned]);
                    taken.push(item);
                }
                Ok(taken)
            },
        )
        .expect("journaled");
        assert_eq!(taken, (0..n).collect::<Vec<_>>());
        let after = statuses(&store);
        assert!(after.values().all(|&s| s == ActionStatus::Applied));
        let journal = store.journal("p").expect("journal");
        assert_eq!(journal[9].result_id.as_deref(), Some("id-9"));
        // The records went with the finishes.
        assert_eq!(store.owned("o").expect("owned").len(), n);
    }

    #[test]
    fn work_that_stops_leaves_its_started_items_applying_and_the_rest_planned() {
        let (_dir, store, seqs) = stored_plan(300);
        let per_item = ItemSeqs::of(&seqs, |&s| [s]);
        let stopped = with_writer(
            store.reopen().expect("writer"),
            ("p", "o"),
            &per_item,
            2,
            |j| {
                while let Some(item) = j.take() {
                    if item == 10 {
                        // A call whose outcome nobody learns (the run dies here).
                        return Err(ApplyError::Refused("stopped".into()));
                    }
                    let finish = Finish {
                        seq: seqs[item],
                        status: ActionStatus::Applied,
                        error: None,
                        result_id: None,
                    };
                    j.finish(finish, Vec::new());
                }
                Ok(())
            },
        );
        assert!(matches!(stopped, Err(ApplyError::Refused(_))));
        let after = statuses(&store);
        let count = |status| after.values().filter(|&&s| s == status).count();
        assert_eq!(count(ActionStatus::Applied), 10);
        assert_eq!(after[&seqs[10]], ActionStatus::Applying);
        // The rest of the started window: resumed as interrupted (looked up first).
        let applying = count(ActionStatus::Applying);
        assert!((1..=64).contains(&applying), "{applying} applying");
        assert_eq!(count(ActionStatus::Planned), 300 - 10 - applying);
    }
}
