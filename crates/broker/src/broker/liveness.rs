//! Fast detection of brokers that are gone. Each broker keeps a `grpc.health.v1.Health/Watch`
//! stream open to every other registered broker. When one breaks, it connects to the peer's
//! address once: *connection refused* means no process listens there any more, so the peer
//! is gone (killed, crashed, shut down), not slow, frozen or cut off (those keep their
//! connection or time out). A gone peer goes into the [`Obituaries`], and the controller
//! moves its leaderships at once instead of after its lease TTL. If it was the controller,
//! its key is removed (a compare-and-delete on the revision that names it), so the next
//! election starts at once; every controller write is fenced by that revision, so this is
//! safe even if the peer were still running.
//!
//! A peer whose watch never opened is never judged.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::Broker;
use shale_meta::controller::ControllerRecord;
use shale_meta::topics::BrokerRecord;
use shale_meta::{Compare, Txn, TxnOp, Versioned};

/// How often the set of watched peers is compared with the registered brokers, at most.
const RECHECK: Duration = Duration::from_secs(1);
/// Bound on connecting to a peer, for the watch and for the probe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause between attempts to open a watch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Starts watching the other brokers.
pub(super) fn start(broker: &Arc<Broker>) {
    broker.life.spawn(run(Arc::downgrade(broker)));
}

async fn run(broker: Weak<Broker>) {
    let mut watched: HashMap<i32, (u64, CancellationToken, JoinHandle<()>)> = HashMap::new();
    loop {
        let Some(b) = broker.upgrade() else { break };
        if b.is_closing() {
            break;
        }
        let peers: Vec<BrokerRecord> = match b.view.cache.read() {
            Ok(c) => {
                c.brokers.values().filter(|r| r.id != b.id && r.incarnation != 0).cloned().collect()
            }
            Err(_) => vec![],
        };
        watched.retain(|id, (incarnation, token, task)| {
            let current = peers.iter().any(|p| p.id == *id && p.incarnation == *incarnation);
            if !current {
                token.cancel();
            }
            current && !task.is_finished()
        });
        for p in peers {
            if !watched.contains_key(&p.id) {
                let incarnation = p.incarnation;
                let id = p.id;
                let token = b.life.child_token();
                let task = b.life.spawn_until(token.clone(), watch(broker.clone(), p));
                watched.insert(id, (incarnation, token, task));
            }
        }
        let mut synced = b.view.synced_tx.subscribe();
        let mut closed = b.closed_signal();
        drop(b);
        tokio::select! {
            _ = synced.changed() => {}
            _ = shale_core::clock::sleep(RECHECK) => {}
            _ = closed.wait_for(|c| *c) => break,
        }
    }
    for (_, (_, token, _)) in watched {
        token.cancel();
    }
}

/// Watches one peer until it is gone (or the task is aborted: deregistered, replaced).
/// Only a peer seen serving is ever judged: a refusal after that means its listener is
/// gone. Right after a connection breaks the dying process may still hold its listening
/// socket for a moment, so a probe that connects is followed by more attempts.
async fn watch(broker: Weak<Broker>, peer: BrokerRecord) {
    let mut backoff = Duration::from_millis(50);
    let mut seen = false;
    loop {
        if let Ok(mut stream) = open(&peer.address).await {
            seen = true;
            backoff = Duration::from_millis(50);
            tracing::debug!(broker = peer.id, incarnation = peer.incarnation, "watching a peer");
            while let Ok(Some(_)) = stream.message().await {}
            tracing::debug!(
                broker = peer.id,
                incarnation = peer.incarnation,
                "a peer's watch ended"
            );
        }
        if seen && refuses(&peer.address).await {
            break;
        }
        shale_core::clock::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let Some(b) = broker.upgrade() else { return };
    if b.is_closing() {
        return;
    }
    tracing::warn!(
        broker = peer.id,
        address = %peer.address,
        "a peer's connection broke and its address refuses connections: it is gone, its \
         leaderships move now"
    );
    b.view.obituaries.record(peer.id, peer.incarnation);
    depose(&b, peer.id).await;
}

async fn open(
    address: &str,
) -> Result<tonic::Streaming<tonic_health::pb::HealthCheckResponse>, ()> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|_| ())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|_| ())?;
    let request = HealthCheckRequest { service: String::new() };
    let response = HealthClient::new(channel).watch(request).await.map_err(|_| ())?;
    Ok(response.into_inner())
}

/// Whether a TCP connect to `address` is refused (nothing listens there).
async fn refuses(address: &str) -> bool {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Removes the controller key if it names `gone`, so that the next election starts now.
async fn depose(b: &Broker, gone: i32) {
    let store = b.view.topics.store();
    let key = b.view.topics.keys().controller();
    let Ok(Some(kv)) = store.get(&key).await else { return };
    let revision = kv.mod_revision;
    if !Versioned::<ControllerRecord>::decode(kv).is_ok_and(|v| v.value.id == gone) {
        return;
    }
    let txn =
        Txn::new().when(Compare::mod_revision(key.clone(), revision)).and_then(TxnOp::delete(key));
    if let Ok(outcome) = store.txn(txn).await
        && outcome.succeeded
    {
        tracing::warn!(controller = gone, "the controller is gone; a new election starts");
    }
}
