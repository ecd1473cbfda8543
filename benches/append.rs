//! Append + group-commit throughput of one partition log on the local disk.
//!
//! `single_writer/{16384,262144}`: one append of a batch of 1 KiB records, then
//! `flush_until` (an fsync each time: the floor of acks=all latency).
//! `concurrent_writers/8x16384`: 8 tasks each append a 16 KiB batch and wait for its
//! fsync; group commit should need far fewer fsyncs than appends.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shale::log::{LogConfig, LogResources, PartitionLog};
use shale::record::batch::{HEADER_LEN, write_crc};

/// A RecordBatch v2 of `total` bytes whose records area is opaque filler (the log checks
/// framing and CRC only), with one record per KiB.
fn batch(total: usize) -> Vec<u8> {
    let records = (total / 1024).max(1) as i32;
    let mut b = vec![0u8; total];
    b[8..12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, byte) in b[HEADER_LEN..].iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    write_crc(&mut b);
    b
}

fn open_log(dir: &tempfile::TempDir) -> Arc<PartitionLog> {
    let config = LogConfig { segment_bytes: 256 << 20, ..LogConfig::default() };
    let log = PartitionLog::open(
        dir.path().join("bench-0"),
        config,
        shale::clock::system(),
        Arc::new(LogResources::default()),
    )
    .expect("open log");
    Arc::new(log)
}

fn append_flush(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("append_flush");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    for size in [16 << 10, 256 << 10] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_log(&dir);
        let template = batch(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("single_writer", size), |b| {
            b.iter(|| {
                let mut buf = template.clone();
                let info = log.append(&mut buf, 0).expect("append");
                rt.block_on(log.flush_until(info.log_end_offset)).expect("flush");
            })
        });
    }

    let writers = 8;
    let size = 16 << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&dir);
    let template = Arc::new(batch(size));
    group.throughput(Throughput::Bytes((writers * size) as u64));
    let mut appends = 0u64;
    let syncs_before = log.sync_count();
    group.bench_function(
        BenchmarkId::new("concurrent_writers", format!("{writers}x{size}")),
        |b| {
            b.iter(|| {
                appends += writers as u64;
                rt.block_on(async {
                    let tasks: Vec<_> = (0..writers)
                        .map(|_| {
                            let (log, template) = (log.clone(), template.clone());
                            tokio::spawn(async move {
                                let l = log.clone();
                                let info = tokio::task::spawn_blocking(move || {
                                    let mut buf = template.to_vec();
                                    l.append(&mut buf, 0)
                                })
                                .await
                                .expect("join")
                                .expect("append");
                                log.flush_until(info.log_end_offset).await.expect("flush");
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("writer");
                    }
                })
            })
        },
    );
    let syncs = log.sync_count() - syncs_before;
    eprintln!(
        "concurrent_writers: {appends} appends, {syncs} fsyncs ({:.2} appends per fsync)",
        appends as f64 / syncs.max(1) as f64
    );
    group.finish();
}

criterion_group!(benches, append_flush);
criterion_main!(benches);
