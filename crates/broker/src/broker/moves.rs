//! Elasticity as admin calls: reassigning partitions, changing a topic's replication
//! factor, decommissioning a broker and balancing the cluster. Each call only writes
//! requests to the store (a partition's `target`, a `decommissioned/{id}` key); the
//! controller starts and completes the moves at its own pace (`shale_meta::controller`),
//! so they survive the failover of any broker, the controller included.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Broker, TopicEntry, unknown_topic};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::topic_config::TopicConfig;
use shale_meta::controller::{Move, View, balance, future, read_view, resize};
use shale_meta::topics::PartitionState;

/// One requested reassignment: the replica set wanted, or `None` to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Replica set wanted, preferred leader first; `None` cancels.
    pub replicas: Option<Vec<i32>>,
}

/// A partition being reassigned, with the progress this broker sees.
#[derive(Debug, Clone)]
pub struct MoveStatus {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The stored state (replicas, adding, removing, pending target, leader, ISR).
    pub state: PartitionState,
    /// The leader's log end, when this broker leads the partition.
    pub leader_log_end: Option<i64>,
    /// A joining replica hosted here: (log start, log end, bytes copied).
    pub joining: Option<(i64, i64, u64)>,
}

/// Replicas and preferred leaders per broker, counting moves under way as done.
#[derive(Debug, Clone, Default)]
pub struct ClusterLoad {
    /// Brokers leaving for good.
    pub decommissioned: BTreeSet<i32>,
    /// By broker id: replicas and preferred leaderships once the moves under way are done,
    /// replicas held now or being gained, and the local bytes of the replicas it will hold.
    pub loads: BTreeMap<i32, BrokerLoad>,
}

/// One broker's share of the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerLoad {
    /// Replicas once the moves under way are done.
    pub replicas: u32,
    /// Partitions whose preferred leader it will be.
    pub leaders: u32,
    /// Replicas held now or being gained.
    pub hosted: u32,
    /// Local bytes of the replicas it will hold (as their leaders published them).
    pub bytes: u64,
}

/// What `/metrics` reports of reassignments.
#[derive(Debug, Clone, Copy, Default)]
pub struct MoveMetrics {
    /// Partitions moving, cluster-wide.
    pub in_progress: usize,
    /// Partitions with a move requested and not started, cluster-wide.
    pub pending: usize,
    /// Batch bytes copied here by joining replicas.
    pub copied_bytes: u64,
    /// Milliseconds joining replicas here waited on the throttle.
    pub throttled_ms: u64,
}

fn invalid_assignment(message: String) -> Error {
    Error::new(ErrorKind::Invalid, Reason::InvalidReplicaAssignment, message)
}

impl Broker {
    /// Requests reassignments (Kafka's AlterPartitionReassignments). Every request is
    /// checked before any is written: the topic and partition exist, the replica set is
    /// non-empty, has no repeats and names live brokers that are not decommissioned, and a
    /// cancel names a partition that is moving or has a move pending.
    pub async fn reassign(
        &self,
        requests: &[Reassignment],
        validate_only: bool,
    ) -> Result<(), Error> {
        let (view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
        for r in requests {
            let state = partition_of(&view, &r.topic, r.partition)?;
            match &r.replicas {
                Some(replicas) => check_replicas(&view, &r.topic, r.partition, replicas)?,
                None if !state.is_moving() && state.target.is_empty() => {
                    return Err(not_moving(&r.topic, r.partition));
                }
                None => {}
            }
        }
        if validate_only {
            return Ok(());
        }
        self.write_requests(requests).await
    }

    /// Writes checked requests, each a compare-and-swap on its partition's state.
    async fn write_requests(&self, requests: &[Reassignment]) -> Result<(), Error> {
        for r in requests {
            let written = self
                .view
                .topics
                .modify_partition(&r.topic, r.partition, |state| {
                    Ok(Some(requested(state, r.replicas.as_deref())))
                })
                .await?;
            tracing::info!(topic = %r.topic, partition = r.partition, replicas = ?r.replicas,
                state = ?written, "reassignment requested");
        }
        Ok(())
    }

    /// Reassignment counts for `/metrics`.
    pub fn move_metrics(&self) -> MoveMetrics {
        use std::sync::atomic::Ordering::Relaxed;
        let (in_progress, pending) = self.view.cache.read().map_or((0, 0), |c| {
            let moving = c.states.values().filter(|(s, _)| s.is_moving()).count();
            let pending =
                c.states.values().filter(|(s, _)| !s.is_moving() && !s.target.is_empty()).count();
            (moving, pending)
        });
        MoveMetrics {
            in_progress,
            pending,
            copied_bytes: self.replicas.move_copied_bytes.load(Relaxed),
            throttled_ms: self.replicas.move_throttled_ms.load(Relaxed),
        }
    }

    /// Partitions with a reassignment pending or in progress, as the store has them (so a
    /// move requested through any broker is listed at once), with the progress this broker
    /// sees as their leader or as the host of a joining replica.
    pub async fn reassignments(&self) -> Result<Vec<MoveStatus>, Error> {
        let (view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
        Ok(view
            .partitions
            .into_iter()
            .filter(|(_, (s, _))| s.is_moving() || !s.target.is_empty())
            .map(|((topic, partition), (state, _))| {
                let hosted = self.hosted_partition(&topic, partition);
                let leader_log_end =
                    hosted.as_ref().filter(|p| p.is_leader()).map(|p| p.log().log_end_offset());
                let joining = hosted.filter(|_| state.adding.contains(&self.id)).map(|p| {
                    (p.log().log_start_offset(), p.log().log_end_offset(), p.copied_bytes())
                });
                MoveStatus { topic, partition, state, leader_log_end, joining }
            })
            .collect())
    }

    /// Changes a topic's replication factor: the record first, then a reassignment of
    /// every partition whose replica count differs (the controller paces them).
    pub async fn alter_replication_factor(
        &self,
        name: &str,
        rf: u32,
        validate_only: bool,
    ) -> Result<(TopicEntry, Vec<Move>), Error> {
        let _guard = self.admin_lock.lock().await;
        loop {
            let (mut record, revision) =
                self.view.topics.get(name).await?.ok_or_else(|| unknown_topic(name))?;
            let (view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
            let eligible = eligible_count(&view);
            if rf == 0 || rf as usize > eligible {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::InvalidReplicationFactor,
                    format!(
                        "replication factor {rf} for topic {name:?} must be between 1 and the \
                         {eligible} broker(s) that can take replicas"
                    ),
                )
                .with("replication_factor", rf));
            }
            let config = TopicConfig::resolve(&self.defaults, &record.configs)?;
            super::topics::check_min_isr(&config, rf)?;
            record.replication_factor = rf;
            let entry = TopicEntry { record: record.clone(), config: Arc::new(config) };
            let moves = resize(&view, name, rf as usize);
            if validate_only {
                return Ok((entry, moves));
            }
            if !self.view.topics.update(&record, revision).await? {
                continue; // the topic changed meanwhile: check again
            }
            tracing::info!(
                topic = name,
                replication_factor = rf,
                moves = moves.len(),
                "replication factor changed"
            );
            let requests: Vec<Reassignment> = moves
                .iter()
                .map(|m| Reassignment {
                    topic: m.topic.clone(),
                    partition: m.partition,
                    replicas: Some(m.to.clone()),
                })
                .collect();
            self.write_requests(&requests).await?;
            return Ok((entry, moves));
        }
    }

    /// Decommissions broker `id` (or, with `cancel`, lets it stay): the controller moves
    /// every replica off it and places nothing new on it. Returns the replicas still on it
    /// or headed for it. Refused when too few brokers would stay for the largest
    /// replication factor.
    pub async fn decommission(&self, id: i32, cancel: bool) -> Result<u32, Error> {
        let (mut view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
        let known = view.brokers.contains_key(&id)
            || view.decommissioned.contains(&id)
            || view.partitions.values().any(|(s, _)| s.replicas.contains(&id));
        if !known {
            return Err(Error::new(
                ErrorKind::NotFound,
                Reason::BrokerNotLive,
                format!("broker {id} is not registered and holds no replicas"),
            )
            .with("broker", id));
        }
        if !cancel {
            view.decommissioned.insert(id);
            let staying = eligible_count(&view);
            let needed = view.topics.iter().map(|t| t.replication_factor).max().unwrap_or(1);
            if (staying as u32) < needed {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::InvalidReplicationFactor,
                    format!(
                        "cannot decommission broker {id}: {staying} broker(s) would stay, and a \
                         topic has replication factor {needed}; add a broker first"
                    ),
                )
                .with("broker", id));
            }
        }
        self.view.topics.set_decommissioned(id, !cancel).await?;
        tracing::info!(broker = id, cancel, "decommission requested");
        Ok(hosted_on(&view, id))
    }

    /// Plans moves that balance replicas and preferred leaders (at most `max_moves`
    /// replica moves, 0 = no limit) and, with `execute`, requests them. Returns the plan
    /// and how many were requested (a partition that changed since it was read is skipped;
    /// the next rebalance plans it again).
    pub async fn rebalance(
        &self,
        execute: bool,
        max_moves: usize,
    ) -> Result<(Vec<Move>, usize), Error> {
        let (view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
        let moves = balance(&view, if max_moves == 0 { usize::MAX } else { max_moves });
        if !execute {
            return Ok((moves, 0));
        }
        let mut requested = 0;
        for m in &moves {
            let key = (m.topic.clone(), m.partition);
            let Some((state, revision)) = view.partitions.get(&key) else { continue };
            let next = PartitionState { target: m.to.clone(), ..state.clone() };
            if self.view.topics.update_partition(&m.topic, m.partition, &next, *revision).await? {
                requested += 1;
            }
        }
        tracing::info!(planned = moves.len(), requested, "rebalance requested");
        Ok((moves, requested))
    }

    /// Replicas and preferred leaders per broker, and the decommissioned brokers.
    pub async fn cluster_load(&self) -> Result<ClusterLoad, Error> {
        let (view, _) = read_view(self.view.topics.store(), self.view.topics.keys()).await?;
        let mut loads: BTreeMap<i32, BrokerLoad> =
            view.brokers.keys().map(|id| (*id, BrokerLoad::default())).collect();
        for (key, (state, _)) in &view.partitions {
            let set = future(state);
            let bytes = view.sizes.get(key).copied().unwrap_or(0);
            for (i, r) in set.iter().enumerate() {
                let load = loads.entry(*r).or_default();
                load.replicas += 1;
                load.leaders += u32::from(i == 0);
                load.bytes += bytes;
            }
            for r in hosting(state) {
                loads.entry(r).or_default().hosted += 1;
            }
        }
        Ok(ClusterLoad { decommissioned: view.decommissioned, loads })
    }
}

/// The state after a request: a new target (started at once if a move is already under
/// way: it holds a slot), or a cancel (back to the original replicas, or the pending
/// target dropped).
fn requested(state: &PartitionState, replicas: Option<&[i32]>) -> PartitionState {
    match (replicas, state.is_moving()) {
        (Some(target), true) => state.started(target),
        (Some(target), false) if target == state.replicas.as_slice() => {
            PartitionState { target: vec![], ..state.clone() }
        }
        (Some(target), false) => PartitionState { target: target.to_vec(), ..state.clone() },
        (None, true) => state.started(&state.original()),
        (None, false) => PartitionState { target: vec![], ..state.clone() },
    }
}

fn partition_of<'a>(
    view: &'a View,
    topic: &str,
    partition: u32,
) -> Result<&'a PartitionState, Error> {
    if !view.topics.iter().any(|t| t.name == topic) {
        return Err(unknown_topic(topic));
    }
    view.partitions.get(&(topic.to_string(), partition)).map(|(s, _)| s).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            Reason::UnknownPartition,
            format!("topic {topic:?} has no partition {partition}"),
        )
        .with("topic", topic)
        .with("partition", partition)
    })
}

fn check_replicas(view: &View, topic: &str, partition: u32, replicas: &[i32]) -> Result<(), Error> {
    let at = || format!("reassignment of {topic}/{partition}");
    if replicas.is_empty() {
        return Err(invalid_assignment(format!("{}: the replica list is empty", at())));
    }
    let mut seen = BTreeSet::new();
    for r in replicas {
        if !seen.insert(*r) {
            return Err(invalid_assignment(format!("{}: broker {r} is listed twice", at()))
                .with("broker", *r));
        }
        if !view.brokers.contains_key(r) {
            return Err(
                invalid_assignment(format!("{}: broker {r} is not live", at())).with("broker", *r)
            );
        }
        if view.decommissioned.contains(r) {
            return Err(invalid_assignment(format!("{}: broker {r} is decommissioned", at()))
                .with("broker", *r));
        }
    }
    Ok(())
}

fn not_moving(topic: &str, partition: u32) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::NoReassignmentInProgress,
        format!("{topic}/{partition} has no reassignment to cancel"),
    )
    .with("topic", topic)
    .with("partition", partition)
}

/// Live brokers that can take replicas (not draining, not decommissioned).
fn eligible_count(view: &View) -> usize {
    view.brokers.values().filter(|b| !b.draining && !view.decommissioned.contains(&b.id)).count()
}

/// Brokers holding a replica of the partition now (those leaving count until they have
/// left) or headed for one (a pending target).
fn hosting(state: &PartitionState) -> Vec<i32> {
    let mut out = state.replicas.clone();
    out.extend(future(state).into_iter().filter(|r| !state.replicas.contains(r)));
    out
}

/// Replicas on broker `id` or headed for it.
fn hosted_on(view: &View, id: i32) -> u32 {
    view.partitions.values().filter(|(s, _)| hosting(s).contains(&id)).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_pending_until_started_and_a_cancel_restores_the_original() {
        let s = PartitionState::new(vec![1, 2], 1, 3, vec![1, 2]);
        let pending = requested(&s, Some(&[2, 3]));
        assert_eq!(pending.target, vec![2, 3]);
        assert_eq!(pending.replicas, vec![1, 2], "not started by the request");
        assert_eq!(requested(&pending, None), s, "a pending move is dropped");
        assert_eq!(requested(&s, Some(&[1, 2])), s, "the same set is no move");

        let started = s.started(&[2, 3]);
        let cancelled = requested(&started, None);
        // The original replicas stay, in the order the move put them in.
        assert_eq!(
            (cancelled.replicas.clone(), cancelled.removing.clone()),
            (vec![2, 1, 3], vec![3])
        );
        let replaced = requested(&started, Some(&[3, 1]));
        assert_eq!((replaced.adding.clone(), replaced.removing.clone()), (vec![3], vec![2]));
    }
}
