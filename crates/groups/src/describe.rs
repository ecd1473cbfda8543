//! What a group looks like, for `shale group list` / `describe` (and Kafka's
//! `ListGroups` / `DescribeGroups`): its state, members with their assignments, and per
//! partition the committed offset, the log end and the lag. Groups of either protocol:
//! Shale's own members from `groups/{g}/members/`, a classic group's from
//! `groups/{g}/classic`.

use std::collections::{BTreeMap, BTreeSet};

use super::Coordinator;
use super::GroupHost;
use super::assignor::Tp;
use super::classic::ClassicRecord;
use super::offsets::group_not_found;
use super::records::{self, GroupRecord, MemberRecord};
use super::types::{
    GroupDescription, GroupListing, GroupProtocol, ListedState, MemberDescription, PartitionLag,
};
use shale_core::error::Error;
use shale_core::names::validate_group;

impl Coordinator {
    /// The target assignment of `group` by member, as this broker last computed it for
    /// the group's current epoch (empty when it does not hold the group, or is busy with it).
    fn known_targets(&self, group: &str) -> BTreeMap<String, BTreeSet<Tp>> {
        let slot = {
            let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            groups.get(group).cloned()
        };
        let Some(slot) = slot else { return BTreeMap::new() };
        let Ok(guard) = slot.try_lock() else { return BTreeMap::new() };
        match guard.as_ref() {
            Some(g) if g.target_epoch == g.record.epoch => g.target.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// Every group with state or offsets.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, Error> {
        let mut groups: BTreeMap<String, (u32, bool, Option<GroupProtocol>)> = BTreeMap::new();
        let prefix = self.keys().groups();
        for kv in self.meta().range(&prefix).await?.kvs {
            let Some(parts) = self.keys().components(&prefix, &kv.key) else { continue };
            let entry = groups.entry(parts[0].clone()).or_default();
            if parts.len() == 3 && parts[1] == "members" {
                entry.0 += 1;
                let rec: MemberRecord = records::decode(&kv.value, "a member record")?;
                entry.1 |= !rec.revoking.is_empty();
                // A classic member of a converted group is listed with its group's kind.
                entry.2 = Some(match rec.protocol() {
                    GroupProtocol::Classic => GroupProtocol::Consumer,
                    p => p,
                });
            } else if parts.len() == 2 && parts[1] == "state" && entry.2.is_none() {
                let rec: GroupRecord = records::decode(&kv.value, "a group record")?;
                entry.2 = Some(rec.protocol());
            } else if parts.len() == 2 && parts[1] == "classic" {
                let rec: ClassicRecord = records::decode(&kv.value, "a classic group record")?;
                entry.0 += rec.members.len() as u32;
                if !rec.members.is_empty() || entry.0 == 0 {
                    entry.2 = Some(GroupProtocol::Classic);
                }
            }
        }
        let prefix = self.keys().all_offsets();
        for kv in self.meta().range(&prefix).await?.kvs {
            if let Some(parts) = self.keys().components(&prefix, &kv.key) {
                groups.entry(parts[0].clone()).or_default();
            }
        }
        Ok(groups
            .into_iter()
            .map(|(group, (members, reconciling, protocol))| GroupListing {
                group,
                state: ListedState::of(members as usize, reconciling),
                members,
                protocol,
            })
            .collect())
    }

    /// Members, assignment and per-partition lag of a group.
    pub async fn describe_group(
        &self,
        b: &dyn GroupHost,
        group: &str,
    ) -> Result<GroupDescription, Error> {
        validate_group(group)?;
        let stored = self.stored(group).await?;
        let classic = self.classic().describe(group).await?;
        let committed = self.fetch_offsets(b, group, &[]).await?;
        if stored.record.is_none() && classic.is_none() && committed.is_empty() {
            return Err(group_not_found(group));
        }
        let record = stored.record.clone().unwrap_or_default();
        let mut owners: BTreeMap<(String, u32), String> = BTreeMap::new();
        let mut topics: BTreeSet<String> = committed.iter().map(|c| c.topic.clone()).collect();
        let names = b.topic_names();
        let mut members = Vec::new();
        let mut reconciling = false;
        let targets = self.known_targets(group);
        for (id, (m, _)) in &stored.members {
            for tp in records::to_set(&m.assigned) {
                topics.insert(tp.0.clone());
                owners.insert(tp, id.clone());
            }
            reconciling |= !m.revoking.is_empty();
            topics.extend(m.topics.iter().cloned());
            if !m.pattern.is_empty() {
                topics.extend(names.iter().filter(|t| records::glob_match(&m.pattern, t)).cloned());
            }
            if let Ok(Some(regex)) = super::consumer::compile(&m.regex) {
                topics.extend(names.iter().filter(|t| regex.is_match(t)).cloned());
            }
            let assignment = records::to_set(&m.assigned);
            members.push(MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                member_epoch: if m.away { -2 } else { m.epoch },
                topics: m.topics.clone(),
                topic_pattern: m.pattern.clone(),
                target: targets.get(id).cloned().unwrap_or_else(|| assignment.clone()),
                assignment,
                revoking: records::to_set(&m.revoking),
                topic_regex: m.regex.clone(),
                instance_id: m.instance_id.clone(),
                rack: m.rack.clone(),
                client_host: m.client_host.clone(),
                protocol: m.protocol(),
            });
        }
        let (mut epoch, mut assignor) = (record.epoch, record.assignor.name().to_string());
        let mut protocol = match record.protocol() {
            GroupProtocol::Shale if stored.members.values().any(|(m, _)| m.kafka) => {
                GroupProtocol::Consumer
            }
            p => p,
        };
        let mut member_count = stored.members.len();
        if let Some(c) = classic.filter(|c| !c.members.is_empty() || stored.members.is_empty()) {
            (epoch, assignor) = (c.generation, c.protocol.clone());
            protocol = GroupProtocol::Classic;
            member_count += c.members.len();
            for (id, m) in &c.members {
                for tp in records::to_set(&m.assigned) {
                    topics.insert(tp.0.clone());
                    owners.insert(tp, id.clone());
                }
                let assignment = records::to_set(&m.assigned);
                members.push(MemberDescription {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    member_epoch: c.generation,
                    topics: m.assigned.keys().cloned().collect(),
                    topic_pattern: String::new(),
                    target: assignment.clone(),
                    assignment,
                    revoking: BTreeSet::new(),
                    topic_regex: String::new(),
                    instance_id: m.instance_id.clone(),
                    rack: None,
                    client_host: m.client_host.clone(),
                    protocol: GroupProtocol::Classic,
                });
            }
        }
        let mut committed: BTreeMap<(String, u32), i64> =
            committed.into_iter().map(|c| ((c.topic, c.partition), c.offset)).collect();
        // A share group is where its share partitions start, with records in flight.
        let mut in_flight = BTreeMap::new();
        if protocol == GroupProtocol::Share {
            for (tp, state) in self.share_states(b, group).await? {
                topics.insert(tp.0.clone());
                committed.insert(tp.clone(), state.start);
                in_flight.insert(tp, crate::share::in_flight(&state.runs));
            }
            owners.clear();
        }
        let mut partitions = Vec::new();
        for topic in topics {
            let Ok(entry) = b.topic_record(&topic) else { continue };
            for p in 0..entry.partitions {
                let tp = (topic.clone(), p);
                let committed = committed.get(&tp).copied().unwrap_or(-1);
                let ends =
                    b.list_offsets(&topic, p, shale_core::offsets::OffsetSpec::Latest).await.ok();
                let (log_end, lag) = match &ends {
                    // Records below the log start (retention, DeleteRecords) are not
                    // there to read: a consumer resuming below it starts at it.
                    Some(r) if committed >= 0 => {
                        let from = committed.max(r.log_start_offset);
                        (r.high_watermark, (r.high_watermark - from).max(0))
                    }
                    Some(r) => (r.high_watermark, (r.high_watermark - r.log_start_offset).max(0)),
                    None => (-1, -1),
                };
                partitions.push(PartitionLag {
                    topic: topic.clone(),
                    partition: p,
                    committed,
                    log_end,
                    lag,
                    member_id: owners.get(&tp).cloned(),
                    share: match protocol {
                        GroupProtocol::Share => {
                            Some(in_flight.get(&tp).copied().unwrap_or_default())
                        }
                        _ => None,
                    },
                });
            }
        }
        let coordinator =
            super::coordinator_of(group, &b.coordinator_candidates()).map(|(id, _)| id);
        Ok(GroupDescription {
            group: group.to_string(),
            protocol,
            state: ListedState::of(member_count, reconciling),
            group_epoch: epoch,
            assignor,
            coordinator,
            members,
            partitions,
        })
    }
}
