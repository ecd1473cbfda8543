//! `OffsetCommit` and `OffsetFetch`: committed offsets of a group, kept where Shale's own
//! groups keep theirs (`offsets/{g}/{topic}/{p}` in the metadata store), so either
//! protocol's tools see them. Commits are fenced by the group's member and generation;
//! fetches are served by any broker. No leader epoch is kept with a commit: a fetch
//! answers -1 for it, which clients take as unknown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Kafka;
use crate::call::{Answer, Call, Session};
use crate::errors::{About, code};
use shale_broker::api::{Identity, OffsetToCommit};
use shale_core::error::Error;

/// What the domain answered a commit: each offset's outcome, or the request's error.
type Outcomes = Result<Vec<(OffsetToCommit, Result<(), Error>)>, Error>;

/// A commit request's partitions (OffsetCommit's, TxnOffsetCommit's): the offsets to
/// commit, and those refused before the domain sees them (a negative partition).
#[derive(Debug, Default)]
pub(crate) struct ToCommit {
    pub offsets: Vec<OffsetToCommit>,
    refused: Vec<(String, i32, Error)>,
}

impl ToCommit {
    /// The offsets of `partitions`: (topic, partition, offset, metadata).
    pub(crate) fn new<'a>(
        partitions: impl IntoIterator<Item = (&'a str, i32, i64, Option<&'a str>)>,
    ) -> ToCommit {
        let mut asked = ToCommit::default();
        for (topic, partition, offset, metadata) in partitions {
            match u32::try_from(partition) {
                Ok(index) => asked.offsets.push(OffsetToCommit {
                    topic: topic.to_string(),
                    partition: index,
                    offset,
                    metadata: metadata.unwrap_or_default().to_string(),
                }),
                Err(_) => asked.refused.push((
                    topic.to_string(),
                    partition,
                    Error::invalid(format!("partition {partition} of {topic:?} is negative")),
                )),
            }
        }
        asked
    }

    /// Each partition's error code (`code` of its error, 0 for none) by topic: the outcome
    /// of each offset committed, or the whole request's error for each, then the refused
    /// partitions' own.
    pub(crate) fn codes(
        self,
        outcomes: Outcomes,
        code: impl Fn(&Error) -> i16,
    ) -> BTreeMap<String, Vec<(i32, i16)>> {
        let mut by_topic: BTreeMap<String, Vec<(i32, i16)>> = BTreeMap::new();
        let mut answer = |topic: String, partition: u32, error: Option<&Error>| {
            let c = error.map_or(0, &code);
            by_topic.entry(topic).or_default().push((partition as i32, c));
        };
        match outcomes {
            Ok(outcomes) => {
                for (o, r) in outcomes {
                    answer(o.topic, o.partition, r.err().as_ref());
                }
            }
            Err(e) => {
                for o in self.offsets {
                    answer(o.topic, o.partition, Some(&e));
                }
            }
        }
        for (topic, partition, e) in self.refused {
            by_topic.entry(topic).or_default().push((partition, code(&e)));
        }
        by_topic
    }
}

/// `OffsetCommit`.
pub(crate) fn commit(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: OffsetCommitRequest = call.decode()?;
    let version = call.version();
    let replier = call.replier;
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    Ok(Answer::later(async move {
        let group = req.group_id.0.to_string();
        let instance = match version {
            0..=6 => None,
            _ => req.group_instance_id.as_ref().map(|i| i.to_string()),
        };
        let asked = ToCommit::new(req.topics.iter().flat_map(|t| {
            t.partitions.iter().map(|p| {
                let metadata = p.committed_metadata.as_deref();
                (t.name.0.as_str(), p.partition_index, p.committed_offset, metadata)
            })
        }));
        let outcomes = kafka
            .api
            .commit_kafka(
                &who,
                &group,
                &req.member_id,
                instance.as_deref(),
                req.generation_id_or_member_epoch,
                version >= 9,
                asked.offsets.clone(),
            )
            .await;
        let codes = asked.codes(outcomes, |e| code(e, About::Group));
        let body = OffsetCommitResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO))
            .with_topics(
                codes
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitResponseTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, c)| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(c)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        replier.later(&body, Duration::ZERO)
    }))
}

/// One group's committed offsets: the topics (and partitions) asked for, or all.
type Asked = Option<Vec<(String, Vec<i32>)>>;

/// A group's offsets as `(topic, [(partition, offset, metadata, error)])`, or the
/// group-level error.
type Fetched = Result<Vec<(String, Vec<(i32, i64, String, i16)>)>, Error>;

/// A group's offsets for `fetch_group`, as `(topic, partition) -> (offset, metadata, error)`.
type Rows = BTreeMap<String, BTreeMap<i32, (i64, String, i16)>>;

/// The offsets of `group` asked for; with `stable` (KIP-447's `require_stable`), each
/// partition a transaction holds offsets for answers UNSTABLE_OFFSET_COMMIT, which the
/// client retries until the transaction ends.
async fn fetch_group(
    kafka: &Kafka,
    who: &Identity,
    group: &str,
    asked: Asked,
    stable: bool,
) -> Fetched {
    let topics: Vec<String> = asked.iter().flatten().map(|(t, _)| t.clone()).collect();
    let (committed, unstable) = match stable {
        true => kafka.api.fetch_stable_offsets(who, group, &topics).await?,
        false => (kafka.api.fetch_offsets(who, group, &topics).await?, Default::default()),
    };
    let mut by_topic: Rows = BTreeMap::new();
    for c in committed {
        by_topic.entry(c.topic).or_default().insert(c.partition as i32, (c.offset, c.metadata, 0));
    }
    let retry = ResponseError::UnstableOffsetCommit.code();
    for (t, p) in unstable {
        by_topic.entry(t).or_default().insert(p as i32, (-1, String::new(), retry));
    }
    Ok(match asked {
        None => by_topic
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|(p, (o, m, e))| (p, o, m, e)).collect()))
            .collect(),
        Some(asked) => asked
            .into_iter()
            .map(|(t, partitions)| {
                let have = by_topic.get(&t);
                let rows = partitions
                    .into_iter()
                    .map(|p| match have.and_then(|h| h.get(&p)) {
                        Some((o, m, e)) => (p, *o, m.clone(), *e),
                        None => (p, -1, String::new(), 0),
                    })
                    .collect();
                (t, rows)
            })
            .collect(),
    })
}

/// `OffsetFetch`: one group (v1–7) or several (v8+).
pub(crate) fn fetch(
    kafka: &Arc<Kafka>,
    session: &Session,
    call: &mut Call,
) -> Result<Answer, String> {
    let req: OffsetFetchRequest = call.decode()?;
    let version = call.version();
    let replier = call.replier;
    let (kafka, who) = (kafka.clone(), session.identity.clone());
    Ok(Answer::later(async move {
        let mut body = OffsetFetchResponse::default()
            .with_throttle_time_ms(replier.throttle_ms(Duration::ZERO));
        if version <= 7 {
            let asked: Asked = req.topics.as_ref().map(|ts| {
                ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect()
            });
            let stable = version >= 7 && req.require_stable;
            match fetch_group(&kafka, &who, &req.group_id.0, asked, stable).await {
                Ok(topics) => {
                    body.topics = topics
                        .into_iter()
                        .map(|(t, rows)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, o, m, e)| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_metadata(Some(StrBytes::from_string(m)))
                                                .with_error_code(e)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(e) if version >= 2 => body.error_code = code(&e, About::Group),
                Err(e) => {
                    // v1 has no group-level error: every partition asked carries it.
                    let error = code(&e, About::Group);
                    body.topics = req
                        .topics
                        .iter()
                        .flatten()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(-1)
                                                .with_error_code(error)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
            }
        } else {
            let mut groups = Vec::with_capacity(req.groups.len());
            for g in &req.groups {
                let asked: Asked = g.topics.as_ref().map(|ts| {
                    ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect()
                });
                let group = OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0.clone()));
                // v9: a consumer-protocol member fetches at its member epoch (KIP-848).
                let member = g.member_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
                let checked = match version >= 9 {
                    true => {
                        let api = &kafka.api;
                        api.check_offset_fetch(&who, &g.group_id.0, &member, g.member_epoch).await
                    }
                    false => Ok(()),
                };
                if let Err(e) = checked {
                    groups.push(group.with_error_code(code(&e, About::Group)));
                    continue;
                }
                let fetched = fetch_group(&kafka, &who, &g.group_id.0, asked, req.require_stable);
                groups.push(match fetched.await {
                    Ok(topics) => group.with_topics(
                        topics
                            .into_iter()
                            .map(|(t, rows)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(
                                        rows.into_iter()
                                            .map(|(p, o, m, e)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_metadata(Some(StrBytes::from_string(m)))
                                                    .with_error_code(e)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                    Err(e) => group.with_error_code(code(&e, About::Group)),
                });
            }
            body.groups = groups;
        }
        replier.later(&body, Duration::ZERO)
    }))
}
