//! The online upgrade: a classic group converted when a consumer-protocol member joins,
//! its classic members then assigned by the broker through JoinGroup, SyncGroup and
//! Heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

use crate::classic::{JoinRequest, SyncRequest};
use crate::test_host::{Host, coordinator};
use crate::{Coordinator, GroupProtocol, Heartbeat, KafkaMember};
use shale_core::clock;
use shale_core::error::Reason;
use shale_meta::{EmbeddedStore, MetaStore};

type Tps = BTreeSet<(String, u32)>;

fn join(member: &str, owned: &Tps) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        instance_id: None,
        client_id: "classic".into(),
        client_host: "127.0.0.1".into(),
        principal: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("cooperative-sticky".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
        topics: vec!["orders".into()],
        owned: owned.clone(),
    }
}

fn tps(ps: &[u32]) -> Tps {
    ps.iter().map(|p| ("orders".to_string(), *p)).collect()
}

/// A stable classic group of one member owning every partition of `orders`; its id.
async fn classic_group(c: &Coordinator, h: &Host) -> String {
    let joined = c.classic_join(h, "g", join("", &Tps::new())).await.unwrap();
    let id = joined.member_id.clone();
    let plan = BTreeMap::from([("orders".to_string(), vec![0, 1, 2, 3])]);
    let sync = SyncRequest {
        member_id: joined.member_id.clone(),
        instance_id: None,
        generation: joined.generation,
        assignments: vec![(joined.member_id, Bytes::from_static(b"A"), plan)],
    };
    c.classic_sync(h, "g", sync).await.unwrap();
    id
}

fn consumer_join(member: &str) -> Heartbeat {
    Heartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        owned: Some(Tps::new()),
        kafka: Some(KafkaMember {
            topic_names: Some(vec!["orders".into()]),
            ..KafkaMember::default()
        }),
        ..Heartbeat::default()
    }
}

#[tokio::test]
async fn a_classic_group_converts_and_its_classic_member_hands_partitions_over() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let (c, h) = (coordinator(&store), Host::new(&[("orders", 4)]));
    let cid = classic_group(&c, &h).await;
    let generation = c.describe_group(&h, "g").await.unwrap().group_epoch;

    // A consumer-protocol member joins: the group converts; the classic member keeps its
    // partitions until it gives them up, so the newcomer gets nothing yet.
    let k = c.heartbeat(&h, consumer_join("k"), "").await.unwrap();
    assert!(k.assignment.is_empty(), "{k:?}");
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!(d.protocol, GroupProtocol::Consumer);
    let classic = d.members.iter().find(|m| m.member_id == cid).unwrap();
    assert_eq!(classic.protocol, GroupProtocol::Classic);
    assert_eq!(classic.assignment, tps(&[0, 1, 2, 3]));
    assert_eq!(classic.member_epoch, generation, "its generation is its member epoch");

    // Its heartbeat tells it to rejoin; it rejoins saying what it owns (cooperative), is
    // given half, revokes the rest and rejoins again, which releases them.
    let e = c.classic_heartbeat(&h, "g", &cid, None, generation).await.unwrap_err();
    assert_eq!(e.reason, Reason::RebalanceInProgress);
    let joined = c.classic_join(&h, "g", join(&cid, &tps(&[0, 1, 2, 3]))).await.unwrap();
    assert_eq!((joined.leader.as_str(), joined.members.len()), ("", 0), "nobody assigns");
    let sync = SyncRequest {
        member_id: cid.clone(),
        instance_id: None,
        generation: joined.generation,
        assignments: vec![],
    };
    let kept = c.classic_sync(&h, "g", sync.clone()).await.unwrap().partitions.unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let stale = SyncRequest { generation: joined.generation - 1, ..sync };
    let e = c.classic_sync(&h, "g", stale).await.unwrap_err();
    assert_eq!(e.reason, Reason::IllegalGeneration);
    let k = c
        .heartbeat(&h, Heartbeat { member_epoch: k.member_epoch, ..consumer_join("k") }, "")
        .await
        .unwrap();
    assert!(k.assignment.is_empty(), "given before the classic member released them: {k:?}");
    let rejoined = c.classic_join(&h, "g", join(&cid, &kept)).await.unwrap();
    c.classic_heartbeat(&h, "g", &cid, None, rejoined.generation).await.unwrap();
    let k = c
        .heartbeat(&h, Heartbeat { member_epoch: k.member_epoch, ..consumer_join("k") }, "")
        .await
        .unwrap();
    assert_eq!(k.assignment, tps(&[0, 1, 2, 3]).difference(&kept).cloned().collect());

    // The classic member leaves; the group stays a consumer group with the other.
    let left = c.classic_leave(&h, "g", &[(cid.clone(), None)]).await.unwrap();
    assert!(left[0].is_ok());
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.protocol, GroupProtocol::Consumer);
}

#[tokio::test]
async fn an_eager_member_that_revoked_everything_releases_everything() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let (c, h) = (coordinator(&store), Host::new(&[("orders", 4)]));
    let cid = classic_group(&c, &h).await;
    let k = c.heartbeat(&h, consumer_join("k"), "").await.unwrap();
    // Eager: it rejoins owning nothing.
    let joined = c.classic_join(&h, "g", join(&cid, &Tps::new())).await.unwrap();
    let sync = SyncRequest {
        member_id: cid.clone(),
        instance_id: None,
        generation: joined.generation,
        assignments: vec![],
    };
    let mine = c.classic_sync(&h, "g", sync).await.unwrap().partitions.unwrap();
    let k = c
        .heartbeat(&h, Heartbeat { member_epoch: k.member_epoch, ..consumer_join("k") }, "")
        .await
        .unwrap();
    assert_eq!(mine.len() + k.assignment.len(), 4, "{mine:?} {k:?}");
    assert!(mine.is_disjoint(&k.assignment));
}

#[tokio::test]
async fn the_group_turns_classic_again_when_its_last_consumer_member_leaves() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let (c, h) = (coordinator(&store), Host::new(&[("orders", 4)]));
    let cid = classic_group(&c, &h).await;
    c.heartbeat(&h, consumer_join("k"), "").await.unwrap();
    assert_eq!(c.describe_group(&h, "g").await.unwrap().protocol, GroupProtocol::Consumer);
    // The consumer-protocol member leaves: only the classic member is left.
    let leave = Heartbeat { member_epoch: -1, ..consumer_join("k") };
    c.heartbeat(&h, leave, "").await.unwrap();
    // It is no member of a consumer group any more: its next request says so, and it
    // joins again through the classic protocol, into a classic group.
    let e = c.classic_heartbeat(&h, "g", &cid, None, 1).await.unwrap_err();
    assert_eq!(e.reason, Reason::UnknownMemberId, "{e}");
    classic_group(&c, &h).await;
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!((d.protocol, d.members.len()), (GroupProtocol::Classic, 1));
    let listed = c.list_groups().await.unwrap();
    assert_eq!(listed[0].protocol, Some(GroupProtocol::Classic));
}

#[tokio::test]
async fn the_group_stays_a_consumer_group_while_a_consumer_member_is_left() {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    let (c, h) = (coordinator(&store), Host::new(&[("orders", 4)]));
    let cid = classic_group(&c, &h).await;
    c.heartbeat(&h, consumer_join("k"), "").await.unwrap();
    c.heartbeat(&h, consumer_join("j"), "").await.unwrap();
    c.heartbeat(&h, Heartbeat { member_epoch: -1, ..consumer_join("k") }, "").await.unwrap();
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!((d.protocol, d.members.len()), (GroupProtocol::Consumer, 2));
    assert!(d.members.iter().any(|m| m.member_id == cid), "the classic member stays");
}
