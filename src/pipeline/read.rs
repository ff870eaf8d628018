//! Reading both sides at once into the state store.
//!
//! The source and the target are read on two threads at the same time, so a plan costs
//! about as much as the slower read, not the sum. Each reader sends batches over a bounded
//! channel to the calling thread, which owns the SQLite connection and writes everything in
//! one transaction: nothing is collected whole in memory, and a failed read leaves nothing
//! behind. (Blocking clients on plain threads is roster's one concurrency model: ldap3's
//! `LdapConn` and reqwest's blocking client each run their own small runtime.)

use std::sync::mpsc;
use std::thread;

use chrono::{DateTime, Utc};

use crate::mapping::Mapper;
use crate::model::Reject;
use crate::progress::Progress;
use crate::source::{Source, SourceChange, SourceError, TrackedRead};
use crate::store::{Claim, Deletion, DesiredRow, SnapshotCounts, Store, StoreError, TargetRow};
use crate::target::{ChangedUsers, Target, TargetError};

/// Records per message between a reader thread and the writer.
const BATCH: usize = 1000;
/// Batches in flight per channel: bounds memory when the store is the slow side.
const IN_FLIGHT: usize = 8;

/// One item of a source batch: a mapped record, or an explicit delete signal.
enum Item {
    /// The row is made here, on the reader's thread (mapping, JSON and digest), so that the
    /// writer only inserts. Boxed: the other items are a few strings.
    Mapped(Result<Box<DesiredRow>, Reject>),
    /// The source's own id of the record at an origin (handed on before its record).
    SourceId {
        id: String,
        origin: String,
    },
    Deleted {
        origin: String,
        id: Option<String>,
    },
    /// A delete that names the record by the source's own id.
    DeletedId(String),
}

enum Msg {
    Desired(Vec<Item>),
    Target(Vec<TargetRow>),
    SourceDone(Result<TrackedRead, SourceError>),
    TargetDone(Result<u64, TargetError>),
    /// The listing of changed accounts ended: the writer checks the patched snapshot
    /// against the total and answers on the verdict channel.
    ChangesDone(Result<ChangedUsers, TargetError>),
}

/// The writer's answer to a listing of changed accounts.
enum Verdict {
    /// The patched snapshot is whole: the target read is done.
    Keep,
    /// It is not (or the target could not list by change): list every account.
    ListWhole,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The source read failed part-way or could not start: the snapshot is incomplete.
    #[error("reading the source {where_} failed: {error}")]
    Source { where_: String, error: SourceError },
    #[error("reading the target {where_} failed: {error}")]
    Target { where_: String, error: TargetError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the source is read.
#[derive(Debug, Clone, Copy)]
pub(super) enum SourceReading<'a> {
    /// Every record, no cookie kept.
    Whole,
    /// Every record, and where the next incremental read starts.
    WholeTracked,
    /// Only what changed since `since`, patched onto `base_run`'s desired state.
    Changes { since: &'a str, base_run: i64 },
}

/// How the target is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetReading {
    /// Every account.
    Whole,
    /// Only the accounts changed after `since`, laid over `base_run`'s target snapshot.
    Changes { base_run: i64, since: DateTime<Utc> },
}

/// How the target read went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TargetRead {
    /// Every account was listed, as asked.
    Whole,
    /// `changed` accounts were listed and laid over `base_run`'s snapshot, which then held
    /// as many accounts as the target states it holds (`accounts`).
    Changes {
        base_run: i64,
        since: DateTime<Utc>,
        changed: u64,
        accounts: u64,
    },
    /// Listed whole after all, because of `why`.
    WholeInstead { why: String },
}

/// Reads the source (mapped through `mapper`) and the target into `run_id`'s snapshots.
/// Returns the counts, how a tracked read ended (records, deletes, its cookie), and how the
/// target was read.
#[allow(clippy::too_many_arguments)]
pub(super) fn read_both(
    store: &mut Store,
    run_id: i64,
    source: &mut dyn Source,
    reading: SourceReading<'_>,
    mapper: &Mapper,
    target: &dyn Target,
    target_reading: TargetReading,
    claim_for: Option<(&str, Claim)>,
    progress: &Progress,
) -> Result<(SnapshotCounts, TrackedRead, TargetRead), ReadError> {
    let source_where = source.describe();
    let target_where = target.describe();
    let attrs = mapper.attributes();
    let (tx, rx) = mpsc::sync_channel::<Msg>(IN_FLIGHT);
    let source_bar = progress.counter("source", &source_where);
    let target_bar = progress.counter("target", &target_where);

    thread::scope(|scope| {
        // Owned by this closure, so an early error return drops it before the scope joins
        // the readers: their blocked sends then fail instead of waiting forever.
        let rx = rx;
        let source_tx = tx.clone();
        scope.spawn(move || {
            let mut batches = Batches::new(&source_tx, Msg::Desired);
            let map = |record: crate::model::SourceRecord| {
                Item::Mapped(
                    mapper
                        .map(&record)
                        .map(|user| Box::new(DesiredRow::new(user, record.origin))),
                )
            };
            let result = match reading {
                SourceReading::Whole => source
                    .read_users(&attrs, &mut |record| batches.push(map(record)))
                    .map(|records| TrackedRead {
                        records,
                        ..TrackedRead::default()
                    }),
                SourceReading::WholeTracked | SourceReading::Changes { .. } => {
                    let since = match reading {
                        SourceReading::Changes { since, .. } => Some(since),
                        _ => None,
                    };
                    source.read_tracked(&attrs, since, &mut |change| match change {
                        SourceChange::Record(record) => {
                            if let Some(id) = &record.source_id {
                                batches.push(Item::SourceId {
                                    id: id.clone(),
                                    origin: record.origin.clone(),
                                });
                            }
                            batches.push(map(record))
                        }
                        SourceChange::Deleted { origin, id } => {
                            batches.push(Item::Deleted { origin, id })
                        }
                        SourceChange::DeletedId { id } => batches.push(Item::DeletedId(id)),
                    })
                }
            };
            batches.flush();
            // If the writer is gone it has already failed; nobody is left to tell.
            let _ = source_tx.send(Msg::SourceDone(result));
        });
        let target_tx = tx;
        let (verdict_tx, verdict_rx) = mpsc::channel::<Verdict>();
        let mut verdict_tx = Some(verdict_tx);
        scope.spawn(move || {
            let list_whole = || {
                let mut batches = Batches::new(&target_tx, Msg::Target);
                let result = target.list_users(&mut |user| batches.push(TargetRow::new(user)));
                batches.flush();
                let _ = target_tx.send(Msg::TargetDone(result));
            };
            let TargetReading::Changes { since, .. } = target_reading else {
                return list_whole();
            };
            let mut batches = Batches::new(&target_tx, Msg::Target);
            let result =
                target.list_users_changed(since, &mut |user| batches.push(TargetRow::new(user)));
            batches.flush();
            if target_tx.send(Msg::ChangesDone(result)).is_err() {
                return;
            }
            // No verdict: the writer failed and is gone.
            if let Ok(Verdict::ListWhole) = verdict_rx.recv() {
                list_whole();
            }
        });

        // The writer: runs on this thread and owns the connection. On any error it returns,
        // dropping `rx`, and the readers' sends fail, so they stop early.
        let mut loader = store.loader(run_id)?;
        if let SourceReading::Changes { base_run, .. } = reading {
            let copied = loader.patch_from(base_run)?;
            log::debug!(
                "incremental read: starting from the {copied} desired users of run {base_run}"
            );
        }
        let mut target_read = TargetRead::Whole;
        if let TargetReading::Changes { base_run, since } = target_reading {
            let copied = loader.patch_target_from(base_run, since)?;
            log::debug!(
                "incremental target read: starting from the {copied} accounts of run {base_run}"
            );
        } else {
            verdict_tx = None;
        }
        if let Some((owner, claim)) = claim_for {
            loader.claim_for(owner, claim);
        }
        let (mut source_done, mut target_done) = (None, None);
        while source_done.is_none() || target_done.is_none() {
            let Ok(msg) = rx.recv() else { break };
            match msg {
                Msg::Desired(batch) => {
                    let records = batch
                        .iter()
                        .filter(|i| !matches!(i, Item::SourceId { .. }))
                        .count();
                    source_bar.inc(records as u64);
                    for item in batch {
                        match item {
                            Item::Mapped(Ok(row)) => loader.desired_row(&row)?,
                            Item::Mapped(Err(reject)) => {
                                log::info!("rejected {}: {}", reject.origin, reject.reason);
                                loader.reject(&reject)?
                            }
                            Item::SourceId { id, origin } => loader.source_id(&id, &origin)?,
                            Item::DeletedId(id) => match loader.deleted_id(&id)? {
                                Deletion::Taken { origin } => {
                                    log::info!("the source reports {origin} ({id}) deleted");
                                }
                                Deletion::Superseded { origin } => log::info!(
                                    "the source reports the entry {id} deleted; {origin} holds \
                                     another entry now, read by this read, which stays"
                                ),
                                Deletion::Unseen => log::info!(
                                    "the source reports the entry {id} deleted (no record of \
                                     the desired state came from it)"
                                ),
                            },
                            Item::Deleted { origin, id } => {
                                match loader.deleted(&origin, id.as_deref()) {
                                    Deletion::Superseded { .. } => log::info!(
                                        "the source reports {origin} deleted; it holds another \
                                         entry now, read by this read, which stays"
                                    ),
                                    _ => log::info!("the source reports {origin} deleted"),
                                }
                            }
                        }
                    }
                }
                Msg::Target(batch) => {
                    target_bar.inc(batch.len() as u64);
                    for row in &batch {
                        loader.target_row(row)?;
                    }
                }
                Msg::SourceDone(result) => {
                    let result = result.map_err(|error| ReadError::Source {
                        where_: source_where.clone(),
                        error,
                    });
                    source_bar.finish();
                    // Fail fast: an incomplete source is never planned on.
                    source_done = Some(result?);
                }
                Msg::TargetDone(result) => {
                    let result = result.map_err(|error| ReadError::Target {
                        where_: target_where.clone(),
                        error,
                    });
                    target_bar.finish();
                    target_done = Some(result?);
                }
                Msg::ChangesDone(result) => {
                    let result = result.map_err(|error| ReadError::Target {
                        where_: target_where.clone(),
                        error,
                    })?;
                    let TargetReading::Changes { base_run, since } = target_reading else {
                        continue;
                    };
                    let why = match result {
                        ChangedUsers::Listed { changed, total } => {
                            let held = loader.target_rows()?;
                            if held == total {
                                target_read = TargetRead::Changes {
                                    base_run,
                                    since,
                                    changed,
                                    accounts: held,
                                };
                                None
                            } else {
                                Some(format!(
                                    "{target_where} holds {total} accounts, but the snapshot of \
                                     run {base_run} with the {changed} changed since holds \
                                     {held}: accounts were deleted, which a listing by change \
                                     cannot show"
                                ))
                            }
                        }
                        ChangedUsers::Cannot(why) => Some(why),
                    };
                    let verdict = match why {
                        None => {
                            target_bar.finish();
                            target_done = Some(0);
                            Verdict::Keep
                        }
                        Some(why) => {
                            log::info!("the target is listed whole: {why}");
                            loader.clear_target()?;
                            target_read = TargetRead::WholeInstead { why };
                            Verdict::ListWhole
                        }
                    };
                    if let Some(tx) = verdict_tx.take() {
                        // The target reader is waiting for it; gone, it has nothing to do.
                        let _ = tx.send(verdict);
                    }
                }
            }
        }
        // A reader gone without a word (it panicked) is a read that did not finish.
        let Some(mut tracked) = source_done else {
            return Err(ReadError::Source {
                where_: source_where.clone(),
                error: SourceError::Setup("the source reader stopped before the end".into()),
            });
        };
        let counts = loader.finish()?;
        // Delete signals that took a record out of the desired state: a source may signal
        // records it never handed over (a user that left the query before this config saw it).
        tracked.deleted = counts.deleted;
        Ok((counts, tracked, target_read))
    })
}

/// A reader's side of the channel: items gathered into batches of `BATCH`, each sent as
/// one message. Once the writer is gone (it failed), nothing more is sent: the reader runs
/// to the end of its current page and its result is dropped with the rest.
struct Batches<'a, T> {
    tx: &'a mpsc::SyncSender<Msg>,
    wrap: fn(Vec<T>) -> Msg,
    batch: Vec<T>,
    writer_gone: bool,
}

impl<'a, T> Batches<'a, T> {
    fn new(tx: &'a mpsc::SyncSender<Msg>, wrap: fn(Vec<T>) -> Msg) -> Self {
        Batches {
            tx,
            wrap,
            batch: Vec::with_capacity(BATCH),
            writer_gone: false,
        }
    }

    fn push(&mut self, item: T) {
        self.batch.push(item);
        if self.batch.len() == BATCH {
            self.send();
        }
    }

    /// Sends what is left.
    fn flush(mut self) {
        if !self.batch.is_empty() {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if !self.writer_gone {
            self.writer_gone = self.tx.send((self.wrap)(batch)).is_err();
        }
    }
}
