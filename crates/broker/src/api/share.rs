//! Share groups' reads and acknowledgements (KIP-932), as the front ends call them: Read
//! on the group, and Read on each topic (a partition of a topic the caller may not read
//! answers that alone). A fetch acquires records for the member, waiting up to its
//! `max_wait` for some to be there: new records below the high watermark, records given
//! back, or a lock that lapses.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::{Api, Identity};
use crate::acl::{Operation, ResourceType};
use crate::audit::{self, Resource};
use crate::broker::Partition;
pub use crate::broker::share::ShareChunk;
pub use crate::groups::share::AckBatch;
use crate::groups::share::ShareOffset;
use crate::groups::share::Slot;
use shale_core::error::Error;

/// A share fetch: what to acquire for whom, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ShareFetch {
    pub group: String,
    pub member: String,
    /// The partitions to acquire from, in the order answered.
    pub partitions: Vec<(String, u32)>,
    /// How long to wait when nothing can be acquired.
    pub max_wait: Duration,
    /// Batch bytes of all partitions together (the first batch goes out whatever its size).
    pub max_bytes: usize,
    /// Records to acquire at most, over all partitions.
    pub max_records: usize,
}

impl Api {
    /// The share partition of `topic`-`partition` led here, when `who` may read the topic.
    fn share_partition(
        &self,
        who: &Identity,
        action: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Partition>, Error> {
        let acl = self.broker.acl();
        acl.check(who, action, Operation::Read, ResourceType::Topic, topic)?;
        self.broker.partition(topic, partition)
    }

    fn check_share_group(&self, who: &Identity, action: &str, group: &str) -> Result<(), Error> {
        shale_core::names::validate_group(group)?;
        self.broker.acl().check(who, action, Operation::Read, ResourceType::Group, group)
    }

    /// How long `group`'s records stay with the member that acquired them (ms).
    pub async fn share_lock_ms(&self, group: &str) -> u32 {
        let now = self.broker.clock().now_ms();
        self.broker.groups().share_configs(group, now).await.lock_ms
    }

    /// Applies `member`'s acknowledgements of one partition (all or none), stored before
    /// this answers.
    pub async fn share_acknowledge(
        &self,
        who: &Identity,
        group: &str,
        member: &str,
        topic: &str,
        partition: u32,
        batches: &[AckBatch],
    ) -> Result<(), Error> {
        self.check_share_group(who, "ShareAcknowledge", group)?;
        let p = self.share_partition(who, "ShareAcknowledge", topic, partition)?;
        self.broker.share_acknowledge(group, member, &p, batches).await?;
        Ok(())
    }

    /// Gives back every record `member` holds of `partitions` here (its share session
    /// ended). Partitions no longer led here are skipped: their new leader never gave the
    /// member anything.
    pub async fn share_release(&self, group: &str, member: &str, partitions: &[(String, u32)]) {
        for (topic, index) in partitions {
            let Ok(p) = self.broker.partition(topic, *index) else { continue };
            match self.broker.share_release(group, member, &p).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(
                    group,
                    member,
                    topic,
                    partition = index,
                    released = n,
                    "share session ended; its records are available again"
                ),
                Err(e) => tracing::debug!(group, member, topic, partition = index, error = %e,
                    "could not release a share member's records; their locks will lapse"),
            }
        }
    }

    /// Acquires records for `req.member`, one answer per partition in the order asked;
    /// waits up to `req.max_wait` while none can be acquired.
    pub async fn share_fetch(
        &self,
        who: &Identity,
        req: &ShareFetch,
    ) -> Result<Vec<Result<ShareChunk, Error>>, Error> {
        self.check_share_group(who, "ShareFetch", &req.group)?;
        let member: Arc<str> = Arc::from(req.member.as_str());
        let opened: Vec<Result<Arc<Partition>, Error>> = req
            .partitions
            .iter()
            .map(|(t, p)| self.share_partition(who, "ShareFetch", t, *p))
            .collect();
        let deadline = shale_core::clock::monotonic_now() + req.max_wait;
        let mut closed = self.broker.closed_signal();
        // Wake-ups are armed only once a pass acquired nothing, and the pass is then made
        // once more: nothing freed between the pass and the arming is missed, and a fetch
        // that acquires at once (the busy case) subscribes to nothing.
        let mut slots: Option<Vec<Arc<Slot>>> = None;
        loop {
            let mut freed: Vec<_> = slots.iter().flatten().map(|s| Box::pin(s.woken())).collect();
            for f in &mut freed {
                f.as_mut().enable();
            }
            let mut hws: Vec<_> = match slots {
                Some(_) => opened.iter().flatten().map(|p| p.subscribe_hw()).collect(),
                None => Vec::new(),
            };
            for hw in &mut hws {
                hw.borrow_and_update();
            }
            let (answers, acquired) = self.share_pass(&req.group, &member, &opened, req).await;
            let failed = answers.iter().any(Result::is_err);
            let now = shale_core::clock::monotonic_now();
            let nothing_to_watch = !opened.iter().any(Result::is_ok);
            if acquired || failed || now >= deadline || nothing_to_watch {
                return Ok(answers);
            }
            if slots.is_none() {
                drop(freed);
                let group = &req.group;
                slots = Some(
                    opened.iter().flatten().map(|p| self.broker.share_slot(group, p)).collect(),
                );
                continue;
            }
            // Sleep until the wait ends or the first lock lapses, whichever is first.
            let wall = self.broker.clock().now_ms();
            let lapse = opened
                .iter()
                .flatten()
                .filter_map(|p| self.broker.share_next_deadline(&req.group, p))
                .min()
                .map(|at| now + Duration::from_millis((at - wall).max(1) as u64));
            let until = lapse.map_or(deadline, |l| l.min(deadline));
            let moved = futures::future::select_all(hws.iter_mut().map(|hw| hw.changed().boxed()));
            let woken = futures::future::select_all(freed);
            tokio::select! {
                _ = moved => {}
                _ = woken => {}
                _ = shale_core::clock::sleep_until(until) => {}
                _ = closed.wait_for(|c| *c) => return Ok(answers),
            }
        }
    }

    /// One acquisition over every partition: the answers, and whether any record was
    /// acquired.
    async fn share_pass(
        &self,
        group: &str,
        member: &Arc<str>,
        opened: &[Result<Arc<Partition>, Error>],
        req: &ShareFetch,
    ) -> (Vec<Result<ShareChunk, Error>>, bool) {
        let (mut records, mut bytes) = (req.max_records.max(1), req.max_bytes.max(1));
        let mut answers = Vec::with_capacity(opened.len());
        let mut any = false;
        for p in opened {
            let p = match p {
                Ok(p) => p,
                Err(e) => {
                    answers.push(Err(e.clone()));
                    continue;
                }
            };
            if records == 0 || bytes == 0 {
                answers.push(Ok(ShareChunk::default()));
                continue;
            }
            let chunk = self.broker.share_acquire(group, member, p, records, bytes).await;
            if let Ok(c) = &chunk {
                let n: i64 = c.acquired.iter().map(|a| a.last - a.first + 1).sum();
                records = records.saturating_sub(n as usize);
                bytes = bytes.saturating_sub(c.batches.len());
                any |= n > 0;
            }
            answers.push(chunk);
        }
        (answers, any)
    }

    /// The start offsets of `group`'s share partitions (Describe on the group and the
    /// topics): of `topics`, or of every partition with state (those of topics the caller
    /// may describe).
    pub async fn share_offsets(
        &self,
        who: &Identity,
        group: &str,
        topics: Option<&[(String, Vec<u32>)]>,
    ) -> Result<Vec<ShareOffset>, Error> {
        let acl = self.broker.acl();
        let action = "DescribeShareGroupOffsets";
        acl.check(who, action, Operation::Describe, ResourceType::Group, group)?;
        for (t, _) in topics.unwrap_or_default() {
            acl.check(who, action, Operation::Describe, ResourceType::Topic, t)?;
        }
        let b = &self.broker;
        let mut offsets = b.groups().share_offsets(b.as_ref(), group, topics).await?;
        offsets.retain(|o| acl.allows(who, Operation::Describe, ResourceType::Topic, &o.topic));
        Ok(offsets)
    }

    /// Moves the start offsets of an empty share group's partitions (Read on the group and
    /// the topics).
    pub async fn alter_share_offsets(
        &self,
        who: &Identity,
        group: &str,
        offsets: &[(String, u32, i64)],
    ) -> Result<(), Error> {
        let topics = offsets.iter().map(|(t, _, _)| t.as_str());
        self.check_group_and_topics(who, "AlterShareGroupOffsets", Operation::Read, group, topics)?;
        let b = &self.broker;
        let altered = b.groups().alter_share_offsets(b.as_ref(), group, offsets).await;
        audit::mutation(who, "alter_share_offsets", Resource::Group(group), &altered);
        altered
    }

    /// Forgets the share state of `topics` in an empty share group (Delete on the group,
    /// Read on the topics).
    pub async fn delete_share_offsets(
        &self,
        who: &Identity,
        group: &str,
        topics: &[String],
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        let action = "DeleteShareGroupOffsets";
        acl.check(who, action, Operation::Delete, ResourceType::Group, group)?;
        for t in topics {
            acl.check(who, action, Operation::Read, ResourceType::Topic, t)?;
        }
        let b = &self.broker;
        let deleted = b.groups().delete_share_offsets(b.as_ref(), group, topics).await;
        audit::mutation(who, "delete_share_offsets", Resource::Group(group), &deleted);
        deleted
    }
}
