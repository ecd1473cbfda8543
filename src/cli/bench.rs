//! `shale bench produce|consume`: end-to-end load against a running broker, reporting
//! records/s, MB/s and latency percentiles from an HDR histogram.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use tokio::sync::mpsc;

use super::produce::{parse_acks, parse_compression};
use super::{BrokerArg, Format};
use crate::acks::Acks;
use crate::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use crate::record::Compression;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at --rate) and report throughput and latency.
    Produce(ProduceBench),
    /// Read a topic from the beginning and report throughput and first-record latency.
    Consume(ConsumeBench),
    /// Fetch at random offsets of a topic's remote (cold) or local range and report the
    /// latency to the first record.
    FetchLatency(FetchLatencyBench),
    /// Read a bucket's segment objects with a plain loop of ranged GETs: the baseline
    /// cold reads are compared with.
    ObjectStore(ObjectStoreBench),
    /// Many group members committing on a timer: commit latency, etcd writes per second
    /// and the keys a group holds.
    Groups(super::bench_groups::GroupsBench),
}

/// `bench produce`.
#[derive(Debug, Args)]
pub struct ProduceBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Topic config when the topic is created, KEY=VALUE (repeatable).
    #[arg(long = "config", value_parser = super::key_value)]
    pub configs: Vec<(String, String)>,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Target records per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: Acks,
    /// Bytes per batch.
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_size: usize,
    /// Milliseconds a batch may wait to fill.
    #[arg(long, default_value_t = 2)]
    pub linger_ms: u64,
    /// Batches awaiting acks per partition.
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `bench consume`.
#[derive(Debug, Args)]
pub struct ConsumeBench {
    /// Topic to read from the beginning.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Stop after this many records (default: at the end).
    #[arg(long)]
    pub records: Option<u64>,
    /// Read the topic this many times over (each pass from the beginning).
    #[arg(long, default_value_t = 1)]
    pub passes: u32,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// Which part of a partition `bench fetch-latency` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Range {
    /// Offsets only the bucket holds (below the local log start).
    Remote,
    /// Offsets on the broker's local disk.
    Local,
}

/// `bench fetch-latency`.
#[derive(Debug, Args)]
pub struct FetchLatencyBench {
    /// Topic to sample.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Fetches to time.
    #[arg(long, default_value_t = 50)]
    pub samples: u32,
    /// Where the sampled offsets lie.
    #[arg(long, value_enum, default_value = "remote")]
    pub range: Range,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `bench object-store`.
#[derive(Debug, Args)]
pub struct ObjectStoreBench {
    /// The bucket: s3://bucket/prefix or file:///path (S3 endpoint and credentials from
    /// --config's [tier] section).
    #[arg(long)]
    pub object_store: String,
    /// Key prefix (below the URL's) whose `.log` objects are read, in name order.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Bytes per ranged GET.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub chunk_bytes: u64,
    /// GETs in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Stop after this many bytes (default: everything listed).
    #[arg(long)]
    pub max_bytes: Option<u64>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub config: super::ConfigArg,
}
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(b) => produce(b).await,
        BenchCommand::Consume(b) => consume(b).await,
        BenchCommand::FetchLatency(b) => fetch_latency(b).await,
        BenchCommand::ObjectStore(b) => object_store(b).await,
        BenchCommand::Groups(b) => super::bench_groups::run(b).await,
    }
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn produce(b: ProduceBench) -> anyhow::Result<()> {
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
            retries: 0,
            ..ProducerConfig::default()
        },
    );
    let mut value = vec![0u8; b.record_size];
    rand::rng().fill_bytes(&mut value);
    let value = Bytes::from(value);

    let bar = progress(b.records);
    let (tx, mut rx) = mpsc::channel::<(Instant, crate::client::producer::Delivery)>(65_536);
    let collector_bar = bar.clone();
    let collector = tokio::spawn(async move {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .expect("static histogram bounds are valid");
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
                        Ok(_) => { let _ = hist.record(t.elapsed().as_micros().max(1) as u64); }
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
        let d = producer.send(ProducerRecord::new(b.topic.clone(), value.clone())).await?;
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
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    let summary = serde_json::json!({
        "records": ok,
        "errors": errors,
        "seconds": secs,
        "records_per_sec": ok as f64 / secs,
        "mib_per_sec": mb / secs,
        "latency_ms": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": hist.max() as f64 / 1000.0 },
        "record_size": b.record_size,
        "acks": format!("{:?}", b.acks),
        "batch_size": b.batch_size,
        "rate": b.rate,
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{ok} records in {secs:.2}s: {:.0} records/s, {:.1} MiB/s; latency ms p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}; errors {errors}",
            ok as f64 / secs,
            mb / secs,
            q(0.5),
            q(0.99),
            q(0.999),
            hist.max() as f64 / 1000.0
        ),
    }
    if let Some(e) = first_error {
        anyhow::bail!("{errors} records failed; first error: {e}");
    }
    Ok(())
}

async fn consume(b: ConsumeBench) -> anyhow::Result<()> {
    let client = b.broker.client()?;
    let partitions = client.partition_count(&b.topic).await?;
    let limit = b.records.unwrap_or(u64::MAX);
    let bar = progress(b.records.unwrap_or(0));
    let start = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut first_record = None;
    for _ in 0..b.passes.max(1) {
        let config = ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config);
        for p in 0..partitions {
            consumer.assign(&b.topic, p, StartAt::Earliest).await?;
        }
        while let Some(records) = consumer.poll().await? {
            first_record.get_or_insert_with(|| start.elapsed());
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
    let summary = serde_json::json!({
        "records": count,
        "bytes": bytes,
        "seconds": secs,
        "records_per_sec": count as f64 / secs,
        "mib_per_sec": bytes as f64 / (1024.0 * 1024.0) / secs,
        "first_record_ms": first_ms,
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{count} records in {secs:.2}s: {:.0} records/s, {:.1} MiB/s; first record after {first_ms:.1} ms",
            count as f64 / secs,
            bytes as f64 / (1024.0 * 1024.0) / secs
        ),
    }
    Ok(())
}

fn quantiles_ms(hist: &Histogram<u64>) -> serde_json::Value {
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    serde_json::json!({ "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": hist.max() as f64 / 1000.0 })
}

fn micros_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

async fn fetch_latency(b: FetchLatencyBench) -> anyhow::Result<()> {
    use rand::Rng;
    let client = b.broker.client()?;
    let described = client.admin().describe_topic(&b.topic).await?;
    // [from, to) per partition, in the asked-for range.
    let ranges: Vec<(u32, i64, i64)> = described
        .partitions
        .iter()
        .filter_map(|p| {
            let id = p.metadata.as_ref()?.partition;
            let (from, to) = match b.range {
                Range::Remote => (
                    p.remote_log_start_offset,
                    p.remote_log_end_offset.min(p.local_log_start_offset),
                ),
                Range::Local => (p.local_log_start_offset, p.high_watermark),
            };
            (from >= 0 && to > from).then_some((id, from, to))
        })
        .collect();
    if ranges.is_empty() {
        anyhow::bail!(
            "topic {:?} has no {} offsets to sample (see `shale topic describe {}`)",
            b.topic,
            match b.range {
                Range::Remote => "remote-only",
                Range::Local => "local",
            },
            b.topic
        );
    }
    let mut hist = micros_histogram();
    let mut rng = rand::rng();
    for i in 0..b.samples {
        let (p, from, to) = ranges[i as usize % ranges.len()];
        let offset = rng.random_range(from..to);
        let config = ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config);
        let t = Instant::now();
        consumer.seek(&b.topic, p, offset);
        let records = consumer
            .poll()
            .await?
            .ok_or_else(|| anyhow::anyhow!("partition {p} ended before offset {offset}"))?;
        let first = records.first().map_or(-1, |r| r.offset);
        if first != offset {
            anyhow::bail!("fetch at offset {offset} of partition {p} began at {first}");
        }
        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
    }
    let summary = serde_json::json!({
        "samples": hist.len(),
        "range": format!("{:?}", b.range).to_lowercase(),
        "first_record_ms": quantiles_ms(&hist),
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{} fetches ({:?} offsets): first record ms p50 {:.2} p99 {:.2} max {:.2}",
            hist.len(),
            b.range,
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.max() as f64 / 1000.0
        ),
    }
    Ok(())
}

async fn object_store(b: ObjectStoreBench) -> anyhow::Result<()> {
    let settings = match &b.config.config {
        Some(path) => crate::settings::Settings::from_file(path)?,
        None => crate::settings::Settings::default(),
    };
    let bucket = crate::tier::Bucket::open(&b.object_store, &settings.tier)?;
    let mut prefix = bucket.prefix.clone();
    for part in b.prefix.split('/').filter(|p| !p.is_empty()) {
        prefix = prefix.join(part);
    }
    let mut objects = bucket.list(&prefix).await?;
    objects.retain(|m| m.location.as_ref().ends_with(".log"));
    if objects.is_empty() {
        anyhow::bail!("no .log objects under {prefix:?} in {}", b.object_store);
    }
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let chunk = b.chunk_bytes.max(1);
    let limit = b.max_bytes.unwrap_or(u64::MAX);
    let mut ranges = Vec::new();
    let mut planned = 0u64;
    'plan: for o in &objects {
        let mut at = 0;
        while at < o.size {
            let end = (at + chunk).min(o.size);
            ranges.push((o.location.clone(), at..end));
            planned += end - at;
            if planned >= limit {
                break 'plan;
            }
            at = end;
        }
    }
    let start = Instant::now();
    let mut hist = micros_histogram();
    let mut bytes = 0u64;
    let mut gets = futures::stream::iter(ranges)
        .map(|(path, range)| {
            let bucket = &bucket;
            async move {
                let t = Instant::now();
                let got = bucket.get_range(&path, range).await;
                (t.elapsed(), got)
            }
        })
        .buffered(b.concurrency.max(1));
    while let Some((took, got)) = gets.next().await {
        bytes += got?.len() as u64;
        let _ = hist.record(took.as_micros().max(1) as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "objects": objects.len(),
        "requests": hist.len(),
        "bytes": bytes,
        "seconds": secs,
        "mib_per_sec": bytes as f64 / (1024.0 * 1024.0) / secs,
        "chunk_bytes": chunk,
        "concurrency": b.concurrency,
        "get_ms": quantiles_ms(&hist),
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{} ranged GETs, {bytes} bytes in {secs:.2}s: {:.1} MiB/s; GET ms p50 {:.2} p99 {:.2}",
            hist.len(),
            bytes as f64 / (1024.0 * 1024.0) / secs,
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0
        ),
    }
    Ok(())
}
