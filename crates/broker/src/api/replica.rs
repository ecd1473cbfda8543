//! Broker-to-broker replication as the gRPC `Replica` service calls it: for brokers only
//! (when authorization is on). What the leader answers is in `broker/replication/leader.rs`.

use super::{Api, Identity};
use crate::broker::replication::leader;
use shale_core::error::Error;
use shale_proto::pb;

impl Api {
    /// Refuses callers other than brokers (`ClusterAction` on the cluster), audited under
    /// `action`.
    pub fn check_broker(&self, who: &Identity, action: &str) -> Result<(), Error> {
        self.broker.acl().check_broker(who, action)
    }

    /// Answers one fetch of a follower: batches from its log end, or nothing after the wait.
    pub async fn replica_fetch(
        &self,
        req: &pb::ReplicaFetchRequest,
    ) -> Result<pb::ReplicaFetchResponse, Error> {
        leader::answer(&self.broker, req).await
    }

    /// This broker's local log range of a partition it leads, `(-1, -1)` otherwise: what a
    /// follower is told beside a refusal.
    pub fn leader_log_range(&self, topic: &str, partition: u32) -> (i64, i64) {
        self.broker
            .partition(topic, partition)
            .map_or((-1, -1), |p| (p.log().log_start_offset(), p.log().log_end_offset()))
    }

    /// Where `epoch` ends in the log of the partition this broker leads at `current_epoch`.
    pub fn end_of_epoch(
        &self,
        topic: &str,
        partition: u32,
        current_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), Error> {
        leader::end_of_epoch(&self.broker, topic, partition, current_epoch, epoch)
    }

    /// Writes a transaction coordinator's marker on a partition this broker leads; its
    /// offset once the in-sync replicas have it.
    pub async fn write_txn_marker(&self, req: &pb::WriteTxnMarkerRequest) -> Result<i64, Error> {
        self.broker.write_marker_here(req).await
    }

    /// Confirms (or adds, for transactions v2) a partition in a producer's transaction, as
    /// the transactional id's coordinator here; `NOT_COORDINATOR` elsewhere.
    pub async fn add_partition_to_txn(
        &self,
        req: &pb::AddPartitionToTxnRequest,
    ) -> Result<(), Error> {
        self.broker.confirm_txn_partition_here(req).await
    }

    /// Commits a group's offsets with a producer's transaction, as the transactional id's
    /// coordinator here (the group's coordinator checked them); `NOT_COORDINATOR`
    /// elsewhere.
    pub async fn add_txn_offsets(&self, req: &pb::AddTxnOffsetsRequest) -> Result<(), Error> {
        self.broker.add_txn_offsets_here(req).await
    }
}
