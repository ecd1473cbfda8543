//! Share groups' membership on the coordinator (KIP-932): members share partitions (the
//! `simple` assignor) with nothing to revoke, only the current epoch is served, and a
//! group id is of one kind at a time.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::test_host::{Host, coordinator};
use crate::{Coordinator, GroupProtocol, Heartbeat, HeartbeatAnswer, KafkaMember};
use shale_core::clock;
use shale_core::error::{Error, Reason};
use shale_meta::{EmbeddedStore, MetaStore};

fn setup() -> (Coordinator, Host) {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    (coordinator(&store), Host::new(&[("jobs", 1), ("wide", 4)]))
}

/// A ShareGroupHeartbeat of `member` at `epoch`, subscribed to `topics` when given.
fn share_beat(member: &str, epoch: i32, topics: Option<&[&str]>) -> Heartbeat {
    Heartbeat {
        group: "q".into(),
        member_id: member.into(),
        member_epoch: epoch,
        kafka: Some(KafkaMember {
            topic_names: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            ..KafkaMember::default()
        }),
        share: true,
        ..Heartbeat::default()
    }
}

async fn send(c: &Coordinator, h: &Host, hb: Heartbeat) -> Result<HeartbeatAnswer, Error> {
    c.heartbeat(h, hb, "").await
}

fn tps(list: &[(&str, u32)]) -> BTreeSet<(String, u32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

#[tokio::test]
async fn members_share_one_partition_at_once() {
    let (c, h) = setup();
    let mut answers = Vec::new();
    for m in ["a", "b", "c"] {
        answers.push(send(&c, &h, share_beat(m, 0, Some(&["jobs"]))).await.unwrap());
    }
    // The first members are given the partition on joining; each later beat confirms it.
    for a in &answers {
        let a = send(&c, &h, share_beat(&a.member_id, a.member_epoch, None)).await.unwrap();
        assert_eq!(a.assignment, tps(&[("jobs", 0)]), "{a:?}");
    }
    let d = c.describe_group(&h, "q").await.unwrap();
    assert_eq!((d.protocol, d.assignor.as_str()), (GroupProtocol::Share, "simple"));
    assert_eq!(d.members.len(), 3);
    assert!(d.members.iter().all(|m| m.protocol == GroupProtocol::Share));
    let listed = c.list_groups().await.unwrap();
    assert_eq!(listed[0].protocol, Some(GroupProtocol::Share));
}

#[tokio::test]
async fn with_more_partitions_than_members_each_gets_its_own() {
    let (c, h) = setup();
    let a = send(&c, &h, share_beat("a", 0, Some(&["wide"]))).await.unwrap();
    let b = send(&c, &h, share_beat("b", 0, Some(&["wide"]))).await.unwrap();
    let a = send(&c, &h, share_beat("a", a.member_epoch, None)).await.unwrap();
    let b = send(&c, &h, share_beat("b", b.member_epoch, None)).await.unwrap();
    assert_eq!(a.assignment.len() + b.assignment.len(), 4);
    assert!(a.assignment.is_disjoint(&b.assignment), "{a:?} {b:?}");
}

#[tokio::test]
async fn only_the_current_epoch_is_served_and_kinds_do_not_mix() {
    let (c, h) = setup();
    let a = send(&c, &h, share_beat("a", 0, Some(&["jobs"]))).await.unwrap();
    for epoch in [a.member_epoch - 1, a.member_epoch + 1] {
        let e = send(&c, &h, share_beat("a", epoch, None)).await.unwrap_err();
        assert_eq!(e.reason, Reason::FencedMemberEpoch, "epoch {epoch}: {e}");
    }
    let e = send(&c, &h, share_beat("ghost", 3, None)).await.unwrap_err();
    assert_eq!(e.reason, Reason::UnknownMemberId);
    // A consumer-protocol member cannot join a share group, and the group is unharmed.
    let consumer = Heartbeat { share: false, ..share_beat("c", 0, Some(&["jobs"])) };
    let e = send(&c, &h, consumer).await.unwrap_err();
    assert_eq!(e.reason, Reason::GroupNotFound, "{e}");
    assert!(e.message.contains("is a share group"), "{e}");
    send(&c, &h, share_beat("a", a.member_epoch, None)).await.unwrap();
    // Once empty, the id may serve another kind.
    send(&c, &h, share_beat("a", -1, None)).await.unwrap();
    let consumer = Heartbeat { share: false, ..share_beat("c", 0, Some(&["jobs"])) };
    send(&c, &h, consumer).await.unwrap();
}

#[tokio::test]
async fn share_members_time_out_by_the_groups_share_session() {
    use crate::configs::{SHARE_HEARTBEAT_INTERVAL, SHARE_SESSION_TIMEOUT};
    let (c, h) = setup();
    let set = std::collections::BTreeMap::from([
        (SHARE_SESSION_TIMEOUT.to_string(), "20000".to_string()),
        (SHARE_HEARTBEAT_INTERVAL.to_string(), "2000".to_string()),
    ]);
    c.alter_group_configs("q", &set, &[], false).await.unwrap();
    let a = send(&c, &h, share_beat("a", 0, Some(&["jobs"]))).await.unwrap();
    assert_eq!(a.heartbeat_interval_ms, 2000);
    h.advance(19_000);
    c.sweep(&h).await;
    assert_eq!(c.describe_group(&h, "q").await.unwrap().members.len(), 1, "before its session");
    h.advance(2_000);
    c.sweep(&h).await;
    assert_eq!(c.describe_group(&h, "q").await.unwrap().members.len(), 0, "after 20 s");
}

#[tokio::test]
async fn share_configs_are_bounded_and_read_by_partition_leaders() {
    use crate::configs::{
        SHARE_DEAD_LETTER_TOPIC, SHARE_DELIVERY_LIMIT, SHARE_ISOLATION, SHARE_LOCK, SHARE_RESET,
    };
    let (c, _h) = setup();
    let one = |k: &str, v: &str| std::collections::BTreeMap::from([(k.to_string(), v.to_string())]);
    for (key, value) in [
        (SHARE_LOCK, "14999"),
        (SHARE_LOCK, "60001"),
        (SHARE_DELIVERY_LIMIT, "1"),
        (SHARE_DELIVERY_LIMIT, "11"),
        (SHARE_RESET, "newest"),
        (SHARE_ISOLATION, "read_most"),
        // Not under the broker's dead-letter prefix ("dlq."): the broker writes it.
        (SHARE_DEAD_LETTER_TOPIC, "orders"),
        (SHARE_DEAD_LETTER_TOPIC, "dlq.bad/name"),
    ] {
        let e = c.alter_group_configs("q", &one(key, value), &[], false).await.unwrap_err();
        assert_eq!(e.reason, Reason::InvalidConfig, "{key}={value}: {e}");
        assert!(e.message.contains(key) && e.message.contains(value), "{e}");
    }
    let defaults = c.share_configs("q", 0).await;
    assert_eq!((defaults.lock_ms, defaults.delivery_limit), (30_000, 5));
    let set = std::collections::BTreeMap::from([
        (SHARE_LOCK.to_string(), "15000".to_string()),
        (SHARE_DELIVERY_LIMIT.to_string(), "2".to_string()),
        (SHARE_RESET.to_string(), "earliest".to_string()),
        (SHARE_ISOLATION.to_string(), "read_committed".to_string()),
        (SHARE_DEAD_LETTER_TOPIC.to_string(), "dlq.q".to_string()),
    ]);
    c.alter_group_configs("q", &set, &[], false).await.unwrap();
    let s = c.share_configs("q", 0).await;
    assert_eq!((s.lock_ms, s.delivery_limit), (15_000, 2));
    assert!(s.read_committed);
    assert_eq!(s.reset, crate::configs::ShareReset::Earliest);
    assert_eq!(s.dead_letter_topic.as_deref(), Some("dlq.q"));
}

#[tokio::test]
async fn a_share_partition_starts_where_the_reset_says_when_first_assigned() {
    use crate::configs::SHARE_RESET;
    let (c, h) = setup();
    let state = |c: &Coordinator, topic: &str| {
        let key = c.keys().share_state("q", topic, 0);
        let meta = c.meta().clone();
        async move {
            let kv = meta.get(&key).await.unwrap()?;
            let r: crate::share::ShareStateRecord =
                crate::records::decode(&kv.value, "state").unwrap();
            Some(r.start)
        }
    };
    // latest (the default): the log end as the member is given the partition.
    send(&c, &h, share_beat("a", 0, Some(&["jobs"]))).await.unwrap();
    assert_eq!(state(&c, "jobs").await, Some(100));
    // earliest: the log start; an initialized partition is left as it is.
    let one = std::collections::BTreeMap::from([(SHARE_RESET.to_string(), "earliest".into())]);
    c.alter_group_configs("q", &one, &[], false).await.unwrap();
    let b = send(&c, &h, share_beat("b", 0, Some(&["jobs", "wide"]))).await.unwrap();
    send(&c, &h, share_beat("b", b.member_epoch, None)).await.unwrap();
    assert_eq!(state(&c, "jobs").await, Some(100), "kept");
    assert_eq!(state(&c, "wide").await, Some(5));
}
