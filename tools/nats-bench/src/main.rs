//! `nats-bench`: JetStream publish latency at fixed offered rates, open loop, for the side
//! by side of `scripts/bench-latency.sh`. Pacing and measurement are Shale's own
//! (`crates/bench/src/open_loop.rs`, included by path), so both systems are offered the
//! same schedule and timed from the same due times.

// A load generator measures real elapsed time.
#![allow(clippy::disallowed_methods)]

#[path = "../../../crates/bench/src/open_loop.rs"]
mod open_loop;


use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use clap::Parser;

use open_loop::Acked;

/// Publishes to a JetStream stream at fixed rates and reports latency from each message's
/// due time to its JetStream ack.
#[derive(Debug, Parser)]
struct Args {
    /// NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// Stream (and subject), created fresh (file storage, one replica).
    #[arg(long, default_value = "latency")]
    stream: String,
    #[command(flatten)]
    schedule: open_loop::Schedule,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Label of this run in the report.
    #[arg(long, default_value = "nats-jetstream")]
    label: String,
    /// One JSON object per round instead of a line.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let handle = rt.handle().clone();
    let js = rt.block_on(async {
        let client = async_nats::connect(&args.server).await?;
        let js = jetstream::new(client);
        let _ = js.delete_stream(&args.stream).await;
        js.create_stream(stream::Config {
            name: args.stream.clone(),
            subjects: vec![args.stream.clone()],
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await?;
        Ok::<_, Box<dyn std::error::Error>>(js)
    })?;
    let payload = Bytes::from(vec![7u8; args.record_size]);
    let mut failed = 0;
    for (round, rate, warmup, measure) in args.schedule.each() {
        let result = open_loop::offer(&handle, rate, warmup, measure, || {
            let (js, subject, payload) = (js.clone(), args.stream.clone(), payload.clone());
            Box::pin(async move {
                let ack = js.publish(subject, payload).await.map_err(|e| e.to_string())?;
                Ok(Box::pin(async move { ack.await.map(|_| ()).map_err(|e| e.to_string()) })
                    as Acked)
            })
        });
        failed += result.errors;
        if args.json {
            println!("{}", result.json(&args.label, round));
        } else {
            println!("{}", result.line(&format!("{} round {round}", args.label)));
        }
        if let Some(e) = &result.first_error {
            eprintln!("{} publishes failed at {rate}/s; first: {e}", result.errors);
        }
    }
    if failed > 0 {
        return Err(format!("{failed} publishes failed").into());
    }
    Ok(())
}
