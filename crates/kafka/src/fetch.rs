//! `Fetch`: whole record batches below each partition's high watermark, up to the
//! request's per-partition and total byte limits (the first batch of the first partition
//! with data goes out whatever its size, KIP-74), from the local log or the bucket below
//! the local log start. With less than `min_bytes` ready the request waits for new data
//! up to `max_wait_ms`. Incremental fetch sessions (KIP-227) are in `sessions`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Replier, Session};
use crate::errors::{About, code};
use crate::sessions::{Cached, FetchSession, Plan, Tp};
use shale_broker::api::{Identity, LogRead, QuotaKind};
use shale_core::error::{Error, ErrorKind, Reason};

/// What one partition of a fetch asks for.
#[derive(Debug, Clone)]
struct Want {
    tp: Tp,
    cached: Cached,
    /// An error found before reading (unknown topic id).
    error: Option<ResponseError>,
}

/// What one partition of a fetch found.
#[derive(Debug)]
struct Got {
    records: Bytes,
    high_watermark: i64,
    log_start_offset: i64,
    error: Option<Error>,
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
                high_watermark: -1,
                log_start_offset: -1,
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
    };
    let kafka = kafka.clone();
    Ok(Answer::later(async move { run(kafka, who, replier, plan, wants, limits).await }))
}

/// Why a waiting fetch woke.
enum Woke {
    /// New data, or the wait ran out: read again.
    Data,
    /// A partition closed here.
    Gone,
    /// The broker closes.
    Closing,
}

/// A fetch's byte limits and wait.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_bytes: usize,
    min_bytes: usize,
    max_wait: Duration,
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
    let api = &kafka.api;
    let mut topic_checks: HashMap<String, Result<(), Error>> = HashMap::new();
    let opened: Vec<Result<LogRead, Error>> = wants
        .iter()
        .map(|w| {
            if w.error.is_some() {
                return Err(Error::invalid("unknown topic id"));
            }
            let (topic, p) = &w.tp;
            let allowed = topic_checks
                .entry(topic.clone())
                .or_insert_with(|| api.check_read(&who, "Fetch", topic))
                .clone();
            allowed?;
            let partition = u32::try_from(*p).map_err(|_| {
                Error::invalid(format!("partition {p} of topic {topic:?} is negative"))
            })?;
            let read = api.open_for_read(&who, "Fetch", topic, partition)?;
            check_leader_epoch(&read, w.cached.current_leader_epoch)?;
            Ok(read)
        })
        .collect();
    let deadline = shale_core::clock::monotonic_now() + limits.max_wait;
    let mut closed = api.closed_signal();
    let got = loop {
        let mut watches: Vec<_> =
            opened.iter().filter_map(|o| o.as_ref().ok()).map(LogRead::watch).collect();
        let (got, bytes) = read_all(&wants, &opened, limits.max_bytes).await;
        let failed = got.iter().any(|g| g.error.is_some());
        if bytes >= limits.min_bytes.max(1) || failed || watches.is_empty() {
            break got;
        }
        if shale_core::clock::monotonic_now() >= deadline {
            break got;
        }
        let changed = futures::future::select_all(
            watches.iter_mut().map(|w| Box::pin(w.changed().map(|r| r.is_ok()))),
        );
        let woke = tokio::select! {
            (alive, _, _) = changed => match alive {
                true => Woke::Data,
                // A partition closed here: answer now; the client learns where it went.
                false => Woke::Gone,
            },
            _ = shale_core::clock::sleep_until(deadline) => Woke::Data,
            _ = closed.wait_for(|c| *c) => Woke::Closing,
        };
        match woke {
            Woke::Data => {}
            Woke::Gone => break read_all(&wants, &opened, limits.max_bytes).await.0,
            Woke::Closing => break got,
        }
    };
    let total: usize = got.iter().map(|g| g.records.len()).sum();
    let throttle = match api.charge(&who, QuotaKind::Fetch, total as u64) {
        Ok(wait) => wait,
        Err(e) => e.retry_after().unwrap_or(Duration::from_secs(1)),
    };
    let body = respond(replier.version, &plan, &wants, got, replier.throttle_ms(throttle));
    replier.later(&body, throttle)
}

/// The partition's leader epoch checked against the one the client believes (KIP-320):
/// an older one is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (both make the
/// client refresh its metadata).
pub(crate) fn check_leader_epoch(read: &LogRead, asked: i32) -> Result<(), Error> {
    let ours = read.leader_epoch();
    if asked < 0 || asked == ours {
        return Ok(());
    }
    let reason = match asked < ours {
        true => Reason::FencedLeaderEpoch,
        false => Reason::Other("UNKNOWN_LEADER_EPOCH".into()),
    };
    Err(Error::new(
        ErrorKind::Fenced,
        reason,
        format!("the client's leader epoch {asked} is not the leader's {ours}"),
    ))
}

/// Reads each partition in order within the byte limits; the total read.
async fn read_all(
    wants: &[Want],
    opened: &[Result<LogRead, Error>],
    max_bytes: usize,
) -> (Vec<Got>, usize) {
    let mut left = max_bytes;
    let mut total = 0;
    let mut out = Vec::with_capacity(wants.len());
    for (w, o) in wants.iter().zip(opened) {
        let read = match o {
            Err(e) => {
                out.push(Got {
                    records: Bytes::new(),
                    high_watermark: -1,
                    log_start_offset: -1,
                    error: Some(e.clone()),
                });
                continue;
            }
            Ok(read) => read,
        };
        let limit = usize::try_from(w.cached.max_bytes).unwrap_or(0).min(left);
        let mut got = Got {
            records: Bytes::new(),
            high_watermark: read.high_watermark(),
            log_start_offset: read.log_start_offset(),
            error: None,
        };
        if limit > 0 || total == 0 {
            match read.read(w.cached.fetch_offset, limit.max(1)).await {
                // Past the first partition with data, a batch beyond the limits waits for
                // the next fetch (KIP-74: only the first one goes out whatever its size).
                Ok((records, _)) if total > 0 && records.len() > limit => {}
                Ok((records, _)) => {
                    total += records.len();
                    left = left.saturating_sub(records.len());
                    got.records = records;
                }
                Err(e) => got.error = Some(e),
            }
        }
        got.high_watermark = read.high_watermark();
        got.log_start_offset = read.log_start_offset();
        out.push(got);
    }
    (out, total)
}

/// The answer: every partition for a full fetch, only those with news for an incremental
/// one (the session remembers what each was told).
fn respond(
    version: i16,
    plan: &Plan,
    wants: &[Want],
    got: Vec<Got>,
    throttle_ms: i32,
) -> FetchResponse {
    let mut session = match plan {
        Plan::Sessionless => None,
        Plan::Opened(s) | Plan::Incremental(s) => Some(lock(s)),
    };
    let incremental = matches!(plan, Plan::Incremental(_));
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (w, g) in wants.iter().zip(got) {
        let error_code = match (&w.error, &g.error) {
            (Some(e), _) => e.code(),
            (None, Some(e)) => code(e, About::Partition),
            (None, None) => 0,
        };
        let news = error_code != 0
            || !g.records.is_empty()
            || g.high_watermark != w.cached.high_watermark
            || g.log_start_offset != w.cached.log_start_offset;
        if let Some(s) = session.as_deref_mut() {
            s.told(&w.tp, g.high_watermark, g.log_start_offset, !g.records.is_empty());
        }
        if incremental && !news {
            continue;
        }
        let mut part = PartitionData::default()
            .with_partition_index(w.tp.1)
            .with_error_code(error_code)
            .with_high_watermark(g.high_watermark)
            .with_last_stable_offset(g.high_watermark)
            .with_log_start_offset(if version >= 5 { g.log_start_offset } else { -1 })
            .with_records(Some(g.records));
        if version >= 12 {
            if let Some((leader, epoch)) = g.error.as_ref().and_then(crate::produce::leader_of) {
                part.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
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
