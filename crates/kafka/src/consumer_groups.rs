//! Kafka's consumer group protocol (KIP-848): `ConsumerGroupHeartbeat` and
//! `ConsumerGroupDescribe`. The broker assigns partitions (`groups::heartbeat` with the
//! rules of `groups::consumer`); here topic ids are translated to names and back, and an
//! answer carries the member's assignment only when a Kafka broker's would: on joining,
//! on a full request (after an error the client resends every field), and when it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe_response, ConsumerGroupDescribeResponse, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, ConsumerGroupHeartbeatResponse, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::metadata::authorized_operations;
use shale_broker::api::{
    GroupDescription, GroupProtocol, Heartbeat, KafkaMember, ListedState, Operation, ResourceType,
};
use shale_core::error::Error;

pub(crate) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A set of partitions by topic id, for the wire; topics this broker no longer knows are
/// left out.
pub(crate) fn by_topic_id(
    kafka: &Kafka,
    set: &BTreeSet<(String, u32)>,
) -> Vec<(uuid::Uuid, Vec<i32>)> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        by_topic.entry(t).or_default().push(*p as i32);
    }
    by_topic
        .into_iter()
        .filter_map(|(t, ps)| {
            let id = kafka.api.topic_id(t)?;
            Some((uuid::Uuid::parse_str(&id).ok()?, ps))
        })
        .collect()
}

/// The heartbeat `req` in the domain's terms.
fn heartbeat_of(
    kafka: &Kafka,
    session: &Session,
    req: &ConsumerGroupHeartbeatRequest,
) -> Heartbeat {
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| Some((kafka.api.topic_name(&tp.topic_id.to_string())?, tp)))
            .flat_map(|(name, tp)| {
                tp.partitions
                    .iter()
                    .filter_map(move |p| Some((name.clone(), u32::try_from(*p).ok()?)))
            })
            .collect()
    });
    let opt = |s: &Option<StrBytes>| s.as_ref().map(|s| s.to_string());
    Heartbeat {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        owned,
        assignor: opt(&req.server_assignor).unwrap_or_default(),
        client_id: session.client_id.clone(),
        kafka: Some(KafkaMember {
            topic_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
            topic_regex: opt(&req.subscribed_topic_regex),
            instance_id: opt(&req.instance_id),
            rack: opt(&req.rack_id),
            rebalance_timeout_ms: u32::try_from(req.rebalance_timeout_ms).ok(),
            client_host: session.peer.ip().to_string(),
        }),
        ..Heartbeat::default()
    }
}

/// Whether `req` carries every field (a member joining, or resending after an error):
/// Kafka then answers with the whole assignment.
fn full_request(req: &ConsumerGroupHeartbeatRequest) -> bool {
    req.member_epoch == 0
        || (req.rebalance_timeout_ms != -1
            && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && req.topic_partitions.is_some())
}

/// A heartbeat's answer as both KIP-848 and KIP-932 heartbeat responses carry it.
pub(crate) struct Beat {
    pub member_id: Option<StrBytes>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The assignment by topic id, when the answer carries it: on a full request (a join,
    /// or every field resent after an error) or when the member's epoch moved.
    pub assignment: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
    pub error_code: i16,
    pub error_message: Option<StrBytes>,
}

/// Runs heartbeat `asked` for `who` (a `kind` of group, for the log) and answers it as a
/// [`Beat`]; `full` says the request carried every field.
pub(crate) async fn beat(
    kafka: &Kafka,
    who: &shale_broker::api::Identity,
    asked: Heartbeat,
    full: bool,
    kind: &str,
) -> Beat {
    let (epoch, group, member) = (asked.member_epoch, asked.group.clone(), asked.member_id.clone());
    match kafka.api.heartbeat(who, asked).await {
        Ok(a) => {
            let carried = a.member_epoch >= 0 && (full || a.member_epoch != epoch);
            Beat {
                member_id: Some(text(&a.member_id)),
                member_epoch: a.member_epoch,
                heartbeat_interval_ms: a.heartbeat_interval_ms as i32,
                assignment: carried.then(|| by_topic_id(kafka, &a.assignment)),
                error_code: 0,
                error_message: None,
            }
        }
        Err(e) => {
            tracing::debug!(group, member, error = %e, "{kind} group heartbeat refused");
            Beat {
                member_id: None,
                member_epoch: 0,
                heartbeat_interval_ms: 0,
                assignment: None,
                error_code: code(&e, About::Group),
                error_message: Some(text(&e.message)),
            }
        }
    }
}

/// `ConsumerGroupHeartbeat`, served by the group's coordinator (others answer
/// NOT_COORDINATOR and the client finds it again).
pub(crate) fn heartbeat(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ConsumerGroupHeartbeatRequest = call.decode()?;
    let replier = call.replier;
    let asked = heartbeat_of(kafka, session, &req);
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    let full = full_request(&req);
    Ok(Answer::later(async move {
        let b = beat(&kafka, &who, asked, full, "consumer").await;
        let assignment = b.assignment.map(|topics| {
            Assignment::default().with_topic_partitions(
                topics
                    .into_iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default().with_topic_id(id).with_partitions(ps)
                    })
                    .collect(),
            )
        });
        let body = ConsumerGroupHeartbeatResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_member_id(b.member_id)
            .with_member_epoch(b.member_epoch)
            .with_heartbeat_interval_ms(b.heartbeat_interval_ms)
            .with_assignment(assignment)
            .with_error_code(b.error_code)
            .with_error_message(b.error_message);
        replier.later(&body, Duration::ZERO)
    }))
}

/// The operations Kafka reports for a group.
pub(crate) const GROUP_OPS: &[Operation] =
    &[Operation::Read, Operation::Delete, Operation::Describe];

/// Kafka's name for a consumer group's state.
pub(crate) fn state_name(d: &GroupDescription) -> &'static str {
    match d.state {
        ListedState::Empty => "Empty",
        ListedState::Reconciling => "Reconciling",
        ListedState::Stable => "Stable",
    }
}

pub(crate) fn described_assignment(
    kafka: &Kafka,
    set: &BTreeSet<(String, u32)>,
) -> describe_response::Assignment {
    let topics = by_topic_id(kafka, set);
    let names: BTreeMap<String, &str> =
        set.iter().map(|(t, _)| (kafka.api.topic_id(t).unwrap_or_default(), t.as_str())).collect();
    describe_response::Assignment::default().with_topic_partitions(
        topics
            .into_iter()
            .map(|(id, ps)| {
                let name = names.get(&id.to_string()).copied().unwrap_or_default();
                describe_response::TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(text(name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

/// A group of Kafka's consumer protocol (or of Shale's, which assigns alike) as
/// `ConsumerGroupDescribe` shows it; a classic group is GROUP_ID_NOT_FOUND, as Kafka
/// answers, and the Java admin client then describes it with `DescribeGroups`.
fn described(kafka: &Kafka, version: i16, d: Result<GroupDescription, Error>) -> DescribedGroup {
    let d = d.and_then(|d| match d.protocol == GroupProtocol::Classic {
        true => Err(Error::new(
            shale_core::error::ErrorKind::NotFound,
            shale_core::error::Reason::GroupNotFound,
            format!("group {:?} is not a consumer group: it uses the classic protocol", d.group),
        )),
        false => Ok(d),
    });
    let d = match d {
        Ok(d) => d,
        Err(e) => {
            return DescribedGroup::default()
                .with_error_code(code(&e, About::Group))
                .with_error_message(Some(text(&e.message)))
                .with_group_state(text("Dead"));
        }
    };
    let members = d
        .members
        .iter()
        .map(|m| {
            let member = describe_response::Member::default()
                .with_member_id(text(&m.member_id))
                .with_instance_id(m.instance_id.as_deref().map(text))
                .with_rack_id(m.rack.as_deref().map(text))
                .with_member_epoch(m.member_epoch)
                .with_client_id(text(&m.client_id))
                .with_client_host(text(&m.client_host))
                .with_subscribed_topic_names(m.topics.iter().map(|t| TopicName(text(t))).collect())
                .with_subscribed_topic_regex(
                    Some(m.topic_regex.as_str()).filter(|r| !r.is_empty()).map(text),
                )
                .with_assignment(described_assignment(kafka, &m.assignment))
                .with_target_assignment(described_assignment(kafka, &m.target));
            match version {
                0 => member,
                // 0: consumer-protocol member, 1: classic member of a consumer group.
                _ => member.with_member_type(i8::from(m.protocol == GroupProtocol::Classic)),
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(text(&d.group)))
        .with_group_state(text(state_name(&d)))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.group_epoch)
        .with_assignor_name(text(&d.assignor))
        .with_members(members)
}

/// Each group of `ids` described, with the operations the caller may do on it when
/// `include_ops` (else `i32::MIN`, Kafka's "not asked").
pub(crate) async fn describe_each(
    kafka: &Kafka,
    session: &Session,
    ids: &[GroupId],
    include_ops: bool,
) -> Vec<(GroupId, Result<GroupDescription, Error>, i32)> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let name = id.0.to_string();
        let d = kafka.api.describe_group(&session.identity, &name).await;
        let ops = match include_ops {
            true => authorized_operations(kafka, session, ResourceType::Group, &name, GROUP_OPS),
            false => i32::MIN,
        };
        out.push((id.clone(), d, ops));
    }
    out
}

/// `ConsumerGroupDescribe`.
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ConsumerGroupDescribeRequest = call.decode()?;
    let version = call.version();
    let (kafka, session, replier) = (kafka.clone(), session.clone(), call.replier);
    Ok(Answer::later(async move {
        let ops = req.include_authorized_operations;
        let groups = describe_each(&kafka, &session, &req.group_ids, ops)
            .await
            .into_iter()
            .map(|(id, d, ops)| {
                described(&kafka, version, d).with_group_id(id).with_authorized_operations(ops)
            })
            .collect();
        let body = ConsumerGroupDescribeResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_groups(groups);
        replier.later(&body, Duration::ZERO)
    }))
}
