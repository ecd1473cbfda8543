//! Conversions from the broker's descriptions of topics, partitions and brokers to
//! protobuf messages.

use shale_broker::api::{
    AclBinding, AclFilter, BrokerRecord, Move, Operation, PartitionDescription, PartitionState,
    PatternType, Permission, ResourceType, TopicEntry,
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
