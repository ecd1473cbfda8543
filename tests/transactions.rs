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
