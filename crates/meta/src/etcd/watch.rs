//! Turns one etcd watch (a gRPC stream carrying a single watcher) into a `WatchStream`.
//!
//! A broken connection, a server that closes the stream, or a watcher etcd cancels for a
//! reason other than compaction all end the stream with `Reset`: the caller re-reads with
//! `range` and watches again from the revision it saw, which misses nothing because etcd
//! keeps the history since its last compaction.

use std::collections::VecDeque;

use etcd_client::{EventType, WatchResponse, WatchStream as EtcdWatchStream};

use super::super::{MetaError, WatchEvent, WatchStream};
use super::convert::{key_value, utf8_key};

/// The state carried between polls of one watch.
struct Watch {
    inner: EtcdWatchStream,
    /// Items decoded from the last response and not yet handed out.
    pending: VecDeque<Result<WatchEvent, MetaError>>,
    /// Set once a terminal item is queued; the stream ends after `pending` drains.
    finished: bool,
    /// For log lines.
    endpoints: String,
    prefix: String,
}

/// Wraps an etcd watch whose `created` response was already read.
pub(super) fn stream(inner: EtcdWatchStream, endpoints: String, prefix: String) -> WatchStream {
    let watch = Watch { inner, pending: VecDeque::new(), finished: false, endpoints, prefix };
    Box::pin(futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(item) = w.pending.pop_front() {
                return Some((item, w));
            }
            if w.finished {
                return None;
            }
            match w.inner.message().await {
                Ok(Some(resp)) => w.decode(resp),
                Ok(None) => w.reset("etcd closed the watch stream"),
                Err(e) => w.reset(&e.to_string()),
            }
        }
    }))
}

impl Watch {
    fn decode(&mut self, resp: WatchResponse) {
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let item = match event.event_type() {
                EventType::Put => key_value(kv.clone()).map(WatchEvent::Put),
                // A delete event's kv carries only the key and the revision of the delete.
                EventType::Delete => utf8_key(kv.key().to_vec())
                    .map(|key| WatchEvent::Delete { key, mod_revision: kv.mod_revision() }),
            };
            let failed = item.is_err();
            self.pending.push_back(item);
            if failed {
                // The trait promises a stream ends after an error.
                self.finished = true;
                return;
            }
        }
        if resp.canceled() {
            self.finished = true;
            if resp.compact_revision() > 0 {
                let revision = resp.compact_revision();
                self.pending.push_back(Err(MetaError::Compacted { revision }));
            } else {
                tracing::warn!(
                    endpoints = %self.endpoints,
                    prefix = %self.prefix,
                    reason = %resp.cancel_reason(),
                    "etcd canceled a watch; the watcher re-reads and watches again"
                );
                self.pending.push_back(Ok(WatchEvent::Reset));
            }
        }
    }

    fn reset(&mut self, why: &str) {
        tracing::warn!(
            endpoints = %self.endpoints,
            prefix = %self.prefix,
            error = %why,
            "etcd watch broke; the watcher re-reads and watches again"
        );
        self.finished = true;
        self.pending.push_back(Ok(WatchEvent::Reset));
    }
}
