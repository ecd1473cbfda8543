//! Produce, offsets and producer ids, as the front ends call them.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{Api, Identity, Isolation, Payload, Produced, QuotaKind};
use crate::acl::{Operation, ResourceType};
use crate::broker::producers::ProducerInfo;
use crate::broker::{ListedOffset, OffsetSpec, TxnProduce};
use shale_core::acks::Acks;
use shale_core::error::Error;

/// A produce that passed authorization and its quota: what [`Api::append`] takes. It
/// borrows the topic's name from the request (a `String` per partition had been a tenth of
/// a produce's allocations).
#[derive(Debug)]
pub struct Admitted<'a> {
    topic: &'a str,
    bytes: u64,
    wait: Duration,
    txn: Option<TxnProduce>,
}

impl Admitted<'_> {
    /// How long the front end holds (gRPC) or throttles (Kafka) the producer for its quota.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// An append waiting for its acknowledgement.
pub type PendingProduce = Pin<Box<dyn Future<Output = Result<Produced, Error>> + Send>>;

/// Record bytes of a payload: what the produce quota charges and the topic counters count.
fn payload_bytes(payload: &Payload) -> u64 {
    match payload {
        Payload::Batches(b) => b.len() as u64,
        Payload::Records(r, _) => r
            .iter()
            .map(|r| {
                (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
                    as u64
            })
            .sum(),
    }
}

impl Api {
    /// Checks that `who` may write `payload` to `topic` (Write on it; its producer ids
    /// issued to `who`) and charges the produce quota.
    pub fn admit_produce<'a>(
        &self,
        who: &Identity,
        topic: &'a str,
        payload: &Payload,
    ) -> Result<Admitted<'a>, Error> {
        self.admit(who, topic, payload, None)
    }

    /// [`admit_produce`](Self::admit_produce) for a transactional producer: Write on its
    /// transactional id too, and its transactional batches' producer id issued for that id.
    /// Its transaction on each partition is then opened through the id's coordinator.
    pub fn admit_transactional_produce<'a>(
        &self,
        who: &Identity,
        topic: &'a str,
        payload: &Payload,
        txn: TxnProduce,
    ) -> Result<Admitted<'a>, Error> {
        let id = txn.transactional_id.as_str();
        let acl = self.broker.acl();
        acl.check(who, "Produce", Operation::Write, ResourceType::TransactionalId, id)?;
        if let Payload::Records(..) = payload {
            return Err(Error::new(
                shale_core::error::ErrorKind::Invalid,
                shale_core::error::Reason::InvalidBatch,
                format!(
                    "transactional id {id:?}: a transactional produce sends record batches \
                     (transactional, at its producer id and epoch), not plain records"
                ),
            ));
        }
        self.admit(who, topic, payload, Some(txn))
    }

    fn admit<'a>(
        &self,
        who: &Identity,
        topic: &'a str,
        payload: &Payload,
        txn: Option<TxnProduce>,
    ) -> Result<Admitted<'a>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "Produce", Operation::Write, ResourceType::Topic, topic)?;
        if let Payload::Batches(b) = payload {
            let id = txn.as_ref().map(|t| t.transactional_id.as_str());
            acl.check_producer_ids(who, topic, b, id)?;
        }
        let bytes = payload_bytes(payload);
        let wait = self.charge(who, QuotaKind::Produce, bytes)?;
        Ok(Admitted { topic, bytes, wait, txn })
    }

    /// [`append`](Self::append) with `acks=all` of a produce admitted here, to a partition
    /// led anywhere: here, or forwarded once to its leader's `Produce` (for front ends that
    /// let a person produce from any broker: the console). The first record's offset.
    pub async fn produce_anywhere(
        &self,
        admitted: Admitted<'_>,
        partition: u32,
        payload: Payload,
    ) -> Result<i64, Error> {
        let topic = admitted.topic;
        let e = match self.broker.partition(topic, partition) {
            Ok(_) => {
                let acked = self.append(admitted, partition, payload, Acks::All).await?;
                return Ok(acked.await?.base_offset);
            }
            Err(e) if e.kind == shale_core::error::ErrorKind::NotLeader => e,
            Err(e) => return Err(e),
        };
        use shale_proto::pb::produce_request::Payload as Sent;
        let payload = match payload {
            Payload::Batches(b) => Sent::Batches(b),
            Payload::Records(records, compression) => Sent::Records(shale_proto::pb::Records {
                records: records.into_iter().map(shale_proto::convert::record_to_proto).collect(),
                compression: shale_proto::convert::compression_to_proto(compression) as i32,
            }),
        };
        let request = shale_proto::pb::ProduceRequest {
            topic: topic.to_string(),
            partition,
            acks: shale_proto::pb::Acks::All as i32,
            payload: Some(payload),
            ..Default::default()
        };
        let mut leader = self.broker.leader_log_client(e)?;
        let answer = leader.produce(request).await;
        let answer = answer.map_err(|s| shale_proto::status::from_status(&s))?.into_inner();
        Ok(answer.base_offset)
    }

    /// Appends an admitted produce; the returned future resolves once `acks` is satisfied.
    /// Appends to one partition happen in call order. Both steps are counted for the topic,
    /// and the whole is timed as produce latency.
    pub async fn append(
        &self,
        admitted: Admitted<'_>,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<PendingProduce, Error> {
        let Admitted { topic, bytes, txn, .. } = admitted;
        let start = shale_core::clock::monotonic_now();
        let metrics = self.broker.request_metrics().clone();
        // Only existing topics get counters: request names alone must not grow the map.
        let counters = self.broker.has_topic(topic).then(|| metrics.topic(topic));
        match self.broker.append_txn(topic, partition, payload, acks, txn.as_ref()).await {
            Ok(ack) => Ok(Box::pin(async move {
                let result = ack.await;
                if let Some(c) = &counters {
                    metrics.produced(c, bytes, result.is_ok(), start.elapsed());
                }
                result
            })),
            Err(e) => {
                if let Some(c) = &counters {
                    metrics.produced(c, 0, false, start.elapsed());
                }
                Err(e)
            }
        }
    }

    /// Offsets of `topic`-`partition` (Describe on the topic), answered by its leader; at
    /// `leader_epoch` when the caller names the epoch it believes current (KIP-320); as
    /// `isolation`'s reader sees the log (its end, for `read_committed`, the last stable
    /// offset).
    pub async fn list_offsets(
        &self,
        who: &Identity,
        (topic, partition): (&str, u32),
        spec: OffsetSpec,
        leader_epoch: Option<i32>,
        isolation: Isolation,
    ) -> Result<ListedOffset, Error> {
        let acl = self.broker.acl();
        acl.check(who, "ListOffsets", Operation::Describe, ResourceType::Topic, topic)?;
        let p = self.broker.partition(topic, partition)?;
        crate::broker::check_leader_epoch(&p, leader_epoch)?;
        crate::broker::list_offsets_on(&p, spec, isolation).await
    }

    /// A new producer id for an idempotent producer, tagged for `who`: IdempotentWrite on
    /// the cluster, or Write on some topic.
    pub async fn init_producer_id(&self, who: &Identity) -> Result<(i64, i16), Error> {
        self.broker.acl().check_idempotent_write(who, "InitProducerId")?;
        self.broker.init_producer_id(who).await
    }

    /// The producers `topic`-`partition` keeps state for (Kafka's DescribeProducers): Read
    /// on the topic, answered by its leader.
    pub fn describe_producers(
        &self,
        who: &Identity,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<ProducerInfo>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeProducers", Operation::Read, ResourceType::Topic, topic)?;
        Ok(self.broker.partition(topic, partition)?.producers().describe())
    }
}
