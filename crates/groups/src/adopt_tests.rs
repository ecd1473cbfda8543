//! A restarted coordinator times out the members that never come back, of either protocol,
//! though nobody heartbeats to their groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::super::Coordinator;
use super::super::classic::{JoinRequest, SyncRequest};
use crate::Heartbeat;
use crate::test_host::{Host, coordinator};
use shale_core::clock;
use shale_meta::{EmbeddedStore, MetaStore};

const SESSION_MS: i64 = 10_000;

async fn members(c: &Coordinator, host: &Host, group: &str) -> usize {
    c.describe_group(host, group).await.unwrap().members.len()
}

/// The broker restarts (a new coordinator on the same store) right after `group`'s only
/// member was lost; nobody heartbeats to the group again. Its member must go once its
/// session has passed, and not before.
async fn lost_member_times_out_after_a_restart(
    store: Arc<dyn MetaStore>,
    host: &Host,
    group: &str,
) {
    let restarted = coordinator(&store);
    assert_eq!(members(&restarted, host, group).await, 1, "the member is stored");
    restarted.sweep(host).await;
    host.advance(SESSION_MS - 1_000);
    restarted.sweep(host).await;
    assert_eq!(members(&restarted, host, group).await, 1, "removed before its session passed");
    host.advance(2_000);
    restarted.sweep(host).await;
    assert_eq!(
        members(&restarted, host, group).await,
        0,
        "a member that never heartbeats again stays in the group for ever"
    );
}

#[tokio::test]
async fn a_restarted_coordinator_removes_a_member_that_never_comes_back() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let host = Host::new(&[("orders", 2)]);
    let before = coordinator(&store);
    let join = Heartbeat {
        group: "g".into(),
        member_epoch: 0,
        topics: vec!["orders".into()],
        session_timeout_ms: SESSION_MS as u32,
        ..Default::default()
    };
    before.heartbeat(&host, join, "").await.unwrap();
    lost_member_times_out_after_a_restart(store, &host, "g").await;
}

#[tokio::test]
async fn a_restarted_coordinator_removes_a_classic_member_that_never_comes_back() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let host = Host::new(&[("orders", 2)]);
    let before = coordinator(&store);
    let join = JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "127.0.0.1".into(),
        principal: String::new(),
        session_timeout_ms: SESSION_MS as i32,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
        topics: vec!["orders".into()],
        owned: Default::default(),
    };
    let joined = before.classic().join(&host, "k", join).await.unwrap();
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    let plan = BTreeMap::from([("orders".to_string(), vec![0, 1])]);
    let sync = SyncRequest {
        member_id: joined.member_id.clone(),
        instance_id: None,
        generation: joined.generation,
        assignments: vec![(joined.member_id, Bytes::from_static(b"A"), plan)],
    };
    before.classic().sync(&host, "k", sync).await.unwrap();
    lost_member_times_out_after_a_restart(store, &host, "k").await;
}
