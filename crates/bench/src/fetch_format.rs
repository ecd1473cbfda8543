//! `shale-bench fetch-format`: reads a topic from the beginning over raw gRPC Fetch streams,
//! in one fetch format per pass — `batches` (as stored; the client decodes them, as the
//! Rust client does) or `records` (decoded by the broker, what a thin client asks for) —
//! and reports, per format, record bytes per second and, given the broker's PID, the
//! broker's CPU seconds per MiB read (from `/proc/PID/stat`).

use std::time::Instant;

use clap::Args;
use shale_client::cli::{BrokerArg, Format};
use shale_core::record::{Limits, decode_batches};
use shale_proto::pb;

/// `shale-bench fetch-format`.
#[derive(Debug, Args)]
pub(crate) struct FetchFormatBench {
    /// Topic to read (every partition, from its earliest offset to its high watermark).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Passes per format, alternating batches and records.
    #[arg(long, default_value_t = 3)]
    pub passes: u32,
    /// Bytes per Fetch message (0: the broker's default).
    #[arg(long, default_value_t = 0)]
    pub max_bytes: u32,
    /// The broker's process id, to report its CPU time per MiB read.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// What one pass read.
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    records: u64,
    bytes: u64,
    seconds: f64,
    broker_cpu_seconds: Option<f64>,
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// Reads every partition once in `format`.
async fn pass(
    b: &FetchFormatBench,
    log: &mut pb::log_client::LogClient<shale_client::Transport>,
    partitions: u32,
    format: pb::FetchFormat,
) -> anyhow::Result<Pass> {
    let cpu_before = b.broker_pid.map(cpu_seconds).transpose()?;
    let start = Instant::now();
    let mut p = Pass::default();
    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
    for partition in 0..partitions {
        let req = pb::FetchRequest {
            topic: b.topic.clone(),
            partition,
            offset: 0,
            max_bytes: b.max_bytes,
            stop_at_end: true,
            format: format as i32,
            ..Default::default()
        };
        let mut stream = log.fetch(req).await?.into_inner();
        while let Some(msg) = stream.message().await? {
            let size =
                |k: Option<usize>, v: Option<usize>| (k.unwrap_or(0) + v.unwrap_or(0)) as u64;
            if format == pb::FetchFormat::Batches {
                for r in decode_batches(&msg.batches, &limits)? {
                    p.records += 1;
                    p.bytes += size(r.key.map(|k| k.len()), r.value.map(|v| v.len()));
                }
            } else {
                for r in &msg.records {
                    p.records += 1;
                    p.bytes +=
                        size(r.key.as_ref().map(|k| k.len()), r.value.as_ref().map(|v| v.len()));
                }
            }
        }
    }
    p.seconds = start.elapsed().as_secs_f64();
    if let (Some(pid), Some(before)) = (b.broker_pid, cpu_before) {
        p.broker_cpu_seconds = Some(cpu_seconds(pid)? - before);
    }
    Ok(p)
}

/// Runs the benchmark.
pub(crate) async fn run(b: FetchFormatBench) -> anyhow::Result<()> {
    let client = b.broker.client()?;
    let partitions = client.partition_count(&b.topic).await?;
    let mut log = client.log_rpc_any()?;
    let formats = [("batches", pb::FetchFormat::Batches), ("records", pb::FetchFormat::Records)];
    let mut passes: Vec<(&str, Pass)> = Vec::new();
    for _ in 0..b.passes.max(1) {
        for (name, format) in formats {
            passes.push((name, pass(&b, &mut log, partitions, format).await?));
        }
    }
    const MIB: f64 = (1 << 20) as f64;
    let summary: Vec<serde_json::Value> = formats
        .iter()
        .map(|(name, _)| {
            let mine: Vec<&Pass> =
                passes.iter().filter(|(n, _)| n == name).map(|(_, p)| p).collect();
            let mut rates: Vec<f64> =
                mine.iter().map(|p| p.bytes as f64 / MIB / p.seconds).collect();
            rates.sort_by(f64::total_cmp);
            let mib: f64 = mine.iter().map(|p| p.bytes as f64 / MIB).sum();
            let cpu: Option<f64> = mine.iter().map(|p| p.broker_cpu_seconds).sum();
            serde_json::json!({
                "format": name,
                "passes": mine.len(),
                "records_per_pass": mine.first().map_or(0, |p| p.records),
                "mib_per_pass": mine.first().map_or(0.0, |p| p.bytes as f64 / MIB),
                "mib_per_sec_median": rates.get(rates.len() / 2).copied().unwrap_or(0.0),
                "mib_per_sec_all": rates,
                "broker_cpu_ms_per_mib": cpu.map(|c| c * 1000.0 / mib),
            })
        })
        .collect();
    match b.format {
        Format::Json => println!("{}", serde_json::Value::Array(summary)),
        Format::Text => {
            for s in &summary {
                println!(
                    "{:8} {} passes of {} records ({:.1} MiB): median {:.1} MiB/s {}; broker CPU {} ms per MiB",
                    s["format"].as_str().unwrap_or(""),
                    s["passes"],
                    s["records_per_pass"],
                    s["mib_per_pass"].as_f64().unwrap_or(0.0),
                    s["mib_per_sec_median"].as_f64().unwrap_or(0.0),
                    s["mib_per_sec_all"],
                    s["broker_cpu_ms_per_mib"]
                        .as_f64()
                        .map_or("?".to_string(), |c| format!("{c:.2}")),
                );
            }
        }
    }
    Ok(())
}
