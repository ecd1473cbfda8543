//! `shale-bench`: load generators that run against Shale brokers as a client does, and
//! report throughput and latency. A separate binary from `shale`, so the product command
//! line carries no load tools; it uses only the client, the wire and the record format.
//!
//! # Layout
//! - `throughput`: `produce` and `consume`, records/s, MiB/s and produce latency.
//! - `latency`, `open_loop`: produce latency at fixed offered rates, open loop.
//! - `fetch_latency`: the time to a first record at random cold or local offsets.
//! - `groups`: many group members committing on a timer.
//! - `partitions`: many partitions on one broker: create, produce to each, read back.
//! - `grpc_floor`: `grpc-floor`, ProduceMany answered with no broker behind it, and the
//!   raw load (`latency --raw`) it and a broker both take.
//! - `stalls`: how late the machine wakes a sleeping thread (its scheduling floor).
//! - `etcd`: the etcd figures `groups` reports, over etcd's HTTP API.
//! - `report`: latency histograms and the progress bar.

// A load generator observes the system from outside: it measures real elapsed time and
// draws random payloads and offsets, so it reads time and randomness directly.
#![allow(clippy::disallowed_methods)]

mod etcd;
mod fetch_format;
mod fetch_latency;
mod groups;
mod grpc_floor;
mod latency;
mod open_loop;
mod partitions;
mod report;
mod stalls;
mod throughput;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generators for Shale: produce, consume, cold fetches and consumer groups.
#[derive(Debug, Parser)]
#[command(name = "shale-bench", version, about, propagate_version = true)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "SHALE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records as fast as possible (or at --rate) and report throughput and latency.
    Produce(throughput::ProduceBench),
    /// Produce at fixed offered rates, open loop, and report latency from each record's
    /// due time (coordinated omission corrected).
    Latency(latency::LatencyBench),
    /// Read a topic from the beginning and report throughput and first-record latency.
    Consume(throughput::ConsumeBench),
    /// Fetch at random offsets of a topic's remote (cold) or local range and report the
    /// latency to the first record.
    FetchLatency(fetch_latency::FetchLatencyBench),
    /// Read a topic as raw batches (decoded here) and as records decoded by the broker,
    /// pass by pass, and report throughput and the broker's CPU per MiB of each.
    FetchFormat(fetch_format::FetchFormatBench),
    /// Many group members committing on a timer: commit latency, etcd writes per second
    /// and the keys a group holds.
    Groups(groups::GroupsBench),
    /// Many partitions on one broker: create them, produce to each, read each back,
    /// timing each step and checking for losses and duplicates.
    Partitions(partitions::PartitionsBench),
    /// How late the machine wakes a thread sleeping 20 µs at a time, and when: run it
    /// beside a load to see the stalls that load causes machine-wide.
    Stalls(stalls::StallsBench),
    /// Serve ProduceMany with no broker behind it (nothing stored, each message answered at
    /// once or on a tick): what gRPC itself costs a produce message, to measure beside a
    /// broker with `latency --raw`.
    GrpcFloor(grpc_floor::GrpcFloor),
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Produce(b) => throughput::produce(b).await,
        Command::Latency(b) => latency::run(b).await,
        Command::Consume(b) => throughput::consume(b).await,
        Command::FetchLatency(b) => fetch_latency::run(b).await,
        Command::FetchFormat(b) => fetch_format::run(b).await,
        Command::Groups(b) => groups::run(b).await,
        Command::Partitions(b) => partitions::run(b).await,
        Command::Stalls(b) => stalls::run(b).await,
        Command::GrpcFloor(b) => grpc_floor::serve(b).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shale_client::cli::main("shale-bench", cli.log_json, run(cli.command))
}
