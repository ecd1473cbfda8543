//! The bucket baseline of the tiering benchmark (`scripts/bench-tiering.sh`): reads a
//! bucket's `.log` objects with a plain loop of ranged GETs, through the same object store
//! stack a broker's cold reads use (retries, timeouts, `SHALE_OBJECT_STORE_FAULTS`). It
//! opens the bucket itself, which needs the storage crate, so it lives here and not in
//! `shale-bench`, whose load goes through the client only.
//!
//! `cargo run --release --example object_store_bench -- --object-store URL [--config FILE]`

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use shale::cli::{ConfigArg, Format};
use shale::settings::Settings;
use shale::tier::Bucket;

/// Reads a bucket's segment objects with a plain loop of ranged GETs: the baseline
/// `shale-bench fetch-latency` and cold consumers are compared with.
#[derive(Debug, Parser)]
#[command(name = "object_store_bench")]
struct ObjectStoreBench {
    /// The bucket: s3://bucket/prefix or file:///path (S3 endpoint and credentials from
    /// --config's [tier] section).
    #[arg(long)]
    object_store: String,
    /// Key prefix (below the URL's) whose `.log` objects are read, in name order.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Bytes per ranged GET.
    #[arg(long, default_value_t = 1024 * 1024)]
    chunk_bytes: u64,
    /// GETs in flight.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Only objects whose key contains this (`/orders-` for one topic's folders).
    #[arg(long, default_value = "")]
    contains: String,
    /// Stop after this many bytes (default: everything listed).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    config: ConfigArg,
}

fn quantiles_ms(hist: &Histogram<u64>) -> serde_json::Value {
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    serde_json::json!({ "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": hist.max() as f64 / 1000.0 })
}

async fn run(b: ObjectStoreBench) -> anyhow::Result<()> {
    let settings = match &b.config.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let bucket = Bucket::open(&b.object_store, &settings.tier)?;
    let mut prefix = bucket.prefix.clone();
    for part in b.prefix.split('/').filter(|p| !p.is_empty()) {
        prefix = prefix.join(part);
    }
    let mut objects = bucket.list(&prefix).await?;
    objects.retain(|m| {
        let key = m.location.as_ref();
        key.ends_with(".log") && key.contains(b.contains.as_str())
    });
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
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
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

fn main() -> ExitCode {
    let args = ObjectStoreBench::parse();
    shale_client::cli::main("object-store-bench", false, run(args))
}
