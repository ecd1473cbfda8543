//! Kafka's consumer-protocol rules (KIP-848) on the coordinator: fencing by member epoch,
//! client-made member ids, static members, regular-expression subscriptions, and the
//! errors Kafka's clients act on.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::test_host::{Host, coordinator};
use crate::{Coordinator, Heartbeat, HeartbeatAnswer, KafkaMember};
use shale_core::clock;
use shale_core::error::{Error, Reason};
use shale_meta::{EmbeddedStore, MetaStore};

type Tps = BTreeSet<(String, u32)>;

fn setup() -> (Coordinator, Host) {
    let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock::system());
    (coordinator(&store), Host::new(&[("orders", 4), ("other", 2)]))
}

/// A ConsumerGroupHeartbeat of `member` at `epoch`, subscribed to `orders` when joining.
fn beat(member: &str, epoch: i32, owned: Option<Tps>) -> Heartbeat {
    let names = (epoch == 0).then(|| vec!["orders".to_string()]);
    Heartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        owned,
        kafka: Some(KafkaMember {
            topic_names: names,
            rebalance_timeout_ms: Some(30_000),
            ..KafkaMember::default()
        }),
        ..Heartbeat::default()
    }
}

fn static_beat(member: &str, epoch: i32, instance: &str, owned: Option<Tps>) -> Heartbeat {
    let mut hb = beat(member, epoch, owned);
    if let Some(k) = hb.kafka.as_mut() {
        k.instance_id = Some(instance.into());
    }
    hb
}

async fn send(c: &Coordinator, h: &Host, hb: Heartbeat) -> Result<HeartbeatAnswer, Error> {
    c.heartbeat(h, hb, "").await
}

/// Heartbeats each member in turn, each saying it owns what it was last given, until no
/// answer changes: the members' answers then.
async fn settle(
    c: &Coordinator,
    h: &Host,
    mut members: Vec<HeartbeatAnswer>,
) -> Vec<HeartbeatAnswer> {
    for _ in 0..10 {
        let mut changed = false;
        for a in members.iter_mut() {
            let next = send(c, h, beat(&a.member_id, a.member_epoch, Some(a.assignment.clone())))
                .await
                .unwrap();
            changed |= next != *a;
            *a = next;
        }
        if !changed {
            return members;
        }
    }
    panic!("the group did not settle: {members:?}");
}

#[tokio::test]
async fn a_client_made_member_id_is_kept_even_with_a_slash() {
    let (c, h) = setup();
    // librdkafka's member ids are base64, with '/' and '+'.
    let id = "vJx5hK7YQ2iWiikk6s/8TA+";
    let a = send(&c, &h, beat(id, 0, Some(Tps::new()))).await.unwrap();
    assert_eq!(a.member_id, id);
    assert_eq!(a.assignment.len(), 4, "the only member gets every partition");
    let again = send(&c, &h, beat(id, a.member_epoch, None)).await.unwrap();
    assert_eq!(again.member_epoch, a.member_epoch);
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!(d.members[0].member_id, id);
    assert_eq!(d.members[0].protocol, crate::GroupProtocol::Consumer);
    assert_eq!(d.assignor, "uniform", "the consumer protocol's default assignor");
    // Empty again, it is still a consumer-protocol group.
    send(&c, &h, beat(id, -1, None)).await.unwrap();
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!((d.members.len(), d.protocol), (0, crate::GroupProtocol::Consumer));
    let listed = c.list_groups().await.unwrap();
    assert_eq!(listed[0].protocol, Some(crate::GroupProtocol::Consumer));
}

#[tokio::test]
async fn epochs_other_than_the_current_one_are_fenced() {
    let (c, h) = setup();
    let a = send(&c, &h, beat("m", 0, Some(Tps::new()))).await.unwrap();
    let epoch = a.member_epoch;
    assert!(epoch >= 2, "joined, then given partitions: {a:?}");
    let fenced = |r: Result<HeartbeatAnswer, Error>| {
        let e = r.expect_err("fenced");
        assert_eq!(e.reason, Reason::FencedMemberEpoch, "{e}");
    };
    fenced(send(&c, &h, beat("m", epoch + 1, None)).await);
    // The previous epoch only with the partitions the member still owns (a lost answer).
    fenced(send(&c, &h, beat("m", epoch - 1, None)).await);
    let foreign = Tps::from([("other".to_string(), 0)]);
    fenced(send(&c, &h, beat("m", epoch - 1, Some(foreign))).await);
    let resent = send(&c, &h, beat("m", epoch - 1, Some(a.assignment.clone()))).await.unwrap();
    assert_eq!(resent.member_epoch, epoch, "the lost answer, again");
    assert_eq!(resent.assignment, a.assignment);
    // Fencing changed nothing: the member carries on at its epoch.
    let ok = send(&c, &h, beat("m", epoch, None)).await.unwrap();
    assert_eq!(ok.assignment, a.assignment);
    let unknown = send(&c, &h, beat("nobody", 3, None)).await.unwrap_err();
    assert_eq!(unknown.reason, Reason::UnknownMemberId);
}

#[tokio::test]
async fn a_partition_moves_only_once_its_owner_released_it() {
    let (c, h) = setup();
    let a = send(&c, &h, beat("a", 0, Some(Tps::new()))).await.unwrap();
    let b = send(&c, &h, beat("b", 0, Some(Tps::new()))).await.unwrap();
    assert!(b.assignment.is_empty(), "b gets nothing a still owns: {b:?}");
    // a is told to give two up; until it says it did, b cannot have them.
    let a = send(&c, &h, beat("a", a.member_epoch, None)).await.unwrap();
    assert_eq!(a.assignment.len(), 2);
    let b = send(&c, &h, beat("b", b.member_epoch, None)).await.unwrap();
    assert!(b.assignment.is_empty(), "b took partitions a had not released: {b:?}");
    send(&c, &h, beat("a", a.member_epoch, Some(a.assignment.clone()))).await.unwrap();
    let b = send(&c, &h, beat("b", b.member_epoch, None)).await.unwrap();
    assert_eq!(b.assignment.len(), 2);
    assert!(a.assignment.is_disjoint(&b.assignment));
}

#[tokio::test]
async fn a_static_member_rejoining_takes_its_partitions_back_without_a_rebalance() {
    let (c, h) = setup();
    let a = send(&c, &h, static_beat("a", 0, "ia", Some(Tps::new()))).await.unwrap();
    let b = send(&c, &h, static_beat("b", 0, "ib", Some(Tps::new()))).await.unwrap();
    let settled = settle(&c, &h, vec![a, b]).await;
    let (a, b) = (&settled[0], &settled[1]);
    assert_eq!((a.assignment.len(), b.assignment.len()), (2, 2));
    let group_epoch = c.describe_group(&h, "g").await.unwrap().group_epoch;

    let leave = Heartbeat { member_epoch: -2, ..static_beat("a", 0, "ia", None) };
    let away = send(&c, &h, leave).await.unwrap();
    assert_eq!(away.member_epoch, -2);
    // b carries on undisturbed while a is away.
    let b2 = send(&c, &h, beat("b", b.member_epoch, None)).await.unwrap();
    assert_eq!(b2.assignment, b.assignment);

    let back = send(&c, &h, static_beat("a2", 0, "ia", Some(Tps::new()))).await.unwrap();
    assert_eq!(back.assignment, a.assignment, "the instance's partitions, at once");
    assert_eq!(back.member_epoch, a.member_epoch);
    let d = c.describe_group(&h, "g").await.unwrap();
    assert_eq!(d.group_epoch, group_epoch, "no rebalance");
    let ids: BTreeSet<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["a2", "b"]));
    // The partitions stay put as the group goes on.
    let settled = settle(&c, &h, vec![back.clone(), b2]).await;
    assert_eq!(settled[0].assignment, a.assignment);
}

#[tokio::test]
async fn an_instance_id_held_by_a_live_member_is_unreleased() {
    let (c, h) = setup();
    let a = send(&c, &h, static_beat("a", 0, "ia", Some(Tps::new()))).await.unwrap();
    let e = send(&c, &h, static_beat("a2", 0, "ia", Some(Tps::new()))).await.unwrap_err();
    assert_eq!(e.reason, Reason::UnreleasedInstanceId, "{e}");
    let still = send(&c, &h, beat("a", a.member_epoch, None)).await.unwrap();
    assert_eq!(still.assignment, a.assignment, "the holder is unharmed");
    // Epoch -2 is for static members only.
    let e = send(&c, &h, Heartbeat { member_epoch: -2, ..beat("x", 0, None) }).await.unwrap_err();
    assert_eq!(e.reason, Reason::UnknownMemberId);
    send(&c, &h, beat("y", 0, Some(Tps::new()))).await.unwrap();
    let e = send(&c, &h, Heartbeat { member_epoch: -2, ..beat("y", 0, None) }).await.unwrap_err();
    assert_eq!(e.kind, shale_core::error::ErrorKind::Invalid, "{e}");
}

#[tokio::test]
async fn a_regular_expression_subscribes_to_matching_topics_created_later() {
    let (c, h) = setup();
    let mut hb = beat("r", 0, Some(Tps::new()));
    if let Some(k) = hb.kafka.as_mut() {
        k.topic_names = None;
        k.topic_regex = Some("ord.*".into());
    }
    let a = send(&c, &h, hb).await.unwrap();
    let topics: BTreeSet<&str> = a.assignment.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, BTreeSet::from(["orders"]), "whole names match, 'other' does not");
    h.create_topic("orders-eu", 3);
    let a = send(&c, &h, beat("r", a.member_epoch, Some(a.assignment.clone()))).await.unwrap();
    assert_eq!(a.assignment.len(), 7, "the new topic's partitions too: {a:?}");
    // A regex that does not compile is refused, naming it; the member is unharmed.
    let mut bad = beat("r", a.member_epoch, None);
    if let Some(k) = bad.kafka.as_mut() {
        k.topic_regex = Some("orders(".into());
    }
    let e = send(&c, &h, bad).await.unwrap_err();
    assert_eq!(e.reason, Reason::InvalidRegularExpression);
    assert!(e.message.contains("orders("), "{e}");
    send(&c, &h, beat("r", a.member_epoch, None)).await.unwrap();
}

#[tokio::test]
async fn joins_need_a_subscription_field_and_a_known_assignor() {
    let (c, h) = setup();
    // An empty subscription is one (the member gets nothing); a missing one is not.
    let mut empty = beat("e", 0, Some(Tps::new()));
    if let Some(k) = empty.kafka.as_mut() {
        k.topic_names = Some(vec![]);
    }
    let a = send(&c, &h, empty).await.unwrap();
    assert!(a.assignment.is_empty());
    let mut missing = beat("m", 0, Some(Tps::new()));
    if let Some(k) = missing.kafka.as_mut() {
        k.topic_names = None;
    }
    assert_eq!(
        send(&c, &h, missing).await.unwrap_err().kind,
        shale_core::error::ErrorKind::Invalid
    );
    let (c, h) = setup();
    let unknown = Heartbeat { assignor: "roundrobin".into(), ..beat("u", 0, Some(Tps::new())) };
    let e = send(&c, &h, unknown).await.unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedAssignor, "{e}");
    let range = Heartbeat { assignor: "range".into(), ..beat("u", 0, Some(Tps::new())) };
    send(&c, &h, range).await.unwrap();
    assert_eq!(c.describe_group(&h, "g").await.unwrap().assignor, "range");
}

#[tokio::test]
async fn group_configs_set_the_session_and_heartbeat_of_consumer_members() {
    use crate::configs::{HEARTBEAT_INTERVAL, SESSION_TIMEOUT};
    let (c, h) = setup();
    let one = |k: &str, v: &str| std::collections::BTreeMap::from([(k.to_string(), v.to_string())]);
    let defaults = c.group_configs("g").await.unwrap();
    let values: Vec<(&str, &str, bool)> =
        defaults.iter().map(|d| (d.name.as_str(), d.value.as_str(), d.overridden)).collect();
    assert_eq!(
        values[..2],
        [(SESSION_TIMEOUT, "45000", false), (HEARTBEAT_INTERVAL, "5000", false)]
    );
    // Out of range, not a number, at or above the session, unknown: refused, naming it.
    for (key, value, reason) in [
        (SESSION_TIMEOUT, "999999999", Reason::InvalidConfig),
        (SESSION_TIMEOUT, "soon", Reason::InvalidConfig),
        (HEARTBEAT_INTERVAL, "45000", Reason::InvalidConfig),
        ("consumer.session.timeout", "1000", Reason::UnknownConfig),
    ] {
        let e = c.alter_group_configs("g", &one(key, value), &[], false).await.unwrap_err();
        assert_eq!(e.reason, reason, "{key}={value}: {e}");
        assert!(e.message.contains(key), "{e}");
    }
    let set = std::collections::BTreeMap::from([
        (SESSION_TIMEOUT.to_string(), "20000".to_string()),
        (HEARTBEAT_INTERVAL.to_string(), "2000".to_string()),
    ]);
    c.alter_group_configs("g", &set, &[], true).await.unwrap();
    assert!(c.group_configs("g").await.unwrap().iter().all(|d| !d.overridden), "validate only");
    c.alter_group_configs("g", &set, &[], false).await.unwrap();
    assert!(c.group_configs("g").await.unwrap()[..2].iter().all(|d| d.overridden));

    let a = send(&c, &h, beat("m", 0, Some(Tps::new()))).await.unwrap();
    assert_eq!(a.heartbeat_interval_ms, 2000, "the group's interval");
    c.sweep(&h).await;
    h.advance(19_000);
    c.sweep(&h).await;
    assert_eq!(c.describe_group(&h, "g").await.unwrap().members.len(), 1, "before its session");
    h.advance(2_000);
    c.sweep(&h).await;
    assert_eq!(c.describe_group(&h, "g").await.unwrap().members.len(), 0, "after 20 s");
    // Deleting the override brings the broker's default back.
    c.alter_group_configs("g", &Default::default(), &[HEARTBEAT_INTERVAL.into()], false)
        .await
        .unwrap();
    let d = c.group_configs("g").await.unwrap();
    assert_eq!((d[1].value.as_str(), d[1].overridden), ("5000", false));
}
