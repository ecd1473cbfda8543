//! Throughput of broker-side validation and consumer-side decoding of record batches.
//!
//! Batches hold 1 KiB records (16 KiB and 1 MiB batches) of text-like data that compresses
//! about 3:1. Throughput is counted in uncompressed batch bytes, so codecs compare on the
//! data they carry.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shale::record::{BatchBuilder, Compression, Limits, Record, decode_batch, validate_batches};

const RECORD_LEN: usize = 1024;

/// Deterministic text-like bytes: words from a small vocabulary picked by an LCG.
fn payload(seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "topic",
        "partition",
        "offset",
        "leader",
        "epoch",
        "segment",
        "bucket",
        "replica",
        "fetch",
        "produce",
        "commit",
        "group",
        "record",
        "batch",
        "index",
        "retention",
    ];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(RECORD_LEN + 16);
    while out.len() < RECORD_LEN {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[(state >> 60) as usize].as_bytes());
        out.extend_from_slice(format!(" {} ", (state >> 40) & 0xffff).as_bytes());
    }
    out.truncate(RECORD_LEN);
    out
}

fn batch(records: usize, codec: Compression) -> (Bytes, usize) {
    let mut b = BatchBuilder::new(codec);
    for i in 0..records {
        b.push(Record {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(payload(i as u64))),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000 + i as i64,
        });
    }
    let uncompressed = b.estimated_size();
    (b.build(), uncompressed)
}

fn bench(c: &mut Criterion) {
    let limits = Limits { max_batch_bytes: 4 << 20, ..Limits::default() };
    let mut group = c.benchmark_group("record");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (label, records) in [("16KiB", 16), ("1MiB", 1024)] {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let (bytes, uncompressed) = batch(records, codec);
            group.throughput(Throughput::Bytes(uncompressed as u64));
            let id = format!("{label}/{}", codec.name());
            group.bench_with_input(BenchmarkId::new("validate", &id), &bytes, |b, bytes| {
                b.iter(|| validate_batches(black_box(bytes), &limits).expect("valid batch"))
            });
            group.bench_with_input(BenchmarkId::new("decode", &id), &bytes, |b, bytes| {
                b.iter(|| decode_batch(black_box(bytes), &limits).expect("valid batch"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
