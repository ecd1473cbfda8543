//! `shale-bench fetch-latency`: fetches at random offsets of a topic's remote (cold) or
//! local range, each by a new consumer, timed to the first record.

use std::time::Instant;

use clap::Args;
use rand::Rng;
use shale_client::cli::{BrokerArg, Format};
use shale_client::{Consumer, ConsumerConfig};

use crate::report;

/// Which part of a partition `shale-bench fetch-latency` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Range {
    /// Offsets only the bucket holds (below the local log start).
    Remote,
    /// Offsets on the broker's local disk.
    Local,
}

/// `shale-bench fetch-latency`.
#[derive(Debug, Args)]
pub(crate) struct FetchLatencyBench {
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

/// Runs the benchmark.
pub(crate) async fn run(b: FetchLatencyBench) -> anyhow::Result<()> {
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
    let mut hist = report::micros_histogram(600);
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
        report::record(&mut hist, t.elapsed());
    }
    let summary = serde_json::json!({
        "samples": hist.len(),
        "range": format!("{:?}", b.range).to_lowercase(),
        "first_record_ms": report::quantiles_ms(&hist),
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => println!(
            "{} fetches ({:?} offsets): first record ms p50 {:.2} p99 {:.2} max {:.2}",
            hist.len(),
            b.range,
            report::ms(&hist, 0.5),
            report::ms(&hist, 0.99),
            report::max_ms(&hist)
        ),
    }
    Ok(())
}
