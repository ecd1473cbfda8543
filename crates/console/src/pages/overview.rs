//! `/`: the cluster at a glance: its brokers (liveness, leaderships, bytes), its
//! controller, and the partitions the caller may see that are under-replicated or have no
//! leader.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;

use shale_broker::api::TopicsWanted;

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, bytes, page, time_ms};

/// A broker's row.
#[derive(Debug)]
struct BrokerRow {
    id: i32,
    address: String,
    kafka_address: String,
    rack: String,
    started: String,
    draining: bool,
    controller: bool,
    this: bool,
    /// Replicas, preferred leaderships and bytes, when the caller may describe the cluster.
    load: Option<(u32, u32, String)>,
}

/// A partition that needs attention.
#[derive(Debug)]
struct Trouble {
    topic: String,
    partition: u32,
    leader: i32,
    replicas: String,
    isr: String,
}

/// The serving broker's own health, as shown.
#[derive(Debug)]
struct Health {
    id: i32,
    version: &'static str,
    hosted: usize,
    led: usize,
    local: String,
    disk: String,
    journal: String,
    metadata: Result<(), String>,
    bucket: String,
}

fn health(h: shale_broker::api::BrokerHealth) -> Health {
    let percent = |part: u64, whole: u64| part as f64 * 100.0 / whole.max(1) as f64;
    Health {
        id: h.id,
        version: h.version,
        hosted: h.hosted,
        led: h.led,
        local: bytes(h.local_bytes),
        disk: h.disk.map_or("unknown".to_string(), |(free, total)| {
            format!("{} free of {} ({:.0}% free)", bytes(free), bytes(total), percent(free, total))
        }),
        journal: h.journal.map_or(
            "none (each partition fsyncs its own segments)".to_string(),
            |(used, size)| {
                format!(
                    "{} of {} not yet checkpointed ({:.0}%)",
                    bytes(used),
                    bytes(size),
                    percent(used, size)
                )
            },
        ),
        metadata: h.metadata,
        bucket: h.bucket.map_or("none configured".to_string(), |(requests, errors)| {
            format!("{requests} requests since start, {errors} failed")
        }),
    }
}

#[derive(Debug, Template)]
#[template(path = "overview.html")]
struct Overview {
    /// The serving broker's health, or why it is not shown.
    health: Result<Health, String>,
    chrome: Chrome,
    version: &'static str,
    brokers: Vec<BrokerRow>,
    controller: i32,
    /// Why the brokers' load is not shown (Describe on the cluster refused), if it is not.
    load_refused: Option<String>,
    topics: usize,
    partitions: usize,
    offline: Vec<Trouble>,
    under_replicated: Vec<Trouble>,
}

pub(crate) async fn show(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    let meta = st.api.metadata(&session.who, TopicsWanted::All)?;
    let (load, load_refused) = match st.api.describe_cluster(&session.who).await {
        Ok((_, _, load)) => (Some(load), None),
        Err(e) => (None, Some(e.message)),
    };
    let this = st.api.broker_id();
    let health = st.api.health(&session.who).map(health).map_err(|e| e.message);
    let brokers = meta
        .brokers
        .iter()
        .map(|b| BrokerRow {
            id: b.id,
            address: b.address.clone(),
            kafka_address: b.kafka_address.clone(),
            rack: b.rack.clone(),
            started: time_ms(b.started_ms),
            draining: b.draining,
            controller: b.id == meta.controller_id,
            this: b.id == this,
            load: load.as_ref().map(|l| {
                let l = l.loads.get(&b.id).cloned().unwrap_or_default();
                (l.replicas, l.leaders, bytes(l.bytes))
            }),
        })
        .collect();
    let (mut partitions, mut offline, mut under_replicated) = (0, Vec::new(), Vec::new());
    let topics = meta.topics.iter().flatten().count();
    for (topic, states) in meta.topics.iter().flatten() {
        for (&partition, s) in states {
            partitions += 1;
            let row = || Trouble {
                topic: topic.record.name.clone(),
                partition,
                leader: s.leader,
                replicas: crate::view::ids(&s.replicas),
                isr: crate::view::ids(&s.isr),
            };
            if s.leader < 0 {
                offline.push(row());
            } else if s.isr.len() < s.replicas.len() {
                under_replicated.push(row());
            }
        }
    }
    Ok(page(&Overview {
        chrome: session.chrome(&st, "overview"),
        health,
        version: env!("CARGO_PKG_VERSION"),
        brokers,
        controller: meta.controller_id,
        load_refused,
        topics,
        partitions,
        offline,
        under_replicated,
    }))
}
