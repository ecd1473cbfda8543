//! A produce load for fault tests: idempotent acks=all producers sending unique values
//! until stopped, every send and its outcome (offset, leader epoch) in a
//! [`ProduceLog`](crate::checker::ProduceLog) for the checker.
//!
//! Include it next to `mod common;` and `mod checker;`:
//! `#[path = "common/load.rs"] mod load;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use crate::checker::ProduceLog;
use shale::acks::Acks;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};

pub(crate) type Stop = Arc<AtomicBool>;

/// Concurrent producers in a load: acks from different producers interleave, so two
/// leaders acknowledging at once would show in the checker's epoch check.
pub(crate) const PRODUCERS: usize = 3;

/// A running load; `errors` counts deliveries that failed for good (out of retries or
/// refused as not retriable): their records may or may not have been written.
pub(crate) struct Load {
    pub task: tokio::task::JoinHandle<u64>,
    pub log: Arc<ProduceLog>,
    pub stop: Stop,
    pub errors: Arc<AtomicUsize>,
    /// The producers go round partitions `0..partitions`; raise it to spread onto more.
    pub partitions: Arc<AtomicU32>,
}

impl Load {
    /// Stops the producers once they have flushed; returns how many records they sent.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// A load on partition 0 of `topic`.
pub(crate) fn start_load(client: Client, topic: &str, config: ProducerConfig) -> Load {
    start_load_on(client, topic, 1, config)
}

/// A load over partitions `0..partitions` of `topic`, each producer going round them.
pub(crate) fn start_load_on(
    client: Client,
    topic: &str,
    partitions: u32,
    config: ProducerConfig,
) -> Load {
    let log = Arc::new(ProduceLog::new());
    let stop: Stop = Default::default();
    let errors: Arc<AtomicUsize> = Default::default();
    let spread = Arc::new(AtomicU32::new(partitions));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|k| {
            let (client, log, stop, topic) =
                (client.clone(), log.clone(), stop.clone(), topic.to_string());
            let (config, errors, spread) = (config.clone(), errors.clone(), spread.clone());
            tokio::spawn(async move {
                let producer = Producer::new(
                    client,
                    ProducerConfig { acks: Acks::All, linger: Duration::from_millis(2), ..config },
                );
                let (tx, mut rx) = tokio::sync::mpsc::channel(20_000);
                let waiter = {
                    let log = log.clone();
                    tokio::spawn(async move {
                        while let Some((op, d)) = rx.recv().await {
                            let d: shale::client::producer::Delivery = d;
                            match d.await {
                                Ok(md) => log.ok_at_epoch(op, md.offset, md.leader_epoch),
                                // Out of retries: it may still have been written.
                                Err(e) => {
                                    eprintln!("delivery failed: {e}");
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    log.unknown(op)
                                }
                            }
                        }
                    })
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v = format!("p{k}-{i:08}");
                    let partition = (i % u64::from(spread.load(Ordering::Relaxed))) as u32;
                    let op = log.invoke(partition, v.clone());
                    let d = producer
                        .send(ProducerRecord::new(topic.clone(), v).partition(partition))
                        .await
                        .unwrap();
                    tx.send((op, d)).await.unwrap();
                    i += 1;
                    if i.is_multiple_of(50) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                producer.flush().await.unwrap();
                drop(tx);
                waiter.await.unwrap();
                i
            })
        })
        .collect();
    let task = tokio::spawn(async move {
        let mut sent = 0;
        for p in producers {
            sent += p.await.unwrap();
        }
        sent
    });
    Load { task, log, stop, errors, partitions: spread }
}

/// Waits (bounded) until `more` records beyond those acknowledged now are acknowledged.
pub(crate) async fn wait_for_acks(load: &Load, more: usize) {
    let before = load.log.acknowledged();
    let timeout = Duration::from_secs(120);
    let deadline = std::time::Instant::now() + timeout;
    while load.log.acknowledged() < before + more {
        // A producer that failed ended the load: its panic is above.
        assert!(
            !load.task.is_finished(),
            "the load ended (a producer failed) after {} of {more} more acks",
            load.log.acknowledged() - before
        );
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {more} more acks: {} of them came, and {} \
             deliveries failed for good meanwhile",
            load.log.acknowledged() - before,
            load.errors.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
