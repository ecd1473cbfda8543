//! End-to-end produce and consume against an in-process broker: routing, batching,
//! persistence across restarts, offsets lookups, long-polling, topic lifecycle.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::configs;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use shale::acks::Acks;
use shale::client::partitioner::partition_for_key;
use shale::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use shale::proto::pb;

#[tokio::test]
async fn keyed_records_land_on_kafka_partitions_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("orders", 4, 0, BTreeMap::new()).await.unwrap();

    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..2000u32 {
        let key = format!("customer-{}", i % 37);
        let rec = ProducerRecord::new("orders", format!("{key}:{i}")).key(key);
        deliveries.push(producer.send(rec).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut acked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let md = d.await.unwrap();
        let key = format!("customer-{}", i % 37);
        assert_eq!(md.partition, partition_for_key(key.as_bytes(), 4), "key {key}");
        acked.entry(md.partition).or_default().push(format!("{key}:{i}"));
    }
    let read = common::read_all(&client, "orders").await;
    let report = common::check(&acked, &read);
    assert_eq!(report.acknowledged, 2000);
    assert_eq!(
        (report.lost, report.duplicated, report.reordered, report.offset_errors),
        (0, 0, 0, 0)
    );
    server.shutdown().await.unwrap();
}

/// Before: a client kept a topic's partition count for as long as it lived, so a producer
/// never used partitions added after its first record (until some error refreshed it).
/// Now the count is read again once it is older than the client's metadata max age, as
/// Kafka's `metadata.max.age.ms`.
#[tokio::test]
async fn a_producer_takes_up_partitions_added_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let addr = server.addr().to_string();
    let client = shale::client::Client::builder(&addr)
        .metadata_max_age(Duration::from_millis(100))
        .build()
        .unwrap();
    client.admin().create_topic("growing", 1, 0, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let send = |i: u32| {
        let producer = producer.clone();
        async move {
            let rec = ProducerRecord::new("growing", format!("v{i}")).key(format!("k{i}"));
            let delivery = producer.send(rec).await.unwrap();
            producer.flush().await.unwrap();
            delivery.await.unwrap().partition
        }
    };
    assert_eq!(send(0).await, 0);
    // Another client adds the partitions: the producer's own client is not told.
    common::client(&server).admin().create_partitions("growing", 3).await.unwrap();
    let mut i = 1;
    common::wait_until(Duration::from_secs(20), "a record in a new partition", || {
        i += 1;
        let sent = send(i);
        async move { sent.await > 0 }
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn topics_configs_and_data_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client
        .admin()
        .create_topic(
            "events",
            2,
            0,
            configs(&[("retention.ms", "3600000"), ("segment.bytes", "65536")]),
        )
        .await
        .unwrap();
    let producer =
        Producer::new(client.clone(), ProducerConfig { acks: Acks::Leader, ..Default::default() });
    for i in 0..3000 {
        let value = format!("v{i:06}-{}", "x".repeat(100));
        producer.send(ProducerRecord::new("events", value).partition(i % 2)).await.unwrap();
    }
    producer.flush().await.unwrap();
    let before = common::read_all(&client, "events").await;
    drop(producer);
    server.shutdown().await.unwrap();

    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let d = client.admin().describe_topic("events").await.unwrap();
    let topic = d.topic.unwrap();
    assert_eq!(topic.partitions, 2);
    assert_eq!(topic.configs.get("retention.ms").map(String::as_str), Some("3600000"));
    assert!(
        d.partitions.iter().all(|p| p.segments > 1),
        "65536-byte segments rolled: {:?}",
        d.partitions
    );
    let after = common::read_all(&client, "events").await;
    assert_eq!(before, after);
    assert_eq!(after.values().map(Vec::len).sum::<usize>(), 3000);

    // Appends continue at the next offset.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let md = producer
        .send(ProducerRecord::new("events", "next").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.offset, 1500);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn plain_records_and_list_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("plain", 1, 0, BTreeMap::new()).await.unwrap();
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let mut last = 0;
    for (i, ts) in [1_000i64, 2_000, 3_000].iter().enumerate() {
        let resp = log
            .produce(pb::ProduceRequest {
                topic: "plain".into(),
                partition: 0,
                acks: pb::Acks::All as i32,
                payload: Some(pb::produce_request::Payload::Records(pb::Records {
                    records: vec![
                        pb::Record {
                            key: None,
                            value: Some(Bytes::from(format!("a{i}"))),
                            headers: vec![],
                            timestamp_ms: *ts,
                        },
                        pb::Record {
                            key: Some(Bytes::from("k")),
                            value: Some(Bytes::from(format!("b{i}"))),
                            headers: vec![pb::Header {
                                key: "h".into(),
                                value: Some(Bytes::from("x")),
                            }],
                            timestamp_ms: *ts + 10,
                        },
                    ],
                    ..Default::default()
                })),
                correlation_id: 7,
                timeout_ms: 0,
                transactional_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.base_offset, (i * 2) as i64);
        assert_eq!(resp.last_offset, (i * 2 + 1) as i64);
        assert_eq!(resp.correlation_id, 7);
        last = resp.last_offset;
    }
    use pb::list_offsets_request::Spec;
    let admin = client.admin();
    assert_eq!(admin.list_offsets("plain", 0, Spec::Earliest(true)).await.unwrap().offset, 0);
    assert_eq!(admin.list_offsets("plain", 0, Spec::Latest(true)).await.unwrap().offset, last + 1);
    let by_ts = admin.list_offsets("plain", 0, Spec::TimestampMs(1_500)).await.unwrap();
    assert_eq!((by_ts.offset, by_ts.timestamp_ms), (2, 2_000));
    // Inside a batch: the first record at or after the time, not the batch's first.
    let by_ts = admin.list_offsets("plain", 0, Spec::TimestampMs(2_005)).await.unwrap();
    assert_eq!((by_ts.offset, by_ts.timestamp_ms), (3, 2_010));
    assert_eq!(admin.list_offsets("plain", 0, Spec::TimestampMs(9_999)).await.unwrap().offset, -1);

    let read = common::read_all(&client, "plain").await;
    let values: Vec<String> = read[&0]
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["a0", "b0", "a1", "b1", "a2", "b2"]);
    assert_eq!(read[&0][1].headers[0].key, "h");
    assert_eq!(read[&0][1].timestamp_ms, 1_010);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_long_polls_until_new_records_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("tail", 1, 0, BTreeMap::new()).await.unwrap();
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    assert_eq!(consumer.assign("tail", 0, StartAt::Latest).await.unwrap(), 0);
    let poll = tokio::spawn(async move { consumer.poll().await });
    // The consumer is parked at the end; a record produced now must wake it.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer.send(ProducerRecord::new("tail", "wake")).await.unwrap().await.unwrap();
    let records = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("long-poll did not deliver the new record within 10s")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(records[0].value.as_deref(), Some(&b"wake"[..]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn compressed_batches_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        client.admin().create_topic(codec, 1, 0, BTreeMap::new()).await.unwrap();
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                compression: shale::record::Compression::parse(codec).unwrap(),
                ..Default::default()
            },
        );
        let mut acked = BTreeMap::new();
        for i in 0..500 {
            let v = format!("{codec}-{i}-{}", "x".repeat(i % 50));
            producer.send(ProducerRecord::new(codec, v.clone())).await.unwrap();
            acked.entry(0u32).or_insert_with(Vec::new).push(v);
        }
        producer.flush().await.unwrap();
        let report = common::check(&acked, &common::read_all(&client, codec).await);
        assert_eq!((report.lost, report.duplicated, report.reordered), (0, 0, 0), "{codec}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn alter_delete_and_recreate_topics() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let admin = client.admin();
    admin.create_topic("t", 1, 0, BTreeMap::new()).await.unwrap();
    let configs = admin
        .alter_topic_config(
            "t",
            configs(&[("retention.ms", "1000"), ("flush.policy", "interval")]),
            vec![],
        )
        .await
        .unwrap();
    let get = |name: &str| configs.iter().find(|c| c.name == name).unwrap().clone();
    assert_eq!(
        (get("retention.ms").value.as_str(), get("retention.ms").source.as_str()),
        ("1000", "topic")
    );
    assert_eq!(get("flush.policy").value, "interval");
    let configs =
        admin.alter_topic_config("t", BTreeMap::new(), vec!["retention.ms".into()]).await.unwrap();
    assert_eq!(configs.iter().find(|c| c.name == "retention.ms").unwrap().source, "default");

    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer.send(ProducerRecord::new("t", "old")).await.unwrap().await.unwrap();
    admin.delete_topic("t").await.unwrap();
    assert!(admin.list_topics().await.unwrap().is_empty());
    admin.create_topic("t", 1, 0, BTreeMap::new()).await.unwrap();
    let read = common::read_all(&client, "t").await;
    assert!(read[&0].is_empty(), "a re-created topic starts empty: {:?}", read[&0]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn retention_by_bytes_advances_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.log.retention_check_interval_ms = 50;
    let server = common::start(settings).await;
    let client = common::client(&server);
    client
        .admin()
        .create_topic(
            "short",
            1,
            0,
            configs(&[("segment.bytes", "2048"), ("retention.bytes", "8192")]),
        )
        .await
        .unwrap();
    let producer = Producer::new(
        client.clone(),
        ProducerConfig { linger: Duration::ZERO, ..Default::default() },
    );
    for i in 0..200 {
        producer
            .send(ProducerRecord::new("short", format!("{i:04}-{}", "r".repeat(200))))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let admin = client.admin();
    common::wait_until(Duration::from_secs(20), "retention to delete old segments", || {
        let admin = admin.clone();
        async move {
            let d = admin.describe_topic("short").await.unwrap();
            let p = &d.partitions[0];
            p.log_start_offset > 0 && p.size_bytes <= 8192 + 2048 + 512
        }
    })
    .await;
    // The wait can pass before retention's last pass (a pass during the produce loop may
    // already meet it), so a read from the earliest offset may still be overtaken once.
    let read =
        common::wait_for(Duration::from_secs(20), "a read retention does not overtake", || {
            let client = client.clone();
            async move { common::try_read_all(&client, "short").await.map_err(|e| e.to_string()) }
        })
        .await;
    let first = read[&0].first().unwrap().offset;
    assert!(first > 0, "oldest records are gone");
    assert_eq!(read[&0].last().unwrap().offset, 199, "the newest records stay");
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let req = pb::FetchRequest {
        topic: "short".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        max_wait_ms: 0,
        stop_at_end: true,
        ..Default::default()
    };
    let status = log.fetch(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn interval_flush_policy_shows_data_at_once_and_fsyncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client
        .admin()
        .create_topic("lazy", 1, 0, configs(&[("flush.policy", "interval"), ("flush.ms", "100")]))
        .await
        .unwrap();
    let producer =
        Producer::new(client.clone(), ProducerConfig { acks: Acks::Leader, ..Default::default() });
    let md = producer.send(ProducerRecord::new("lazy", "x")).await.unwrap().await.unwrap();
    assert_eq!(md.offset, 0);
    let partition = server.broker().partition("lazy", 0).unwrap();
    // Visible to consumers at once (the topic opted into interval flushing) ...
    assert_eq!(partition.high_watermark(), 1);
    // ... and made durable by the background flusher within a few flush periods.
    common::wait_until(Duration::from_secs(10), "the interval flusher to fsync", || {
        let durable = partition.log().durable_offset();
        async move { durable == 1 }
    })
    .await;
    server.shutdown().await.unwrap();
}

/// Like Kafka's `max.block.ms`: `send` waits for the topic's metadata while no broker
/// answers (a restart, a power cut of the whole cluster) instead of failing at once.
#[tokio::test]
async fn send_waits_for_metadata_while_no_broker_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.broker.listen = format!("127.0.0.1:{}", common::free_port()).parse().unwrap();
    let server = common::start(settings.clone()).await;
    let addr = server.addr().to_string();
    common::client(&server).admin().create_topic("blocked", 1, 0, BTreeMap::new()).await.unwrap();
    server.close().await.unwrap();

    // A fresh client knows nothing, and nothing listens at its only address.
    let client = shale::client::Client::new(&addr).unwrap();
    let producer = Producer::new(client, ProducerConfig::default());
    let send = tokio::spawn(async move {
        let delivery = producer.send(ProducerRecord::new("blocked", "v")).await?;
        delivery.await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!send.is_finished(), "send gave up while the broker was away: {:?}", send.await);
    let server = common::start(settings).await;
    let md = tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .expect("send did not finish within 30 s of the broker's return")
        .unwrap()
        .expect("send failed after the broker came back");
    assert_eq!((md.partition, md.offset), (0, 0));
    server.close().await.unwrap();
}

/// A consumer of many partitions reads them all over one FetchMany stream per broker, every
/// record once and in order; a partition whose read fails leaves alone; a seek drops what
/// the earlier read still had in flight. The same through one Fetch stream per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_reads_many_partitions_and_seeks_drop_the_earlier_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    let partitions = 64u32;
    client.admin().create_topic("many", partitions, 0, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..100 * partitions {
        let rec = ProducerRecord::new("many", format!("{i}")).partition(i % partitions);
        deliveries.push(producer.send(rec).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    for multiplex in [true, false] {
        let config = ConsumerConfig { stop_at_end: true, multiplex, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config);
        for p in 0..partitions {
            consumer.assign("many", p, StartAt::Earliest).await.unwrap();
        }
        // Partition 0 from past its end: it fails alone.
        consumer.seek("many", 0, 10_000);
        let mut next: BTreeMap<u32, i64> = BTreeMap::new();
        let mut failed = Vec::new();
        loop {
            match consumer.poll().await {
                Ok(Some(records)) => {
                    for r in records {
                        let at = next.entry(r.partition).or_insert(0);
                        assert_eq!(r.offset, *at, "partition {}: in order, once", r.partition);
                        *at += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => failed.push(e),
            }
        }
        // The streams opened: one to the one broker, or one per partition still assigned
        // (a partition that failed or ended leaves).
        let expected_streams = if multiplex { 1 } else { 0 };
        assert_eq!(consumer.fetch_streams(), expected_streams, "multiplex {multiplex}");
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].reason, "OFFSET_OUT_OF_RANGE", "{}", failed[0]);
        assert!(!next.contains_key(&0), "partition 0 read nothing");
        assert_eq!(next.len() as u32, partitions - 1, "multiplex {multiplex}");
        assert!(next.values().all(|&n| n == 100), "{next:?}");

        // A seek back while later records are in flight: the next record is the one sought.
        let config = ConsumerConfig { max_bytes: 200, multiplex, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config);
        consumer.assign("many", 1, StartAt::Earliest).await.unwrap();
        let mut read = 0;
        while read < 60 {
            read = consumer.poll().await.unwrap().unwrap().last().unwrap().offset;
        }
        consumer.seek("many", 1, 7);
        let mut expect = 7;
        while expect < 100 {
            for r in consumer.poll().await.unwrap().unwrap() {
                assert_eq!(r.offset, expect, "after the seek (multiplex {multiplex})");
                expect += 1;
            }
        }
    }
    server.shutdown().await.unwrap();
}

/// ProduceMany: one message carries requests of several partitions; it is answered by one
/// message, answer i for request i, a failed request not failing the others, and one
/// partition's requests append in the order sent, within a message and across messages.
#[tokio::test]
async fn produce_many_answers_each_request_in_order_and_fails_only_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("many", 2, 0, BTreeMap::new()).await.unwrap();
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    let req = |p: u32, v: &str, id: u64| pb::ProduceRequest {
        correlation_id: id,
        ..common::produce_req("many", p, v)
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = log
        .produce_many(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = vec![req(0, "a", 1), req(1, "b", 2), req(9, "x", 3), req(0, "c", 4)];
    tx.send(pb::ProduceManyRequest { requests: first }).await.unwrap();
    tx.send(pb::ProduceManyRequest { requests: vec![req(0, "d", 5), req(1, "e", 6)] })
        .await
        .unwrap();
    let got = |m: &pb::ProduceManyResponse| -> Vec<(u64, i64, Option<String>)> {
        m.responses
            .iter()
            .map(|r| {
                let reason = r.error.as_ref().map(|e| e.reason.clone());
                (r.correlation_id, r.base_offset, reason)
            })
            .collect()
    };
    let m1 = answers.message().await.unwrap().expect("an answer to the first message");
    let out_of_range = Some("UNKNOWN_PARTITION".to_string());
    assert_eq!(got(&m1), vec![(1, 0, None), (2, 0, None), (3, -1, out_of_range), (4, 1, None)]);
    let m2 = answers.message().await.unwrap().expect("an answer to the second message");
    assert_eq!(got(&m2), vec![(5, 2, None), (6, 1, None)]);
    drop(tx);
    assert!(answers.message().await.unwrap().is_none(), "the stream ends after the client's");
    let read = common::read_all(&client, "many").await;
    let values = |p: u32| -> Vec<String> {
        read[&p].iter().map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).into()).collect()
    };
    assert_eq!(values(0), ["a", "c", "d"]);
    assert_eq!(values(1), ["b", "e"]);
    server.shutdown().await.unwrap();
}

/// A broker whose metadata is behind the cluster's (restarted a moment ago, or not yet past
/// the topic's creation) answers UNKNOWN_TOPIC for a topic that exists. A call at the
/// partition's leader tries again within its leader wait, as sends and reads do, instead of
/// failing at once: the elastic test's group member once gave up its offset reset so.
#[tokio::test]
async fn a_call_at_the_leader_retries_unknown_topic_from_a_broker_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("behind", 1, 0, BTreeMap::new()).await.unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let answer = client
        .on_leader("behind", 0, |mut log| {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                if first {
                    let e = shale::error::Error::new(
                        shale::error::ErrorKind::NotFound,
                        shale::error::Reason::UnknownTopic,
                        "unknown topic \"behind\" (broker 7's metadata)",
                    );
                    return Err(shale::proto::status::to_status(&e));
                }
                log.produce(common::produce_req("behind", 0, "v")).await
            }
        })
        .await;
    assert!(answer.is_ok(), "gave up on a broker whose metadata is behind: {answer:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "one retry");
}
