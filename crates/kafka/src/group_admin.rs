//! Group administration: `ListGroups`, `DescribeGroups`, `DeleteGroups`, `OffsetDelete`.
//! Groups of either protocol are listed and described (Shale's own groups as type
//! `consumer`, Kafka's classic ones as `classic`).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::metadata::authorized_operations;
use shale_broker::api::{GroupProtocol, GroupState, ListedState, Operation, ResourceType};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's state name for a listed group: a classic group's, or a consumer group's
/// (KIP-848: `Reconciling` while members move towards their targets).
fn listed_state(state: ListedState, members: u32, classic: bool) -> &'static str {
    match (state, members, classic) {
        (_, 0, _) => "Empty",
        (ListedState::Reconciling, _, true) => "PreparingRebalance",
        (ListedState::Reconciling, _, false) => "Reconciling",
        _ => "Stable",
    }
}

/// `ListGroups`, with v4's state filter and v5's type filter.
pub(crate) fn list(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ListGroupsRequest = call.decode()?;
    let version = call.version();
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut body = ListGroupsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.list_groups(&who).await {
            Err(e) => body.error_code = code(&e, About::Group),
            Ok(groups) => {
                let lower = |v: &[StrBytes]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
                let (states, types) = (lower(&req.states_filter), lower(&req.types_filter));
                body.groups = groups
                    .into_iter()
                    .filter_map(|g| {
                        let kind = match g.protocol {
                            Some(GroupProtocol::Shale | GroupProtocol::Consumer) => "consumer",
                            Some(GroupProtocol::Classic) | None => "classic",
                            Some(GroupProtocol::Share) => "share",
                        };
                        let state = listed_state(g.state, g.members, kind == "classic");
                        let keep = (states.is_empty() || states.contains(&state.to_lowercase()))
                            && (types.is_empty() || types.contains(&kind.to_string()));
                        keep.then(|| {
                            let listed = ListedGroup::default()
                                .with_group_id(GroupId(text(&g.group)))
                                .with_protocol_type(text(match kind {
                                    "share" => "share",
                                    _ => "consumer",
                                }));
                            match version {
                                0..=3 => listed,
                                4 => listed.with_group_state(text(state)),
                                _ => {
                                    listed.with_group_state(text(state)).with_group_type(text(kind))
                                }
                            }
                        })
                    })
                    .collect();
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

fn state_name(s: GroupState) -> &'static str {
    match s {
        GroupState::Empty => "Empty",
        GroupState::PreparingRebalance => "PreparingRebalance",
        GroupState::CompletingRebalance => "CompletingRebalance",
        GroupState::Stable => "Stable",
    }
}

/// The operations Kafka reports for a group.
const GROUP_OPS: &[Operation] = &[Operation::Read, Operation::Delete, Operation::Describe];

/// `DescribeGroups`, answered by each group's coordinator.
pub(crate) fn describe(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DescribeGroupsRequest = call.decode()?;
    let version = call.version();
    let (kafka, session, replier) = (kafka.clone(), session.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let name = g.0.to_string();
            let described = DescribedGroup::default().with_group_id(g.clone());
            let ops = match req.include_authorized_operations && version >= 3 {
                true => {
                    authorized_operations(&kafka, &session, ResourceType::Group, &name, GROUP_OPS)
                }
                false => i32::MIN,
            };
            groups.push(match kafka.api.describe_live(&session.identity, &name).await {
                Ok(live) => described
                    .with_group_state(text(state_name(live.state)))
                    .with_protocol_type(text(&live.protocol_type))
                    .with_protocol_data(text(&live.protocol))
                    .with_authorized_operations(ops)
                    .with_members(
                        live.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(&m.member_id))
                                    .with_group_instance_id(
                                        m.instance_id.filter(|_| version >= 4).map(|i| text(&i)),
                                    )
                                    .with_client_id(text(&m.client_id))
                                    .with_client_host(text(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                Err(e) => {
                    let d = described
                        .with_error_code(code(&e, About::Group))
                        .with_group_state(text("Dead"));
                    match version {
                        0..=5 => d,
                        _ => d.with_error_message(Some(text(&e.message))),
                    }
                }
            });
        }
        let body = DescribeGroupsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_groups(groups);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `DeleteGroups`: each group must be empty (NON_EMPTY_GROUP otherwise).
pub(crate) fn delete(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: DeleteGroupsRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for g in req.groups_names {
            let deleted = kafka.api.delete_group(&who, &g.0).await;
            let error = deleted.err().map_or(0, |e| code(&e, About::Group));
            results.push(DeletableGroupResult::default().with_group_id(g).with_error_code(error));
        }
        let body = DeleteGroupsResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_results(results);
        replier.later(&body, Duration::ZERO)
    }))
}

/// `OffsetDelete`: committed offsets of topics the group no longer consumes.
pub(crate) fn delete_offsets(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: OffsetDeleteRequest = call.decode()?;
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let asked: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index))
            })
            .collect();
        let partitions: Vec<(String, u32)> =
            asked.iter().map(|(t, p)| (t.clone(), u32::try_from(*p).unwrap_or(u32::MAX))).collect();
        let mut body = OffsetDeleteResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.delete_offsets(&who, &req.group_id.0, partitions).await {
            Err(e) => body.error_code = code(&e, About::Group),
            Ok(outcomes) => {
                let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
                for ((topic, p), r) in asked.into_iter().zip(outcomes) {
                    let part = OffsetDeleteResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(r.err().map_or(0, |e| code(&e, About::Partition)));
                    match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                        Some(t) => t.partitions.push(part),
                        None => topics.push(
                            OffsetDeleteResponseTopic::default()
                                .with_name(kafka_protocol::messages::TopicName(text(&topic)))
                                .with_partitions(vec![part]),
                        ),
                    }
                }
                body.topics = topics;
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}
