//! Transactions, as far as they are served: markers written by a coordinator's request
//! (`Replica.WriteTxnMarker`) land in the log as control batches, are replicated, and are
//! never delivered to consumers as records.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use shale::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt};
use shale::proto::pb;

/// A commit marker between records: consumers read the records around it, in order, and
/// never the marker; a marker from an older coordinator epoch is refused and not written.
#[tokio::test]
async fn a_marker_is_stored_but_never_delivered_as_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("txn-markers", 1, 0, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let send = |v: &'static str| ProducerRecord::new("txn-markers", v).partition(0);
    for v in ["a", "b", "c"] {
        producer.send(send(v)).await.unwrap().await.unwrap();
    }
    let addr = format!("http://{}", server.addr());
    let mut replica = pb::replica_client::ReplicaClient::connect(addr).await.unwrap();
    let marker = |coordinator_epoch| pb::WriteTxnMarkerRequest {
        topic: "txn-markers".into(),
        partition: 0,
        producer_id: 42,
        producer_epoch: 1,
        commit: true,
        coordinator_epoch,
        tv2: true,
    };
    let written = replica.write_txn_marker(marker(5)).await.unwrap().into_inner();
    assert_eq!(written.offset, 3, "after the three records");
    let stale = replica.write_txn_marker(marker(4)).await.unwrap_err();
    assert!(stale.message().contains("coordinator epoch 4"), "{stale:?}");
    for v in ["d", "e"] {
        producer.send(send(v)).await.unwrap().await.unwrap();
    }
    let config = ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign("txn-markers", 0, StartAt::Earliest).await.unwrap();
    let mut got = Vec::new();
    while let Some(records) = consumer.poll().await.unwrap() {
        got.extend(records.into_iter().map(|r| (r.offset, r.value.unwrap_or_default())));
    }
    let want: Vec<(i64, bytes::Bytes)> =
        [(0, "a"), (1, "b"), (2, "c"), (4, "d"), (5, "e")].map(|(o, v)| (o, v.into())).to_vec();
    assert_eq!(got, want, "the marker at 3 is not a record");
}

/// The broker's transaction coordinator end to end on one broker: an id's producer, a
/// transaction over two partitions, its commit stored, its markers written at the
/// partitions' leader with the bumped epoch, and the transaction completed.
#[tokio::test]
async fn a_committed_transaction_gets_a_marker_on_each_partition() {
    use shale_broker::txn::state::EndAsk;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("txn-out", 2, 0, BTreeMap::new()).await.unwrap();
    let txn = server.broker().txn().unwrap().clone();
    let (pid, epoch) = txn.init_producer_id("app", 60_000, None).await.unwrap();
    assert_eq!(epoch, 0);
    let parts = [("txn-out".to_string(), 0), ("txn-out".to_string(), 1)];
    txn.add("app", (pid, epoch), &parts, &[], true).await.unwrap();
    let ask = EndAsk { producer_id: pid, epoch, commit: true, tv2: true, now_ms: 0 };
    assert_eq!(txn.end("app", ask).await.unwrap(), (pid, 1));
    // Each partition's log ends with the marker: a control batch of the producer at epoch 1.
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();
    for p in 0..2 {
        let mut last = None;
        for _ in 0..500 {
            let req = pb::FetchRequest {
                topic: "txn-out".into(),
                partition: p,
                offset: 0,
                stop_at_end: true,
                ..Default::default()
            };
            let mut stream = log.fetch(req).await.unwrap().into_inner();
            let mut bytes = Vec::new();
            while let Some(msg) = stream.message().await.unwrap() {
                bytes.extend_from_slice(&msg.batches);
            }
            last = shale::record::BatchFrames::new(&bytes, usize::MAX)
                .flatten()
                .last()
                .map(|(h, _)| (h.is_control(), h.producer_id, h.producer_epoch));
            if last.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(last, Some((true, pid, 1)), "partition {p}'s marker within 10 s");
    }
    // Once complete, the producer's retry of its commit is answered (before: retry later).
    let mut answer = None;
    for _ in 0..500 {
        answer = Some(txn.end("app", ask).await);
        if answer.as_ref().is_some_and(Result::is_ok) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(answer.unwrap().unwrap(), (pid, 1), "completed within 10 s");
}

/// A transactional batch written through the broker's produce path: the coordinator adds
/// the partition (transactions v2) before the batch opens the transaction, the last stable
/// offset stays at its first offset until the commit's marker, and afterwards a batch of
/// the old epoch (a zombie's) is refused. A v1 producer's batch for a partition never added
/// is refused.
#[tokio::test]
async fn a_transactional_produce_holds_the_last_stable_offset_until_its_commit() {
    use shale::api::{Payload, TxnProduce};
    use shale_broker::txn::state::EndAsk;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(common::settings(dir.path())).await;
    let client = common::client(&server);
    client.admin().create_topic("txn-e2e", 1, 0, BTreeMap::new()).await.unwrap();
    let broker = server.broker().clone();
    let txn = broker.txn().unwrap().clone();
    let (pid, epoch) = txn.init_producer_id("e2e", 60_000, None).await.unwrap();
    let batch = |epoch: i16, seq: i32| {
        let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None)
            .with_producer(pid, epoch, seq)
            .transactional();
        for v in ["t1", "t2"] {
            b.push(shale::record::Record {
                key: None,
                value: Some(bytes::Bytes::from(v)),
                headers: vec![],
                timestamp_ms: 1,
            });
        }
        Payload::Batches(b.build())
    };
    let acks = shale::acks::Acks::All;
    let v1 = TxnProduce { transactional_id: "e2e".into(), tv2: false };
    let e = broker.append_txn("txn-e2e", 0, batch(epoch, 0), acks, Some(&v1)).await.err().unwrap();
    assert_eq!(e.reason, shale::error::Reason::InvalidTxnState, "v1, never added: {e}");
    let v2 = TxnProduce { transactional_id: "e2e".into(), tv2: true };
    let ack = broker.append_txn("txn-e2e", 0, batch(epoch, 0), acks, Some(&v2)).await.unwrap();
    assert_eq!(ack.await.unwrap().base_offset, 0);
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let plain = producer.send(ProducerRecord::new("txn-e2e", "p").partition(0)).await.unwrap();
    assert_eq!(plain.await.unwrap().offset, 2);
    let partition = broker.partition("txn-e2e", 0).unwrap();
    assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (3, 0));
    let ask = EndAsk { producer_id: pid, epoch, commit: true, tv2: true, now_ms: 0 };
    txn.end("e2e", ask).await.unwrap();
    let mut lso = 0;
    for _ in 0..500 {
        lso = partition.last_stable_offset();
        if lso == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lso, 4, "past the commit marker at 3 within 10 s");
    let zombie = broker.append_txn("txn-e2e", 0, batch(epoch, 2), acks, Some(&v2)).await;
    let e = zombie.err().expect("the old epoch is refused");
    assert!(
        matches!(
            e.reason,
            shale::error::Reason::ProducerFenced | shale::error::Reason::InvalidProducerEpoch
        ),
        "{e}"
    );
    assert_eq!(partition.log().log_end_offset(), 4, "nothing written for the zombie");
}

/// `/metrics` shows the coordinator's open transactions, how old the oldest is, and the
/// transactions it decided by outcome and cause.
#[tokio::test]
async fn metrics_show_open_and_ended_transactions() {
    use shale_broker::txn::state::EndAsk;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.broker.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start(settings).await;
    let admin = server.admin_addr().unwrap().to_string();
    let client = common::client(&server);
    client.admin().create_topic("txn-m", 1, 0, BTreeMap::new()).await.unwrap();
    let txn = server.broker().txn().unwrap().clone();
    let parts = [("txn-m".to_string(), 0)];
    let (a, ea) = txn.init_producer_id("m-a", 60_000, None).await.unwrap();
    txn.add("m-a", (a, ea), &parts, &[], true).await.unwrap();
    let (b, eb) = txn.init_producer_id("m-b", 60_000, None).await.unwrap();
    txn.add("m-b", (b, eb), &parts, &[], true).await.unwrap();
    let body = common::http_get(&admin, "/metrics").await.1;
    assert!(body.contains("shale_transactions_open 2\n"), "{body}");
    assert!(body.contains("shale_transaction_oldest_open_seconds "), "{body}");
    let ask = EndAsk { producer_id: a, epoch: ea, commit: true, tv2: true, now_ms: 0 };
    txn.end("m-a", ask).await.unwrap();
    // A second instance of m-b fences the first: its transaction is aborted.
    let fenced = txn.init_producer_id("m-b", 60_000, None).await.unwrap_err();
    assert_eq!(fenced.reason, shale::error::Reason::ConcurrentTransactions);
    let body = common::http_get(&admin, "/metrics").await.1;
    assert!(body.contains("shale_transactions_open 0\n"), "{body}");
    let commit = "shale_transactions_ended_total{outcome=\"commit\",cause=\"client\"} 1";
    let fence = "shale_transactions_ended_total{outcome=\"abort\",cause=\"fenced\"} 1";
    assert!(body.contains(commit) && body.contains(fence), "{body}");
}
