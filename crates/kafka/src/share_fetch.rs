//! `ShareFetch` and `ShareAcknowledge` (KIP-932, v1): a share member acquires records of
//! the partitions of its share session (`share_sessions`) on their leader, and
//! acknowledges them (ACCEPT, RELEASE, REJECT, or GAP for an offset with no record), in a
//! `ShareFetch` (piggy-backed) or a `ShareAcknowledge`. Acknowledgements are applied,
//! and stored, before records are acquired; an answer names the acquired offsets with
//! their delivery counts beside whole batches, and the group's lock duration.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    self as ack_response, ShareAcknowledgeResponse, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchResponse,
    ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareFetchRequest};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use crate::share_sessions::{SharePart, Step};
use shale_broker::api::{Ack, AckBatch, Identity, ShareChunk, ShareFetch};
use shale_core::error::Error;

/// Records a fetch acquires when the client says 0 (Kafka's `max.poll.records`).
const DEFAULT_MAX_RECORDS: usize = 500;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One partition named by a request: its session identity, or the error of its topic id.
type Named = Result<SharePart, ResponseError>;

fn named(kafka: &Kafka, topic_id: &uuid::Uuid, partition: i32) -> Named {
    let name = kafka.api.topic_name(&topic_id.to_string()).ok_or(ResponseError::UnknownTopicId)?;
    let p = u32::try_from(partition).map_err(|_| ResponseError::UnknownTopicOrPartition)?;
    Ok((*topic_id, name, p))
}

/// A request's acknowledgement batches in the domain's terms, or why they are invalid.
fn ack_batches<'a>(
    batches: impl IntoIterator<Item = (i64, i64, &'a [i8])>,
) -> Result<Vec<AckBatch>, Error> {
    batches
        .into_iter()
        .map(|(first, last, types)| {
            let types = types.iter().map(|t| Ack::from_code(*t)).collect::<Result<_, _>>()?;
            Ok(AckBatch { first, last, types })
        })
        .collect()
}

/// Applies the acknowledgements of each partition; the error code of each (0: applied).
async fn acknowledge_all(
    kafka: &Kafka,
    who: &Identity,
    group: &str,
    member: &str,
    acks: Vec<(Named, Result<Vec<AckBatch>, Error>)>,
) -> Vec<(Named, i16, Option<String>)> {
    let mut out = Vec::with_capacity(acks.len());
    for (part, batches) in acks {
        let result = match (&part, batches) {
            (Err(e), _) => Err((e.code(), None)),
            (Ok(_), Err(e)) => Err((code(&e, About::Partition), Some(e.message))),
            (Ok((_, topic, p)), Ok(batches)) => kafka
                .api
                .share_acknowledge(who, group, member, topic, *p, &batches)
                .await
                .map_err(|e| (code(&e, About::Partition), Some(e.message))),
        };
        match result {
            Ok(()) => out.push((part, 0, None)),
            Err((c, message)) => out.push((part, c, message)),
        }
    }
    out
}

/// A share session as an error names it.
fn session_named(group: &str, member: &str, epoch: i32) -> String {
    format!("share session of member {member:?} of group {group:?} at epoch {epoch}")
}

/// The request's group and member, both required.
fn group_and_member(
    group: Option<&StrBytes>,
    member: Option<&StrBytes>,
) -> Result<(String, String), (ResponseError, String)> {
    let group = group.map(|g| g.to_string()).unwrap_or_default();
    let member = member.map(|m| m.to_string()).unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        let why = "a share request needs its GroupId and MemberId".to_string();
        return Err((ResponseError::InvalidRequest, why));
    }
    Ok((group, member))
}

/// `ShareFetch`.
pub(crate) fn fetch(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ShareFetchRequest = call.decode()?;
    let replier = call.replier;
    let refuse = |e: ResponseError, why: String| {
        let body = ShareFetchResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(e.code())
            .with_error_message(Some(text(&why)));
        Ok(replier.reply(&body, Duration::ZERO))
    };
    let (group, member) =
        match group_and_member(req.group_id.as_ref().map(|g| &g.0), req.member_id.as_ref()) {
            Ok(gm) => gm,
            Err((e, why)) => return refuse(e, why),
        };
    let mut acks = Vec::new();
    let mut added = Vec::new();
    let mut unknown = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let part = named(kafka, &t.topic_id, p.partition_index);
            match &part {
                Ok(sp) => added.push(sp.clone()),
                Err(_) => unknown.push((t.topic_id, p.partition_index)),
            }
            if !p.acknowledgement_batches.is_empty() {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.as_slice()));
                acks.push((part, ack_batches(batches)));
            }
        }
    }
    let forgotten: Vec<SharePart> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().filter_map(|p| named(kafka, &t.topic_id, *p).ok()))
        .collect();
    let epoch = req.share_session_epoch;
    let sessions = &kafka.share_sessions;
    let step = match epoch {
        0 if !acks.is_empty() => {
            let why = "a ShareFetch opening a share session (epoch 0) may not acknowledge";
            return refuse(ResponseError::InvalidRequest, why.into());
        }
        0 => sessions
            .open(&group, &member, session.connection, added.iter().cloned().collect())
            .map(|()| Step::Open(added.iter().cloned().collect())),
        _ => sessions.step(&group, &member, epoch, &added, &forgotten),
    };
    let step = match step {
        Ok(step) => step,
        Err(e) => {
            let why = session_named(&group, &member, epoch);
            return refuse(e, why);
        }
    };
    let fetch = ShareFetch {
        group: group.clone(),
        member: member.clone(),
        partitions: Vec::new(),
        max_wait: Duration::from_millis(req.max_wait_ms.max(0) as u64),
        max_bytes: match req.max_bytes {
            n if n > 0 => n as usize,
            _ => usize::MAX,
        },
        max_records: match req.max_records {
            n if n > 0 => n as usize,
            _ => DEFAULT_MAX_RECORDS,
        },
    };
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    Ok(Answer::later(async move {
        let acked = acknowledge_all(&kafka, &who, &group, &member, acks).await;
        let mut fetched: Vec<(SharePart, Result<ShareChunk, Error>)> = Vec::new();
        let mut top = (0, None);
        match step {
            Step::Open(parts) => {
                let fetch = ShareFetch {
                    partitions: parts.iter().map(|(_, t, p)| (t.clone(), *p)).collect(),
                    ..fetch
                };
                match kafka.api.share_fetch(&who, &fetch).await {
                    Ok(answers) => fetched = parts.into_iter().zip(answers).collect(),
                    Err(e) => top = (code(&e, About::Group), Some(e.message)),
                }
            }
            Step::Closed(parts) => {
                let parts: Vec<(String, u32)> = parts.into_iter().map(|(_, t, p)| (t, p)).collect();
                kafka.api.share_release(&group, &member, &parts).await;
            }
        }
        let lock_ms = kafka.api.share_lock_ms(&group).await;
        let body = fetch_response(epoch == 0, acked, fetched, &unknown)
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(top.0)
            .with_error_message(top.1.map(|m| text(&m)))
            .with_acquisition_lock_timeout_ms(lock_ms as i32);
        replier.later(&body, Duration::ZERO)
    }))
}

/// The partitions of a `ShareFetch` answer by topic id: on a full request every one,
/// else those with records, an error or an acknowledgement result.
fn fetch_response(
    full: bool,
    acked: Vec<(Named, i16, Option<String>)>,
    fetched: Vec<(SharePart, Result<ShareChunk, Error>)>,
    unknown: &[(uuid::Uuid, i32)],
) -> ShareFetchResponse {
    let mut parts: BTreeMap<(uuid::Uuid, i32), PartitionData> = BTreeMap::new();
    fn entry(
        parts: &mut BTreeMap<(uuid::Uuid, i32), PartitionData>,
        id: uuid::Uuid,
        p: i32,
    ) -> &mut PartitionData {
        parts.entry((id, p)).or_insert_with(|| {
            PartitionData::default()
                .with_partition_index(p)
                .with_records(Some(bytes::Bytes::new()))
                .with_current_leader(
                    LeaderIdAndEpoch::default().with_leader_id(-1).with_leader_epoch(-1),
                )
        })
    }
    for ((id, _, p), chunk) in fetched {
        let news = match &chunk {
            Ok(c) => !c.acquired.is_empty(),
            Err(_) => true,
        };
        if !(full || news) {
            continue;
        }
        let part = entry(&mut parts, id, p as i32);
        match chunk {
            Ok(c) => {
                part.records = Some(c.batches);
                part.acquired_records = c
                    .acquired
                    .iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first)
                            .with_last_offset(a.last)
                            .with_delivery_count(a.deliveries.min(i16::MAX as u16) as i16)
                    })
                    .collect();
            }
            Err(e) => {
                part.error_code = code(&e, About::Partition);
                part.error_message = Some(text(&e.message));
                if let Some((leader, epoch)) = crate::produce::leader_of(&e) {
                    part.current_leader =
                        LeaderIdAndEpoch::default().with_leader_id(leader).with_leader_epoch(epoch);
                }
            }
        }
    }
    for (id, p) in unknown {
        entry(&mut parts, *id, *p).error_code = ResponseError::UnknownTopicId.code();
    }
    for (part, c, message) in acked {
        let Ok((id, _, p)) = part else { continue };
        let d = entry(&mut parts, id, p as i32);
        d.acknowledge_error_code = c;
        d.acknowledge_error_message = message.map(|m| text(&m));
    }
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for ((id, _), part) in parts {
        match topics.last_mut().filter(|t| t.topic_id == id) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![part]),
            ),
        }
    }
    ShareFetchResponse::default().with_responses(topics)
}

/// `ShareAcknowledge`: acknowledgements in the member's share session (never at epoch
/// 0: INVALID_SHARE_SESSION_EPOCH); at epoch -1 the session closes after them and the
/// member's other records are given back.
pub(crate) fn acknowledge(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: ShareAcknowledgeRequest = call.decode()?;
    let replier = call.replier;
    let refuse = |e: ResponseError, why: String| {
        let body = ShareAcknowledgeResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_error_code(e.code())
            .with_error_message(Some(text(&why)));
        Ok(replier.reply(&body, Duration::ZERO))
    };
    let (group, member) =
        match group_and_member(req.group_id.as_ref().map(|g| &g.0), req.member_id.as_ref()) {
            Ok(gm) => gm,
            Err((e, why)) => return refuse(e, why),
        };
    let epoch = req.share_session_epoch;
    let step = match epoch {
        0 => Err(ResponseError::InvalidShareSessionEpoch),
        _ => kafka.share_sessions.step(&group, &member, epoch, &[], &[]),
    };
    let step = match step {
        Ok(step) => step,
        Err(e) => {
            let why = session_named(&group, &member, epoch);
            return refuse(e, why);
        }
    };
    let acks: Vec<(Named, Result<Vec<AckBatch>, Error>)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
        .map(|(id, p)| {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.as_slice()));
            (named(kafka, &id, p.partition_index), ack_batches(batches))
        })
        .collect();
    let raw: Vec<(uuid::Uuid, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p.partition_index)))
        .collect();
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    Ok(Answer::later(async move {
        let acked = acknowledge_all(&kafka, &who, &group, &member, acks).await;
        if let Step::Closed(parts) = step {
            let parts: Vec<(String, u32)> = parts.into_iter().map(|(_, t, p)| (t, p)).collect();
            kafka.api.share_release(&group, &member, &parts).await;
        }
        let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
        let mut seen = BTreeSet::new();
        for ((id, p), (_, c, message)) in raw.into_iter().zip(acked) {
            if !seen.insert((id, p)) {
                continue;
            }
            let part = ack_response::PartitionData::default()
                .with_partition_index(p)
                .with_error_code(c)
                .with_error_message(message.map(|m| text(&m)))
                .with_current_leader(
                    ack_response::LeaderIdAndEpoch::default()
                        .with_leader_id(-1)
                        .with_leader_epoch(-1),
                );
            match topics.last_mut().filter(|t| t.topic_id == id) {
                Some(t) => t.partitions.push(part),
                None => topics.push(
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(vec![part]),
                ),
            }
        }
        let body = ShareAcknowledgeResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_responses(topics);
        replier.later(&body, Duration::ZERO)
    }))
}
