//! Kafka's classic group protocol: `FindCoordinator`, `JoinGroup`, `SyncGroup`,
//! `Heartbeat`, `LeaveGroup`. The group logic is the broker's (`groups::classic`); here
//! the wire is translated, and consumer-protocol assignments are decoded so the broker can
//! show which member owns which partition. Subscriptions are decoded too, so a group can
//! convert to Kafka's consumer protocol (KIP-848) as its members restart with it; its
//! classic members are then sent assignments the broker made, encoded here. Client-side assignors (range, roundrobin,
//! sticky, cooperative-sticky) and static membership (KIP-345) need nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::settings::split_host_port;
use shale_broker::api::{BrokerRecord, JoinRequest, SyncRequest};
use shale_core::error::Error;

/// FindCoordinator's key types.
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

/// A coordinator found (id, host, port), or the error code and message.
type Found = Result<(i32, String, i32), (i16, String)>;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// `FindCoordinator`, one key (v0–3) or several (v4).
pub(crate) fn find_coordinator(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: FindCoordinatorRequest = call.decode()?;
    let version = call.version();
    let keys: Vec<String> = match version {
        0..=3 => vec![req.key.to_string()],
        _ => req.coordinator_keys.iter().map(|k| k.to_string()).collect(),
    };
    let found: Vec<(String, Found)> = keys
        .into_iter()
        .map(|key| {
            let found = match req.key_type {
                GROUP_KEY => {
                    let found = kafka.api.find_coordinator(&session.identity, &key);
                    coordinator(found, "group", &key)
                }
                TRANSACTION_KEY => {
                    let found = kafka.api.find_txn_coordinator(&session.identity, &key);
                    coordinator(found, "transactional id", &key)
                }
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "coordinator key type {other} is not served (0: group, 1: transaction)"
                    ),
                )),
            };
            (key, found)
        })
        .collect();
    let mut body =
        FindCoordinatorResponse::default().with_throttle_time_ms(call.throttle_ms(Duration::ZERO));
    if version <= 3 {
        let no_key = || Err((ResponseError::InvalidRequest.code(), "no key".to_string()));
        let found = found.into_iter().next().map_or_else(no_key, |(_, f)| f);
        match found {
            Ok((id, host, port)) => {
                body.node_id = BrokerId(id);
                body.host = text(&host);
                body.port = port;
            }
            Err((code, message)) => {
                body.error_code = code;
                body.node_id = BrokerId(-1);
                body.port = -1;
                if version >= 1 {
                    body.error_message = Some(text(&message));
                }
            }
        }
    } else {
        body.coordinators = found
            .into_iter()
            .map(|(key, found)| {
                let c = Coordinator::default().with_key(text(&key));
                match found {
                    Ok((id, host, port)) => {
                        c.with_node_id(BrokerId(id)).with_host(text(&host)).with_port(port)
                    }
                    Err((code, message)) => c
                        .with_error_code(code)
                        .with_error_message(Some(text(&message)))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
    }
    Ok(call.reply(&body, Duration::ZERO))
}

/// The coordinator `found` for `key` (a group or a transactional id, as `what` says) at
/// its Kafka address.
fn coordinator(found: Result<BrokerRecord, Error>, what: &str, key: &str) -> Found {
    let b = found.map_err(|e| (code(&e, About::Group), e.message))?;
    if b.kafka_address.is_empty() {
        return Err((
            ResponseError::CoordinatorNotAvailable.code(),
            format!("broker {}, which coordinates {what} {key:?}, has no Kafka listener", b.id),
        ));
    }
    let (host, port) = split_host_port(&b.kafka_address);
    Ok((b.id, host, port))
}

/// `JoinGroup`: answered once the rebalance completes.
pub(crate) fn join(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: JoinGroupRequest = call.decode()?;
    let version = call.version();
    let replier = call.replier;
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    let group = req.group_id.0.to_string();
    let (topics, owned) = match req.protocol_type.as_str() {
        "consumer" => {
            req.protocols.first().map(|p| decode_subscription(&p.metadata)).unwrap_or_default()
        }
        _ => Default::default(),
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: if version >= 5 { opt(&req.group_instance_id) } else { None },
        client_id: session.client_id.clone(),
        client_host: format!("/{}", session.peer.ip()),
        principal: String::new(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member_id: version >= 4,
        topics,
        owned,
    };
    Ok(Answer::later(async move {
        let mut body = JoinGroupResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(StrBytes::default));
        match kafka.api.join_group(&who, &group, join).await {
            Ok(j) => {
                body.generation_id = j.generation;
                if version >= 7 {
                    body.protocol_type = Some(text(&j.protocol_type));
                }
                body.protocol_name = Some(text(&j.protocol));
                body.leader = text(&j.leader);
                body.member_id = text(&j.member_id);
                body.members = j
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(text(&id))
                            .with_group_instance_id(
                                instance.filter(|_| version >= 5).map(|i| text(&i)),
                            )
                            .with_metadata(metadata)
                    })
                    .collect();
            }
            Err(e) => {
                body.error_code = code(&e, About::Group);
                // MEMBER_ID_REQUIRED carries the id to join again with (KIP-394).
                if let Some(id) = e.details.get("member_id").filter(|_| version >= 4) {
                    body.member_id = text(id);
                }
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// A consumer-protocol subscription's topics and owned partitions (v1+); empty for
/// anything else.
fn decode_subscription(bytes: &Bytes) -> (Vec<String>, BTreeSet<(String, u32)>) {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Default::default();
    }
    let version = buf.get_i16().clamp(0, 3);
    let Ok(s) = ConsumerProtocolSubscription::decode(&mut buf, version) else {
        return Default::default();
    };
    let owned = s
        .owned_partitions
        .iter()
        .flat_map(|tp| {
            let topic = tp.topic.0.to_string();
            tp.partitions.iter().filter_map(move |p| Some((topic.clone(), u32::try_from(*p).ok()?)))
        })
        .collect();
    (s.topics.iter().map(|t| t.to_string()).collect(), owned)
}

/// `partitions` as a consumer-protocol assignment (version 0, which every client reads).
fn encode_assignment(partitions: &BTreeSet<(String, u32)>) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p as i32);
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(text(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    // Encoding a built message into memory cannot fail.
    let _ = assignment.encode(&mut buf, 0);
    buf.freeze()
}

/// A consumer-protocol assignment as topic partitions; empty for anything else.
fn decode_assignment(bytes: &Bytes) -> BTreeMap<String, Vec<u32>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return BTreeMap::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    let Ok(a) = ConsumerProtocolAssignment::decode(&mut buf, version) else {
        return BTreeMap::new();
    };
    a.assigned_partitions
        .into_iter()
        .map(|tp| {
            let partitions =
                tp.partitions.into_iter().filter_map(|p| u32::try_from(p).ok()).collect();
            (tp.topic.0.to_string(), partitions)
        })
        .collect()
}

/// `SyncGroup`: the member's assignment once the leader sent it.
pub(crate) fn sync(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: SyncGroupRequest = call.decode()?;
    let version = call.version();
    let replier = call.replier;
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    let group = req.group_id.0.to_string();
    let consumer = req.protocol_type.as_ref().is_none_or(|t| t.as_str() == "consumer");
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: if version >= 3 { opt(&req.group_instance_id) } else { None },
        generation: req.generation_id,
        assignments: req
            .assignments
            .iter()
            .map(|a| {
                let parsed =
                    if consumer { decode_assignment(&a.assignment) } else { BTreeMap::new() };
                (a.member_id.to_string(), a.assignment.clone(), parsed)
            })
            .collect(),
    };
    Ok(Answer::later(async move {
        let mut body =
            SyncGroupResponse::default().with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.sync_group(&who, &group, sync).await {
            Ok(s) => {
                body.assignment = match &s.partitions {
                    Some(partitions) => encode_assignment(partitions),
                    None => s.assignment,
                };
                if version >= 5 {
                    body.protocol_type = Some(text(&s.protocol_type));
                    body.protocol_name = Some(text(&s.protocol));
                }
            }
            Err(e) => body.error_code = code(&e, About::Group),
        }
        replier.later(&body, Duration::ZERO)
    }))
}

/// `Heartbeat`.
pub(crate) fn heartbeat(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: HeartbeatRequest = call.decode()?;
    let instance = if call.version() >= 3 { opt(&req.group_instance_id) } else { None };
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let (group, member) = (req.group_id.0.as_str(), req.member_id.as_str());
        let beat = kafka
            .api
            .classic_heartbeat(&who, group, member, instance.as_deref(), req.generation_id)
            .await;
        let body = HeartbeatResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(beat.err().map_or(0, |e| code(&e, About::Group)));
        replier.later(&body, Duration::ZERO)
    }))
}

/// `LeaveGroup`: one member (v0–2) or several (v3+, by member or instance id).
pub(crate) fn leave(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: LeaveGroupRequest = call.decode()?;
    let version = call.version();
    let leaving: Vec<(String, Option<String>)> = match version {
        0..=2 => vec![(req.member_id.to_string(), None)],
        _ => req
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect(),
    };
    let (kafka, who, replier) = (kafka.clone(), session.identity.clone(), call.replier);
    Ok(Answer::later(async move {
        let mut body = LeaveGroupResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        match kafka.api.leave_group(&who, &req.group_id.0, &leaving).await {
            Err(e) => body.error_code = code(&e, About::Group),
            Ok(outcomes) if version <= 2 => {
                body.error_code =
                    outcomes.first().and_then(|r| r.as_ref().err()).map_or(0, err_code);
            }
            Ok(outcomes) => {
                body.members = leaving
                    .into_iter()
                    .zip(outcomes)
                    .map(|((member, instance), r)| {
                        MemberResponse::default()
                            .with_member_id(text(&member))
                            .with_group_instance_id(instance.map(|i| text(&i)))
                            .with_error_code(r.err().as_ref().map_or(0, err_code))
                    })
                    .collect();
            }
        }
        replier.later(&body, Duration::ZERO)
    }))
}

fn err_code(e: &Error) -> i16 {
    code(e, About::Group)
}
