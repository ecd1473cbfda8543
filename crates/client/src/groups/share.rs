//! Share groups from the client side (KIP-932 over gRPC): [`ShareConsumer`] joins a share
//! group, heartbeats in a task of its own, and acquires records of the partitions it is
//! given from their leaders; each record is held under a lock until it is acknowledged
//! ([`ShareConsumer::acknowledge`]: accept, release or reject), its lock lapses (it is then
//! delivered again, to any member) or its delivery limit is reached. Acknowledgements go
//! with the next [`poll`](ShareConsumer::poll) of their partition, or at once with
//! [`commit`](ShareConsumer::commit). Several members share a partition, record by record:
//! a queue with as many workers as wanted, whatever the partition count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::Header;
use shale_core::task::OwnedTask;
use shale_proto::pb;

use super::Tp;
use crate::consumer::ConsumerRecord;
use crate::{Client, RetryPolicy, status_error};

/// Share consumer settings.
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// Group id.
    pub group: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Shown by `shale group describe`.
    pub client_id: String,
    /// Records a poll acquires at most per partition.
    pub max_records: u32,
}

impl ShareConfig {
    /// Defaults for share group `group` subscribed to `topics`.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> ShareConfig {
        ShareConfig {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            client_id: format!("shale-share-{}", std::process::id()),
            max_records: 500,
        }
    }
}

/// A record acquired by this member, and how many times it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRecord {
    pub record: ConsumerRecord,
    /// Deliveries so far, this one included.
    pub delivery_count: u32,
}

/// How a record is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Processed: never delivered again.
    Accept,
    /// Not processed: delivered again at once, to any member.
    Release,
    /// Unprocessable: never delivered again.
    Reject,
}

impl AckKind {
    fn proto(self) -> i32 {
        match self {
            AckKind::Accept => pb::AcknowledgeType::Accept as i32,
            AckKind::Release => pb::AcknowledgeType::Release as i32,
            AckKind::Reject => pb::AcknowledgeType::Reject as i32,
        }
    }
}

/// What the heartbeat task and the consumer share.
#[derive(Debug, Default)]
struct Membership {
    member_id: String,
    epoch: i32,
    assignment: BTreeSet<Tp>,
}

fn lock(m: &Mutex<Membership>) -> std::sync::MutexGuard<'_, Membership> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A member of a share group.
#[derive(Debug)]
pub struct ShareConsumer {
    client: Client,
    config: ShareConfig,
    membership: Arc<Mutex<Membership>>,
    pending: BTreeMap<Tp, Vec<pb::ShareAcknowledgement>>,
    heartbeat: Option<OwnedTask<()>>,
}

impl ShareConsumer {
    /// Joins `config.group`; the heartbeat runs until [`close`](Self::close) or drop.
    pub fn subscribe(client: Client, config: ShareConfig) -> ShareConsumer {
        let membership = Arc::new(Mutex::new(Membership::default()));
        let beat = heartbeat_loop(client.clone(), config.clone(), membership.clone());
        ShareConsumer {
            client,
            config,
            membership,
            pending: BTreeMap::new(),
            heartbeat: Some(shale_core::task::spawn_owned(beat)),
        }
    }

    /// The member id the coordinator gave, once joined.
    pub fn member_id(&self) -> String {
        lock(&self.membership).member_id.clone()
    }

    /// The partitions this member may acquire from now.
    pub fn assignment(&self) -> BTreeSet<Tp> {
        lock(&self.membership).assignment.clone()
    }

    /// Acquires records of the assigned partitions (sending the acknowledgements queued for
    /// them), waiting up to `max_wait` while none can be acquired.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<SharedRecord>, Error> {
        let (member, assignment) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.assignment.clone())
        };
        if member.is_empty() || assignment.is_empty() {
            shale_core::clock::sleep(max_wait.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        let fetches = assignment.iter().map(|(topic, partition)| {
            let acks = self.pending.remove(&(topic.clone(), *partition)).unwrap_or_default();
            let req = pb::ShareFetchRequest {
                group: self.config.group.clone(),
                member_id: member.clone(),
                topic: topic.clone(),
                partition: *partition,
                max_records: self.config.max_records,
                max_wait_ms: max_wait.as_millis() as u32,
                acknowledgements: acks,
            };
            let client = &self.client;
            async move {
                let policy = RetryPolicy::QUICK;
                let answer = client
                    .at_leader_within(topic, *partition, policy, |addr| {
                        let (req, rpc) = (req.clone(), client.groups_rpc_at(addr));
                        async move {
                            let mut rpc = rpc?;
                            rpc.share_fetch(req).await.map_err(|s| status_error(&s))
                        }
                    })
                    .await?;
                Ok::<_, Error>(records(topic, *partition, answer.into_inner()))
            }
        });
        let mut out = Vec::new();
        for fetched in futures::future::join_all(fetches).await {
            out.extend(fetched?);
        }
        Ok(out)
    }

    /// Queues `kind` for `record`, sent with its partition's next poll or commit.
    pub fn acknowledge(&mut self, record: &SharedRecord, kind: AckKind) {
        let r = &record.record;
        let acks = self.pending.entry((r.topic.clone(), r.partition)).or_default();
        match acks.last_mut() {
            Some(a) if a.r#type == kind.proto() && a.last_offset + 1 == r.offset => {
                a.last_offset = r.offset
            }
            _ => acks.push(pb::ShareAcknowledgement {
                first_offset: r.offset,
                last_offset: r.offset,
                r#type: kind.proto(),
            }),
        }
    }

    /// Sends the queued acknowledgements now; each partition's are stored by its leader
    /// before this returns. The first refusal is the error (INVALID_RECORD_STATE for a
    /// record whose lock lapsed).
    pub async fn commit(&mut self) -> Result<(), Error> {
        let member = self.member_id();
        let mut first_error = None;
        for ((topic, partition), acks) in std::mem::take(&mut self.pending) {
            let req = pb::ShareAcknowledgeRequest {
                group: self.config.group.clone(),
                member_id: member.clone(),
                topic: topic.clone(),
                partition,
                acknowledgements: acks,
            };
            let client = &self.client;
            let sent = client
                .at_leader_within(&topic, partition, RetryPolicy::QUICK, |addr| {
                    let (req, rpc) = (req.clone(), client.groups_rpc_at(addr));
                    async move {
                        let mut rpc = rpc?;
                        rpc.share_acknowledge(req).await.map_err(|s| status_error(&s))
                    }
                })
                .await;
            if let Err(e) = sent {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Commits what is queued and leaves the group. Records still held come back when
    /// their locks lapse.
    pub async fn close(mut self) -> Result<(), Error> {
        let committed = self.commit().await;
        self.heartbeat.take();
        let (member, epoch) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.epoch)
        };
        if !member.is_empty() && epoch > 0 {
            let req = pb::HeartbeatRequest {
                group: self.config.group.clone(),
                member_id: member,
                member_epoch: -1,
                share: true,
                ..Default::default()
            };
            let mut rpc = self.client.groups_rpc()?;
            rpc.heartbeat(req).await.map_err(|s| status_error(&s))?;
        }
        committed
    }
}

fn records(topic: &str, partition: u32, answer: pb::ShareFetchResponse) -> Vec<SharedRecord> {
    answer
        .records
        .into_iter()
        .filter_map(|s| {
            let r = s.record?;
            Some(SharedRecord {
                record: ConsumerRecord {
                    topic: topic.to_string(),
                    partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|h| Header { key: h.key, value: h.value })
                        .collect(),
                },
                delivery_count: s.delivery_count,
            })
        })
        .collect()
}

/// Heartbeats as a share member until dropped: joins, keeps the assignment up to date, and
/// joins again when the coordinator no longer knows it.
async fn heartbeat_loop(client: Client, config: ShareConfig, membership: Arc<Mutex<Membership>>) {
    loop {
        let (member_id, epoch) = {
            let m = lock(&membership);
            (m.member_id.clone(), m.epoch)
        };
        let joining = member_id.is_empty();
        let req = pb::HeartbeatRequest {
            group: config.group.clone(),
            member_id,
            member_epoch: if joining { 0 } else { epoch },
            topics: config.topics.clone(),
            client_id: config.client_id.clone(),
            share: true,
            ..Default::default()
        };
        let answer = match client.groups_rpc() {
            Ok(mut rpc) => rpc
                .heartbeat(req)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| status_error(&s)),
            Err(e) => Err(e),
        };
        let interval = match answer {
            Ok(a) => {
                let mut m = lock(&membership);
                m.member_id = a.member_id;
                m.epoch = a.member_epoch;
                m.assignment = a
                    .assignment
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
                    .collect();
                Duration::from_millis(u64::from(a.heartbeat_interval_ms.max(100)))
            }
            Err(e) if fenced(&e) => {
                tracing::info!(group = config.group, error = %e, "share member rejoins");
                *lock(&membership) = Membership::default();
                continue;
            }
            Err(e) => {
                tracing::debug!(group = config.group, error = %e, "share heartbeat failed; retrying");
                Duration::from_millis(500)
            }
        };
        shale_core::clock::sleep(interval).await;
    }
}

/// Whether `e` says the member must join again.
fn fenced(e: &Error) -> bool {
    e.kind == ErrorKind::Fenced
        || matches!(e.reason, Reason::UnknownMemberId | Reason::FencedMemberEpoch)
}
