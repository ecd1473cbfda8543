//! Consumer groups from the client side: [`GroupConsumer`] (subscribe, heartbeat, follow
//! the assignment the coordinator computes, commit), [`ShareConsumer`] (a share group's
//! member: records acquired under a lock and acknowledged one by one) and [`GroupAdmin`]
//! (offsets and group administration).
//!
//! The heartbeat runs in a task of its own, so slow processing between polls does not
//! cost the membership. The assignment it receives is applied inside [`GroupConsumer::poll`]:
//! partitions taken away are committed (with auto-commit), reported to the rebalance
//! listener and stopped; only then does the next heartbeat say they were released, so the
//! coordinator never hands a partition to another member while this one still reads it.
//! Delivery is at least once: positions are committed after `poll` returned the records,
//! at the next auto-commit, on revoke and on close.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shale_core::task::OwnedTask;
use tokio::sync::Notify;

use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord};
use crate::{Client, locate, status_error};
use shale_core::clock::{Instant, monotonic_now};
use shale_core::error::{Error, ErrorKind};
use shale_proto::pb;

/// A topic partition.
pub type Tp = (String, u32);

mod admin;
mod heartbeat;
mod share;

pub use admin::GroupAdmin;
use heartbeat::heartbeat_loop;
pub use share::{AckKind, ShareConfig, ShareConsumer, SharedRecord};

/// Where a partition without a committed offset starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The high watermark: only new records (Kafka's default).
    #[default]
    Latest,
}

/// Group consumer settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Group id.
    pub group: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Or a glob over topic names (`*`, `?`).
    pub topic_pattern: Option<String>,
    /// Shown by `shale group describe`.
    pub client_id: String,
    /// Session timeout; zero means the broker default.
    pub session_timeout: Duration,
    /// "cooperative-sticky" (default) or "range".
    pub assignor: String,
    /// Commit positions every `auto_commit_interval`, on revoke and on close.
    pub auto_commit: bool,
    /// How often auto-commit commits.
    pub auto_commit_interval: Duration,
    /// Start of partitions without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Fetch tuning.
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    /// Defaults for `group` subscribed to `topics`.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> GroupConfig {
        GroupConfig {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            topic_pattern: None,
            client_id: format!("shale-{}", std::process::id()),
            session_timeout: Duration::ZERO,
            assignor: String::new(),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: OffsetReset::Latest,
            consumer: ConsumerConfig::default(),
        }
    }
}

/// Told about assignment changes, inside [`GroupConsumer::poll`] and
/// [`GroupConsumer::close`].
pub trait RebalanceListener: Send {
    /// Partitions were added; reading starts at their committed offsets.
    fn on_assigned(&mut self, _partitions: &[Tp]) {}
    /// Partitions were taken away (with auto-commit, their positions are committed just
    /// before), or given up by `close` before the member leaves (as Kafka's consumer does on
    /// close). `lost` is true when the member was removed from the group: the positions
    /// could not be committed and another member may read them already.
    fn on_revoked(&mut self, _partitions: &[Tp], _lost: bool) {}
}

/// What the heartbeat task and the consumer share.
#[derive(Debug)]
struct Shared {
    member_id: String,
    /// The assignment and epoch last received.
    received_epoch: i32,
    received: BTreeSet<Tp>,
    /// What the consumer has applied (sent back as `owned` with this epoch).
    applied_epoch: i32,
    applied: BTreeSet<Tp>,
    /// The member was removed; drop everything, then rejoin.
    fenced: Option<Error>,
    last_ok: Instant,
    session: Duration,
    /// A non-retriable heartbeat failure (bad subscription, ...).
    failed: Option<Error>,
}

/// A consumer in a group.
pub struct GroupConsumer {
    client: Client,
    config: GroupConfig,
    consumer: Consumer,
    shared: Arc<Mutex<Shared>>,
    /// Wakes `poll` when a heartbeat brought something new.
    changed: Arc<Notify>,
    /// Wakes the heartbeat task (a revocation was applied; leave).
    wake: Arc<Notify>,
    heartbeat: OwnedTask<()>,
    owned: BTreeSet<Tp>,
    positions: HashMap<Tp, i64>,
    committed: HashMap<Tp, i64>,
    last_commit: Instant,
    /// In a mutex only so that `GroupConsumer` is `Sync` (its futures `Send`) without
    /// asking listeners to be `Sync`; only `&mut self` methods call it.
    listener: Option<Mutex<Box<dyn RebalanceListener>>>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.config.group)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupConsumer {
    /// Joins the group and starts heartbeating; partitions arrive through `poll`.
    pub fn subscribe(client: Client, config: GroupConfig) -> Result<GroupConsumer, Error> {
        shale_core::names::validate_group(&config.group)?;
        if config.topics.is_empty() && config.topic_pattern.is_none() {
            return Err(Error::invalid("subscribe needs topics or a topic pattern"));
        }
        let session = if config.session_timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            config.session_timeout
        };
        let shared = Arc::new(Mutex::new(Shared {
            member_id: String::new(),
            received_epoch: 0,
            received: BTreeSet::new(),
            applied_epoch: 0,
            applied: BTreeSet::new(),
            fenced: None,
            last_ok: monotonic_now(),
            session,
            failed: None,
        }));
        let changed = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        let heartbeat = shale_core::task::spawn_owned(heartbeat_loop(
            client.clone(),
            config.clone(),
            shared.clone(),
            changed.clone(),
            wake.clone(),
        ));
        Ok(GroupConsumer {
            consumer: Consumer::new(client.clone(), config.consumer.clone()),
            client,
            config,
            shared,
            changed,
            wake,
            heartbeat,
            owned: BTreeSet::new(),
            positions: HashMap::new(),
            committed: HashMap::new(),
            last_commit: monotonic_now(),
            listener: None,
        })
    }

    /// Sets the rebalance listener.
    pub fn set_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(Mutex::new(listener));
    }

    /// The partitions this member reads now.
    pub fn assignment(&self) -> Vec<Tp> {
        self.owned.iter().cloned().collect()
    }

    /// This member's id (empty until the first heartbeat answered).
    pub fn member_id(&self) -> String {
        lock(&self.shared).member_id.clone()
    }

    /// Records from the assigned partitions, waiting at most `timeout` (empty if none).
    /// Applies assignment changes and auto-commits on the way.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = monotonic_now() + timeout;
        loop {
            self.reconcile().await?;
            if self.config.auto_commit
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
                && let Err(e) = self.commit().await
            {
                tracing::warn!(group = %self.config.group, reason = %e.reason, error = %e, "auto-commit failed");
            }
            let left = deadline.saturating_duration_since(monotonic_now());
            let wait = left.min(Duration::from_millis(100));
            let changed = self.changed.clone();
            let records = tokio::select! {
                r = self.consumer.poll_for(wait) => r,
                _ = changed.notified() => Ok(Vec::new()),
            };
            match records {
                Ok(records) => {
                    let records: Vec<ConsumerRecord> = records
                        .into_iter()
                        .filter(|r| self.owned.contains(&(r.topic.clone(), r.partition)))
                        .collect();
                    if !records.is_empty() {
                        for r in &records {
                            self.positions.insert((r.topic.clone(), r.partition), r.offset + 1);
                        }
                        return Ok(records);
                    }
                }
                Err(((topic, partition), e)) if e.kind == ErrorKind::OutOfRange => {
                    // The committed offset fell out of the log (retention): auto.offset.reset.
                    let offset = self.reset_offset(&topic, partition).await?;
                    tracing::warn!(group = %self.config.group, topic, partition, offset, error = %e, "position out of range; resetting");
                    self.consumer.seek(&topic, partition, offset);
                    self.positions.insert((topic, partition), offset);
                }
                Err((_, e)) => return Err(e),
            }
            if monotonic_now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Reads an owned partition from `offset` next (a transactional copier going back to
    /// its committed offsets after an abort); its position is `offset` meanwhile.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: i64) {
        let tp = (topic.to_string(), partition);
        if self.owned.contains(&tp) {
            self.consumer.seek(topic, partition, offset);
            self.positions.insert(tp, offset);
        }
    }

    /// Marks records up to `offset` (exclusive) of a partition as consumed: the next
    /// commit stores `offset` (for callers that processed only part of a poll).
    pub fn set_position(&mut self, topic: &str, partition: u32, offset: i64) {
        let tp = (topic.to_string(), partition);
        if self.owned.contains(&tp) {
            self.positions.insert(tp, offset);
        }
    }

    /// What a transactional producer commits this consumer's positions for (Kafka's
    /// `groupMetadata()`): the group, and this member's id and epoch.
    pub fn group_metadata(&self) -> crate::GroupMetadata {
        let s = lock(&self.shared);
        crate::GroupMetadata {
            group: self.config.group.clone(),
            member_id: s.member_id.clone(),
            member_epoch: s.applied_epoch,
        }
    }

    /// Commits the positions of the owned partitions (what `poll` returned).
    pub async fn commit(&mut self) -> Result<(), Error> {
        let owned: Vec<Tp> = self.owned.iter().cloned().collect();
        self.commit_partitions(&owned).await
    }

    async fn commit_partitions(&mut self, partitions: &[Tp]) -> Result<(), Error> {
        self.last_commit = monotonic_now();
        let offsets: Vec<pb::OffsetCommit> = partitions
            .iter()
            .filter_map(|tp| {
                let pos = *self.positions.get(tp)?;
                (self.committed.get(tp) != Some(&pos)).then(|| pb::OffsetCommit {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    offset: pos,
                    metadata: String::new(),
                })
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, member_epoch) = {
            let s = lock(&self.shared);
            (s.member_id.clone(), s.applied_epoch)
        };
        let request = pb::CommitOffsetsRequest {
            group: self.config.group.clone(),
            member_id,
            member_epoch,
            offsets: offsets.clone(),
        };
        let client = &self.client;
        client
            .retrying(|| {
                let request = request.clone();
                async move {
                    let broker = client.bootstrap();
                    let resp = client.groups_rpc()?.commit_offsets(request).await;
                    resp.map_err(|s| locate(status_error(&s), broker, None, None))
                }
            })
            .await?;
        for o in offsets {
            self.committed.insert((o.topic, o.partition), o.offset);
        }
        Ok(())
    }

    /// Commits (with auto-commit), gives its partitions up (the listener is told), leaves
    /// the group and stops.
    pub async fn close(mut self) -> Result<(), Error> {
        let committed = if self.config.auto_commit { self.commit().await } else { Ok(()) };
        self.heartbeat.abort();
        // Given up before the member leaves: once it has left, the coordinator hands them
        // to another member, whose listener must not hear of them before this one's does.
        let owned: Vec<Tp> = std::mem::take(&mut self.owned).into_iter().collect();
        for (t, p) in &owned {
            self.consumer.unassign(t, *p);
        }
        if let Some(l) =
            self.listener.as_mut().map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
            && !owned.is_empty()
        {
            l.on_revoked(&owned, false);
        }
        let member_id = lock(&self.shared).member_id.clone();
        if !member_id.is_empty() {
            let request = pb::HeartbeatRequest {
                group: self.config.group.clone(),
                member_id,
                member_epoch: -1,
                ..Default::default()
            };
            if let Err(e) = self.client.groups_rpc()?.heartbeat(request).await {
                tracing::debug!(error = %e, "leaving the group failed; the session will time out");
            }
        }
        committed
    }

    async fn reset_offset(&self, topic: &str, partition: u32) -> Result<i64, Error> {
        let start = match self.config.auto_offset_reset {
            OffsetReset::Earliest => super::StartAt::Earliest,
            OffsetReset::Latest => super::StartAt::Latest,
        };
        self.consumer.resolve(topic, partition, start).await
    }

    /// Applies what the heartbeat task received.
    async fn reconcile(&mut self) -> Result<(), Error> {
        let (fenced, expired, epoch, target, failed) = {
            let mut s = lock(&self.shared);
            let expired = s.last_ok.elapsed() > s.session && !s.member_id.is_empty();
            (s.fenced.take(), expired, s.received_epoch, s.received.clone(), s.failed.take())
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if fenced.is_some() || expired {
            self.drop_everything(fenced.as_ref()).await;
            return Ok(());
        }
        if target == self.owned {
            let mut s = lock(&self.shared);
            if s.applied_epoch != epoch {
                s.applied_epoch = epoch;
                drop(s);
                self.wake.notify_one();
            }
            return Ok(());
        }
        let revoked: Vec<Tp> = self.owned.difference(&target).cloned().collect();
        let added: Vec<Tp> = target.difference(&self.owned).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked).await;
        }
        if !added.is_empty() {
            self.assign(&added).await?;
        }
        {
            let mut s = lock(&self.shared);
            s.applied = self.owned.clone();
            s.applied_epoch = epoch;
        }
        self.wake.notify_one();
        Ok(())
    }

    /// This member was fenced or its session expired: every partition it holds is lost
    /// (their positions committed if auto-commit, knowing the commit will likely be
    /// refused), and it rejoins from scratch under a new member id.
    async fn drop_everything(&mut self, fenced: Option<&Error>) {
        let lost: Vec<Tp> = self.owned.iter().cloned().collect();
        if !lost.is_empty() {
            tracing::warn!(
                group = %self.config.group,
                reason = %fenced.map_or("no heartbeat answered within the session timeout".to_string(), |e| e.to_string()),
                "removed from the group; dropping {} partition(s)", lost.len()
            );
            // The commit is expected to be refused (the member is fenced); try anyway so
            // a zombie's positions never overwrite the new owner's silently.
            if self.config.auto_commit
                && let Err(e) = self.commit_partitions(&lost).await
            {
                tracing::warn!(group = %self.config.group, reason = %e.reason, error = %e, "commit of lost partitions rejected");
            }
            for (t, p) in &lost {
                self.consumer.unassign(t, *p);
                self.positions.remove(&(t.clone(), *p));
            }
            if let Some(l) =
                self.listener.as_mut().map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
            {
                l.on_revoked(&lost, true);
            }
        }
        self.owned.clear();
        let mut s = lock(&self.shared);
        s.applied.clear();
        s.applied_epoch = 0;
        s.received.clear();
        s.received_epoch = 0;
        // Rejoin from scratch, under a new member id.
        s.last_ok = monotonic_now();
        s.fenced = None;
        s.member_id.clear();
        drop(s);
        self.wake.notify_one();
    }

    /// Gives up partitions the coordinator revoked: commit (auto-commit), stop fetching,
    /// tell the listener.
    async fn revoke(&mut self, revoked: &[Tp]) {
        if self.config.auto_commit
            && let Err(e) = self.commit_partitions(revoked).await
        {
            tracing::warn!(group = %self.config.group, reason = %e.reason, error = %e, "commit on revoke failed");
        }
        for (t, p) in revoked {
            self.consumer.unassign(t, *p);
            self.owned.remove(&(t.clone(), *p));
            self.positions.remove(&(t.clone(), *p));
        }
        if let Some(l) =
            self.listener.as_mut().map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
        {
            l.on_revoked(revoked, false);
        }
    }

    /// Takes newly assigned partitions: start each at its committed offset (or by
    /// `auto_offset_reset`), tell the listener.
    async fn assign(&mut self, added: &[Tp]) -> Result<(), Error> {
        let committed = self.committed_offsets(added).await?;
        for tp in added {
            let offset = match committed.get(tp) {
                Some(o) => *o,
                None => self.reset_offset(&tp.0, tp.1).await?,
            };
            self.consumer.seek(&tp.0, tp.1, offset);
            self.positions.insert(tp.clone(), offset);
            self.committed.insert(tp.clone(), offset);
            self.owned.insert(tp.clone());
        }
        if let Some(l) =
            self.listener.as_mut().map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
        {
            l.on_assigned(added);
        }
        Ok(())
    }

    async fn committed_offsets(&self, partitions: &[Tp]) -> Result<HashMap<Tp, i64>, Error> {
        let topics: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let admin = GroupAdmin::new(self.client.clone());
        let group = &self.config.group;
        // A read_committed consumer starts where the last transaction that committed its
        // group's offsets left them, once any such transaction has ended (KIP-447).
        let offsets = match self.config.consumer.isolation {
            super::Isolation::ReadCommitted => {
                let wait = self.config.consumer.retry_policy();
                admin.fetch_stable_offsets(group, &topics, wait).await?
            }
            super::Isolation::ReadUncommitted => admin.fetch_offsets(group, &topics).await?,
        };
        Ok(offsets.into_iter().map(|o| ((o.topic, o.partition), o.offset)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Applications run consumers in spawned tasks: every public future must be `Send`.
    #[tokio::test]
    async fn group_consumer_futures_are_send() {
        let client = Client::new("127.0.0.1:9").unwrap();
        let mut consumer = GroupConsumer::subscribe(client, GroupConfig::new("g", &["t"])).unwrap();
        assert_send(&consumer.poll(Duration::from_millis(1)));
        assert_send(&consumer.commit());
        assert_send(&consumer.close());
    }
}
