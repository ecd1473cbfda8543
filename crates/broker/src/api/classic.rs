//! Consumer groups of Kafka's classic protocol, as a front end calls them: each checks the
//! caller's ACLs (Read on the group to take part in it or commit, Read on each topic
//! committed, Describe to find its coordinator or read its offsets) and that this broker
//! coordinates the group while it can prove its lease.

use super::{Api, Identity};
use crate::acl::{Operation, ResourceType};
use crate::groups::classic::{
    JoinRequest, Joined, Live, LiveMember, OffsetToCommit, State, SyncRequest, Synced,
};
use crate::groups::{CommitOffsets, GroupProtocol};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::topics::BrokerRecord;

impl Api {
    /// The broker coordinating `group` (Describe on the group).
    pub fn find_coordinator(&self, who: &Identity, group: &str) -> Result<BrokerRecord, Error> {
        let acl = self.broker.acl();
        acl.check(who, "FindCoordinator", Operation::Describe, ResourceType::Group, group)?;
        shale_core::names::validate_group(group)?;
        self.coordinator_record(group, "group")
    }

    /// The live broker that coordinates `key` (a group or a transactional id, as `what`
    /// says: both are placed by the same hash), as this broker knows it.
    pub(super) fn coordinator_record(&self, key: &str, what: &str) -> Result<BrokerRecord, Error> {
        let (id, _) = self.group_coordinator(key).ok_or_else(|| {
            Error::unavailable(format!("no live broker can coordinate {what} {key:?} now; retry"))
        })?;
        self.broker.cached_broker(id).ok_or_else(|| {
            Error::unavailable(format!(
                "broker {id}, coordinator of {key:?}, is not known here yet"
            ))
        })
    }

    /// Checks Read on the group and that this broker may act as its coordinator.
    fn classic_member(&self, who: &Identity, action: &str, group: &str) -> Result<(), Error> {
        let acl = self.broker.acl();
        acl.check(who, action, Operation::Read, ResourceType::Group, group)?;
        self.broker.check_serving()
    }

    /// The principal a member is bound to: only under authorization.
    fn member_principal(&self, who: &Identity) -> String {
        if self.broker.acl().enabled() { who.principal.to_string() } else { String::new() }
    }

    /// `JoinGroup`: resolves when the rebalance completes.
    pub async fn join_group(
        &self,
        who: &Identity,
        group: &str,
        mut req: JoinRequest,
    ) -> Result<Joined, Error> {
        self.classic_member(who, "JoinGroup", group)?;
        req.principal = self.member_principal(who);
        let b = &self.broker;
        let joined = b.groups().classic_join(b.as_ref(), group, req).await?;
        b.check_serving()?;
        Ok(joined)
    }

    /// `SyncGroup`: the member's assignment once the leader sent it.
    pub async fn sync_group(
        &self,
        who: &Identity,
        group: &str,
        req: SyncRequest,
    ) -> Result<Synced, Error> {
        self.classic_member(who, "SyncGroup", group)?;
        let b = &self.broker;
        let synced = b.groups().classic_sync(b.as_ref(), group, req).await?;
        b.check_serving()?;
        Ok(synced)
    }

    /// `Heartbeat` of a classic member.
    pub async fn classic_heartbeat(
        &self,
        who: &Identity,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), Error> {
        self.classic_member(who, "Heartbeat", group)?;
        let b = &self.broker;
        b.groups().classic_heartbeat(b.as_ref(), group, member, instance, generation).await
    }

    /// `LeaveGroup`: the outcome per member leaving.
    pub async fn leave_group(
        &self,
        who: &Identity,
        group: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.classic_member(who, "LeaveGroup", group)?;
        let b = &self.broker;
        b.groups().classic_leave(b.as_ref(), group, leaving).await
    }

    /// `OffsetCommit` of a Kafka client: a member of a classic group, a member of a
    /// consumer-protocol group (KIP-848; `generation` is then its member epoch, which only
    /// v9 and later carry: `UNSUPPORTED_VERSION` below, as Kafka answers), or a client
    /// outside any group protocol. Read on the group, and on each topic committed; the
    /// outcome per partition, in order. A topic the caller may not read fails its
    /// partitions alone.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_kafka(
        &self,
        who: &Identity,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        member_epochs: bool,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<(OffsetToCommit, Result<(), Error>)>, Error> {
        self.classic_member(who, "OffsetCommit", group)?;
        let acl = self.broker.acl();
        let mut allowed = Vec::with_capacity(offsets.len());
        let mut out = Vec::with_capacity(offsets.len());
        for o in offsets {
            let checked = acl
                .check(who, "OffsetCommit", Operation::Read, ResourceType::Topic, &o.topic)
                .and_then(|()| self.broker.topic(&o.topic))
                .and_then(|t| match o.partition < t.record.partitions {
                    true => Ok(()),
                    false => Err(shale_core::error::partition_out_of_range(
                        &o.topic,
                        o.partition,
                        t.record.partitions,
                    )),
                });
            match checked {
                Ok(()) => allowed.push(o),
                Err(e) => out.push((o, Err(e))),
            }
        }
        if allowed.is_empty() {
            return Ok(out);
        }
        let b = &self.broker;
        let groups = b.groups();
        let protocol = match member.is_empty() {
            true => None,
            false => groups.member_protocol(b.as_ref(), group, member).await?,
        };
        let done = if let Some(protocol) = protocol {
            // A classic member of a converted group commits at its generation, with any
            // version; a consumer-protocol member needs v9's member epoch.
            if protocol != GroupProtocol::Classic && !member_epochs {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    Reason::UnsupportedVersion,
                    format!(
                        "member {member:?} of group {group:?} uses the consumer protocol, whose \
                         commits need OffsetCommit v9 or later"
                    ),
                ));
            }
            let commit = CommitOffsets {
                group: group.to_string(),
                member_id: member.to_string(),
                member_epoch: generation,
                offsets: allowed.clone(),
            };
            groups.commit(b.as_ref(), commit).await
        } else {
            let classic = groups.classic();
            classic.commit(b.as_ref(), group, member, instance, generation, &allowed).await
        };
        out.extend(allowed.into_iter().map(|o| (o, done.clone())));
        Ok(out)
    }

    /// A group as its coordinator holds it now (Describe on the group): a classic group's
    /// live state, or a group of Shale's own protocol described in the same terms (its
    /// members without subscriptions or encoded assignments).
    pub async fn describe_live(&self, who: &Identity, group: &str) -> Result<Live, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeGroups", Operation::Describe, ResourceType::Group, group)?;
        let b = &self.broker;
        let classic = b.groups().classic().stored_members(group).await?;
        if classic.is_none_or(|(members, _)| members == 0) {
            let shale = b.groups().describe_group(b.as_ref(), group).await;
            if let Some(d) = shale.ok().filter(|d| !d.members.is_empty()) {
                return Ok(Live {
                    state: State::Stable,
                    protocol_type: "consumer".into(),
                    protocol: d.assignor.clone(),
                    members: d
                        .members
                        .iter()
                        .map(|m| LiveMember {
                            member_id: m.member_id.clone(),
                            instance_id: None,
                            client_id: m.client_id.clone(),
                            client_host: String::new(),
                            metadata: Default::default(),
                            assignment: Default::default(),
                        })
                        .collect(),
                });
            }
        }
        b.groups().classic().live(b.as_ref(), group).await
    }

    /// Removes committed offsets of partitions of an unused topic from a group (Delete on
    /// the group, Read on each topic); the outcome per partition, in order.
    pub async fn delete_offsets(
        &self,
        who: &Identity,
        group: &str,
        partitions: Vec<(String, u32)>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let acl = self.broker.acl();
        acl.check(who, "OffsetDelete", Operation::Delete, ResourceType::Group, group)?;
        let mut allowed = Vec::with_capacity(partitions.len());
        let mut refused = std::collections::HashMap::new();
        for (i, (topic, p)) in partitions.iter().enumerate() {
            match acl.check(who, "OffsetDelete", Operation::Read, ResourceType::Topic, topic) {
                Ok(()) => allowed.push((topic.clone(), *p)),
                Err(e) => {
                    refused.insert(i, e);
                }
            }
        }
        let mut done = self.broker.groups().delete_offsets(group, &allowed).await?.into_iter();
        let out = (0..partitions.len())
            .map(|i| match refused.remove(&i) {
                Some(e) => Err(e),
                None => done.next().unwrap_or(Ok(())),
            })
            .collect();
        let ok: Result<(), Error> = Ok(());
        crate::audit::mutation(who, "delete_offsets", crate::audit::Resource::Group(group), &ok);
        Ok(out)
    }
}
