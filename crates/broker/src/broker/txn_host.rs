//! What the transaction coordinator needs of its broker (`txn::coordinator::TxnHost`), and
//! the coordinator's place in the broker: made at start, swept periodically.

use std::sync::{Arc, Weak};

use super::Broker;
use crate::groups::records::OffsetRecord;
use crate::txn::coordinator::{TxnCoordinator, TxnHost, TxnSettings};
use crate::txn::offsets::PendingOffsets;
use crate::txn::store::TxnStore;
use shale_core::error::{Error, ErrorKind};
use shale_core::record::control::{Marker, MarkerKind};
use shale_proto::pb;
use shale_proto::pb::replica_client::ReplicaClient;
use shale_proto::status::from_status;

/// Kafka's default `transaction.max.timeout.ms`: the longest timeout a producer may ask.
const MAX_TIMEOUT_MS: i32 = 900_000;

/// The broker as its transaction coordinator sees it (weakly: the broker owns the
/// coordinator).
struct Host(Weak<Broker>);

impl Host {
    fn broker(&self) -> Result<Arc<Broker>, Error> {
        self.0.upgrade().ok_or_else(|| Error::unavailable("broker is shutting down; retry"))
    }
}

#[async_trait::async_trait]
impl TxnHost for Host {
    fn broker_id(&self) -> i32 {
        self.0.upgrade().map_or(-1, |b| b.id)
    }

    fn now_ms(&self) -> i64 {
        self.0.upgrade().map_or(0, |b| b.clock.now_ms())
    }

    fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        self.0.upgrade().map(|b| b.coordinator_candidates()).unwrap_or_default()
    }

    async fn new_producer_id(&self, transactional_id: &str) -> Result<i64, Error> {
        let b = self.broker()?;
        let counter = b.producer_ids.next().await?;
        b.acl.transactional_producer_id(counter, transactional_id)
    }

    async fn write_marker(
        &self,
        (topic, partition): (&str, u32),
        (producer_id, producer_epoch): (i64, i16),
        marker: Marker,
        tv2: bool,
    ) -> Result<(), Error> {
        let req = pb::WriteTxnMarkerRequest {
            topic: topic.to_string(),
            partition,
            producer_id,
            producer_epoch: i32::from(producer_epoch),
            commit: marker.kind == MarkerKind::Commit,
            coordinator_epoch: marker.coordinator_epoch,
            tv2,
        };
        self.broker()?.write_marker_anywhere(&req).await.map(drop)
    }
}

impl Broker {
    /// The transaction coordinator of the ids this broker wins.
    pub fn txn(&self) -> Result<&Arc<TxnCoordinator>, Error> {
        self.txn.get().ok_or_else(|| Error::unavailable("the broker is starting; retry"))
    }

    /// Writes a marker at the partition's leader: here, or by `Replica.WriteTxnMarker`.
    pub async fn write_marker_anywhere(
        &self,
        req: &pb::WriteTxnMarkerRequest,
    ) -> Result<i64, Error> {
        match self.partition(&req.topic, req.partition) {
            Ok(_) => self.write_marker_here(req).await,
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let addr = e.details.get("leader_address").cloned().unwrap_or_default();
                if addr.is_empty() {
                    return Err(e);
                }
                let mut client = pb::replica_client::ReplicaClient::new(self.peer(&addr)?);
                let answer = client
                    .write_txn_marker(req.clone())
                    .await
                    .map_err(|s| shale_proto::status::from_status(&s))?;
                Ok(answer.into_inner().offset)
            }
            Err(e) => Err(e),
        }
    }
}

/// A transactional producer's produce: its transactional id, and whether it speaks
/// transactions v2 (its partitions are added by their leaders, KIP-890).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProduce {
    /// The producer's transactional id.
    pub transactional_id: String,
    /// Transactions v2.
    pub tv2: bool,
}

fn epoch16(epoch: i32) -> Result<i16, Error> {
    i16::try_from(epoch)
        .map_err(|_| Error::invalid(format!("producer epoch {epoch} is not an int16")))
}

impl Broker {
    /// As the coordinator of `req`'s transactional id: confirms the partition is in the
    /// producer's open transaction, or adds it (v2). `INVALID_TXN_STATE` when it is not in
    /// it (v1).
    pub async fn confirm_txn_partition_here(
        &self,
        req: &pb::AddPartitionToTxnRequest,
    ) -> Result<(), Error> {
        let producer = (req.producer_id, epoch16(req.producer_epoch)?);
        let id = req.transactional_id.as_str();
        let txn = self.txn()?;
        if req.add {
            let partitions = [(req.topic.clone(), req.partition)];
            return txn.add(id, producer, &partitions, &[], true).await;
        }
        match txn.verify(id, producer, (&req.topic, req.partition)).await? {
            true => Ok(()),
            false => Err(Error::new(
                ErrorKind::Invalid,
                shale_core::error::Reason::InvalidTxnState,
                format!(
                    "{}-{} is not in the open transaction of {id:?}: AddPartitionsToTxn comes \
                     first",
                    req.topic, req.partition
                ),
            )),
        }
    }

    /// Asks the coordinator of `txn`'s id (this broker or another) to confirm or add
    /// `topic`-`partition` in `producer`'s transaction.
    pub(crate) async fn confirm_txn_partition(
        &self,
        txn: &TxnProduce,
        producer: (i64, i16),
        (topic, partition): (&str, u32),
    ) -> Result<(), Error> {
        let req = pb::AddPartitionToTxnRequest {
            transactional_id: txn.transactional_id.clone(),
            producer_id: producer.0,
            producer_epoch: i32::from(producer.1),
            topic: topic.to_string(),
            partition,
            add: txn.tv2,
        };
        match self.txn_coordinator_peer(&txn.transactional_id)? {
            None => self.confirm_txn_partition_here(&req).await,
            Some(mut peer) => {
                peer.add_partition_to_txn(req).await.map_err(|s| from_status(&s))?;
                Ok(())
            }
        }
    }

    /// The coordinator of transactional id `id`: `None` for this broker, else a client of
    /// the broker's `Replica` service.
    fn txn_coordinator_peer(
        &self,
        id: &str,
    ) -> Result<Option<ReplicaClient<tonic::transport::Channel>>, Error> {
        let candidates = self.coordinator_candidates();
        match crate::groups::coordinator_of(id, &candidates) {
            Some((b, _)) if b == self.id => Ok(None),
            Some((_, addr)) => Ok(Some(ReplicaClient::new(self.peer(&addr)?))),
            None => Err(Error::unavailable("no live broker coordinates transactions; retry")),
        }
    }

    /// As the coordinator of `req`'s transactional id: adds the group's offsets to the
    /// producer's transaction.
    pub async fn add_txn_offsets_here(&self, req: &pb::AddTxnOffsetsRequest) -> Result<(), Error> {
        let producer = (req.producer_id, epoch16(req.producer_epoch)?);
        let offsets: Vec<(String, u32, OffsetRecord)> = req
            .offsets
            .iter()
            .map(|o| {
                let record = OffsetRecord {
                    offset: o.offset,
                    metadata: o.metadata.clone(),
                    commit_ms: o.commit_ms,
                    topic_id: o.topic_id.clone(),
                };
                (o.topic.clone(), o.partition, record)
            })
            .collect();
        let id = req.transactional_id.as_str();
        self.txn()?.add_offsets(id, producer, &req.group, &offsets, req.tv2).await
    }

    /// Adds `offsets` of `group` to `producer`'s transaction at the coordinator of
    /// transactional id `id` (this broker or another).
    pub(crate) async fn add_txn_offsets(
        &self,
        id: &str,
        producer: (i64, i16),
        group: &str,
        offsets: &[(String, u32, OffsetRecord)],
        tv2: bool,
    ) -> Result<(), Error> {
        let req = pb::AddTxnOffsetsRequest {
            transactional_id: id.to_string(),
            producer_id: producer.0,
            producer_epoch: i32::from(producer.1),
            group: group.to_string(),
            offsets: offsets
                .iter()
                .map(|(topic, partition, r)| pb::TxnOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: r.offset,
                    metadata: r.metadata.clone(),
                    commit_ms: r.commit_ms,
                    topic_id: r.topic_id.clone(),
                })
                .collect(),
            tv2,
        };
        match self.txn_coordinator_peer(id)? {
            None => self.add_txn_offsets_here(&req).await,
            Some(mut peer) => {
                peer.add_txn_offsets(req).await.map_err(|s| from_status(&s))?;
                Ok(())
            }
        }
    }
}

/// Makes `broker`'s transaction coordinator over the store's `txns/` records and the
/// transactions' pending offsets.
pub(super) fn install(broker: &Arc<Broker>, store: TxnStore, offsets: PendingOffsets) {
    let settings = TxnSettings {
        max_timeout_ms: MAX_TIMEOUT_MS,
        marker_retry: std::time::Duration::from_millis(100),
    };
    let host = Arc::new(Host(Arc::downgrade(broker)));
    let _ = broker.txn.set(TxnCoordinator::new(host, store, offsets, settings));
}

/// One periodic pass: forget ids lost to another broker, finish decided transactions a
/// dead coordinator left, abort open ones past their timeout.
pub(super) async fn sweep(b: Arc<Broker>) {
    let Ok(txn) = b.txn() else { return };
    txn.release_lost();
    match txn.sweep().await {
        Ok((0, 0)) => {}
        Ok((resumed, aborted)) => {
            tracing::info!(resumed, aborted, "transactions resumed and aborted by the sweep")
        }
        Err(e) => tracing::debug!(error = %e, "the transaction sweep failed"),
    }
}
