//! What `/metrics` shows: the broker's state read at scrape time (partitions, moves,
//! traffic, groups, tiering) and the request metrics the front ends and the log record.

use std::fmt;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::encode::{family, one};
use crate::broker::Broker;
use shale_storage::tier::metrics::Op;

/// The broker's metrics: its state read at scrape time, and its request metrics.
pub(super) fn registry(broker: &Arc<Broker>) -> Registry {
    let mut registry = Registry::with_prefix("shale");
    registry.register_collector(Box::new(BrokerCollector { broker: Arc::downgrade(broker) }));
    let requests = broker.request_metrics();
    registry.register(
        "produce_latency_seconds",
        "Produce requests from append to acknowledgement (as their acks asked)",
        requests.produce_latency.clone(),
    );
    registry.register(
        "produce_stage_seconds",
        "Produce requests' time inside the broker by stage: append_queue, append, \
             append_resume, fsync (group commit), replicate (acks=all), answer",
        requests.produce_stages.family(),
    );
    registry.register(
        "grpc_request_duration_seconds",
        "gRPC calls by method, until the response (or the stream) starts",
        requests.grpc_latency.clone(),
    );
    registry.register(
        "kafka_request_duration_seconds",
        "Kafka requests by API, from the request read to its answer handed to the \
             connection (a long-polled Fetch or a rebalance included)",
        requests.kafka_latency.clone(),
    );
    registry.register(
        "quota_delay_seconds",
        "Time requests were held to keep their principals within quota, by quota",
        requests.quota_delay.clone(),
    );
    registry.register(
        "quota_refused",
        "Requests refused (RESOURCE_EXHAUSTED) for being too far over quota, by quota",
        requests.quota_refused.clone(),
    );
    registry
}

/// Reads the broker's counters at scrape time.
#[derive(Debug)]
struct BrokerCollector {
    broker: Weak<Broker>,
}

impl Collector for BrokerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(b) = self.broker.upgrade() else { return Ok(()) };
        let enc = &mut enc;
        one(
            enc,
            "broker_live",
            "1 while the broker holds its membership lease",
            ConstGauge::new(i64::from(b.membership().is_live())),
        )?;
        one(
            enc,
            "broker_is_controller",
            "1 on the controller",
            ConstGauge::new(i64::from(b.controller_id() == b.id())),
        )?;
        one(
            enc,
            "broker_draining",
            "1 while a graceful shutdown hands leadership away",
            ConstGauge::new(i64::from(b.is_draining())),
        )?;
        one(
            enc,
            "metadata_lease_remaining_seconds",
            "How long the broker's etcd lease is still provably valid (0: not live)",
            ConstGauge::new(b.membership().lease_remaining().as_secs_f64()),
        )?;
        one(
            enc,
            "metadata_lease_sessions",
            "Registrations under a new lease since start (above 1: the lease was lost)",
            ConstCounter::new(b.membership().session()),
        )?;
        one(
            enc,
            "metadata_lease_expiries",
            "Times the broker's lease ran out before a keepalive confirmed it (0 on a healthy broker)",
            ConstCounter::new(b.membership().expiries()),
        )?;
        one(
            enc,
            "broker_fences",
            "Times this broker was fenced because nobody saw its heartbeat within the timeout",
            ConstCounter::new(b.membership().fences()),
        )?;
        one(
            enc,
            "metadata_resyncs",
            "Re-reads of the cluster metadata (brokers, topics, partition states)",
            ConstCounter::new(b.resyncs()),
        )?;
        let files = b.log_resources();
        one(
            enc,
            "log_open_files",
            "Files the partition logs have open: segment files cached or in use, and index, \
             checkpoint and snapshot files being read or written",
            ConstGauge::new(files.open_files() as i64),
        )?;
        one(
            enc,
            "log_open_files_peak",
            "The most files the partition logs had open at once since the broker started",
            ConstGauge::new(files.open_files_peak() as i64),
        )?;
        one(
            enc,
            "log_open_files_limit",
            "The bound on the partition logs' open files (log.fd_cache_capacity, at most half \
             of ulimit -n)",
            ConstGauge::new(files.open_files_limit() as i64),
        )?;
        one(
            enc,
            "log_shared_fsyncs",
            "Syncs of a whole file system that made several partition logs durable at once \
             (log.shared_fsync)",
            ConstCounter::new(files.shared_fsyncs()),
        )?;
        if let Some(j) = files.journal_stats() {
            super::log_metrics::journal(enc, &j)?;
        }
        one(
            enc,
            "log_shared_fsync_logs",
            "Partition logs made durable by those syncs (over log_shared_fsyncs: logs per sync)",
            ConstCounter::new(files.shared_fsync_logs()),
        )?;
        moves(enc, &b)?;
        traffic(enc, &b)?;
        partitions(enc, &b)?;
        groups(enc, &b)?;
        transactions(enc, &b)?;
        tiering(enc, &b)
    }
}

fn transactions(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    let Ok(txn) = b.txn() else { return Ok(()) };
    let stats = txn.stats(b.clock().now_ms());
    one(
        enc,
        "transactions_open",
        "Open transactions of the transactional ids this broker coordinates",
        ConstGauge::new(stats.open as i64),
    )?;
    one(
        enc,
        "transaction_oldest_open_seconds",
        "How long the oldest of them has been open (0 with none)",
        ConstGauge::new(stats.oldest_open_ms as f64 / 1000.0),
    )?;
    let ended = stats.ended.into_iter().map(|((outcome, cause), n)| {
        let labels = vec![("outcome", outcome.to_string()), ("cause", cause.to_string())];
        (labels, ConstCounter::new(n))
    });
    family(
        enc,
        "transactions_ended",
        "Transactions decided here: commit or abort, asked by the producer (client), or \
         aborted by the coordinator past the timeout (timeout) or for a new instance (fenced)",
        ended.collect(),
    )
}

fn moves(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    let m = b.move_metrics();
    one(
        enc,
        "reassignments_in_progress",
        "Partitions whose reassignment has started and not completed (cluster-wide)",
        ConstGauge::new(m.in_progress as i64),
    )?;
    one(
        enc,
        "reassignments_pending",
        "Partitions with a reassignment requested and waiting for a slot (cluster-wide)",
        ConstGauge::new(m.pending as i64),
    )?;
    one(
        enc,
        "reassignment_copied_bytes",
        "Batch bytes this broker copied for replicas it gained in reassignments",
        ConstCounter::new(m.copied_bytes),
    )?;
    one(
        enc,
        "reassignment_throttled_seconds",
        "Time replicas joining here waited on replication.move_throttle_bytes_per_sec",
        ConstCounter::new(m.throttled_ms as f64 / 1000.0),
    )?;
    one(
        enc,
        "reassignment_throttle_bytes_per_second",
        "The move throttle in force on this broker (0: unthrottled)",
        ConstGauge::new(b.settings().replication.move_throttle_bytes_per_sec as i64),
    )
}

fn traffic(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    b.request_metrics().retain_topics(&b.topic_names());
    let topics = b.request_metrics().topics();
    let counter = |f: &dyn Fn(&crate::metrics::TopicCounters) -> u64| {
        topics
            .iter()
            .map(|(t, c)| (vec![("topic", t.clone())], ConstCounter::new(f(c))))
            .collect::<Vec<_>>()
    };
    family(
        enc,
        "produce_requests",
        "Produce requests by topic",
        counter(&|c| c.produce_requests.load(Relaxed)),
    )?;
    family(
        enc,
        "produce_errors",
        "Produce requests that failed, by topic",
        counter(&|c| c.produce_errors.load(Relaxed)),
    )?;
    family(
        enc,
        "produce_bytes",
        "Record batch bytes appended, by topic",
        counter(&|c| c.produce_bytes.load(Relaxed)),
    )?;
    family(
        enc,
        "fetch_requests",
        "Partition reads by consumers (each partition of a Kafka Fetch, each read of a gRPC fetch stream), by topic",
        counter(&|c| c.fetch_requests.load(Relaxed)),
    )?;
    family(
        enc,
        "fetch_bytes",
        "Record batch bytes sent to fetchers, by topic",
        counter(&|c| c.fetch_bytes.load(Relaxed)),
    )
}

fn groups(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    let samples = b.groups().lag_samples();
    let labels = |s: &crate::groups::PartitionLagSample| {
        vec![
            ("group", s.group.clone()),
            ("topic", s.topic.clone()),
            ("partition", s.partition.to_string()),
        ]
    };
    family(
        enc,
        "group_lag",
        "Records between a group's committed offset and the high watermark (on the group's coordinator)",
        samples.iter().map(|s| (labels(s), ConstGauge::new(s.lag))).collect(),
    )?;
    family(
        enc,
        "group_committed_offset",
        "A group's committed offset (-1: none; on the group's coordinator)",
        samples.iter().map(|s| (labels(s), ConstGauge::new(s.committed))).collect(),
    )
}

/// Long on purpose: a flat list of per-partition metric families (offsets, sizes, ISR,
/// upload lag), in the order `/metrics` shows them.
fn partitions(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    let hosted = b.hosted();
    let labels = |p: &crate::broker::Partition| {
        vec![("topic", p.topic().to_string()), ("partition", p.index().to_string())]
    };
    let gauge = |f: &dyn Fn(&crate::broker::Partition) -> i64| {
        hosted.iter().map(|p| (labels(p), ConstGauge::new(f(p)))).collect::<Vec<_>>()
    };
    family(
        enc,
        "partition_log_end_offset",
        "Next offset of the local log",
        gauge(&|p| p.log().log_end_offset()),
    )?;
    family(
        enc,
        "partition_log_start_offset",
        "First readable offset, local or remote",
        gauge(&|p| p.log_start_offset()),
    )?;
    family(
        enc,
        "partition_local_log_start_offset",
        "First offset on local disk",
        gauge(&|p| p.log().log_start_offset()),
    )?;
    family(enc, "partition_high_watermark", "High watermark", gauge(&|p| p.high_watermark()))?;
    family(
        enc,
        "partition_local_size_bytes",
        "Bytes of the local log",
        gauge(&|p| p.log().size_bytes() as i64),
    )?;
    family(
        enc,
        "partition_journal_checkpoint_lag_bytes",
        "Journal bytes from the oldest frame the journal still keeps for this partition \
         (acknowledged bytes not yet durable in its segment files) to the journal's end; 0 \
         when its segment files hold everything, or without a journal",
        gauge(&|p| p.log().journal_checkpoint_lag() as i64),
    )?;
    super::log_metrics::cleaner(enc, &hosted)?;
    family(
        enc,
        "partition_is_leader",
        "1 where this broker leads the partition",
        gauge(&|p| i64::from(p.is_leader())),
    )?;
    family(
        enc,
        "partition_isr_size",
        "In-sync replicas, on the partition's leader",
        hosted
            .iter()
            .filter(|p| p.is_leader())
            .map(|p| (labels(p), ConstGauge::new(p.replication().isr().len() as i64)))
            .collect(),
    )?;
    let led: Vec<_> = hosted.iter().filter(|p| p.is_leader()).collect();
    one(
        enc,
        "under_replicated_partitions",
        "Partitions led here with a replica out of the ISR (replicas a reassignment is adding \
         do not count)",
        ConstGauge::new(led.iter().filter(|p| p.replication().under_replicated()).count() as i64),
    )?;
    let tiered: Vec<_> = hosted.iter().filter(|p| p.config().remote_storage_enable).collect();
    family(
        enc,
        "tier_upload_lag_bytes",
        "Bytes of sealed local segments not yet in the bucket",
        tiered.iter().map(|p| (labels(p), ConstGauge::new(p.upload_lag().1 as i64))).collect(),
    )?;
    family(
        enc,
        "tier_upload_lag_segments",
        "Sealed local segments not yet in the bucket",
        tiered.iter().map(|p| (labels(p), ConstGauge::new(p.upload_lag().0 as i64))).collect(),
    )?;
    family(
        enc,
        "tier_remote_end_offset",
        "Offset after the last record in the bucket (-1: none)",
        tiered
            .iter()
            .map(|p| {
                let end = p.remote().and_then(|r| r.tiered_end()).unwrap_or(-1);
                (labels(p), ConstGauge::new(end))
            })
            .collect(),
    )
}

/// Long on purpose: a flat list of metric families, one per counter of the tier layer
/// (bucket requests, uploads, cold reads, scrubber), in the order `/metrics` shows them.
fn tiering(enc: &mut DescriptorEncoder<'_>, b: &Broker) -> fmt::Result {
    let Some(reader) = b.remote_reader() else { return Ok(()) };
    let store = &reader.catalog().bucket().metrics;
    let by_op = |f: &dyn Fn(shale_storage::tier::metrics::OpCounts) -> u64| {
        Op::ALL
            .iter()
            .map(|op| (vec![("op", op.name().to_string())], ConstCounter::new(f(store.get(*op)))))
            .collect::<Vec<_>>()
    };
    family(
        enc,
        "object_store_requests",
        "Object store requests by operation",
        by_op(&|c| c.requests),
    )?;
    family(
        enc,
        "object_store_errors",
        "Object store requests that failed, by operation",
        by_op(&|c| c.errors),
    )?;
    family(
        enc,
        "object_store_bytes",
        "Object store payload bytes sent or received, by operation",
        by_op(&|c| c.bytes),
    )?;

    let reads = reader.counts();
    one(
        enc,
        "tier_read_chunk_hits",
        "Chunk lookups of cold reads served from the cache's memory tier",
        ConstCounter::new(reads.chunk_hits),
    )?;
    one(
        enc,
        "tier_read_chunk_disk_hits",
        "Chunks loaded from the cache's disk tier, for a cold read or ahead of a sequential one",
        ConstCounter::new(reads.chunk_disk_hits),
    )?;
    one(
        enc,
        "tier_read_gets",
        "Ranged GETs of cold-read chunks (adjacent chunks coalesced)",
        ConstCounter::new(reads.chunk_gets),
    )?;
    one(
        enc,
        "tier_read_get_bytes",
        "Bytes brought by the ranged GETs of cold-read chunks",
        ConstCounter::new(reads.chunk_get_bytes),
    )?;
    one(
        enc,
        "tier_read_get_byte_ms",
        "Bytes times milliseconds in flight of cold-read GETs: its rate is the bytes in flight",
        ConstCounter::new(reads.chunk_get_byte_ms),
    )?;
    one(
        enc,
        "tier_read_chunk_misses",
        "Chunk lookups of cold reads that waited on a GET",
        ConstCounter::new(reads.chunk_misses),
    )?;
    one(
        enc,
        "tier_read_index_hits",
        "Remote index lookups of cold reads served from the cache",
        ConstCounter::new(reads.index_hits),
    )?;
    one(
        enc,
        "tier_read_index_misses",
        "Remote index lookups of cold reads that waited on a GET",
        ConstCounter::new(reads.index_misses),
    )?;
    one(
        enc,
        "tier_read_ahead_chunks",
        "Chunks fetched ahead of sequential cold readers",
        ConstCounter::new(reads.chunks_read_ahead),
    )?;
    one(
        enc,
        "tier_read_bytes",
        "Bytes of batches served from the bucket",
        ConstCounter::new(reads.bytes_served),
    )?;
    one(
        enc,
        "tier_cache_bytes",
        "Bytes held by the chunk cache's memory tier",
        ConstGauge::new(reads.cache_bytes as i64),
    )?;
    one(
        enc,
        "tier_read_paced_ms",
        "Milliseconds cold reads waited, paced while the partition logs were busy",
        ConstCounter::new(reads.paced_ms),
    )?;
    one(
        enc,
        "tier_read_ahead_bytes",
        "Bytes read ahead of sequential cold readers, in flight or held until read",
        ConstGauge::new(reads.read_ahead_bytes as i64),
    )?;
    one(
        enc,
        "tier_cache_disk_write_bytes",
        "Bytes written to the chunk cache's disk tier",
        ConstCounter::new(reads.cache_disk_write_bytes),
    )?;
    one(
        enc,
        "tier_cache_disk_read_bytes",
        "Bytes read from the chunk cache's disk tier",
        ConstCounter::new(reads.cache_disk_read_bytes),
    )?;
    one(
        enc,
        "tier_cache_disk_open",
        "1 once the chunk cache's disk tier is open (it opens in the background at start-up)",
        ConstGauge::new(i64::from(reads.cache_disk_open)),
    )?;

    super::log_metrics::remote_compaction(enc, b.compaction_stats())?;
    use std::sync::atomic::Ordering::Relaxed;
    let scrub = b.scrub_stats();
    one(
        enc,
        "tier_scrub_passes",
        "Completed scrubber passes",
        ConstCounter::new(scrub.passes.load(Relaxed)),
    )?;
    one(
        enc,
        "tier_orphans_found",
        "Unreferenced objects seen by scrubber passes",
        ConstCounter::new(scrub.orphans_found.load(Relaxed)),
    )?;
    one(
        enc,
        "tier_orphans_deleted",
        "Unreferenced objects the scrubber removed",
        ConstCounter::new(scrub.orphans_deleted.load(Relaxed)),
    )?;
    one(
        enc,
        "tier_orphans_pending",
        "Unreferenced objects the last scrubber pass left (in the grace period or failed to delete)",
        ConstGauge::new(scrub.orphans_pending.load(Relaxed) as i64),
    )?;
    let oldest = scrub.oldest_pending_ms.load(Relaxed);
    let lag = if oldest > 0 { (b.clock().now_ms() - oldest).max(0) as f64 / 1000.0 } else { 0.0 };
    one(
        enc,
        "tier_orphan_deletion_lag_seconds",
        "Age of the oldest unreferenced object the last scrubber pass left",
        ConstGauge::new(lag),
    )
}
