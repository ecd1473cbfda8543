//! The coordinator over the embedded store and a host whose markers are recorded (and
//! fail when told to).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::coordinator::{TxnCoordinator, TxnHost, TxnSettings};
use super::offsets::PendingOffsets;
use super::state::{EndAsk, TxnState};
use super::store::TxnStore;
use shale_core::error::{Error, Reason};
use shale_core::record::control::{Marker, MarkerKind};
use shale_meta::MetaStore;
use shale_meta::keys::Keys;

/// A written marker: partition, producer, marker, transactions v2.
type Written = ((String, u32), (i64, i16), Marker, bool);

struct Host {
    id: i32,
    brokers: Mutex<Vec<(i32, String)>>,
    now: AtomicI64,
    ids: AtomicI64,
    markers: Mutex<Vec<Written>>,
    /// Writes to refuse per partition before one succeeds (`usize::MAX`: all).
    failing: Mutex<HashMap<(String, u32), usize>>,
}

impl Host {
    fn new(id: i32) -> Arc<Host> {
        Arc::new(Host {
            id,
            brokers: Mutex::new(vec![(id, format!("b{id}"))]),
            now: AtomicI64::new(1_000_000),
            ids: AtomicI64::new(100),
            markers: Mutex::new(Vec::new()),
            failing: Mutex::new(HashMap::new()),
        })
    }

    fn written(&self) -> Vec<Written> {
        self.markers.lock().unwrap().clone()
    }
}

#[async_trait]
impl TxnHost for Host {
    fn broker_id(&self) -> i32 {
        self.id
    }

    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }

    fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        self.brokers.lock().unwrap().clone()
    }

    async fn new_producer_id(&self, _transactional_id: &str) -> Result<i64, Error> {
        Ok(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    async fn write_marker(
        &self,
        (topic, partition): (&str, u32),
        producer: (i64, i16),
        marker: Marker,
        tv2: bool,
    ) -> Result<(), Error> {
        let key = (topic.to_string(), partition);
        if let Some(left) = self.failing.lock().unwrap().get_mut(&key)
            && *left > 0
        {
            *left = left.saturating_sub(1);
            return Err(Error::unavailable(format!("{topic}-{partition} has no leader")));
        }
        self.markers.lock().unwrap().push((key, producer, marker, tv2));
        Ok(())
    }
}

fn meta() -> Arc<dyn MetaStore> {
    shale_meta::EmbeddedStore::in_memory(shale_core::clock::system())
}

fn coordinator(host: &Arc<Host>, meta: &Arc<dyn MetaStore>) -> Arc<TxnCoordinator> {
    let store = TxnStore::new(meta.clone(), Keys::new("c").unwrap());
    let offsets = PendingOffsets::new(meta.clone(), Keys::new("c").unwrap());
    let settings = TxnSettings { max_timeout_ms: 900_000, marker_retry: Duration::from_millis(5) };
    TxnCoordinator::new(host.clone(), store, offsets, settings)
}

/// Waits (up to 10 s) until `id`'s stored state is `want`.
async fn until_state(meta: &Arc<dyn MetaStore>, id: &str, want: TxnState) {
    let store = TxnStore::new(meta.clone(), Keys::new("c").unwrap());
    let mut last = None;
    for _ in 0..1_000 {
        last = store.load(id).await.unwrap().map(|s| s.record.state);
        if last == Some(want) {
            return;
        }
        shale_core::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} did not reach {want:?} within 10 s: last {last:?}");
}

fn parts() -> Vec<(String, u32)> {
    vec![("in".into(), 0), ("out".into(), 1)]
}

fn end(pid: i64, epoch: i16, commit: bool) -> EndAsk {
    EndAsk { producer_id: pid, epoch, commit, tv2: true, now_ms: 0 }
}

#[tokio::test]
async fn a_commit_is_stored_then_its_markers_written_then_completed() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    assert_eq!((pid, epoch), (100, 0));
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    assert!(c.verify("app", (pid, epoch), ("out", 1)).await.unwrap());
    // A partition without a leader for a while: its marker is written again.
    host.failing.lock().unwrap().insert(("out".into(), 1), 2);
    let next = c.end("app", end(pid, epoch, true)).await.unwrap();
    assert_eq!(next, (100, 1), "transactions v2: the next epoch");
    until_state(&meta, "app", TxnState::CompleteCommit).await;
    let written = host.written();
    assert_eq!(written.len(), 2, "{written:?}");
    for (_, producer, marker, tv2) in written {
        assert_eq!((producer, marker.kind, tv2), ((100, 1), MarkerKind::Commit, true));
        assert_eq!(marker.coordinator_epoch, 0, "this broker created the id: epoch 0");
    }
    // The producer's retry of its end is answered with the same producer id and epoch.
    assert_eq!(c.end("app", end(pid, epoch, true)).await.unwrap(), (100, 1));
}

#[tokio::test]
async fn a_broker_that_does_not_win_the_id_answers_not_coordinator() {
    let (host, meta) = (Host::new(1), meta());
    *host.brokers.lock().unwrap() = vec![(2, "b2:9092".into())];
    let c = coordinator(&host, &meta);
    let e = c.init_producer_id("app", 60_000, None).await.unwrap_err();
    assert_eq!(e.reason, Reason::NotCoordinator, "{e}");
    assert!(e.message.contains("broker 2 (b2:9092)"), "names the coordinator: {e}");
    let e = c.init_producer_id("", 60_000, None).await.unwrap_err();
    assert!(e.message.contains("must not be empty"), "{e}");
}

/// A second instance aborts the first one's open transaction before it gets its epoch;
/// the first one is fenced.
#[tokio::test]
async fn a_new_instance_fences_the_old_one_after_aborting_its_transaction() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    let e = c.init_producer_id("app", 60_000, None).await.unwrap_err();
    assert_eq!(e.reason, Reason::ConcurrentTransactions, "{e}");
    until_state(&meta, "app", TxnState::CompleteAbort).await;
    assert!(
        host.written().iter().all(|(_, p, m, _)| *p == (100, 1) && m.kind == MarkerKind::Abort)
    );
    assert_eq!(c.init_producer_id("app", 60_000, None).await.unwrap(), (100, 2));
    let e = c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap_err();
    assert_eq!(e.reason, Reason::ProducerFenced, "the old instance: {e}");
}

#[tokio::test]
async fn the_sweep_aborts_a_transaction_past_its_timeout() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 10_000, None).await.unwrap();
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    assert_eq!(c.sweep().await.unwrap(), (0, 0), "not yet timed out");
    host.now.fetch_add(10_001, Ordering::Relaxed);
    assert_eq!(c.sweep().await.unwrap(), (0, 1));
    until_state(&meta, "app", TxnState::CompleteAbort).await;
    assert_eq!(host.written().len(), 2);
    let e = c.end("app", end(pid, epoch, true)).await.unwrap_err();
    assert_eq!(e.reason, Reason::InvalidTxnState, "its commit comes too late: {e}");
}

/// A coordinator dies between its decision and its markers; the next one (here: a new
/// instance over the same store) finds the decision, claims the id and writes the markers
/// at a higher coordinator epoch.
#[tokio::test]
async fn the_next_coordinator_finishes_a_decided_transaction() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    for tp in parts() {
        host.failing.lock().unwrap().insert(tp, usize::MAX);
    }
    c.end("app", end(pid, epoch, true)).await.unwrap();
    until_state(&meta, "app", TxnState::PrepareCommit).await;
    drop(c);
    let next_host = Host::new(1);
    let next = coordinator(&next_host, &meta);
    assert_eq!(next.sweep().await.unwrap(), (1, 0));
    until_state(&meta, "app", TxnState::CompleteCommit).await;
    let written = next_host.written();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|(_, _, m, _)| m.coordinator_epoch == 1), "{written:?}");
}

/// Offsets committed in a transaction reach the group's committed offsets only when it
/// commits; an aborted transaction's are dropped. In v1 the group must have been added.
#[tokio::test]
async fn transactional_offsets_follow_their_transaction() {
    use crate::groups::records::{OffsetRecord, decode};
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let keys = Keys::new("c").unwrap();
    let committed = |p: u32| {
        let (meta, key) = (meta.clone(), keys.offset("g", "in", p));
        async move {
            let kv = meta.get(&key).await.unwrap()?;
            Some(decode::<OffsetRecord>(&kv.value, "offset").unwrap().offset)
        }
    };
    let at = |offset| OffsetRecord {
        offset,
        metadata: String::new(),
        commit_ms: 1,
        topic_id: "i".into(),
    };
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    let e = c.add_offsets("app", (pid, epoch), "g", &[("in".into(), 0, at(5))], false).await;
    assert_eq!(e.unwrap_err().reason, Reason::InvalidTxnState, "v1 without AddOffsetsToTxn");
    c.add_offsets("app", (pid, epoch), "g", &[("in".into(), 0, at(5))], true).await.unwrap();
    assert_eq!(committed(0).await, None, "pending");
    c.end("app", end(pid, epoch, false)).await.unwrap();
    until_state(&meta, "app", TxnState::CompleteAbort).await;
    assert_eq!(committed(0).await, None, "dropped with the abort");
    let epoch = epoch + 1;
    c.add_offsets("app", (pid, epoch), "g", &[("in".into(), 0, at(9))], true).await.unwrap();
    c.end("app", end(pid, epoch, true)).await.unwrap();
    until_state(&meta, "app", TxnState::CompleteCommit).await;
    assert_eq!(committed(0).await, Some(9), "written with the commit");
}

/// The open-transaction gauge counts only ids this broker still coordinates: once the live
/// brokers change and another broker wins an id, its transaction leaves the gauge here.
#[tokio::test]
async fn ids_lost_to_another_broker_leave_the_open_gauge() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    assert_eq!(c.stats(host.now_ms()).open, 1);
    *host.brokers.lock().unwrap() = vec![(2, "b2".into())];
    c.release_lost();
    assert_eq!(c.stats(host.now_ms()).open, 0, "broker 2 coordinates it now");
}

/// A producer's next transaction, asked for while its last one's markers are still being
/// written, waits for the completion instead of being told CONCURRENT_TRANSACTIONS (which
/// a client retries only after its 100 ms backoff); past the wait it is told so.
#[tokio::test]
async fn the_next_transaction_waits_for_the_last_ones_completion() {
    let (host, meta) = (Host::new(1), meta());
    let c = coordinator(&host, &meta);
    let (pid, epoch) = c.init_producer_id("app", 60_000, None).await.unwrap();
    c.add("app", (pid, epoch), &parts(), &[], true).await.unwrap();
    // The markers of one partition fail three times (5, 10 and 20 ms of backoff).
    host.failing.lock().unwrap().insert(("out".into(), 1), 3);
    let next = c.end("app", end(pid, epoch, true)).await.unwrap();
    c.add("app", next, &parts(), &[], true).await.unwrap();
    let r = TxnStore::new(meta.clone(), Keys::new("c").unwrap()).load("app").await.unwrap();
    assert_eq!(r.unwrap().record.state, TxnState::Ongoing, "the next transaction is open");
    assert_eq!(host.written().len(), 2, "after the last one's markers");
    // Markers that keep failing: the wait ends, and the producer is told to retry.
    host.failing.lock().unwrap().insert(("out".into(), 1), usize::MAX);
    c.end("app", end(next.0, next.1, true)).await.unwrap();
    let after = (next.0, next.1 + 1);
    let e = c.add("app", after, &parts(), &[], true).await.unwrap_err();
    assert_eq!(e.reason, Reason::ConcurrentTransactions, "{e}");
}
