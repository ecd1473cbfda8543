//! Fetch and FetchMany in decoded form (`FETCH_FORMAT_RECORDS`), through the raw gRPC
//! messages a client generated from the protos sends: records of every codec come back with
//! keys, values, headers, offsets and timestamps; records before the requested offset in
//! the first batch are left out; a read larger than `max_bytes` comes in messages that
//! continue each other; the broker compresses plain records on request; a stored batch
//! that does not decode is an error naming topic, partition and offset while the broker
//! goes on serving; and a tiered topic's records come from the bucket (moto on 127.0.0.1:
//! missing, the test fails, not skips) as in the raw form.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/s3.rs"]
mod s3_server;
#[path = "common/tier_target.rs"]
mod tier_target;

use std::collections::BTreeMap;

use bytes::Bytes;
use shale::client::{Producer, ProducerConfig, ProducerRecord};
use shale::proto::pb;
use shale::record::Compression;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// The record `i` of codec `codec`: key, value and one header, all derived from both.
fn record(codec: &str, i: usize) -> (String, Vec<u8>, String) {
    let value: Vec<u8> = (0..200 + i % 7).map(|j| (i * 31 + j) as u8).collect();
    (format!("{codec}-k{i}"), value, format!("h{i}"))
}

/// Decoded Fetch of partition 0 of `topic` from `offset` until the end.
async fn fetch_decoded(
    log: &mut pb::log_client::LogClient<shale::client::Transport>,
    topic: &str,
    offset: i64,
    max_bytes: u32,
) -> Result<Vec<pb::FetchResponse>, tonic::Status> {
    let req = pb::FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes,
        stop_at_end: true,
        format: pb::FetchFormat::Records as i32,
        ..Default::default()
    };
    let mut stream = log.fetch(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.message().await? {
        out.push(msg);
    }
    Ok(out)
}

/// The codec of the stored batch at `offset` of partition 0 of `topic`, from the
/// attributes of the raw form's first batch.
async fn stored_codec(
    log: &mut pb::log_client::LogClient<shale::client::Transport>,
    topic: &str,
    offset: i64,
) -> i32 {
    let req =
        pb::FetchRequest { topic: topic.into(), offset, stop_at_end: true, ..Default::default() };
    let raw = log.fetch(req).await.unwrap().into_inner().message().await.unwrap().unwrap();
    i32::from(raw.batches[22] & 0x07)
}

#[tokio::test]
async fn decoded_fetch_reads_records_of_every_codec_and_fetch_many_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let topic = "decoded";
    client.admin().create_topic(topic, 1, 0, BTreeMap::new()).await.unwrap();
    let per_codec = 40;
    for codec in CODECS {
        let config = ProducerConfig {
            compression: Compression::parse(codec).unwrap(),
            linger: std::time::Duration::from_millis(5),
            ..Default::default()
        };
        let producer = Producer::new(client.clone(), config);
        for i in 0..per_codec {
            let (key, value, header) = record(codec, i);
            let r = ProducerRecord::new(topic, value).key(key).header(header, "v").partition(0);
            producer.send(r).await.unwrap();
        }
        producer.flush().await.unwrap();
    }
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    // Plain records the broker compresses.
    let records = (0..per_codec)
        .map(|i| {
            let (key, value, header) = record("broker-zstd", i);
            pb::Record {
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(value)),
                headers: vec![pb::Header { key: header, value: Some(Bytes::from("v")) }],
                timestamp_ms: 7_000 + i as i64,
            }
        })
        .collect();
    let produced = log
        .produce(pb::ProduceRequest {
            topic: topic.into(),
            partition: 0,
            acks: pb::Acks::All as i32,
            payload: Some(pb::produce_request::Payload::Records(pb::Records {
                records,
                compression: pb::Compression::Zstd as i32,
            })),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let total = (CODECS.len() + 1) * per_codec;
    assert_eq!(produced.last_offset, total as i64 - 1);
    let codec = stored_codec(&mut log, topic, produced.base_offset).await;
    assert_eq!(codec, pb::Compression::Zstd as i32, "the broker built a zstd batch");

    // From offset 3: the first batch's records before it are left out; small messages.
    let messages = fetch_decoded(&mut log, topic, 3, 2_000).await.unwrap();
    assert!(messages.len() > 10, "{} messages of at most ~2,000 bytes", messages.len());
    let mut expected_next = 3;
    let mut got = Vec::new();
    for m in &messages {
        assert!(m.batches.is_empty(), "records only");
        if let Some(first) = m.records.first() {
            assert_eq!(first.offset, expected_next, "each message continues the last");
        }
        expected_next = m.next_offset;
        got.extend(m.records.iter().cloned());
    }
    assert_eq!(expected_next, total as i64);
    assert_eq!(got.len(), total - 3);
    let mut sources = Vec::new();
    for codec in CODECS.iter().chain(["broker-zstd"].iter()) {
        sources.extend((0..per_codec).map(|i| (codec.to_string(), i)));
    }
    for (r, (codec, i)) in got.iter().zip(&sources[3..]) {
        let (key, value, header) = record(codec, *i);
        assert_eq!(r.key.as_deref(), Some(key.as_bytes()), "offset {}", r.offset);
        assert_eq!(r.value.as_deref(), Some(value.as_slice()), "offset {}", r.offset);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(
            (r.headers[0].key.as_str(), r.headers[0].value.as_deref()),
            (header.as_str(), Some(&b"v"[..]))
        );
        assert!(r.timestamp_ms > 0);
    }
    assert_eq!(got.last().unwrap().timestamp_ms, 7_000 + per_codec as i64 - 1);

    // FetchMany in decoded form: the same records, from offset 0.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::FetchManyRequest {
        add: vec![pb::FetchPosition { topic: topic.into(), partition: 0, offset: 0, tag: 9 }],
        stop_at_end: true,
        format: pb::FetchFormat::Records as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    drop(tx);
    let mut stream =
        log.fetch_many(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut many = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        assert!(m.error.is_none(), "{m:?}");
        assert_eq!(m.tag, 9);
        many.extend(m.records);
    }
    assert_eq!(many.len(), total);
    assert_eq!(&many[3..], &got[..]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stored_batch_that_does_not_decode_is_an_error_naming_it_and_the_broker_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let topic = "damaged";
    let configs = common::configs(&[("segment.bytes", "1024")]);
    client.admin().create_topic(topic, 1, 0, configs).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..20 {
        let (key, value, _) = record("none", i);
        producer.send(ProducerRecord::new(topic, value).key(key).partition(0)).await.unwrap();
        producer.flush().await.unwrap();
    }
    server.shutdown().await.unwrap();

    // Damage a byte of a value in the second batch of the first segment (inside its CRC).
    let files = common::segment_files(&dir.path().join(format!("{topic}-0")));
    let first = files.iter().find(|f| f.to_string_lossy().ends_with("00000000000000000000.log"));
    let path = first.expect("the first segment");
    let mut bytes = std::fs::read(path).unwrap();
    let first_len = 12 + i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let second_base = i64::from_be_bytes(bytes[first_len..first_len + 8].try_into().unwrap());
    let at = first_len + 100;
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();

    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let status = fetch_decoded(&mut log, topic, 0, 0).await.unwrap_err();
    let message = status.message();
    assert!(
        message.contains(&format!("{topic}-0"))
            && message.contains(&format!("offset {second_base}")),
        "{status:?}"
    );
    // The broker serves on: past the damaged batch, and new records.
    let after = fetch_decoded(&mut log, topic, second_base + 1, 0).await.unwrap();
    let read: usize = after.iter().map(|m| m.records.len()).sum();
    assert!(read > 0 && read < 20, "{read} records after the damaged batch");
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let delivery = producer.send(ProducerRecord::new(topic, "more").key("k").partition(0)).await;
    assert_eq!(delivery.unwrap().await.unwrap().offset, 20);
    server.shutdown().await.unwrap();
}

/// A tiered topic whose oldest records are only in the bucket (moto on 127.0.0.1): a
/// decoded fetch from offset 0 reads them from there, the same records the raw form's
/// batches hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoded_fetch_reads_a_tiered_topic_from_the_bucket_like_the_raw_form() {
    let target = tier_target::Target::s3("decoded");
    let dir = tempfile::tempdir().unwrap();
    let config = target.config();
    let args = target.args(&config, dir.path());
    let broker = common::BrokerProcess::start_with(dir.path(), &tier_target::strs(&args));
    let client = broker.client();
    let topic = "tiered";
    let configs = common::configs(&[
        ("remote.storage.enable", "true"),
        ("segment.bytes", "65536"),
        ("local.retention.bytes", "131072"),
    ]);
    client.admin().create_topic(topic, 1, 1, configs).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let n = 3_000;
    for i in 0..n {
        let (key, value, header) = record("lz4", i);
        let r = ProducerRecord::new(topic, value).key(key).header(header, "v").partition(0);
        producer.send(r).await.unwrap();
    }
    producer.flush().await.unwrap();
    common::wait_until(std::time::Duration::from_secs(60), "offset 0 only in the bucket", || {
        let client = client.clone();
        async move {
            let p = client.admin().describe_topic(topic).await.unwrap().partitions[0].clone();
            p.local_log_start_offset > 0 && p.remote_log_start_offset == 0
        }
    })
    .await;
    let mut log = client.log_rpc_any().unwrap();
    let decoded: Vec<pb::FetchedRecord> = fetch_decoded(&mut log, topic, 0, 0)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|m| m.records)
        .collect();
    let raw = common::read_all(&client, topic).await.remove(&0).unwrap();
    assert_eq!(decoded.len(), n);
    assert_eq!(raw.len(), n);
    for (d, r) in decoded.iter().zip(&raw) {
        assert_eq!((d.offset, &d.key, &d.value), (r.offset, &r.key, &r.value));
        assert_eq!(d.timestamp_ms, r.timestamp_ms);
    }
    for (i, d) in decoded.iter().enumerate() {
        let (key, value, header) = record("lz4", i);
        assert_eq!(d.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(d.value.as_deref(), Some(value.as_slice()));
        assert_eq!(d.headers[0].key, header);
    }
}

/// Plain records the broker compresses with each codec: stored with that codec, and read
/// back decoded as produced.
#[tokio::test]
async fn the_broker_compresses_plain_records_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let codecs = [
        pb::Compression::None,
        pb::Compression::Gzip,
        pb::Compression::Snappy,
        pb::Compression::Lz4,
        pb::Compression::Zstd,
    ];
    for codec in codecs {
        let topic = format!("plain-{}", codec as i32);
        client.admin().create_topic(&topic, 1, 0, BTreeMap::new()).await.unwrap();
        let records: Vec<pb::Record> = (0..50)
            .map(|i| pb::Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; 300])),
                ..Default::default()
            })
            .collect();
        let payload = pb::Records { records: records.clone(), compression: codec as i32 };
        log.produce(pb::ProduceRequest {
            topic: topic.clone(),
            payload: Some(pb::produce_request::Payload::Records(payload)),
            ..Default::default()
        })
        .await
        .unwrap();
        let stored = stored_codec(&mut log, &topic, 0).await;
        assert_eq!(stored, codec as i32, "{codec:?} in the attributes");
        let back: Vec<_> = fetch_decoded(&mut log, &topic, 0, 0)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|m| m.records)
            .collect();
        let values: Vec<_> = back.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            records.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            "{codec:?}"
        );
    }
    server.shutdown().await.unwrap();
}

/// An unknown fetch format or compression codec is refused, naming the value.
#[tokio::test]
async fn unknown_formats_and_codecs_are_refused_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("t", 1, 0, BTreeMap::new()).await.unwrap();
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let req = pb::FetchRequest { topic: "t".into(), format: 7, ..Default::default() };
    let status = log.fetch(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("invalid fetch format 7"), "{status:?}");
    let records = pb::Records { records: vec![pb::Record::default()], compression: 9 };
    let req = pb::ProduceRequest {
        topic: "t".into(),
        payload: Some(pb::produce_request::Payload::Records(records)),
        ..Default::default()
    };
    let status = log.produce(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("invalid compression value 9"), "{status:?}");
    server.shutdown().await.unwrap();
}
