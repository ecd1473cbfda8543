//! Consumer groups and their committed offsets, as the front ends call them: each checks
//! Read (or Describe, Delete) on the group and Read on the topics involved, and audits
//! what it changes.

use std::collections::{BTreeMap, BTreeSet};

use super::{Api, Identity, Principal};
use crate::acl::{Operation, ResourceType};
use crate::audit::{self, Resource};
use crate::groups::configs::GroupConfig;
use crate::groups::{
    CommitOffsets, CommittedOffset, GroupDescription, GroupListing, Heartbeat, HeartbeatAnswer,
    ResetOffsets, coordinator_of,
};
use shale_core::error::{Error, ErrorKind, Reason};

impl Api {
    /// Checks `op` on the group and Read on each named topic.
    pub(super) fn check_group_and_topics<'a>(
        &self,
        who: &Identity,
        action: &str,
        op: Operation,
        group: &str,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, action, op, ResourceType::Group, group)?;
        for t in topics {
            acl.check(who, action, Operation::Read, ResourceType::Topic, t)?;
        }
        Ok(())
    }

    /// Who a request forwarded by another broker acts for. Without authorization every
    /// caller is trusted alike (in a plaintext cluster brokers are anonymous too), so the
    /// claim is ignored from non-brokers; with it, a non-broker's claim is refused.
    pub fn acting_for(&self, caller: Identity, claimed: Option<&str>) -> Result<Identity, Error> {
        let Some(name) = claimed else { return Ok(caller) };
        if !caller.broker && !self.broker.acl().enabled() {
            return Ok(caller);
        }
        if !caller.broker {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                Reason::AuthorizationFailed,
                format!("{} may not act on behalf of another principal", caller.principal),
            )
            .with("principal", caller.principal.to_string()));
        }
        // A broker's call forwarded by another broker is still a broker's.
        let broker = self.broker.acl().is_broker(name);
        Ok(Identity { principal: Principal::parse(name)?, via: caller.via, broker })
    }

    /// The broker that coordinates `group` (id, address), if any broker is live.
    pub fn group_coordinator(&self, group: &str) -> Option<(i32, String)> {
        coordinator_of(group, &self.broker.coordinator_candidates())
    }

    /// Checks that `who` may take part in the group with its topics (Read on both), before
    /// a heartbeat is served here or forwarded to the coordinator.
    pub fn check_heartbeat(&self, who: &Identity, req: &Heartbeat) -> Result<(), Error> {
        shale_core::names::validate_group(&req.group)?;
        let named = req.kafka.as_ref().and_then(|k| k.topic_names.as_deref()).unwrap_or_default();
        let topics = req.topics.iter().chain(named).map(String::as_str);
        self.check_group_and_topics(who, "Heartbeat", Operation::Read, &req.group, topics)
    }

    /// A KIP-848 heartbeat, served by this broker as the group's coordinator. It confirms
    /// assignments only while it can prove its lease, before and after the work: once it
    /// cannot, another broker may take the group over and, a session timeout later, give
    /// these partitions to other members.
    pub async fn heartbeat(
        &self,
        who: &Identity,
        req: Heartbeat,
    ) -> Result<HeartbeatAnswer, Error> {
        self.check_heartbeat(who, &req)?;
        let b = &self.broker;
        b.check_serving()?;
        // Members are bound to their principals only under authorization.
        let principal = if b.acl().enabled() { who.principal.as_str() } else { "" };
        let answer = b.groups().heartbeat(b.as_ref(), req, principal).await?;
        b.check_serving()?;
        Ok(answer)
    }

    /// Commits offsets (Read on the group and the topics), fenced by the member.
    pub async fn commit_offsets(&self, who: &Identity, req: CommitOffsets) -> Result<(), Error> {
        let topics = req.offsets.iter().map(|o| o.topic.as_str());
        self.check_group_and_topics(who, "CommitOffsets", Operation::Read, &req.group, topics)?;
        let b = &self.broker;
        b.groups().commit(b.as_ref(), req).await
    }

    /// Checks an offset fetch by `member` at `epoch` (Kafka's OffsetFetch v9, KIP-848)
    /// against the group (Describe on it): UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH.
    pub async fn check_offset_fetch(
        &self,
        who: &Identity,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "FetchOffsets", Operation::Describe, ResourceType::Group, group)?;
        let b = &self.broker;
        b.groups().check_offset_fetch(b.as_ref(), group, member, epoch).await
    }

    /// Committed offsets of a group (Describe on it and the topics; asked for every topic,
    /// only those the caller may describe).
    pub async fn fetch_offsets(
        &self,
        who: &Identity,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<CommittedOffset>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "FetchOffsets", Operation::Describe, ResourceType::Group, group)?;
        for t in topics {
            acl.check(who, "FetchOffsets", Operation::Describe, ResourceType::Topic, t)?;
        }
        let b = &self.broker;
        let mut offsets = b.groups().fetch_offsets(b.as_ref(), group, topics).await?;
        offsets.retain(|o| acl.allows(who, Operation::Describe, ResourceType::Topic, &o.topic));
        Ok(offsets)
    }

    /// [`fetch_offsets`](Self::fetch_offsets) for a reader that wants only stable offsets
    /// (KIP-447's `require_stable`): the partitions an open or deciding transaction holds
    /// offsets for are left out and listed apart, for the reader to retry.
    pub async fn fetch_stable_offsets(
        &self,
        who: &Identity,
        group: &str,
        topics: &[String],
    ) -> Result<(Vec<CommittedOffset>, BTreeSet<(String, u32)>), Error> {
        let mut offsets = self.fetch_offsets(who, group, topics).await?;
        let acl = self.broker.acl();
        let mut unstable = self.broker.txn()?.pending_offsets(group).await?;
        unstable.retain(|(t, _)| {
            (topics.is_empty() || topics.contains(t))
                && acl.allows(who, Operation::Describe, ResourceType::Topic, t)
        });
        offsets.retain(|o| !unstable.contains(&(o.topic.clone(), o.partition)));
        Ok((offsets, unstable))
    }

    /// Sets committed offsets of an empty group (Read on it and the topic).
    pub async fn reset_offsets(
        &self,
        who: &Identity,
        req: ResetOffsets,
    ) -> Result<Vec<CommittedOffset>, Error> {
        let topics = [req.topic.as_str()];
        self.check_group_and_topics(who, "ResetOffsets", Operation::Read, &req.group, topics)?;
        let (group, dry_run) = (req.group.clone(), req.dry_run);
        let b = &self.broker;
        let reset = b.groups().reset_offsets(b.as_ref(), req).await;
        if !dry_run {
            audit::mutation(who, "reset_offsets", Resource::Group(&group), &reset);
        }
        reset
    }

    /// Removes an empty group's state and offsets (Delete on it).
    pub async fn delete_group(&self, who: &Identity, group: &str) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "DeleteGroup", Operation::Delete, ResourceType::Group, group)?;
        let deleted = self.broker.groups().delete_group(group).await;
        audit::mutation(who, "delete_group", Resource::Group(group), &deleted);
        deleted
    }

    /// The groups the caller may describe.
    pub async fn list_groups(&self, who: &Identity) -> Result<Vec<GroupListing>, Error> {
        let mut groups = self.broker.groups().list_groups().await?;
        let acl = self.broker.acl();
        groups.retain(|g| acl.allows(who, Operation::Describe, ResourceType::Group, &g.group));
        Ok(groups)
    }

    /// A group's configs (Kafka's GROUP resource; DescribeConfigs on the group).
    pub async fn group_configs(
        &self,
        who: &Identity,
        group: &str,
    ) -> Result<Vec<GroupConfig>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeConfigs", Operation::DescribeConfigs, ResourceType::Group, group)?;
        self.broker.groups().group_configs(group).await
    }

    /// Sets and removes a group's config overrides (AlterConfigs on the group), audited.
    pub async fn alter_group_configs(
        &self,
        who: &Identity,
        group: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, "AlterConfigs", Operation::AlterConfigs, ResourceType::Group, group)?;
        let altered =
            self.broker.groups().alter_group_configs(group, set, delete, validate_only).await;
        if !validate_only {
            audit::mutation(who, "alter_group_configs", Resource::Group(group), &altered);
        }
        altered
    }

    /// Members, assignment and lag of a group (Describe on it).
    pub async fn describe_group(
        &self,
        who: &Identity,
        group: &str,
    ) -> Result<GroupDescription, Error> {
        let b = &self.broker;
        b.acl().check(who, "DescribeGroup", Operation::Describe, ResourceType::Group, group)?;
        b.groups().describe_group(b.as_ref(), group).await
    }
}
