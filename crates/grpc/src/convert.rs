//! Conversions between the broker's domain types (topics, partitions, brokers, ACLs,
//! groups and their offsets) and protobuf messages.

use shale_broker::api::{
    Ack, AckBatch, AclBinding, AclFilter, BrokerRecord, CommitOffsets, CommittedOffset,
    GroupDescription, GroupListing, Heartbeat, HeartbeatAnswer, KafkaMember, Move, OffsetToCommit,
    Operation, PartitionDescription, PartitionState, PatternType, Permission, ResetOffsets,
    ResetTo, ResourceType, TopicEntry,
};
use shale_core::error::Error;
use shale_proto::pb;

/// A cached topic as a proto `TopicInfo`.
pub fn topic_info(t: &TopicEntry) -> pb::TopicInfo {
    pb::TopicInfo {
        name: t.record.name.clone(),
        id: t.record.id.clone(),
        partitions: t.record.partitions,
        replication_factor: t.record.replication_factor,
        configs: t.record.configs.clone().into_iter().collect(),
    }
}

/// Stored partition state as proto metadata.
pub fn partition_metadata(partition: u32, s: &PartitionState) -> pb::PartitionMetadata {
    pb::PartitionMetadata {
        partition,
        leader_id: s.leader,
        leader_epoch: s.leader_epoch,
        replicas: s.replicas.clone(),
        isr: s.isr.clone(),
    }
}

/// A described partition as proto.
pub fn partition_info(d: &PartitionDescription) -> pb::PartitionInfo {
    let remote_compacted = d.remote.as_ref().and_then(|r| r.compacted);
    pb::PartitionInfo {
        metadata: Some(partition_metadata(d.partition, &d.state)),
        log_start_offset: d.log_start_offset,
        log_end_offset: d.log_end_offset,
        high_watermark: d.high_watermark,
        size_bytes: d.size_bytes,
        segments: d.segments,
        local_log_start_offset: d.local_log_start_offset,
        remote_log_start_offset: d.remote.as_ref().map_or(-1, |r| r.start_offset),
        remote_log_end_offset: d.remote.as_ref().map_or(-1, |r| r.end_offset),
        remote_size_bytes: d.remote.as_ref().map_or(0, |r| r.size_bytes),
        remote_segments: d.remote.as_ref().map_or(0, |r| r.segments),
        upload_lag_segments: d.upload_lag.0,
        upload_lag_bytes: d.upload_lag.1,
        cleaning: d.cleaning.map(|c| pb::Cleaning {
            dirty_bytes: c.dirty.dirty_bytes,
            clean_bytes: c.dirty.clean_bytes,
            dirty_ratio: c.dirty.dirty_ratio,
            first_dirty_offset: c.dirty.first_dirty,
            due: c.dirty.due,
            last_clean_ms: c.last_clean_ms,
            cleans: c.cleans,
            bytes_read: c.bytes_read,
            bytes_removed: c.bytes_removed,
            failures: c.failures,
            remote_first_dirty_offset: remote_compacted.map_or(-1, |(offset, _)| offset),
            remote_last_compaction_ms: remote_compacted.map_or(0, |(_, ms)| ms),
        }),
    }
}

/// A planned reassignment as proto.
pub fn planned_move(m: &Move) -> pb::PlannedMove {
    pb::PlannedMove {
        topic: m.topic.clone(),
        partition: m.partition,
        from: m.from.clone(),
        to: m.to.clone(),
    }
}

/// A broker record as proto.
pub fn broker_info(b: &BrokerRecord) -> pb::BrokerInfo {
    pb::BrokerInfo { id: b.id, address: b.address.clone(), rack: b.rack.clone() }
}

/// Configs in force, with their sources.
pub fn config_entries(t: &TopicEntry) -> Vec<pb::ConfigEntry> {
    t.config
        .entries(&t.record.configs)
        .into_iter()
        .map(|(name, value, source)| pb::ConfigEntry { name, value, source: source.to_string() })
        .collect()
}

/// A binding from the wire, each part parsed (an error names the bad value).
pub fn acl_binding(b: pb::AclBinding) -> Result<AclBinding, Error> {
    let binding = AclBinding {
        principal: b.principal,
        resource_type: ResourceType::parse(&b.resource_type)?,
        pattern_type: PatternType::parse(&b.pattern_type)?,
        resource_name: b.resource_name,
        operation: Operation::parse(&b.operation)?,
        permission: Permission::parse(&b.permission)?,
    };
    binding.validate()?;
    Ok(binding)
}

/// A binding for the wire.
pub fn acl_binding_to_proto(b: &AclBinding) -> pb::AclBinding {
    pb::AclBinding {
        principal: b.principal.clone(),
        resource_type: b.resource_type.as_str().to_string(),
        pattern_type: b.pattern_type.as_str().to_string(),
        resource_name: b.resource_name.clone(),
        operation: b.operation.as_str().to_string(),
        permission: b.permission.as_str().to_string(),
    }
}

/// A filter from the wire: empty fields select anything.
pub fn acl_filter(f: Option<pb::AclFilter>) -> Result<AclFilter, Error> {
    let f = f.unwrap_or_default();
    fn opt<T>(s: &str, parse: fn(&str) -> Result<T, Error>) -> Result<Option<T>, Error> {
        if s.is_empty() { Ok(None) } else { parse(s).map(Some) }
    }
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(AclFilter {
        resource_type: opt(&f.resource_type, ResourceType::parse)?,
        pattern_type: opt(&f.pattern_type, PatternType::parse)?,
        operation: opt(&f.operation, Operation::parse)?,
        permission: opt(&f.permission, Permission::parse)?,
        principal: text(f.principal),
        resource_name: text(f.resource_name),
    })
}

/// A committed offset as proto.
pub fn committed_offset(o: CommittedOffset) -> pb::CommittedOffset {
    pb::CommittedOffset {
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        metadata: o.metadata,
        commit_time_ms: o.commit_time_ms,
    }
}

/// Committed offsets as proto.
pub fn committed_offsets(offsets: Vec<CommittedOffset>) -> Vec<pb::CommittedOffset> {
    offsets.into_iter().map(committed_offset).collect()
}

/// A group listing as proto (`protocol` empty for a group with only offsets).
pub fn group_listing(g: GroupListing) -> pb::GroupListing {
    pb::GroupListing {
        group: g.group,
        state: g.state.as_str().to_string(),
        members: g.members,
        protocol: g.protocol.map(|p| p.as_str().to_string()).unwrap_or_default(),
    }
}

/// A group's description as proto (`coordinator` -1 when none is live).
pub fn group_description(d: GroupDescription) -> pb::DescribeGroupResponse {
    let set = shale_proto::convert::partition_set_to_proto;
    pb::DescribeGroupResponse {
        group: d.group,
        protocol: d.protocol.as_str().to_string(),
        state: d.state.as_str().to_string(),
        group_epoch: d.group_epoch,
        assignor: d.assignor,
        coordinator: d.coordinator.unwrap_or(-1),
        members: d
            .members
            .into_iter()
            .map(|m| pb::MemberDescription {
                member_id: m.member_id,
                client_id: m.client_id,
                member_epoch: m.member_epoch,
                topics: m.topics,
                topic_pattern: m.topic_pattern,
                assignment: set(&m.assignment),
                revoking: set(&m.revoking),
                target: set(&m.target),
                protocol: m.protocol.as_str().to_string(),
                topic_regex: m.topic_regex,
                instance_id: m.instance_id.unwrap_or_default(),
                rack: m.rack.unwrap_or_default(),
                client_host: m.client_host,
            })
            .collect(),
        partitions: d
            .partitions
            .into_iter()
            .map(|p| {
                let s = p.share.unwrap_or_default();
                pb::PartitionLag {
                    topic: p.topic,
                    partition: p.partition,
                    committed: p.committed,
                    log_end: p.log_end,
                    lag: p.lag,
                    member_id: p.member_id.unwrap_or_default(),
                    share: p.share.is_some(),
                    in_flight: s.in_flight,
                    acknowledged: s.acknowledged,
                    archived: s.archived,
                    max_delivery_count: u32::from(s.max_deliveries),
                }
            })
            .collect(),
    }
}

/// Offsets to commit from proto.
pub fn commit_offsets(
    group: String,
    member_id: String,
    member_epoch: i32,
    offsets: Vec<pb::OffsetCommit>,
) -> CommitOffsets {
    CommitOffsets {
        group,
        member_id,
        member_epoch,
        offsets: offsets
            .into_iter()
            .map(|o| OffsetToCommit {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                metadata: o.metadata,
            })
            .collect(),
    }
}

/// A heartbeat from proto.
pub fn heartbeat(r: &pb::HeartbeatRequest) -> Heartbeat {
    Heartbeat {
        group: r.group.clone(),
        member_id: r.member_id.clone(),
        member_epoch: r.member_epoch,
        topics: r.topics.clone(),
        topic_pattern: r.topic_pattern.clone(),
        owned: Some(shale_proto::convert::partition_set(&r.owned)),
        assignor: r.assignor.clone(),
        session_timeout_ms: r.session_timeout_ms,
        client_id: r.client_id.clone(),
        // A share member follows Kafka's share rules (its current epoch only, shared
        // partitions); its subscription is taken when it sends one.
        kafka: r.share.then(|| KafkaMember {
            topic_names: (!r.topics.is_empty()).then(|| r.topics.clone()),
            ..KafkaMember::default()
        }),
        share: r.share,
    }
}

/// Share acknowledgements from proto; an unspecified type is refused, naming the offsets.
pub fn share_acks(acks: &[pb::ShareAcknowledgement]) -> Result<Vec<AckBatch>, Error> {
    acks.iter()
        .map(|a| {
            let ack = match pb::AcknowledgeType::try_from(a.r#type) {
                Ok(pb::AcknowledgeType::Accept) => Ack::Accept,
                Ok(pb::AcknowledgeType::Release) => Ack::Release,
                Ok(pb::AcknowledgeType::Reject) => Ack::Reject,
                _ => {
                    return Err(Error::invalid(format!(
                        "acknowledgement of offsets {}..={} has no type (ACCEPT, RELEASE or \
                         REJECT)",
                        a.first_offset, a.last_offset
                    ))
                    .with("type", a.r#type));
                }
            };
            Ok(AckBatch { first: a.first_offset, last: a.last_offset, types: vec![ack] })
        })
        .collect()
}

/// A heartbeat's answer as proto.
pub fn heartbeat_answer(a: HeartbeatAnswer) -> pb::HeartbeatResponse {
    pb::HeartbeatResponse {
        member_id: a.member_id,
        member_epoch: a.member_epoch,
        heartbeat_interval_ms: a.heartbeat_interval_ms,
        assignment: shale_proto::convert::partition_set_to_proto(&a.assignment),
        group_epoch: a.group_epoch,
    }
}

/// A reset request from proto; one without a target is refused.
pub fn reset_offsets(req: pb::ResetOffsetsRequest) -> Result<ResetOffsets, Error> {
    use pb::reset_offsets_request::To;
    let to = match req.to {
        None => {
            return Err(Error::invalid(
                "reset needs a target: earliest, latest, a timestamp or an offset",
            ));
        }
        Some(To::Earliest(_)) => ResetTo::Earliest,
        Some(To::Latest(_)) => ResetTo::Latest,
        Some(To::TimestampMs(ts)) => ResetTo::Timestamp(ts),
        Some(To::Offset(o)) => ResetTo::Offset(o),
    };
    Ok(ResetOffsets {
        group: req.group,
        topic: req.topic,
        partitions: req.partitions,
        to,
        dry_run: req.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_without_a_target_is_refused_and_one_with_a_target_converts() {
        let req =
            pb::ResetOffsetsRequest { group: "g".into(), topic: "t".into(), ..Default::default() };
        let err = reset_offsets(req.clone()).unwrap_err();
        assert!(err.message.contains("reset needs a target"), "{err}");
        let req = pb::ResetOffsetsRequest {
            to: Some(pb::reset_offsets_request::To::TimestampMs(7)),
            dry_run: true,
            ..req
        };
        let reset = reset_offsets(req).unwrap();
        assert_eq!((reset.to, reset.dry_run), (ResetTo::Timestamp(7), true));
    }
}
