//! The log cleaner: `log.cleaner_threads` workers compacting the logs of compacted topics
//! hosted here, dirtiest first, as Kafka's cleaner threads do. Leaders and followers alike
//! clean their own replica (each below its high watermark), to the same result.
//!
//! A worker looks at every compacted partition (`PartitionLog::dirty_state`, which also
//! feeds `/metrics`), takes the one with the highest dirty ratio among those due that no
//! other worker holds, and cleans it on a blocking thread with its own offset map. It
//! looks again at once after a clean, and after `log.cleaner_backoff_ms` when nothing
//! was due. The workers' reads share one I/O budget (`log.cleaner_io_bytes_per_second`).
//! A clean that fails is logged and counted, and the partition is tried again at the next
//! look (never marked uncleanable until a restart, KAFKA-19895).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{Broker, Partition};
use shale_core::clock::monotonic_now;
use shale_core::rate::TokenBucket;
use shale_storage::clean::{CleanHooks, OffsetMap};

/// What the workers share.
struct Shared {
    /// Partitions being cleaned, by topic and index.
    busy: Mutex<HashSet<(String, u32)>>,
    /// The read budget, when there is one.
    io: Option<Mutex<TokenBucket>>,
    /// Each worker's offset map's memory.
    map_bytes: usize,
    backoff: Duration,
    /// The cleaners' threads' nice value.
    nice: i32,
}

/// Starts the cleaner's workers (none with `log.cleaner_threads = 0`).
pub(super) fn start(broker: &Arc<Broker>) {
    let s = &broker.settings.log;
    if s.cleaner_threads == 0 {
        return;
    }
    let rate = s.cleaner_io_bytes_per_second;
    let shared = Arc::new(Shared {
        busy: Mutex::default(),
        io: (rate > 0).then(|| Mutex::new(TokenBucket::new(rate, rate, rate, monotonic_now()))),
        map_bytes: (s.cleaner_dedupe_buffer_bytes / u64::from(s.cleaner_threads)) as usize,
        backoff: Duration::from_millis(s.cleaner_backoff_ms),
        nice: s.cleaner_nice,
    });
    for _ in 0..s.cleaner_threads {
        broker.life.spawn(worker(Arc::downgrade(broker), shared.clone()));
    }
}

async fn worker(broker: Weak<Broker>, shared: Arc<Shared>) {
    // The map's memory grows with the keys it holds, up to its bound, and is kept.
    let mut map = None;
    loop {
        let cleaned = match broker.upgrade() {
            Some(b) => look(&b, &shared, &mut map).await,
            None => return,
        };
        if !cleaned {
            shale_core::clock::sleep(shared.backoff).await;
        }
    }
}

/// One look over the compacted partitions, and a clean of the dirtiest due; whether a
/// clean ran.
async fn look(b: &Arc<Broker>, shared: &Arc<Shared>, map: &mut Option<OffsetMap>) -> bool {
    let now = b.clock().now_ms();
    let mut best: Option<(f64, Arc<Partition>)> = None;
    for p in b.hosted().into_iter().filter(|p| p.compacts() && p.log().failure().is_none()) {
        let (log, req) = (p.log().clone(), p.clean_request(now));
        let dirty = match tokio::task::spawn_blocking(move || log.dirty_state(&req)).await {
            Ok(Ok(dirty)) => dirty,
            Ok(Err(e)) => {
                tracing::warn!(topic = p.topic(), partition = p.index(), error = %e,
                    "could not tell how dirty a compacted log is");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the cleaner's look panicked");
                continue;
            }
        };
        p.note_dirty(dirty);
        let held = shared.busy().contains(&(p.topic().to_string(), p.index()));
        if dirty.due && !held && best.as_ref().is_none_or(|(r, _)| dirty.dirty_ratio > *r) {
            best = Some((dirty.dirty_ratio, p));
        }
    }
    let Some((_, p)) = best else { return false };
    let key = (p.topic().to_string(), p.index());
    if !shared.busy().insert(key.clone()) {
        return false;
    }
    let req = p.clean_request_with_producers(now);
    let (log, io) = (p.log().clone(), shared.clone());
    let mut m = map.take().unwrap_or_else(|| OffsetMap::with_memory(shared.map_bytes));
    // On a thread of its own at a lower priority: a clean is CPU (CRCs, decompression)
    // and I/O for seconds, which produce and fetch must not wait behind.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let nice = shared.nice;
    let partition = p.clone();
    let spawned = std::thread::Builder::new().name("shale-cleaner".into()).spawn(move || {
        shale_core::task::lower_thread_priority(nice, "log cleaner");
        let result = log.clean(&req, &mut m, &mut Hooks { io, partition });
        let _ = tx.send((m, result));
    });
    let done = match spawned {
        Ok(_) => rx.await.map_err(|_| "the cleaner's thread panicked".to_string()),
        Err(e) => Err(format!("cannot start a cleaner thread: {e}")),
    };
    shared.busy().remove(&key);
    match done {
        Ok((m, Ok(Some(stats)))) => {
            *map = Some(m);
            p.note_clean(&stats, b.clock().now_ms());
            tracing::info!(
                topic = p.topic(),
                partition = p.index(),
                from = stats.from,
                to = stats.to,
                point = stats.point,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                segments_before = stats.segments_before,
                segments_after = stats.segments_after,
                swapped = stats.swapped,
                bytes_read = stats.bytes_read,
                markers_removed = stats.markers_removed,
                millis = stats.millis,
                "cleaned a compacted log"
            );
            true
        }
        Ok((m, Ok(None))) => {
            *map = Some(m);
            false
        }
        Ok((m, Err(e))) => {
            *map = Some(m);
            p.note_clean_failed();
            tracing::warn!(topic = p.topic(), partition = p.index(), error = %e,
                "cleaning a compacted log failed; it is tried again at the next look");
            false
        }
        Err(e) => {
            p.note_clean_failed();
            tracing::error!(topic = p.topic(), partition = p.index(), error = %e,
                "a clean did not finish");
            false
        }
    }
}

/// What a clean calls back: the I/O budget, and the partition's index of aborted
/// transactions.
struct Hooks {
    io: Arc<Shared>,
    partition: Arc<Partition>,
}

impl CleanHooks for Hooks {
    fn pace(&mut self, bytes: u64) {
        self.io.pace(bytes)
    }

    fn forget_aborted(&mut self, offsets: &[i64]) -> Result<(), String> {
        self.partition.forget_aborted(offsets)
    }
}

impl Shared {
    fn busy(&self) -> std::sync::MutexGuard<'_, HashSet<(String, u32)>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (on the clean's blocking thread) until `bytes` more fit the read budget.
    fn pace(&self, bytes: u64) {
        let Some(io) = &self.io else { return };
        let wait = io.lock().unwrap_or_else(|p| p.into_inner()).take(bytes, monotonic_now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}
