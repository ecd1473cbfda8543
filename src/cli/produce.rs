//! `shale produce`: one record per line of standard input: text (the line is the value, or
//! key and value), or the JSON lines `shale consume --format json` prints.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use shale_client::cli::{parse_acks, parse_compression};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::record_format::from_json;
use super::{BrokerArg, Format};
use crate::acks::Acks;
use crate::client::{Producer, ProducerConfig, ProducerRecord};
use crate::record::Compression;

/// `shale produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Partition; by default keys are hashed and keyless records spread.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// A value equal to this string is sent as null: a tombstone, which deletes its key
    /// from a compacted topic (Kafka's console producer's `null.marker`).
    #[arg(long)]
    pub null_marker: Option<String>,
    /// 0 (none), 1 (leader) or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Input format: text (each line a value, or key and value), or json (the lines
    /// `shale consume --format json` prints: key, value, headers and timestamp kept, and
    /// the partition unless --partition is given).
    #[arg(long, value_enum, default_value = "text", conflicts_with_all = ["key_separator", "null_marker"])]
    pub format: Format,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Most bytes per batch (batches grow to it under load).
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_size: usize,
    /// Milliseconds a batch may wait to fill; 0 sends as soon as the partition's
    /// in-flight window has room.
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Give up when the cluster stays unreachable this long (ms): how long a record waits
    /// for the topic's metadata and the producer's id (Kafka's `max.block.ms`).
    #[arg(long, default_value_t = 60_000)]
    pub max_block_ms: u64,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.broker.client()?;
    let config = ProducerConfig {
        acks: args.acks,
        compression: args.compression,
        batch_size: args.batch_size,
        linger: std::time::Duration::from_millis(args.linger_ms),
        max_block: std::time::Duration::from_millis(args.max_block_ms),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut deliveries = Vec::new();
    let mut sent = 0u64;
    // Failed records are counted, and the first failure reported: one line, not one per record.
    let mut failed = 0u64;
    let mut first_error = None;
    while let Some(line) = lines.next_line().await.context("reading standard input")? {
        let record = match args.format {
            Format::Json => json_record(&args, &line, sent + 1)?,
            Format::Text => text_record(&args, line),
        };
        deliveries.push(producer.send(record).await?);
        sent += 1;
        // Check answers as we go so memory stays bounded on endless input.
        if deliveries.len() >= 10_000 {
            for d in deliveries.drain(..) {
                if let Err(e) = d.await {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    producer.flush().await?;
    for d in deliveries {
        if let Err(e) = d.await {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        anyhow::bail!("{failed} of {sent} records were not acknowledged, the first because: {e}");
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

/// A line of text: the value, or key and value split at --key-separator.
fn text_record(args: &ProduceArgs, line: String) -> ProducerRecord {
    let (key, value) = match &args.key_separator {
        Some(sep) => match line.split_once(sep.as_str()) {
            Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
            None => (None, line),
        },
        None => (None, line),
    };
    ProducerRecord {
        topic: args.topic.clone(),
        partition: args.partition,
        key,
        value: (args.null_marker.as_ref() != Some(&value)).then(|| Bytes::from(value)),
        ..Default::default()
    }
}

/// A JSON line of `shale consume --format json`: line `n` of the input.
fn json_record(args: &ProduceArgs, line: &str, n: u64) -> anyhow::Result<ProducerRecord> {
    let r = from_json(line).map_err(|e| anyhow::anyhow!("line {n} of the input: {e}"))?;
    Ok(ProducerRecord {
        topic: args.topic.clone(),
        partition: args.partition.or(r.partition),
        key: r.key,
        value: r.value,
        headers: r.headers,
        timestamp_ms: r.timestamp_ms,
    })
}
