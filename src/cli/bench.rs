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
use crate::broker::Acks;
use crate::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use crate::record::Compression;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at --rate) and report throughput and latency.
    Produce(ProduceBench),
    /// Read a topic from the beginning and report throughput.
    Consume(ConsumeBench),
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
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(b) => produce(b).await,
        BenchCommand::Consume(b) => consume(b).await,
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
    let config = ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client, config);
    for p in 0..partitions {
        consumer.assign(&b.topic, p, StartAt::Earliest).await?;
    }
    let limit = b.records.unwrap_or(u64::MAX);
    let bar = progress(b.records.unwrap_or(0));
    let start = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(records) = consumer.poll().await? {
        for r in &records {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        count += records.len() as u64;
        bar.inc(records.len() as u64);
        if count >= limit {
            break;
        }
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "records": count,
        "seconds": secs,
        "records_per_sec": count as f64 / secs,
        "mib_per_sec": bytes as f64 / (1024.0 * 1024.0) / secs,
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{count} records in {secs:.2}s: {:.0} records/s, {:.1} MiB/s",
            count as f64 / secs,
            bytes as f64 / (1024.0 * 1024.0) / secs
        ),
    }
    Ok(())
}
