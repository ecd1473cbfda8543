//! The transport ceiling of the tiering benchmark (`scripts/bench-tiering.sh`): how many
//! bytes per second this host moves over loopback TCP, sender and receiver on its own
//! cores, with nothing else done to the bytes. Every byte a consumer reads from a broker
//! on the same host crosses this path (and more: HTTP/2 framing, protobuf, decoding), so a
//! cold read measured here cannot beat it, whatever the bucket does.
//!
//! `cargo run --release --example loopback_bench -- --connections 4 --format json`

// Tools observe the system from outside: they read real time directly.
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use shale::cli::Format;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends bytes over loopback TCP connections and reports the aggregate rate.
#[derive(Debug, Parser)]
#[command(name = "loopback_bench")]
struct LoopbackBench {
    /// TCP connections at once, each with its own sender and receiver.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Bytes each connection sends.
    #[arg(long, default_value_t = 2 << 30)]
    bytes: u64,
    /// Bytes per write.
    #[arg(long, default_value_t = 1 << 20)]
    write_bytes: usize,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

async fn receive(listener: &TcpListener) -> anyhow::Result<u64> {
    let (mut socket, _) = listener.accept().await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

async fn send(addr: std::net::SocketAddr, bytes: u64, write_bytes: usize) -> anyhow::Result<()> {
    let mut socket = TcpStream::connect(addr).await?;
    let buf = vec![7u8; write_bytes];
    let mut left = bytes;
    while left > 0 {
        let n = (write_bytes as u64).min(left) as usize;
        socket.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    socket.shutdown().await?;
    Ok(())
}

async fn run(b: LoopbackBench) -> anyhow::Result<()> {
    let listener = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").await?);
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..b.connections {
        let listener = listener.clone();
        tasks.spawn(async move { receive(&listener).await });
        tasks.spawn(async move { send(addr, b.bytes, b.write_bytes).await.map(|()| 0) });
    }
    let mut received = 0;
    while let Some(done) = tasks.join_next().await {
        received += done??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mib_per_sec = received as f64 / (1 << 20) as f64 / seconds;
    match b.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "connections": b.connections,
                "bytes": received,
                "seconds": seconds,
                "mib_per_sec": mib_per_sec,
            })
        ),
        Format::Text => println!(
            "loopback TCP, {} connection(s): {received} bytes in {seconds:.2} s, {mib_per_sec:.0} MiB/s",
            b.connections
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = LoopbackBench::parse();
    shale_client::cli::main("loopback-bench", false, run(args))
}
