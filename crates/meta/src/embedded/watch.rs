//! Watchers of the embedded store: bounded per-watcher channels and a bounded history.
//!
//! Writers never wait for watchers: a watcher whose channel is full is dropped and its
//! stream ends with `Reset` once it has drained what it got. Recent events are kept in
//! memory so a watch can start at a past revision; older starts get `Compacted`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::super::{MetaError, Revision, WatchEvent, WatchStream};

/// Bytes an event costs in the history beyond its key and value.
const EVENT_OVERHEAD: usize = 64;

struct Watcher {
    prefix: String,
    start_revision: Revision,
    tx: mpsc::Sender<WatchEvent>,
    lagged: Arc<AtomicBool>,
}

/// The registered watchers and the recent history.
pub(super) struct WatchHub {
    watchers: Vec<Watcher>,
    history: VecDeque<WatchEvent>,
    history_bytes: usize,
    /// Events at or below this revision may be missing from `history`.
    compacted: Revision,
    buffer: usize,
    max_events: usize,
    max_bytes: usize,
}

fn event_size(e: &WatchEvent) -> usize {
    match e {
        WatchEvent::Put(kv) => kv.key.len() + kv.value.len() + EVENT_OVERHEAD,
        WatchEvent::Delete { key, .. } => key.len() + EVENT_OVERHEAD,
        WatchEvent::Reset => EVENT_OVERHEAD,
    }
}

impl WatchHub {
    /// A hub whose history starts after `compacted`.
    pub(super) fn new(
        compacted: Revision,
        buffer: usize,
        max_events: usize,
        max_bytes: usize,
    ) -> Self {
        WatchHub {
            watchers: Vec::new(),
            history: VecDeque::new(),
            history_bytes: 0,
            compacted,
            buffer: buffer.max(1),
            max_events,
            max_bytes,
        }
    }

    /// Delivers one transaction's events to matching watchers and records them.
    pub(super) fn publish(&mut self, events: Vec<WatchEvent>) {
        if events.is_empty() {
            return;
        }
        self.watchers.retain(|w| {
            for ev in &events {
                let wanted = ev.key().is_some_and(|k| k.starts_with(&w.prefix))
                    && ev.revision().is_some_and(|r| r >= w.start_revision);
                if !wanted {
                    continue;
                }
                match w.tx.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Dropping the sender ends the stream; the flag turns the end into
                        // a `Reset` so the watcher knows to re-read.
                        w.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        for ev in events {
            self.history_bytes += event_size(&ev);
            self.history.push_back(ev);
        }
        while self.history.len() > self.max_events || self.history_bytes > self.max_bytes {
            let Some(old) = self.history.pop_front() else { break };
            self.history_bytes -= event_size(&old);
            self.compacted = self.compacted.max(old.revision().unwrap_or(0));
        }
    }

    /// Starts a watch of `prefix` from `start_revision` (0 = after `current`).
    pub(super) fn watch(
        &mut self,
        prefix: &str,
        start_revision: Revision,
        current: Revision,
    ) -> WatchStream {
        let start = if start_revision == 0 { current + 1 } else { start_revision };
        if start <= self.compacted {
            let err = MetaError::Compacted { revision: self.compacted + 1 };
            return Box::pin(futures::stream::once(async move { Err(err) }));
        }
        let first = self.history.partition_point(|e| e.revision().is_some_and(|r| r < start));
        let replay: Vec<WatchEvent> = self
            .history
            .range(first..)
            .filter(|e| e.key().is_some_and(|k| k.starts_with(prefix)))
            .cloned()
            .collect();
        // Room for the whole replay plus the live buffer, so replay never counts as lag.
        let (tx, rx) = mpsc::channel(self.buffer + replay.len());
        for ev in replay {
            // Cannot fail: the channel was sized for the replay and rx is alive.
            let _ = tx.try_send(ev);
        }
        let lagged = Arc::new(AtomicBool::new(false));
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers.push(Watcher {
            prefix: prefix.to_string(),
            start_revision: start,
            tx,
            lagged: lagged.clone(),
        });
        Box::pin(EventStream { rx, lagged, finished: false })
    }

    /// Number of live watchers (for tests).
    #[cfg(test)]
    pub(super) fn watcher_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

/// The receiving side of one watch.
struct EventStream {
    rx: mpsc::Receiver<WatchEvent>,
    lagged: Arc<AtomicBool>,
    finished: bool,
}

impl Stream for EventStream {
    type Item = Result<WatchEvent, MetaError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(ev)) => Poll::Ready(Some(Ok(ev))),
            Poll::Ready(None) => {
                self.finished = true;
                if self.lagged.load(Ordering::Acquire) {
                    Poll::Ready(Some(Ok(WatchEvent::Reset)))
                } else {
                    Poll::Ready(Some(Err(MetaError::Unavailable(
                        "the embedded metadata store shut down; this watch ended".into(),
                    ))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
