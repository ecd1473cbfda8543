//! `shale-bench produce|consume`: end-to-end load against a running broker, reporting
//! records/s, MB/s and latency percentiles from an HDR histogram.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::RngCore;
use shale_client::cli::{BrokerArg, Format, key_value, parse_acks, parse_compression};
use shale_client::producer::Delivery;
use shale_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use shale_core::acks::Acks;
use shale_core::record::Compression;
use tokio::sync::mpsc;

use crate::report;

/// `shale-bench produce`.
#[derive(Debug, Args)]
pub(crate) struct ProduceBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Topic config when the topic is created, KEY=VALUE (repeatable).
    #[arg(long = "config", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Keys the records cycle through (`key-00000000`, ...), for compacted topics; 0: no
    /// key.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Target records per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: Acks,
    /// Bytes per batch.
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_size: usize,
    /// Milliseconds a batch may wait to fill (0, the client's default: sent as soon as the
    /// in-flight window has room).
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Batches awaiting acks per partition.
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Idempotent producer (producer id and sequence numbers), as by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Values in the schema registry's wire format with this schema ID (magic byte 0, the
    /// ID, then random bytes), as a topic validating schema IDs accepts them.
    #[arg(long)]
    pub schema_id: Option<i32>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `shale-bench consume`.
#[derive(Debug, Args)]
pub(crate) struct ConsumeBench {
    /// Topic to read from the beginning.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Stop after this many records (default: at the end).
    #[arg(long)]
    pub records: Option<u64>,
    /// Read the topic this many times over (each pass from the beginning).
    #[arg(long, default_value_t = 1)]
    pub passes: u32,
    /// Start at the earliest offset, the bucket's for a tiered topic (what every pass does;
    /// accepted for the familiar spelling).
    #[arg(long)]
    pub from_beginning: bool,
    /// The broker's metrics (`http://ADMIN/metrics`): read before and after, to report the
    /// cold reads' GETs per GiB and chunk cache hit ratio.
    #[arg(long)]
    pub metrics: Option<String>,
    /// One Fetch stream per partition instead of one FetchMany stream per broker.
    #[arg(long)]
    pub stream_per_partition: bool,
    /// Keep reading at the tail as records arrive (until `--records`), rather than stop at
    /// the end: a consumer beside a producer.
    #[arg(long)]
    pub follow: bool,
    /// Batch bytes per fetch message (the consumer's `max_bytes`).
    #[arg(long, default_value_t = ConsumerConfig::default().max_bytes)]
    pub fetch_max_bytes: u32,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// Runs `produce`.
///
/// Long on purpose: the benchmark's script (producers, pacing, collector, report), read top
/// to bottom; the phases share its histogram and counters.
pub(crate) async fn produce(b: ProduceBench) -> anyhow::Result<()> {
    let client = b.broker.client()?;
    if client.partition_count(&b.topic).await.is_err() {
        client
            .admin()
            .create_topic(&b.topic, b.partitions, 0, b.configs.iter().cloned().collect())
            .await?;
    }
    let producer = Producer::new(
        client,
        ProducerConfig {
            acks: b.acks,
            batch_size: b.batch_size,
            linger: Duration::from_millis(b.linger_ms),
            compression: b.compression,
            max_in_flight: b.max_in_flight,
            idempotence: b.idempotence,
            retries: 0,
            ..ProducerConfig::default()
        },
    );
    let mut value = vec![0u8; b.record_size];
    rand::rng().fill_bytes(&mut value);
    if let Some(id) = b.schema_id {
        anyhow::ensure!(b.record_size >= 5, "--schema-id needs --record-size of at least 5");
        value[0] = 0;
        value[1..5].copy_from_slice(&id.to_be_bytes());
    }
    let value = Bytes::from(value);

    let bar = report::progress(b.records);
    let (tx, mut rx) = mpsc::channel::<(Instant, Delivery)>(65_536);
    let collector_bar = bar.clone();
    let collector = tokio::spawn(async move {
        let mut hist = report::micros_histogram(60);
        let mut errors = 0u64;
        let mut first_error = None;
        let mut waiting = FuturesUnordered::new();
        let mut input_open = true;
        loop {
            tokio::select! {
                next = rx.recv(), if input_open => match next {
                    Some((t, d)) => waiting.push(async move { (t, d.await) }),
                    None => input_open = false,
                },
                Some((t, res)) = waiting.next(), if !waiting.is_empty() => {
                    match res {
                        Ok(_) => report::record(&mut hist, t.elapsed()),
                        Err(e) => { errors += 1; first_error.get_or_insert(e); }
                    }
                    collector_bar.inc(1);
                }
                else => break,
            }
        }
        (hist, errors, first_error)
    });

    let start = Instant::now();
    for i in 0..b.records {
        if b.rate > 0 && i % 64 == 0 {
            let due = Duration::from_secs_f64(i as f64 / b.rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        let t = Instant::now();
        let record = ProducerRecord::new(b.topic.clone(), value.clone());
        let d = producer.send(crate::latency::with_key(record, i, b.keys)).await?;
        if tx.send((t, d)).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.flush().await?;
    let (hist, errors, first_error) = collector.await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let ok = hist.len();
    let secs = elapsed.as_secs_f64();
    let mb = ok as f64 * b.record_size as f64 / (1024.0 * 1024.0);
    let summary = serde_json::json!({
        "records": ok,
        "errors": errors,
        "seconds": secs,
        "records_per_sec": ok as f64 / secs,
        "mib_per_sec": mb / secs,
        "latency_ms": report::quantiles_ms(&hist),
        "record_size": b.record_size,
        "acks": format!("{:?}", b.acks),
        "batch_size": b.batch_size,
        "rate": b.rate,
        "idempotence": b.idempotence,
        "max_in_flight": b.max_in_flight,
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{ok} records in {secs:.2}s: {:.0} records/s, {:.1} MiB/s; latency ms p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}; errors {errors}",
            ok as f64 / secs,
            mb / secs,
            report::ms(&hist, 0.5),
            report::ms(&hist, 0.99),
            report::ms(&hist, 0.999),
            report::max_ms(&hist)
        ),
    }
    if let Some(e) = first_error {
        anyhow::bail!("{errors} records failed; first error: {e}");
    }
    Ok(())
}

/// Runs `consume`.
pub(crate) async fn consume(b: ConsumeBench) -> anyhow::Result<()> {
    let client = b.broker.client()?;
    let partitions = client.partition_count(&b.topic).await?;
    let limit = b.records.unwrap_or(u64::MAX);
    let bar = report::progress(b.records.unwrap_or(0));
    let before = match &b.metrics {
        Some(url) => Some(ColdReadMetrics::scrape(url).await?),
        None => None,
    };
    let start = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut first_record = None;
    let mut streams = 0;
    for _ in 0..b.passes.max(1) {
        let multiplex = !b.stream_per_partition;
        let config = ConsumerConfig {
            stop_at_end: !b.follow,
            multiplex,
            max_bytes: b.fetch_max_bytes,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client.clone(), config);
        for p in 0..partitions {
            consumer.assign(&b.topic, p, StartAt::Earliest).await?;
        }

        while let Some(records) = consumer.poll().await? {
            first_record.get_or_insert_with(|| start.elapsed());
            streams = streams.max(consumer.fetch_streams());
            for r in &records {
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            }
            count += records.len() as u64;
            bar.inc(records.len() as u64);
            if count >= limit {
                break;
            }
        }
        if count >= limit {
            break;
        }
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let first_ms = first_record.map_or(-1.0, |d| d.as_secs_f64() * 1000.0);
    let mut summary = serde_json::json!({
        "records": count,
        "bytes": bytes,
        "seconds": secs,
        "records_per_sec": count as f64 / secs,
        "mib_per_sec": bytes as f64 / (1024.0 * 1024.0) / secs,
        "first_record_ms": first_ms,
        "partitions": partitions,
        "fetch_streams": streams,
        "peak_rss_mib": report::peak_rss_mib(),
    });
    let mut cold = String::new();
    if let (Some(url), Some(before)) = (&b.metrics, before) {
        let d = ColdReadMetrics::scrape(url).await?.since(&before);
        let gib = d.cold_bytes / f64::from(1u32 << 30);
        let gets_per_gib = if gib > 0.0 { d.gets / gib } else { 0.0 };
        let lookups = d.hits + d.disk_hits + d.misses;
        let hit_ratio = if lookups > 0.0 { (d.hits + d.disk_hits) / lookups } else { 0.0 };
        summary["cold_bytes"] = d.cold_bytes.into();
        summary["gets"] = d.gets.into();
        summary["gets_per_gib"] = gets_per_gib.into();
        summary["cache_hit_ratio"] = hit_ratio.into();
        summary["cache_disk_hits"] = d.disk_hits.into();
        // GET bytes in flight on average over the read: comparable to a GET loop's
        // GETs in flight times its GET size.
        let in_flight_mib = d.get_byte_ms / (secs * 1000.0) / 1048576.0;
        summary["get_mib_in_flight"] = in_flight_mib.into();
        cold = format!(
            "; cold: {:.1} MiB from the bucket, {:.0} GETs ({gets_per_gib:.0} per GiB), chunk cache hit ratio {hit_ratio:.3}",
            d.cold_bytes / 1048576.0,
            d.gets
        );
    }
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{count} records in {secs:.2}s: {:.0} records/s, {:.1} MiB/s; first record after {first_ms:.1} ms{cold}",
            count as f64 / secs,
            bytes as f64 / (1024.0 * 1024.0) / secs
        ),
    }
    Ok(())
}

/// The broker's cold-read counters, from its Prometheus exposition.
#[derive(Debug, Default)]
struct ColdReadMetrics {
    /// Every GET of the broker (chunks and indexes).
    gets: f64,
    cold_bytes: f64,
    hits: f64,
    disk_hits: f64,
    misses: f64,
    get_byte_ms: f64,
}

impl ColdReadMetrics {
    async fn scrape(url: &str) -> anyhow::Result<ColdReadMetrics> {
        // reqwest's TLS takes rustls's process default: ring, the one crypto back end.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = reqwest::get(url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| anyhow::anyhow!("cannot read the broker's metrics at {url}: {e}"))?
            .text()
            .await?;
        let mut m = ColdReadMetrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            match name {
                "shale_object_store_requests_total{op=\"get\"}" => m.gets = value,
                "shale_tier_read_bytes_total" => m.cold_bytes = value,
                "shale_tier_read_chunk_hits_total" => m.hits = value,
                "shale_tier_read_chunk_disk_hits_total" => m.disk_hits = value,
                "shale_tier_read_chunk_misses_total" => m.misses = value,
                "shale_tier_read_get_byte_ms_total" => m.get_byte_ms = value,
                _ => {}
            }
        }
        Ok(m)
    }

    fn since(&self, before: &ColdReadMetrics) -> ColdReadMetrics {
        ColdReadMetrics {
            gets: self.gets - before.gets,
            cold_bytes: self.cold_bytes - before.cold_bytes,
            hits: self.hits - before.hits,
            disk_hits: self.disk_hits - before.disk_hits,
            misses: self.misses - before.misses,
            get_byte_ms: self.get_byte_ms - before.get_byte_ms,
        }
    }
}
