//! The broker's side of a produce: find the partition this broker leads, check the disk
//! budget, build a batch from plain records, check its records' schema IDs when the topic
//! asks (`registry::validate`), append, and acknowledge only while this
//! broker still serves and still leads at the epoch the batch was written with (fencing).
//! The partition's own durability rules are in `partition/produce.rs` and `partition/ack.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Broker, Partition, PendingAck, Produced, TxnProduce, drain};
use crate::registry::Validated;
use shale_core::acks::Acks;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::{BatchBuilder, Compression, Record};

/// What a producer sends: ready batches or plain records the broker batches.
#[derive(Debug, Clone)]
pub enum Payload {
    /// One or more Kafka RecordBatch v2 batches, back to back.
    Batches(Bytes),
    /// Plain records; the broker builds one batch of them, compressed with the codec given
    /// (off the async threads when it compresses).
    Records(Vec<Record>, Compression),
}

/// How stale the local disk usage behind the budget check may be.
const DISK_USAGE_REFRESH_MS: i64 = 100;

impl Broker {
    /// Appends to a partition and waits as `acks` asks.
    pub async fn produce(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<Produced, Error> {
        self.append(topic, partition, payload, acks).await?.await
    }

    /// Appends to a partition; the returned future resolves once `acks` is satisfied and
    /// this broker still leads the partition at the epoch it appended with.
    pub async fn append(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
    ) -> Result<PendingAck, Error> {
        self.append_txn(topic, partition, payload, acks, None).await
    }

    /// [`append`](Self::append) for a transactional producer: a transactional batch that
    /// opens the producer's transaction on the partition is first confirmed (or, in v2,
    /// added) by the transactional id's coordinator.
    pub async fn append_txn(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        payload: Payload,
        acks: Acks,
        txn: Option<&TxnProduce>,
    ) -> Result<PendingAck, Error> {
        let p = self.partition(topic, partition)?;
        if self.is_draining() {
            return Err(drain::draining_error(self.id));
        }
        let batches = match payload {
            Payload::Batches(b) => b,
            Payload::Records(records, Compression::None) => {
                build_batch(records, Compression::None, self.clock.now_ms())?
            }
            Payload::Records(records, codec) => {
                let now = self.clock.now_ms();
                tokio::task::spawn_blocking(move || build_batch(records, codec, now))
                    .await
                    .map_err(|e| Error::internal(format!("building a batch failed: {e}")))??
            }
        };
        if batches.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidBatch,
                "produce request has no records",
            ));
        }
        self.check_disk_budget(batches.len() as u64)?;
        // Schema IDs are checked in the same pass that validates the batches, so a
        // validating topic decodes (and decompresses) each batch once, as any other does.
        let config = p.config();
        let headers = if config.key_schema_validation || config.value_schema_validation {
            let validated = Validated {
                key: config.key_schema_validation,
                value: config.value_schema_validation,
            };
            let limits = p.produce_limits();
            Some(self.registry()?.check_schema_ids(topic, validated, &batches, &limits).await?)
        } else {
            None
        };
        let guard = match txn {
            Some(txn) => self.txn_guard(&p, txn, &batches).await?,
            None => None,
        };
        let pending = p.append_validated(batches, headers, acks, guard).await?;
        Ok(self.fenced(p, pending, acks))
    }

    /// Appends ready `batches` with `acks=all` to a partition wherever it is led: here, or
    /// through its leader's `Produce` (the broker's own writes, as a share group's
    /// dead-letter copies). The offset of the first record.
    pub async fn produce_anywhere(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        batches: Bytes,
    ) -> Result<i64, Error> {
        match self.partition(topic, partition) {
            Ok(_) => {
                let payload = Payload::Batches(batches);
                Ok(self.produce(topic, partition, payload, Acks::All).await?.base_offset)
            }
            Err(e) if e.kind == ErrorKind::NotLeader => {
                let mut client = self.leader_log_client(e)?;
                let request = shale_proto::pb::ProduceRequest {
                    topic: topic.to_string(),
                    partition,
                    acks: shale_proto::pb::Acks::All as i32,
                    payload: Some(shale_proto::pb::produce_request::Payload::Batches(batches)),
                    ..Default::default()
                };
                let r = client
                    .produce(request)
                    .await
                    .map_err(|s| shale_proto::status::from_status(&s))?
                    .into_inner();
                Ok(r.base_offset)
            }
            Err(e) => Err(e),
        }
    }

    /// A `Log` client of the leader that NOT_LEADER error `e` names, or `e` when it names
    /// none.
    pub(crate) fn leader_log_client(
        &self,
        e: Error,
    ) -> Result<shale_proto::pb::log_client::LogClient<tonic::transport::Channel>, Error> {
        let addr = e.details.get("leader_address").cloned().unwrap_or_default();
        if addr.is_empty() {
            return Err(e);
        }
        Ok(shale_proto::pb::log_client::LogClient::new(self.peer(&addr)?))
    }

    /// [`append`](Self::append) of ready `batches` at exactly offset `expected` and leader
    /// epoch `epoch`, with `acks=all` (`Partition::append_at`): the schema registry's
    /// writer.
    pub async fn append_at(
        self: &Arc<Self>,
        (topic, partition): (&str, u32),
        batches: Bytes,
        expected: i64,
        epoch: i32,
    ) -> Result<PendingAck, Error> {
        let p = self.partition(topic, partition)?;
        if self.is_draining() {
            return Err(drain::draining_error(self.id));
        }
        self.check_disk_budget(batches.len() as u64)?;
        let pending = p.append_at(batches, expected, epoch, Acks::All).await?;
        Ok(self.fenced(p, pending, Acks::All))
    }

    /// The wait for an appended write's `acks`, acknowledged only while this broker still
    /// serves and still leads at the epoch it was written with.
    fn fenced(self: &Arc<Self>, p: Arc<Partition>, pending: PendingAck, acks: Acks) -> PendingAck {
        if acks == Acks::None {
            return pending;
        }
        let broker = self.clone();
        let epoch = p.leader_epoch();
        // Only a wait on other brokers (acks=all with replicas) can outlast this broker's
        // leadership by much; a wait for this broker's own fsync ends by itself, and the
        // checks below answer it. No timer for those: one per partition per request was a
        // measurable share of the broker's CPU at 1,000 partitions (docs/benchmarks.md).
        let watched = acks == Acks::All && p.replication().has_other_replicas();
        Box::pin(async move {
            // A leader that stops serving (lease lost, epoch moved) answers at once rather
            // than after the replication timeout: the client can go to the new leader.
            let produced = if watched {
                tokio::select! {
                    r = pending => r?,
                    _ = broker.stops_leading(&p, epoch) => {
                        broker.check_serving()?;
                        return Err(broker.leadership_moved(&p, epoch));
                    }
                }
            } else {
                pending.await?
            };
            // Fencing: acknowledge only if, after the fsync, this broker is still live and
            // still leads at the epoch the batch was written with.
            broker.check_serving()?;
            if !p.is_leader() || p.leader_epoch() != produced.leader_epoch {
                return Err(broker.leadership_moved(&p, produced.leader_epoch));
            }
            Ok(produced)
        })
    }

    /// `NOT_LEADER` for a write appended at `written_at` whose leadership moved on before
    /// it was acknowledged: it was not acknowledged, and the client retries at the leader.
    fn leadership_moved(&self, p: &Partition, written_at: i32) -> Error {
        let leadership = p.leadership();
        let address = self.broker_address(leadership.0).unwrap_or_default();
        shale_core::error::not_leader(
            p.topic(),
            p.index(),
            leadership,
            &address,
            format!(
                "leadership of {}-{} moved (epoch {written_at} -> {}) before the write was \
                 acknowledged; it was not acknowledged",
                p.topic(),
                p.index(),
                leadership.1
            ),
        )
    }

    /// Refuses produce (retriable) while the local logs hold more than
    /// `tier.local_disk_budget_bytes`: uploads and local retention free space, and until
    /// they do (a bucket that is down) the disk does not fill.
    ///
    /// The logs' sizes are summed at most every `DISK_USAGE_REFRESH_MS` (and on every
    /// request once at the budget); in between, each admitted request adds its `incoming`
    /// bytes to the estimate, so a fast producer overshoots by about one request, not by
    /// what it writes in a refresh interval.
    fn check_disk_budget(&self, incoming: u64) -> Result<(), Error> {
        let budget = self.settings.tier.local_disk_budget_bytes;
        if budget == 0 {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut usage = self.replicas.disk_usage.lock().unwrap_or_else(|p| p.into_inner());
        let (at, cached) = *usage;
        let (at, used) = if now - at >= DISK_USAGE_REFRESH_MS || cached >= budget {
            (now, self.hosted().iter().map(|p| p.log().size_bytes()).sum())
        } else {
            (at, cached)
        };
        if used < budget {
            *usage = (at, used + incoming);
            return Ok(());
        }
        *usage = (at, used);
        drop(usage);
        Err(Error::new(
            ErrorKind::Unavailable,
            Reason::LocalDiskBudgetExceeded,
            format!(
                "broker {} holds {used} bytes of local log, at or above \
                 tier.local_disk_budget_bytes {budget}; writes resume once segments are \
                 uploaded and local retention frees space (retry)",
                self.id
            ),
        )
        .with("used_bytes", used)
        .with("budget_bytes", budget))
    }

    /// Resolves once this broker no longer serves `p` as leader at `epoch`.
    async fn stops_leading(&self, p: &Partition, epoch: i32) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if self.check_serving().is_err() || !p.is_leader() || p.leader_epoch() != epoch {
                return;
            }
        }
    }
}

/// One batch of `records` compressed with `codec`; a record without a timestamp takes
/// `now_ms`.
fn build_batch(records: Vec<Record>, codec: Compression, now_ms: i64) -> Result<Bytes, Error> {
    if records.is_empty() {
        return Err(Error::new(
            ErrorKind::Invalid,
            Reason::InvalidBatch,
            "produce request has no records",
        ));
    }
    let mut builder = BatchBuilder::new(codec);
    for mut r in records {
        if r.timestamp_ms == 0 {
            r.timestamp_ms = now_ms;
        }
        builder.push(r);
    }
    Ok(builder.build())
}

impl Broker {
    /// The guard a transactional batch needs to open its producer's transaction on `p`:
    /// none when the batch is not transactional or continues the transaction open there;
    /// else the coordinator's confirmation, recorded on the partition.
    async fn txn_guard(
        &self,
        p: &Arc<super::Partition>,
        txn: &TxnProduce,
        batches: &Bytes,
    ) -> Result<Option<super::producers::TxnGuard>, Error> {
        let header = shale_core::record::BatchHeader::parse(batches)?;
        if header.attributes & shale_core::record::batch::ATTR_TRANSACTIONAL == 0 {
            return Ok(None);
        }
        let producer = (header.producer_id, header.producer_epoch);
        // Continuing the transaction open here at this epoch needs no confirmation.
        if p.producers().check_txn_start(&header, None).is_ok() {
            return Ok(None);
        }
        let confirmed = self.confirm_txn_partition(txn, producer, (p.topic(), p.index())).await;
        confirmed.map_err(for_producer)?;
        Ok(Some(p.producers().verified(producer.0, producer.1)))
    }
}

/// A transaction coordinator's refusal as a produce answers it, as Kafka's leaders do: a
/// fenced producer is `INVALID_PRODUCER_EPOCH`; a coordinator that cannot answer now (it
/// moved, or the transaction is being decided) is `NOT_ENOUGH_REPLICAS`, which every
/// producer retries.
fn for_producer(e: Error) -> Error {
    let busy = matches!(e.reason, Reason::NotCoordinator | Reason::ConcurrentTransactions);
    if e.reason == Reason::ProducerFenced {
        Error::new(ErrorKind::Fenced, Reason::InvalidProducerEpoch, e.message)
    } else if busy || e.kind == ErrorKind::Unavailable {
        let message =
            format!("the transaction coordinator cannot confirm the partition now: {}", e.message);
        Error::new(ErrorKind::Unavailable, Reason::NotEnoughReplicas, message)
    } else {
        e
    }
}
