//! The controller: exactly one broker at a time, elected through the metadata store, places
//! new topics' partitions on live brokers and moves leadership when brokers come and go.
//!
//! Election: create `controller` under the candidate's lease if absent. The revision of that
//! write fences the controller: every write it makes compares the controller key's mod
//! revision, so a deposed controller (its lease expired, someone else elected) can no longer
//! change anything. The key disappears with the lease, which starts the next election.
//!
//! Duties are a reconcile loop over a snapshot (brokers, topics, partition states): the plan
//! is a pure function of the snapshot, so it is unit-tested without a store.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::json::encode;
use super::membership::Membership;
use super::topics::{BrokerRecord, PartitionState, TopicRecord};
use super::{Compare, KeyValue, Keys, MetaError, MetaStore, Revision, Txn, TxnOp, Versioned};
use shale_core::error::Error;
use std::sync::Arc;

mod balance;
mod plan;
#[cfg(test)]
mod run_tests;
mod view;
pub use balance::{Move, balance, evacuate, future, resize};
#[cfg(test)]
use plan::UNCLEAN_KEY;
pub use plan::{Change, DEFAULT_MAX_MOVES, Policy, place, plan, rack_alternated};
pub use view::View;

/// What the `controller` key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRecord {
    /// Broker id of the controller.
    pub id: i32,
}

/// Brokers whose process is known to be gone before their lease expired (a peer saw its
/// connection break and then its port refuse connections), each with the incarnation that
/// died. The controller treats them as not live, so it moves their leaderships at once
/// instead of after the lease TTL; an entry counts only while the registration it names
/// (same id, same incarnation) is the one in the store.
#[derive(Debug, Clone)]
pub struct Obituaries {
    dead: Arc<std::sync::Mutex<BTreeMap<i32, u64>>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Obituaries {
    fn default() -> Self {
        Obituaries { dead: Arc::default(), changed: tokio::sync::watch::channel(0).0 }
    }
}

impl Obituaries {
    /// Records that incarnation `incarnation` of broker `id` is gone.
    pub fn record(&self, id: i32, incarnation: u64) {
        if let Ok(mut dead) = self.dead.lock()
            && dead.insert(id, incarnation) != Some(incarnation)
        {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Whether `broker`, as registered, is known to be gone.
    pub fn is_dead(&self, broker: &BrokerRecord) -> bool {
        self.dead.lock().is_ok_and(|d| d.get(&broker.id) == Some(&broker.incarnation))
    }

    /// Forgets entries whose registration is gone or was replaced.
    fn prune(&self, brokers: &BTreeMap<i32, BrokerRecord>) {
        if let Ok(mut dead) = self.dead.lock() {
            dead.retain(|id, inc| brokers.get(id).is_some_and(|b| b.incarnation == *inc));
        }
    }

    /// Wakes the controller to plan again now (a broker was fenced).
    pub fn wake(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Partition-state writes per transaction (etcd allows 128 compares and 128 ops).
const WRITES_PER_TXN: usize = 100;
/// Reconcile at least this often even without metadata changes.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// Let a burst of metadata events settle before reconciling.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Runs elections and, while elected, the controller's duties. Never returns.
pub async fn run(
    store: Arc<dyn MetaStore>,
    keys: Keys,
    membership: Membership,
    obituaries: Obituaries,
    policy: Policy,
) {
    let mut live = membership.subscribe();
    loop {
        if !membership.is_live() {
            let _ = live.wait_for(|l| *l).await;
            continue;
        }
        match campaign(&store, &keys, &membership).await {
            Ok(Some(revision)) => {
                tracing::info!(broker = membership.broker_id(), revision, "elected controller");
                if let Err(e) =
                    lead(&store, &keys, &membership, revision, &obituaries, &policy).await
                {
                    tracing::warn!(error = %e, "controller duties interrupted");
                }
                tracing::info!(broker = membership.broker_id(), "controller duties ended");
            }
            Ok(None) => wait_for_vacancy(&store, &keys, membership.ttl()).await,
            Err(e) => {
                tracing::warn!(error = %e, "controller election failed; retrying");
                shale_core::clock::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Tries to become controller; the revision of the term won (or resumed), or `None` if
/// another broker holds it.
async fn campaign(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    membership: &Membership,
) -> Result<Option<Revision>, Error> {
    let key = keys.controller();
    let record = ControllerRecord { id: membership.broker_id() };
    let txn = Txn::new().when(Compare::absent(key.clone())).and_then(TxnOp::put_with_lease(
        key.clone(),
        encode(&key, &record)?,
        membership.lease(),
    ));
    let outcome = store.txn(txn).await?;
    if outcome.succeeded {
        return Ok(Some(outcome.revision));
    }
    // The key under this broker's own lease is its own term, left when it doubted its
    // liveness for a moment (late beats on a busy machine). Nobody else wrote under it
    // since: a fence or a depose deletes the key, and every controller write compares its
    // revision. Waiting for it to go away would wait for this broker's death, with nobody
    // placing anything meanwhile; the term resumes instead.
    let Some(kv) = store.get(&key).await? else { return Ok(None) };
    let revision = kv.mod_revision;
    let mine = kv.lease == Some(membership.lease())
        && Versioned::<ControllerRecord>::decode(kv).is_ok_and(|v| v.value == record);
    if mine {
        tracing::info!(broker = record.id, revision, "resuming this broker's controller term");
    }
    Ok(mine.then_some(revision))
}

/// Waits until the controller key is gone (or a while passes, to re-check).
async fn wait_for_vacancy(store: &Arc<dyn MetaStore>, keys: &Keys, ttl: Duration) {
    let key = keys.controller();
    let Ok(Some(kv)) = store.get(&key).await else {
        shale_core::clock::sleep(Duration::from_millis(100)).await;
        return;
    };
    let Ok(mut watch) = store.watch_prefix(&key, kv.mod_revision + 1).await else {
        shale_core::clock::sleep(Duration::from_millis(500)).await;
        return;
    };
    let vacancy = async {
        while let Some(event) = watch.next().await {
            match event {
                Ok(super::WatchEvent::Delete { key: k, .. }) if k == key => return,
                Ok(super::WatchEvent::Reset) | Err(_) => return,
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(ttl.max(Duration::from_secs(1)), vacancy).await;
}

/// The controller's duties while it holds `revision`.
async fn lead(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    membership: &Membership,
    revision: Revision,
    obituaries: &Obituaries,
    policy: &Policy,
) -> Result<(), Error> {
    let mut deaths = obituaries.subscribe();
    loop {
        if !membership.is_live() {
            return Ok(());
        }
        deaths.borrow_and_update();
        let (mut view, read_revision) = read_view(store, keys).await?;
        obituaries.prune(&view.brokers);
        view.brokers.retain(|id, b| !obituaries.is_dead(b) && !view.fenced.contains_key(id));
        // Each write also holds only while the fenced brokers stay fenced.
        let per_txn =
            WRITES_PER_TXN.min((super::MAX_TXN_OPS - 1).saturating_sub(view.fenced.len())).max(1);
        for chunk in plan(&view, policy).chunks(per_txn) {
            if !write(store, keys, revision, &view.fenced, chunk).await? {
                if !still_controller(store, keys, revision).await? {
                    return Ok(());
                }
                // A partition changed under us; the next pass re-plans from fresh state.
                break;
            }
            for c in chunk {
                tracing::info!(
                    topic = %c.topic,
                    partition = c.partition,
                    leader = c.state.leader,
                    epoch = c.state.leader_epoch,
                    "partition state written"
                );
            }
        }
        if !still_controller(store, keys, revision).await? {
            return Ok(());
        }
        tokio::select! {
            _ = wait_for_change(store, keys, read_revision + 1, membership) => {}
            _ = deaths.changed() => {}
        }
    }
}

async fn still_controller(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    revision: Revision,
) -> Result<bool, Error> {
    Ok(store.get(&keys.controller()).await?.is_some_and(|kv| kv.mod_revision == revision))
}

async fn write(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    revision: Revision,
    fenced: &BTreeMap<i32, Revision>,
    changes: &[Change],
) -> Result<bool, Error> {
    let mut txn = Txn::new().when(Compare::mod_revision(keys.controller(), revision));
    for (id, beat) in fenced {
        txn = txn.when(Compare::mod_revision(keys.heartbeat(*id), *beat));
    }
    for c in changes {
        let key = keys.partition(&c.topic, c.partition);
        txn = txn
            .when(Compare::mod_revision(key.clone(), c.expected))
            .and_then(TxnOp::put(key.clone(), encode(&key, &c.state)?));
    }
    Ok(store.txn(txn).await?.succeeded)
}

fn decode_all<T: serde::de::DeserializeOwned>(
    kvs: Vec<KeyValue>,
) -> Result<Vec<(T, KeyValue)>, MetaError> {
    kvs.into_iter()
        .map(|kv| {
            let meta = KeyValue { value: bytes::Bytes::new(), ..kv.clone() };
            Versioned::<T>::decode(kv).map(|v| (v.value, meta))
        })
        .collect()
}

/// Reads brokers, topics and partition states; returns the view and the first read's
/// revision (watching from after it misses nothing).
pub async fn read_view(store: &Arc<dyn MetaStore>, keys: &Keys) -> Result<(View, Revision), Error> {
    let brokers = store.range(&keys.brokers()).await?;
    let revision = brokers.revision;
    let topics = store.range(&keys.topics()).await?;
    let partitions = store.range(&keys.all_partitions()).await?;
    let decommissioned = store.range(&keys.all_decommissioned()).await?;
    let loads = store.range(&keys.all_loads()).await?;
    let fenced = super::heartbeat::fenced(store, keys).await?.into_iter().collect();
    let mut view = View { fenced, ..View::default() };
    let prefix = keys.all_decommissioned();
    view.decommissioned = decommissioned
        .kvs
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok())
        .collect();
    // A load that does not decode (written by a newer broker, say) only loses its weights.
    for kv in loads.kvs {
        if let Ok(load) = Versioned::<super::topics::LoadRecord>::decode(kv) {
            for (topic, p, bytes) in load.value.partitions {
                view.sizes.insert((topic, p), bytes);
            }
        }
    }
    for (b, _) in decode_all::<BrokerRecord>(brokers.kvs)? {
        view.brokers.insert(b.id, b);
    }
    view.topics = decode_all::<TopicRecord>(topics.kvs)?.into_iter().map(|(t, _)| t).collect();
    for (state, kv) in decode_all::<PartitionState>(partitions.kvs)? {
        if let Some((topic, p)) = keys.parse_partition(&kv.key) {
            view.partitions.insert((topic, p), (state, kv.mod_revision));
        }
    }
    Ok((view, revision))
}

/// Waits for any metadata change after `from`, a periodic tick, or loss of liveness.
async fn wait_for_change(
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
    from: Revision,
    membership: &Membership,
) {
    let mut live = membership.subscribe();
    let changed = async {
        // Only brokers, topics, partition states and the controller key need a new
        // placement decision; offsets, groups and tier pointers change far more often and
        // are not watched.
        match crate::watch_prefixes(&**store, &keys.placement_prefixes(), from).await {
            Ok(mut watch) => {
                let _ = watch.next().await;
                shale_core::clock::sleep(DEBOUNCE).await;
            }
            Err(_) => shale_core::clock::sleep(Duration::from_millis(500)).await,
        }
    };
    tokio::select! {
        _ = changed => {}
        _ = shale_core::clock::sleep(RECONCILE_EVERY) => {}
        _ = live.wait_for(|l| !*l) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn broker(id: i32, rack: &str) -> BrokerRecord {
        BrokerRecord {
            id,
            address: format!("b{id}:9292"),
            kafka_address: String::new(),
            registry_address: String::new(),
            rack: rack.into(),
            started_ms: 0,
            incarnation: 0,
            draining: false,
        }
    }

    fn topic(name: &str, partitions: u32, rf: u32) -> TopicRecord {
        TopicRecord {
            name: name.into(),
            id: format!("{name}-id"),
            partitions,
            replication_factor: rf,
            configs: Default::default(),
            created_ms: 0,
        }
    }

    fn view(brokers: &[(i32, &str)]) -> View {
        View {
            brokers: brokers.iter().map(|(id, r)| (*id, broker(*id, r))).collect(),
            ..View::default()
        }
    }

    fn apply(view: &mut View, changes: Vec<Change>) {
        for c in changes {
            let rev =
                view.partitions.get(&(c.topic.clone(), c.partition)).map_or(1, |(_, r)| r + 1);
            view.partitions.insert((c.topic, c.partition), (c.state, rev));
        }
    }

    #[test]
    fn twelve_partitions_on_three_brokers_lead_four_each() {
        let mut v = view(&[(1, ""), (2, ""), (3, "")]);
        v.topics.push(topic("t", 12, 1));
        let changes = plan(&v, &Policy::default());
        assert_eq!(changes.len(), 12);
        let mut leads = BTreeMap::new();
        for c in &changes {
            *leads.entry(c.state.leader).or_insert(0) += 1;
            assert_eq!(c.expected, 0);
            assert_eq!(c.state.isr, c.state.replicas);
        }
        assert_eq!(leads.values().copied().collect::<Vec<_>>(), vec![4, 4, 4]);
        apply(&mut v, changes);
        assert!(plan(&v, &Policy::default()).is_empty(), "a placed topic needs nothing more");
    }

    #[test]
    fn new_topics_start_on_the_least_loaded_broker() {
        let mut v = view(&[(1, ""), (2, ""), (3, "")]);
        v.topics.push(topic("a", 1, 1));
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        v.topics.push(topic("b", 1, 1));
        let c = plan(&v, &Policy::default());
        assert_eq!(c.len(), 1);
        assert_ne!(c[0].state.leader, v.partitions[&("a".to_string(), 0)].0.leader);
    }

    #[test]
    fn replicas_spread_over_racks() {
        let mut v = view(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        v.topics.push(topic("t", 8, 2));
        for c in plan(&v, &Policy::default()) {
            let racks: BTreeSet<&str> =
                c.state.replicas.iter().map(|id| v.brokers[id].rack.as_str()).collect();
            assert_eq!(racks.len(), 2, "{:?}", c.state);
        }
    }

    /// A follower that is not live (gone, fenced, lease expired) leaves the ISR of a live
    /// leader at once, at the same epoch: acks=all no longer waits for it. Before, it held
    /// every acks=all write for `replication.lag_time_max_ms` (10 s).
    #[test]
    fn a_follower_that_is_not_live_leaves_the_isr_of_a_live_leader() {
        let mut v = view(&[(1, ""), (2, ""), (3, "")]);
        let state = PartitionState {
            replicas: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 3,
            isr: vec![1, 2, 3],
            ..Default::default()
        };
        v.partitions.insert(("t".to_string(), 0), (state, 10));
        assert!(plan(&v, &Policy::default()).is_empty());
        v.brokers.remove(&3);
        let c = plan(&v, &Policy::default());
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (1, 3), "the same leader");
        assert_eq!(c[0].state.isr, vec![1, 2]);
    }

    #[test]
    fn leadership_moves_to_a_live_in_sync_replica_or_goes_offline() {
        let mut v = view(&[(1, ""), (2, "")]);
        let key = ("t".to_string(), 0);
        let state = PartitionState {
            replicas: vec![1, 2],
            leader: 1,
            leader_epoch: 3,
            isr: vec![1, 2],
            ..Default::default()
        };
        v.partitions.insert(key.clone(), (state.clone(), 10));
        assert!(plan(&v, &Policy::default()).is_empty());
        v.brokers.remove(&1);
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch, c[0].expected), (2, 4, 10));
        assert_eq!(c[0].state.isr, vec![2], "the dead leader leaves the ISR");

        // Single replica: offline (leader -1, epoch bumped once), back when it returns.
        let mut v = view(&[(1, "")]);
        let state = PartitionState {
            replicas: vec![1],
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
            ..Default::default()
        };
        v.partitions.insert(key.clone(), (state, 5));
        v.brokers.clear();
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (-1, 1));
        apply(&mut v, c);
        assert!(
            plan(&v, &Policy::default()).is_empty(),
            "an offline partition is not bumped again"
        );
        v.brokers.insert(1, broker(1, ""));
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (1, 2));
    }

    #[test]
    fn leadership_returns_to_the_preferred_replica_once_it_is_in_sync() {
        let mut v = view(&[(1, ""), (2, "")]);
        let state = PartitionState {
            replicas: vec![1, 2],
            leader: 2,
            leader_epoch: 4,
            isr: vec![2],
            ..Default::default()
        };
        v.partitions.insert(("t".into(), 0), (state.clone(), 1));
        assert!(
            plan(&v, &Policy::default()).is_empty(),
            "not while the preferred replica is out of sync"
        );
        let back = PartitionState { isr: vec![2, 1], ..state };
        v.partitions.insert(("t".into(), 0), (back, 2));
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (1, 5));
    }

    #[test]
    fn unclean_election_is_an_opt_in_per_topic() {
        let mut v = view(&[(2, "")]);
        let mut t = topic("t", 1, 2);
        v.partitions.insert(
            ("t".into(), 0),
            (
                PartitionState {
                    replicas: vec![1, 2],
                    leader: 1,
                    leader_epoch: 0,
                    isr: vec![1],
                    ..Default::default()
                },
                1,
            ),
        );
        v.topics.push(t.clone());
        assert_eq!(plan(&v, &Policy::default())[0].state.leader, -1, "off by default");
        t.configs.insert(UNCLEAN_KEY.into(), "true".into());
        v.topics = vec![t];
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn a_draining_leader_hands_over_to_a_staying_in_sync_replica() {
        let mut v = view(&[(1, ""), (2, ""), (3, "")]);
        let state = PartitionState::new(vec![1, 2, 3], 1, 7, vec![1, 2, 3]);
        v.partitions.insert(("t".into(), 0), (state.clone(), 3));
        v.brokers.get_mut(&1).unwrap().draining = true;
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (2, 8));
        assert_eq!(c[0].state.isr, vec![1, 2, 3], "the draining broker stays in the ISR");
        apply(&mut v, c);
        assert!(
            plan(&v, &Policy::default()).is_empty(),
            "no move back to the draining preferred replica"
        );

        // Nobody else in sync: the draining broker keeps leading until it leaves.
        let mut v = view(&[(1, ""), (2, "")]);
        let lonely = PartitionState {
            replicas: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
            ..Default::default()
        };
        v.partitions.insert(("t".into(), 0), (lonely, 1));
        v.brokers.get_mut(&1).unwrap().draining = true;
        assert!(plan(&v, &Policy::default()).is_empty());

        // New topics avoid draining brokers.
        let mut v = view(&[(1, ""), (2, ""), (3, "")]);
        v.brokers.get_mut(&2).unwrap().draining = true;
        let placed = place(&topic("n", 6, 2), &v);
        assert!(placed.iter().all(|s| !s.replicas.contains(&2)), "{placed:?}");
    }

    #[test]
    fn out_of_sync_replicas_never_lead() {
        let mut v = view(&[(2, "")]);
        let state = PartitionState {
            replicas: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
            ..Default::default()
        };
        v.partitions.insert(("t".into(), 0), (state, 1));
        let c = plan(&v, &Policy::default());
        assert_eq!(c[0].state.leader, -1, "unclean election is off");
    }

    /// A view of live brokers with incarnations, and one partition in `state`.
    fn incarnated(brokers: &[(i32, u64)], state: PartitionState) -> View {
        let mut v = View::default();
        for (id, incarnation) in brokers {
            v.brokers.insert(*id, BrokerRecord { incarnation: *incarnation, ..broker(*id, "") });
        }
        v.partitions.insert(("t".into(), 0), (state, 1));
        v
    }

    fn recorded(isr: &[(i32, u64)], leader: i32, epoch: i32) -> PartitionState {
        let mut s = PartitionState::new(
            vec![1, 2, 3],
            leader,
            epoch,
            isr.iter().map(|(r, _)| *r).collect(),
        );
        s.incarnations = isr.iter().copied().collect();
        s
    }

    #[test]
    fn placement_records_incarnations() {
        let mut v = incarnated(&[(1, 11), (2, 22), (3, 33)], recorded(&[], 1, 0));
        v.partitions.clear();
        v.topics.push(topic("n", 1, 3));
        let c = plan(&v, &Policy::default());
        assert_eq!(c[0].state.incarnations, [(1, 11), (2, 22), (3, 33)].into());
    }

    #[test]
    fn a_restarted_leader_never_leads_at_its_old_epoch() {
        let state = recorded(&[(1, 11), (2, 22), (3, 33)], 1, 5);
        // Broker 1 came back (new incarnation 12) before anyone noticed it was gone.
        let v = incarnated(&[(1, 12), (2, 22), (3, 33)], state.clone());
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (2, 6), "{:?}", c[0].state);
        assert_eq!(c[0].state.isr, vec![2, 3], "it leaves the ISR until it catches up");
        assert_eq!(c[0].state.incarnations, [(2, 22), (3, 33)].into());

        // Nobody else in sync is live: it is all there is, so it leads, at a new epoch.
        let v = incarnated(&[(1, 12)], recorded(&[(1, 11)], 1, 5));
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (1, 6));
        assert_eq!(c[0].state.incarnations, [(1, 12)].into());
        let mut v = v;
        apply(&mut v, c);
        assert!(plan(&v, &Policy::default()).is_empty(), "confirmed once");
    }

    #[test]
    fn a_restarted_follower_leaves_the_isr() {
        let state = recorded(&[(1, 11), (2, 22), (3, 33)], 1, 5);
        let v = incarnated(&[(1, 11), (2, 22), (3, 34)], state);
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.leader_epoch), (1, 5), "no new epoch");
        assert_eq!(c[0].state.isr, vec![1, 2]);

        // A dead leader is replaced by a member that did not restart, not by one that did.
        let state = recorded(&[(1, 11), (2, 22), (3, 33)], 1, 5);
        let v = incarnated(&[(2, 23), (3, 33)], state);
        let c = plan(&v, &Policy::default());
        assert_eq!((c[0].state.leader, c[0].state.isr.clone()), (3, vec![3]));
    }

    /// Three live brokers 1..=3 plus broker 4, and partition t/0 on 1, 2, 3 led by 1.
    fn moving_view() -> View {
        let mut v = view(&[(1, ""), (2, ""), (3, ""), (4, "")]);
        v.topics.push(topic("t", 1, 3));
        let state = PartitionState::new(vec![1, 2, 3], 1, 5, vec![1, 2, 3]);
        v.partitions.insert(("t".into(), 0), (state, 1));
        v
    }

    fn state_of(v: &View) -> PartitionState {
        v.partitions[&("t".to_string(), 0)].0.clone()
    }

    fn set_state(v: &mut View, state: PartitionState) {
        update(v, |s| *s = state);
    }

    fn update(v: &mut View, change: impl FnOnce(&mut PartitionState)) {
        let (s, rev) = v.partitions.get_mut(&("t".to_string(), 0)).unwrap();
        change(s);
        *rev += 1;
    }

    #[test]
    fn a_reassignment_adds_the_target_then_removes_the_rest_once_it_is_in_sync() {
        let mut v = moving_view();
        update(&mut v, |s| s.target = vec![2, 3, 4]);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        let s = state_of(&v);
        assert_eq!(
            (s.replicas.clone(), s.adding.clone(), s.removing.clone()),
            (vec![2, 3, 4, 1], vec![4], vec![1])
        );
        assert!(s.target.is_empty());
        assert_eq!((s.leader, s.leader_epoch, s.isr.clone()), (1, 5, vec![1, 2, 3]), "unchanged");
        assert!(plan(&v, &Policy::default()).is_empty(), "nothing until broker 4 is in sync");

        // Broker 4 caught up (the leader's ISR pass added it): the move completes, and
        // leadership leaves broker 1 under a new epoch.
        update(&mut v, |s| s.isr = vec![1, 2, 3, 4]);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        let s = state_of(&v);
        assert_eq!(s, PartitionState::new(vec![2, 3, 4], 2, 6, vec![2, 3, 4]));
        assert!(plan(&v, &Policy::default()).is_empty(), "done");
    }

    #[test]
    fn a_leader_that_stays_keeps_its_epoch_and_a_dead_leaving_replica_does_not_block() {
        let mut v = moving_view();
        // Move off broker 3, which is dead: its replacement catches up from the leader.
        v.brokers.remove(&3);
        let s = PartitionState::new(vec![1, 2, 3], 1, 5, vec![1, 2]).started(&[1, 2, 4]);
        set_state(&mut v, s);
        assert!(plan(&v, &Policy::default()).is_empty());
        update(&mut v, |s| s.isr = vec![1, 2, 4]);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        assert_eq!(state_of(&v), PartitionState::new(vec![1, 2, 4], 1, 5, vec![1, 2, 4]));
    }

    #[test]
    fn a_started_reassignment_is_cancelled_by_moving_back_to_the_original_replicas() {
        let mut v = moving_view();
        let started = state_of(&v).started(&[2, 3, 4]);
        assert_eq!(started.original(), vec![2, 3, 1]);
        let cancelled = started.started(&[1, 2, 3]);
        assert_eq!((cancelled.adding.clone(), cancelled.removing.clone()), (vec![], vec![4]));
        set_state(&mut v, cancelled);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        assert_eq!(state_of(&v), PartitionState::new(vec![1, 2, 3], 1, 5, vec![1, 2, 3]));
    }

    #[test]
    fn a_leader_lost_mid_move_is_replaced_and_the_move_goes_on() {
        let mut v = moving_view();
        update(&mut v, |s| *s = s.started(&[2, 3, 4]));
        v.brokers.remove(&1);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        let s = state_of(&v);
        assert_eq!((s.leader, s.leader_epoch, s.isr.clone()), (2, 6, vec![2, 3]));
        assert_eq!((s.adding.clone(), s.removing.clone()), (vec![4], vec![1]), "still moving");
        update(&mut v, |s| s.isr = vec![2, 3, 4]);
        let c = plan(&v, &Policy::default());
        apply(&mut v, c);
        assert_eq!(state_of(&v), PartitionState::new(vec![2, 3, 4], 2, 6, vec![2, 3, 4]));
    }

    #[test]
    fn requested_reassignments_wait_for_room_under_the_move_limit() {
        let mut v = view(&[(1, ""), (2, "")]);
        v.topics.push(topic("t", 3, 1));
        for p in 0..3 {
            let mut s = PartitionState::new(vec![1], 1, 0, vec![1]);
            s.target = vec![2];
            v.partitions.insert(("t".into(), p), (s, 1));
        }
        let policy = Policy { max_moves: 2, ..Policy::default() };
        let c = plan(&v, &policy);
        assert_eq!(c.iter().map(|c| c.partition).collect::<Vec<_>>(), vec![0, 1]);
        apply(&mut v, c);
        assert!(plan(&v, &policy).is_empty(), "the third waits for a slot");
        // Partition 0 completes; the same pass starts partition 2 in its place.
        let key = ("t".to_string(), 0);
        v.partitions.get_mut(&key).unwrap().0.isr = vec![1, 2];
        let c = plan(&v, &policy);
        assert_eq!(c.iter().map(|c| c.partition).collect::<Vec<_>>(), vec![0, 2]);
        assert!(!c[0].state.is_moving() && c[1].state.is_moving());

        // A target equal to the replicas (a reorder) needs no slot and completes at once.
        let mut v = view(&[(1, ""), (2, "")]);
        let mut s = PartitionState::new(vec![1, 2], 1, 0, vec![1, 2]);
        s.target = vec![2, 1];
        v.partitions.insert(("t".into(), 0), (s, 1));
        let c = plan(&v, &Policy { max_moves: 1, ..Policy::default() });
        assert_eq!(c[0].state, PartitionState::new(vec![2, 1], 1, 0, vec![1, 2]));
    }
}
