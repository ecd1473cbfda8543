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

#[derive(Debug, Template)]
#[template(path = "overview.html")]
struct Overview {
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
        chrome: Chrome::new(&st, &session, "overview"),
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
