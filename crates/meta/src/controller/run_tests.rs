//! The controller's election loop on a real (embedded) store: a broker that leaves its
//! duties for a moment resumes its term instead of stranding it.

use super::*;
use crate::embedded::EmbeddedStore;
use crate::testing::{BEATS, Hooked, TxnHook, join, wait_for, writes_a_beat};
use crate::topics::TopicStore;

fn topic(name: &str) -> TopicRecord {
    TopicRecord {
        name: name.into(),
        id: format!("{name}-id"),
        partitions: 2,
        replication_factor: 1,
        configs: Default::default(),
        created_ms: 0,
    }
}

/// The one broker of a cluster is controller; its beats stall past their validity, so it
/// takes itself for not live and leaves its duties, while its lease (and with it the
/// controller key) lives on and nobody fences it. Once it beats again it must lead again:
/// topics created afterwards are placed. (Before, it waited for its own key to go away,
/// which only its death could do, and nothing was placed again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_doubted_its_liveness_for_a_moment_leads_again() {
    let keys = Keys::new("resume").unwrap();
    let store = Hooked::new(EmbeddedStore::in_memory(shale_core::clock::system()));
    let dyn_store: Arc<dyn MetaStore> = store.clone();
    let one = join(&dyn_store, &keys, 1).await;
    let _lease = shale_core::task::spawn_owned(one.clone().run());
    let _beats = shale_core::task::spawn_owned(one.clone().beat(BEATS));
    let _controller = shale_core::task::spawn_owned(run(
        dyn_store.clone(),
        keys.clone(),
        one.clone(),
        Obituaries::default(),
        Policy::default(),
    ));
    let topics = TopicStore::new(dyn_store.clone(), keys.clone());
    let placed = async |name: &str| {
        let states = dyn_store.range(&keys.partitions(name)).await.unwrap();
        states.kvs.len() == 2
    };
    topics.create(&topic("before")).await.unwrap();
    wait_for("the controller to place topic \"before\"", async || placed("before").await).await;

    // Heartbeat writes slower than a beat stays valid: an overloaded moment (two cores, a
    // slow etcd) in which the broker doubts its own liveness while nobody else doubts it.
    let k = keys.clone();
    store.set(move |txn| {
        if writes_a_beat(txn, &k) { TxnHook::Delay(BEATS.timeout * 2) } else { TxnHook::Pass }
    });
    let mut live = one.subscribe();
    tokio::time::timeout(Duration::from_secs(5), live.wait_for(|l| !*l))
        .await
        .expect("the broker to doubt its liveness while its beats are slow")
        .unwrap();
    store.set(|_| TxnHook::Pass);
    wait_for("the broker to beat again", async || one.is_live()).await;

    topics.create(&topic("after")).await.unwrap();
    wait_for("the controller to place topic \"after\"", async || placed("after").await).await;
    let kv = dyn_store.get(&keys.controller()).await.unwrap().expect("a controller key");
    assert_eq!(Versioned::<ControllerRecord>::decode(kv).unwrap().value.id, 1);
}
