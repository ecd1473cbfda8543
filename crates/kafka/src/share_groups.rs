//! Share groups' membership on the Kafka listener (KIP-932): `ShareGroupHeartbeat` and
//! `ShareGroupDescribe` (v1). The coordinator assigns partitions with the `simple`
//! assignor (`groups::heartbeat` for a share member: its current epoch only, no
//! revocation); here topic ids are translated to names and back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::share_group_describe_response::{
    self as describe_response, DescribedGroup, ShareGroupDescribeResponse,
};
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment, ShareGroupHeartbeatResponse, TopicPartitions,
};
use kafka_protocol::messages::{
    GroupId, ShareGroupDescribeRequest, ShareGroupHeartbeatRequest, TopicName,
};

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::consumer_groups::{beat, by_topic_id, describe_each, state_name, text};
use crate::errors::{About, code};
use shale_broker::api::{GroupDescription, GroupProtocol, Heartbeat, KafkaMember};
use shale_core::error::{Error, ErrorKind, Reason};

/// `ShareGroupHeartbeat`, served by the group's coordinator.
pub(crate) fn heartbeat(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ShareGroupHeartbeatRequest = call.decode()?;
    let replier = call.replier;
    let asked = Heartbeat {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        client_id: session.client_id.clone(),
        kafka: Some(KafkaMember {
            topic_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
            rack: req.rack_id.as_ref().map(|r| r.to_string()),
            client_host: session.peer.ip().to_string(),
            ..KafkaMember::default()
        }),
        share: true,
        ..Heartbeat::default()
    };
    // A member joining or resending its subscription is answered its whole assignment.
    let full = req.member_epoch == 0 || req.subscribed_topic_names.is_some();
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    Ok(Answer::later(async move {
        let b = beat(&kafka, &who, asked, full, "share").await;
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
        let body = ShareGroupHeartbeatResponse::default()
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

fn assignment(kafka: &Kafka, set: &BTreeSet<(String, u32)>) -> describe_response::Assignment {
    let names: BTreeMap<String, &str> =
        set.iter().map(|(t, _)| (kafka.api.topic_id(t).unwrap_or_default(), t.as_str())).collect();
    let topics = by_topic_id(kafka, set)
        .into_iter()
        .map(|(id, ps)| {
            let name = names.get(&id.to_string()).copied().unwrap_or_default();
            describe_response::TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(text(name)))
                .with_partitions(ps)
        })
        .collect();
    describe_response::Assignment::default().with_topic_partitions(topics)
}

/// A share group as `ShareGroupDescribe` shows it; any other kind is GROUP_ID_NOT_FOUND.
fn described(kafka: &Kafka, d: Result<GroupDescription, Error>) -> DescribedGroup {
    let d = d.and_then(|d| match d.protocol {
        GroupProtocol::Share => Ok(d),
        _ => Err(Error::new(
            ErrorKind::NotFound,
            Reason::GroupNotFound,
            format!("group {:?} is not a share group", d.group),
        )),
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
            describe_response::Member::default()
                .with_member_id(text(&m.member_id))
                .with_rack_id(m.rack.as_deref().map(text))
                .with_member_epoch(m.member_epoch)
                .with_client_id(text(&m.client_id))
                .with_client_host(text(&m.client_host))
                .with_subscribed_topic_names(m.topics.iter().map(|t| TopicName(text(t))).collect())
                .with_assignment(assignment(kafka, &m.assignment))
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

/// `ShareGroupDescribe`.
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ShareGroupDescribeRequest = call.decode()?;
    let (kafka, session, replier) = (kafka.clone(), session.clone(), call.replier);
    Ok(Answer::later(async move {
        let ops = req.include_authorized_operations;
        let groups = describe_each(&kafka, &session, &req.group_ids, ops)
            .await
            .into_iter()
            .map(|(id, d, ops)| {
                described(&kafka, d).with_group_id(id).with_authorized_operations(ops)
            })
            .collect();
        let body = ShareGroupDescribeResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_groups(groups);
        replier.later(&body, Duration::ZERO)
    }))
}
