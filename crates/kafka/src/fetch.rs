//! `Fetch`: whole record batches below each partition's high watermark, up to the
//! request's per-partition and total byte limits (the first batch of the first partition
//! with data goes out whatever its size, KIP-74), from the local log or the bucket below
//! the local log start. With less than `min_bytes` ready the request waits for new data
//! up to `max_wait_ms`. Incremental fetch sessions (KIP-227) are in `sessions`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Replier, Session};
use crate::errors::{About, code};
use crate::sessions::{Cached, FetchSession, Plan, Told, Tp};
use shale_broker::api::{FetchChunk, FetchPartition, Identity, Isolation};
use shale_core::error::Error;

/// What one partition of a fetch asks for.
#[derive(Debug, Clone)]
struct Want {
    tp: Tp,
    cached: Cached,
    /// An error found before reading (unknown topic id).
    error: Option<ResponseError>,
}

/// `Fetch`.
pub(crate) fn fetch(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: FetchRequest = call.decode()?;
    let version = call.version();
    let replier = call.replier;
    let who = session.identity.clone();
    let plan = match version {
        0..=6 => Ok(Plan::Sessionless),
        _ => kafka.sessions.plan(req.session_id, req.session_epoch, who.principal.as_str()),
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            let body = FetchResponse::default()
                .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
                .with_error_code(e.code())
                .with_session_id(req.session_id);
            return Ok(replier.reply(&body, Duration::ZERO));
        }
    };
    let named = |topic: &kafka_protocol::messages::TopicName, id: &uuid::Uuid| match version {
        0..=12 => Ok(topic.0.to_string()),
        _ => kafka.api.topic_name(&id.to_string()).ok_or(ResponseError::UnknownTopicId),
    };
    let mut asked = Vec::new();
    for t in &req.topics {
        let name = named(&t.topic, &t.topic_id);
        for p in &t.partitions {
            let cached = Cached {
                topic_id: t.topic_id,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: if version >= 9 { p.current_leader_epoch } else { -1 },
                told: Told::NEVER,
            };
            let (topic, error) = match &name {
                Ok(n) => (n.clone(), None),
                Err(e) => (t.topic_id.to_string(), Some(*e)),
            };
            asked.push(Want { tp: (topic, p.partition), cached, error });
        }
    }
    let wants = match &plan {
        Plan::Sessionless => asked,
        Plan::Opened(s) | Plan::Incremental(s) => {
            let mut s = lock(s);
            for f in &req.forgotten_topics_data {
                if let Ok(topic) = named(&f.topic, &f.topic_id) {
                    for p in &f.partitions {
                        s.forget(&(topic.clone(), *p));
                    }
                }
            }
            let mut unresolved = Vec::new();
            for w in asked {
                match w.error {
                    None => s.upsert(w.tp, w.cached),
                    Some(_) => unresolved.push(w),
                }
            }
            let mut all: Vec<Want> = s
                .partitions
                .iter()
                .map(|(tp, c)| Want { tp: tp.clone(), cached: c.clone(), error: None })
                .collect();
            all.extend(unresolved);
            all
        }
    };
    let limits = Limits {
        max_bytes: usize::try_from(req.max_bytes).unwrap_or(0).max(1),
        min_bytes: usize::try_from(req.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)),
        // Fetch v4 added the isolation level: 1 is read_committed.
        isolation: match (version, req.isolation_level) {
            (4.., 1) => Isolation::ReadCommitted,
            _ => Isolation::ReadUncommitted,
        },
    };
    let kafka = kafka.clone();
    Ok(Answer::later(async move { run(kafka, who, replier, plan, wants, limits).await }))
}

/// A fetch's byte limits and wait.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_bytes: usize,
    min_bytes: usize,
    max_wait: Duration,
    isolation: Isolation,
}

fn lock(s: &Mutex<FetchSession>) -> std::sync::MutexGuard<'_, FetchSession> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads every partition (waiting for data as the limits say) and builds the answer.
async fn run(
    kafka: Arc<Kafka>,
    who: Identity,
    replier: Replier,
    plan: Plan,
    wants: Vec<Want>,
    limits: Limits,
) -> Result<(Bytes, Duration), String> {
    // Partitions the request could not name (an unknown topic id, a negative index) are
    // answered without a read.
    let asked: Vec<Result<FetchPartition, Error>> =
        wants.iter().map(|w| asked(w, limits.isolation)).collect();
    let readable: Vec<FetchPartition> = asked.iter().flatten().cloned().collect();
    let fetched = kafka
        .api
        .fetch(&who, "Fetch", &readable, limits.max_bytes, limits.min_bytes, limits.max_wait)
        .await;
    let mut read = fetched.partitions.into_iter();
    let got: Vec<Result<FetchChunk, Error>> = asked
        .into_iter()
        .map(|a| match a {
            Ok(_) => read.next().unwrap_or_else(|| Err(Error::internal("a partition unread"))),
            Err(e) => Err(e),
        })
        .collect();
    let throttle = fetched.throttle;
    let committed = limits.isolation == Isolation::ReadCommitted;
    let body =
        respond(replier.version, &plan, &wants, got, committed, replier.throttle_ms(throttle));
    replier.later(&body, throttle)
}

/// A partition in error: no offsets (-1), no records.
fn failed() -> FetchChunk {
    FetchChunk {
        batches: Bytes::new(),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        next_offset: -1,
        aborted: Vec::new(),
        at_end: false,
    }
}

/// What `w` asks of the broker, or why it cannot be asked.
fn asked(w: &Want, isolation: Isolation) -> Result<FetchPartition, Error> {
    if w.error.is_some() {
        return Err(Error::invalid("unknown topic id"));
    }
    let (topic, p) = &w.tp;
    let partition = u32::try_from(*p)
        .map_err(|_| Error::invalid(format!("partition {p} of topic {topic:?} is negative")))?;
    Ok(FetchPartition {
        topic: topic.clone(),
        partition,
        offset: w.cached.fetch_offset,
        max_bytes: usize::try_from(w.cached.max_bytes).unwrap_or(0),
        leader_epoch: Some(w.cached.current_leader_epoch).filter(|e| *e >= 0),
        isolation,
    })
}

/// The answer: every partition for a full fetch, only those with news for an incremental
/// one (the session remembers what each was told).
fn respond(
    version: i16,
    plan: &Plan,
    wants: &[Want],
    got: Vec<Result<FetchChunk, Error>>,
    committed: bool,
    throttle_ms: i32,
) -> FetchResponse {
    let mut session = match plan {
        Plan::Sessionless => None,
        Plan::Opened(s) | Plan::Incremental(s) => Some(lock(s)),
    };
    let incremental = matches!(plan, Plan::Incremental(_));
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (w, g) in wants.iter().zip(got) {
        let (g, error) = match g {
            Ok(c) => (c, None),
            // Kafka's answer for a partition in error: no offsets (-1), no records.
            Err(e) => (failed(), Some(e)),
        };
        let error_code = match (&w.error, &error) {
            (Some(e), _) => e.code(),
            (None, Some(e)) => code(e, About::Partition),
            (None, None) => 0,
        };
        let told = Told {
            high_watermark: g.high_watermark,
            last_stable_offset: g.last_stable_offset,
            log_start_offset: g.log_start_offset,
        };
        let news = error_code != 0 || !g.batches.is_empty() || told != w.cached.told;
        if let Some(s) = session.as_deref_mut() {
            s.told(&w.tp, told, !g.batches.is_empty());
        }
        if incremental && !news {
            continue;
        }
        let mut part = PartitionData::default()
            .with_partition_index(w.tp.1)
            .with_error_code(error_code)
            .with_high_watermark(g.high_watermark)
            .with_last_stable_offset(g.last_stable_offset)
            .with_log_start_offset(if version >= 5 { g.log_start_offset } else { -1 })
            .with_records(Some(g.batches));
        if committed {
            part.aborted_transactions = Some(
                g.aborted
                    .iter()
                    .map(|(pid, first)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(*pid))
                            .with_first_offset(*first)
                    })
                    .collect(),
            );
        }
        if version >= 12
            && let Some((leader, epoch)) = error.as_ref().and_then(crate::produce::leader_of)
        {
            part.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
        }
        let same_topic = |t: &FetchableTopicResponse| match version {
            0..=12 => t.topic.0.as_str() == w.tp.0,
            _ => t.topic_id == w.cached.topic_id,
        };
        match topics.last_mut().filter(|t| same_topic(t)) {
            Some(t) => t.partitions.push(part),
            None => {
                let topic = FetchableTopicResponse::default().with_partitions(vec![part]);
                topics.push(match version {
                    0..=12 => topic.with_topic(TopicName(StrBytes::from_string(w.tp.0.clone()))),
                    _ => topic.with_topic_id(w.cached.topic_id),
                });
            }
        }
    }
    let session_id = match plan {
        Plan::Sessionless => 0,
        Plan::Opened(_) | Plan::Incremental(_) => session.map_or(0, |s| s.id),
    };
    FetchResponse::default()
        .with_throttle_time_ms(throttle_ms)
        .with_session_id(if version >= 7 { session_id } else { 0 })
        .with_responses(topics)
}
