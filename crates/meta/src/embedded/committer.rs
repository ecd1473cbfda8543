//! The commit thread: the only writer of the embedded store.
//!
//! Writes queue here, are evaluated in batches, persisted with one fsync per batch (group
//! commit), then applied and published to watchers before their callers hear back. It
//! also reaps expired leases on a real-time tick and writes snapshots. A dedicated thread
//! keeps blocking fsyncs off the async runtime, and a write finishes even if its caller
//! stops waiting, so memory never diverges from the log.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::super::{LeaseId, MetaError, Revision, Txn};
use super::state::{Prepared, State};
use super::wal::{self, Wal};
use super::{EmbeddedOptions, lock};
use shale_core::clock::SharedClock;

/// Most requests evaluated and synced together.
const MAX_BATCH: usize = 512;

/// What a committed write did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Committed {
    pub succeeded: bool,
    pub revision: Revision,
    /// Keys deleted (txn, revoke) or leases ended (reap).
    pub deleted: u64,
}

/// Where a write's result goes.
pub(super) type Reply = oneshot::Sender<Result<Committed, MetaError>>;

/// Work for the commit thread.
pub(super) enum Request {
    Txn { txn: Txn, reply: Reply },
    Revoke { lease: LeaseId, reply: Reply },
    Reap { reply: Option<Reply> },
    Snapshot { reply: oneshot::Sender<Result<(), MetaError>> },
    Shutdown,
}

/// The persisted side of a store opened on a directory.
pub(super) struct Disk {
    pub dir: PathBuf,
    pub wal: Wal,
    /// Size of the last snapshot; the WAL may grow to twice this before the next one.
    pub snapshot_len: u64,
}

pub(super) struct Committer {
    pub state: Arc<Mutex<State>>,
    pub clock: SharedClock,
    pub disk: Option<Disk>,
    pub options: EmbeddedOptions,
    /// Set when a WAL write failed: what is on disk is unknown, so refuse further writes
    /// until a restart replays the log (retrying after a failed fsync can lose data).
    pub failed: Option<String>,
    /// Do not retry a failed snapshot before the WAL reaches this size.
    pub next_snapshot_at: u64,
}

impl Committer {
    /// Runs until `Shutdown` or until every sender is gone.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut last_reap = self.clock.instant();
        loop {
            let wait = self.options.reap_interval.saturating_sub(last_reap.elapsed());
            let mut shutdown = false;
            match rx.recv_timeout(wait) {
                Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Request::Shutdown) => {
                                shutdown = true;
                                break;
                            }
                            Ok(req) => batch.push(req),
                            Err(_) => break,
                        }
                    }
                    self.process(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if shutdown {
                break;
            }
            if last_reap.elapsed() >= self.options.reap_interval {
                self.process(vec![Request::Reap { reply: None }]);
                last_reap = self.clock.instant();
            }
        }
    }

    fn failure(&self) -> Option<MetaError> {
        let msg = self.failed.as_ref()?;
        let path = self.disk.as_ref().map(|d| d.wal.path().to_path_buf()).unwrap_or_default();
        let source = std::io::Error::other(format!(
            "an earlier metadata write failed ({msg}); restart to recover from the log"
        ));
        Some(MetaError::Io { path, source })
    }

    fn process(&mut self, batch: Vec<Request>) {
        let now_ms = self.clock.now_ms();
        let mut prepared: Vec<(Prepared, Option<Reply>)> = Vec::with_capacity(batch.len());
        let mut reaps: Vec<(Option<Reply>, u64)> = Vec::new();
        let mut snapshots = Vec::new();
        {
            let state = lock(&self.state);
            let mut ov = state.overlay();
            for req in batch {
                if let Some(err) = self.failure() {
                    reply_err(req, err);
                    continue;
                }
                match req {
                    Request::Txn { txn, reply } => match state.prepare_txn(&mut ov, &txn, now_ms) {
                        Ok(p) => prepared.push((p, Some(reply))),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    Request::Revoke { lease, reply } => {
                        match state.prepare_revoke(&mut ov, lease) {
                            Ok(p) => prepared.push((p, Some(reply))),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Request::Reap { reply } => {
                        let ended = state.prepare_reap(&mut ov, now_ms);
                        reaps.push((reply, ended.len() as u64));
                        prepared.extend(ended.into_iter().map(|p| (p, None)));
                    }
                    Request::Snapshot { reply } => snapshots.push(reply),
                    Request::Shutdown => {}
                }
            }
        }
        let result = self.commit(prepared);
        for (reply, ended) in reaps {
            if let Some(reply) = reply {
                let outcome = Committed { succeeded: true, revision: 0, deleted: ended };
                let _ = reply.send(result.as_ref().map(|_| outcome).map_err(clone_err));
            }
        }
        if result.is_ok() {
            // A failed snapshot was logged and leaves the WAL intact; writes go on.
            let _ = self.maybe_snapshot(false);
        }
        for reply in snapshots {
            let _ = reply.send(self.maybe_snapshot(true));
        }
    }

    /// Persists a batch with one sync, then applies it and answers its callers.
    fn commit(&mut self, prepared: Vec<(Prepared, Option<Reply>)>) -> Result<(), MetaError> {
        if prepared.is_empty() {
            return Ok(());
        }
        let mut write_error = None;
        if let Some(disk) = &mut self.disk {
            let mut buf = Vec::new();
            for (p, _) in prepared.iter().filter(|(p, _)| !p.changes.is_empty()) {
                wal::encode_txn(&mut buf, p.revision, p.changes.iter().map(|c| c.as_record_op()));
            }
            if !buf.is_empty()
                && let Err(e) = disk.wal.append(&buf)
            {
                tracing::error!(
                    path = %disk.wal.path().display(),
                    error = %e,
                    "metadata wal write failed; refusing further writes until restart"
                );
                write_error = Some(e.to_string());
            }
        }
        if let Some(msg) = write_error {
            self.failed = Some(msg);
            let err =
                self.failure().unwrap_or_else(|| MetaError::Unavailable("wal write failed".into()));
            for (_, reply) in prepared {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(clone_err(&err)));
                }
            }
            return Err(err);
        }
        let mut replies = Vec::with_capacity(prepared.len());
        {
            let mut state = lock(&self.state);
            for (p, reply) in prepared {
                let done =
                    Committed { succeeded: p.succeeded, revision: p.revision, deleted: p.deleted };
                state.apply(p);
                replies.push((reply, done));
            }
        }
        for (reply, done) in replies {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(done));
            }
        }
        Ok(())
    }

    /// Writes a snapshot and restarts the WAL when it grew enough (or when `force`d).
    fn maybe_snapshot(&mut self, force: bool) -> Result<(), MetaError> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        let Some(disk) = &mut self.disk else { return Ok(()) };
        let len = disk.wal.len();
        let due = len >= self.options.snapshot_wal_bytes
            && len > 2 * disk.snapshot_len
            && len >= self.next_snapshot_at;
        if !force && !due {
            return Ok(());
        }
        let mut buf = Vec::new();
        {
            let state = lock(&self.state);
            let count = state.durable_entries().count();
            let entries = state.durable_entries().map(|(k, e)| {
                (k.as_str(), &e.value[..], e.create_revision, e.mod_revision, e.version)
            });
            wal::encode_snapshot(&mut buf, state.revision, state.generation, count, entries);
        }
        // Snapshot first, then the new WAL: a crash in between replays old records, which
        // the snapshot's revision makes no-ops.
        if let Err(e) = wal::write_atomically(disk.wal.disk(), &disk.dir, wal::SNAPSHOT_FILE, &buf)
        {
            // The old WAL is intact, so nothing is lost; try again after more growth.
            tracing::warn!(dir = %disk.dir.display(), error = %e, "metadata snapshot failed");
            self.next_snapshot_at = len + self.options.snapshot_wal_bytes;
            return Err(e);
        }
        if let Err(e) = disk.wal.reset(&disk.dir) {
            // The new WAL may already be in place while our handle still points at the old
            // one; appending there would lose writes, so stop writing until a restart.
            tracing::error!(dir = %disk.dir.display(), error = %e, "metadata wal restart failed");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        tracing::debug!(
            dir = %disk.dir.display(),
            snapshot_bytes = buf.len(),
            wal_bytes = len,
            "metadata snapshot written; wal restarted"
        );
        disk.snapshot_len = buf.len() as u64;
        self.next_snapshot_at = 0;
        Ok(())
    }
}

fn reply_err(req: Request, err: MetaError) {
    match req {
        Request::Txn { reply, .. } | Request::Revoke { reply, .. } => {
            let _ = reply.send(Err(err));
        }
        Request::Reap { reply: Some(reply) } => {
            let _ = reply.send(Err(err));
        }
        Request::Snapshot { reply } => {
            let _ = reply.send(Err(err));
        }
        Request::Reap { reply: None } | Request::Shutdown => {}
    }
}

/// `MetaError` holds an `io::Error`, which is not `Clone`; rebuild it for each caller.
fn clone_err(e: &MetaError) -> MetaError {
    match e {
        MetaError::Io { path, source } => MetaError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => MetaError::Unavailable(other.to_string()),
    }
}
