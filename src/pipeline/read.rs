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

use crate::mapping::Mapper;
use crate::model::{DesiredUser, Reject, TargetUser};
use crate::progress::Progress;
use crate::source::{Source, SourceError};
use crate::store::{Claim, SnapshotCounts, Store, StoreError};
use crate::target::{Target, TargetError};

/// Records per message between a reader thread and the writer.
const BATCH: usize = 1000;
/// Batches in flight per channel: bounds memory when the store is the slow side.
const IN_FLIGHT: usize = 8;

enum Msg {
    Desired(Vec<Result<(DesiredUser, String), Reject>>),
    Target(Vec<TargetUser>),
    SourceDone(Result<u64, SourceError>),
    TargetDone(Result<u64, TargetError>),
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

/// Reads the source (mapped through `mapper`) and the target into `run_id`'s snapshots.
pub(super) fn read_both(
    store: &mut Store,
    run_id: i64,
    mut source: Box<dyn Source>,
    mapper: &Mapper,
    target: &dyn Target,
    claim_for: Option<(&str, Claim)>,
    progress: &Progress,
) -> Result<SnapshotCounts, ReadError> {
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
            let result = source.read_users(&attrs, &mut |record| {
                let mapped = mapper.map(&record).map(|u| (u, record.origin));
                batches.push(mapped);
            });
            batches.flush();
            // If the writer is gone it has already failed; nobody is left to tell.
            let _ = source_tx.send(Msg::SourceDone(result));
        });
        let target_tx = tx;
        scope.spawn(move || {
            let mut batches = Batches::new(&target_tx, Msg::Target);
            let result = target.list_users(&mut |user| batches.push(user));
            batches.flush();
            let _ = target_tx.send(Msg::TargetDone(result));
        });

        // The writer: runs on this thread and owns the connection. On any error it returns,
        // dropping `rx`, and the readers' sends fail, so they stop early.
        let mut loader = store.loader(run_id)?;
        if let Some((owner, claim)) = claim_for {
            loader.claim_for(owner, claim);
        }
        let (mut source_done, mut target_done) = (None, None);
        while source_done.is_none() || target_done.is_none() {
            let Ok(msg) = rx.recv() else { break };
            match msg {
                Msg::Desired(batch) => {
                    source_bar.inc(batch.len() as u64);
                    for item in batch {
                        match item {
                            Ok((user, origin)) => loader.desired(&user, &origin)?,
                            Err(reject) => {
                                log::info!("rejected {}: {}", reject.origin, reject.reason);
                                loader.reject(&reject)?
                            }
                        }
                    }
                }
                Msg::Target(batch) => {
                    target_bar.inc(batch.len() as u64);
                    for user in &batch {
                        loader.target(user)?;
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
            }
        }
        Ok(loader.finish()?)
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
