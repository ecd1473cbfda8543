//! The heartbeat watchdog: every broker watches the heartbeats (`heartbeat`) and fences
//! the brokers silent for the heartbeat timeout that it may fence — any broker while it is
//! the controller, the controller's broker otherwise. See `heartbeat` for the design and
//! its safety argument.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::controller::ControllerRecord;
use super::heartbeat::{Beat, HeartbeatSettings};
use super::json::encode;
use super::membership::Membership;
use super::{
    Compare, KeyValue, Keys, LeaseId, MetaError, MetaStore, Revision, Txn, TxnOp, Versioned,
    WatchEvent, watch_prefixes,
};
use shale_core::clock::Instant;
use shale_core::error::Error;

/// A heartbeat as a watcher last saw it change.
struct Seen {
    revision: Revision,
    at: Instant,
    beat: Option<Beat>,
}

/// How often the watchdog looks for silent brokers.
const TICK: Duration = Duration::from_millis(20);

/// Watches every broker's heartbeat and fences those silent for `settings.timeout`: any
/// broker while this one is the controller, and the controller's broker otherwise. Calls
/// `fenced` after each fence it wrote. Runs until dropped.
pub async fn watchdog(
    store: Arc<dyn MetaStore>,
    keys: Keys,
    membership: Membership,
    settings: HeartbeatSettings,
    fenced: impl Fn(i32) + Send + Sync,
) {
    loop {
        if let Err(e) = watch_once(&store, &keys, &membership, settings, &fenced).await {
            tracing::debug!(error = %e, "heartbeat watch interrupted; reading again");
            shale_core::clock::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One read-then-watch of the heartbeats and the controller key; returns when the watch
/// breaks.
async fn watch_once(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    membership: &Membership,
    settings: HeartbeatSettings,
    on_fence: &(impl Fn(i32) + Send + Sync),
) -> Result<(), Error> {
    let beats = store.range(&keys.heartbeats()).await?;
    let now = membership.now();
    let mut seen: HashMap<i32, Seen> = HashMap::new();
    for kv in beats.kvs {
        note(keys, &mut seen, kv, now);
    }
    let mut controller = read_controller(store, keys).await?;
    let prefixes = [keys.heartbeats(), keys.controller()];
    let mut watch = watch_prefixes(store.as_ref(), &prefixes, beats.revision + 1).await?;
    loop {
        tokio::select! {
            event = watch.next() => match event {
                Some(Ok(WatchEvent::Put(kv))) if kv.key == keys.controller() => {
                    controller = decode_controller(kv);
                }
                Some(Ok(WatchEvent::Put(kv))) => note(keys, &mut seen, kv, membership.now()),
                Some(Ok(WatchEvent::Delete { key, .. })) if key == keys.controller() => {
                    controller = None;
                }
                Some(Ok(WatchEvent::Delete { key, .. })) => {
                    if let Some(id) = id_of(keys, &key) {
                        seen.remove(&id);
                    }
                }
                Some(Ok(WatchEvent::Reset)) | None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
            },
            _ = shale_core::clock::sleep(TICK) => {
                fence_silent(store, keys, membership, settings, &mut seen, controller, on_fence)
                    .await;
            }
        }
    }
}

/// Fences the brokers this one may fence that were silent for the timeout.
async fn fence_silent(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    membership: &Membership,
    settings: HeartbeatSettings,
    seen: &mut HashMap<i32, Seen>,
    controller: Option<(i32, Revision)>,
    on_fence: &(impl Fn(i32) + Send + Sync),
) {
    // A broker that cannot prove its own lease judges nobody.
    if !membership.is_live() {
        return;
    }
    let me = membership.broker_id();
    let now = membership.now();
    let leading = controller.is_some_and(|(id, _)| id == me);
    let silent: Vec<(i32, Revision, u64, LeaseId)> = seen
        .iter()
        .filter(|(id, s)| **id != me && now.saturating_duration_since(s.at) >= settings.timeout)
        .filter(|(id, _)| leading || controller.is_some_and(|(c, _)| c == **id))
        .filter_map(|(id, s)| match s.beat {
            Some(Beat::Alive { incarnation, lease }) => Some((*id, s.revision, incarnation, lease)),
            _ => None,
        })
        .collect();
    for (id, revision, incarnation, lease) in silent {
        let key = keys.heartbeat(id);
        let value = Beat::Fenced { incarnation, lease, by: me };
        let Ok(bytes) = encode(&key, &value) else { continue };
        let mut txn = Txn::new()
            .when(Compare::mod_revision(key.clone(), revision))
            .and_then(TxnOp::put_with_lease(key.clone(), bytes, lease));
        let deposes = controller.filter(|(c, _)| *c == id);
        if let Some((_, crev)) = deposes {
            txn = txn
                .when(Compare::mod_revision(keys.controller(), crev))
                .and_then(TxnOp::delete(keys.controller()));
        }
        let silence = now.saturating_duration_since(seen[&id].at);
        match store.txn(txn).await {
            Ok(o) if o.succeeded => {
                tracing::warn!(
                    broker = id,
                    silent_ms = silence.as_millis() as u64,
                    controller = deposes.is_some(),
                    "no heartbeat from a broker within the heartbeat timeout: fenced; its \
                     leaderships move"
                );
                seen.insert(id, Seen { revision: o.revision, at: now, beat: Some(value) });
                on_fence(id);
            }
            // It beat meanwhile (this watch is behind): look again from what is there.
            Ok(_) => match store.get(&key).await {
                Ok(Some(kv)) => note(keys, seen, kv, membership.now()),
                Ok(None) => {
                    seen.remove(&id);
                }
                Err(_) => {}
            },
            // Its lease is gone (the key with it), or the store is unreachable.
            Err(e) => tracing::debug!(broker = id, error = %e, "fencing a silent broker failed"),
        }
    }
}

fn id_of(keys: &Keys, key: &str) -> Option<i32> {
    key.strip_prefix(&keys.heartbeats())?.parse().ok()
}

/// Records a heartbeat key's change, seen `at`.
fn note(keys: &Keys, seen: &mut HashMap<i32, Seen>, kv: KeyValue, at: Instant) {
    let Some(id) = id_of(keys, &kv.key) else { return };
    let revision = kv.mod_revision;
    let beat = Versioned::<Beat>::decode(kv).ok().map(|v| v.value);
    seen.insert(id, Seen { revision, at, beat });
}

fn decode_controller(kv: KeyValue) -> Option<(i32, Revision)> {
    let revision = kv.mod_revision;
    Versioned::<ControllerRecord>::decode(kv).ok().map(|v| (v.value.id, revision))
}

async fn read_controller(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
) -> Result<Option<(i32, Revision)>, MetaError> {
    Ok(store.get(&keys.controller()).await?.and_then(decode_controller))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::testing::{BEATS, Hooked, TxnHook, join, wait_for, writes_a_beat};

    async fn beat_of(store: &Arc<dyn MetaStore>, keys: &Keys, id: i32) -> Option<Beat> {
        let kv = store.get(&keys.heartbeat(id)).await.unwrap()?;
        Some(Versioned::<Beat>::decode(kv).unwrap().value)
    }

    /// Two brokers on one store; broker 1 is the controller and watches.
    async fn cluster() -> (Arc<dyn MetaStore>, Keys, Membership, Membership) {
        let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("hb").unwrap();
        let (one, two) = (join(&store, &keys, 1).await, join(&store, &keys, 2).await);
        let record = encode(&keys.controller(), &ControllerRecord { id: 1 }).unwrap();
        store.put(&keys.controller(), record, Some(one.lease())).await.unwrap();
        (store, keys, one, two)
    }

    /// A broker whose beats stop (its task gone, as if frozen) stops being live by its own
    /// clock first, and is fenced by the controller only after the timeout; while it beat,
    /// nobody fenced it. The controller then plans without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_broker_is_fenced_after_its_own_validity_ran_out() {
        let (store, keys, one, two) = cluster().await;
        let beats = shale_core::task::spawn_owned(two.clone().beat(BEATS));
        let _one = shale_core::task::spawn_owned(one.clone().beat(BEATS));
        let fences = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = fences.clone();
        let _dog = shale_core::task::spawn_owned(watchdog(
            store.clone(),
            keys.clone(),
            one.clone(),
            BEATS,
            move |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
        ));
        wait_for("broker 2 to beat", async || two.is_live()).await;
        // Beating for 5 timeouts: never fenced.
        shale_core::clock::sleep(BEATS.timeout * 5).await;
        assert!(two.is_live(), "a beating broker stays live");
        assert!(matches!(beat_of(&store, &keys, 2).await, Some(Beat::Alive { .. })));
        beats.abort();
        // The watchdog writes the fence, then reports it. A fence read before broker 2's
        // own clock is asked proves the fence stood while it answered: it must not be live
        // then. (Timed from the abort instead, a beat task starved before the abort makes
        // an early-looking fence that is not one.)
        wait_for("broker 2 to be fenced and the fence reported", async || {
            let fenced =
                matches!(beat_of(&store, &keys, 2).await, Some(Beat::Fenced { by: 1, .. }));
            assert!(!(fenced && two.is_live()), "fenced while it still took itself for live");
            fenced && fences.load(std::sync::atomic::Ordering::Relaxed) > 0
        })
        .await;
        assert_eq!(fences.load(std::sync::atomic::Ordering::Relaxed), 1);
        let fenced = crate::heartbeat::fenced(&store, &keys).await.unwrap();
        assert_eq!(fenced.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![2]);
        assert!(one.is_live(), "the controller beats on");
    }

    /// A fenced broker that beats again finds the fence, counts it, starts a new session
    /// (so it re-reads the metadata before it leads) and is live again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fenced_broker_comes_back_under_a_new_session() {
        let (store, keys, _one, two) = cluster().await;
        let _beats = shale_core::task::spawn_owned(two.clone().beat(BEATS));
        wait_for("broker 2 to beat", async || two.is_live()).await;
        let session = two.session();
        let key = keys.heartbeat(2);
        let fence = Beat::Fenced { incarnation: 2, lease: two.lease(), by: 1 };
        store.put(&key, encode(&key, &fence).unwrap(), Some(two.lease())).await.unwrap();
        wait_for("broker 2 to beat over the fence", async || two.fences() == 1 && two.is_live())
            .await;
        assert_eq!(two.session(), session + 1, "a new session after a fence");
        assert!(matches!(beat_of(&store, &keys, 2).await, Some(Beat::Alive { .. })));
    }

    /// A fenced broker whose first beat over the fence fails (etcd busy for a moment) still
    /// starts a new session when a later beat gets over it, before it is live again: the
    /// session is what makes it re-read the metadata before it leads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fence_beaten_at_the_second_try_still_starts_a_new_session() {
        let store = Hooked::new(EmbeddedStore::in_memory(shale_core::clock::system()));
        let dyn_store: Arc<dyn MetaStore> = store.clone();
        let keys = Keys::new("hb").unwrap();
        let two = join(&dyn_store, &keys, 2).await;
        let _beats = shale_core::task::spawn_owned(two.clone().beat(BEATS));
        wait_for("broker 2 to beat", async || two.is_live()).await;
        let session = two.session();
        let key = keys.heartbeat(2);

        // Beats fail while the fence is written, so the fence's revision is known before
        // the broker can see it.
        let k = keys.clone();
        store.set(move |txn| if writes_a_beat(txn, &k) { TxnHook::Fail } else { TxnHook::Pass });
        let fence = Beat::Fenced { incarnation: 2, lease: two.lease(), by: 1 };
        let fenced_at = dyn_store.put(&key, encode(&key, &fence).unwrap(), Some(two.lease())).await;
        let fenced_at = fenced_at.unwrap();
        // Now only the first beat over the fence (a compare on its revision) fails.
        let k = keys.clone();
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        store.set(move |txn| {
            let over_fence = txn.compares.iter().any(
                |c| matches!(c, Compare::ModRevision { revision, .. } if *revision == fenced_at),
            );
            if writes_a_beat(txn, &k)
                && over_fence
                && !failed.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                TxnHook::Fail
            } else {
                TxnHook::Pass
            }
        });
        wait_for("broker 2 to beat over the fence", async || {
            matches!(beat_of(&dyn_store, &keys, 2).await, Some(Beat::Alive { .. })) && two.is_live()
        })
        .await;
        assert_eq!(two.fences(), 1);
        assert_eq!(two.session(), session + 1, "a new session after a fence");
    }

    /// A silent controller is fenced by another broker, and its controller key deleted in
    /// the same transaction, so the next election starts at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_controller_is_fenced_and_deposed_by_another_broker() {
        let (store, keys, one, two) = cluster().await;
        let beats = shale_core::task::spawn_owned(one.clone().beat(BEATS));
        let _two = shale_core::task::spawn_owned(two.clone().beat(BEATS));
        let _dog = shale_core::task::spawn_owned(watchdog(
            store.clone(),
            keys.clone(),
            two.clone(),
            BEATS,
            |_| {},
        ));
        wait_for("broker 1 to beat", async || one.is_live()).await;
        beats.abort();
        wait_for("the controller to be fenced and deposed", async || {
            matches!(beat_of(&store, &keys, 1).await, Some(Beat::Fenced { by: 2, .. }))
                && store.get(&keys.controller()).await.unwrap().is_none()
        })
        .await;
    }
}
