//! Conversions between protobuf messages and domain types.

use crate::broker::topics::PartitionDescription;
use crate::broker::{Acks, TopicEntry};
use crate::error::Error;
use crate::meta::topics::{BrokerRecord, PartitionState};
use crate::record::{Header, Record};
use crate::rpc::pb;

/// Proto acks to domain acks.
pub fn acks(value: i32) -> Result<Acks, Error> {
    match pb::Acks::try_from(value) {
        Ok(pb::Acks::All) => Ok(Acks::All),
        Ok(pb::Acks::Leader) => Ok(Acks::Leader),
        Ok(pb::Acks::None) => Ok(Acks::None),
        Err(_) => Err(Error::invalid(format!(
            "invalid acks value {value}: expected 0 (all), 1 (leader) or 2 (none)"
        ))),
    }
}

/// Domain acks to proto acks.
pub fn acks_to_proto(acks: Acks) -> pb::Acks {
    match acks {
        Acks::All => pb::Acks::All,
        Acks::Leader => pb::Acks::Leader,
        Acks::None => pb::Acks::None,
    }
}

/// Proto record to domain record.
pub fn record(r: pb::Record) -> Record {
    Record {
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// Domain record to proto record.
pub fn record_to_proto(r: Record) -> pb::Record {
    pb::Record {
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| pb::Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

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

/// An error as the in-stream proto error.
pub fn error_to_proto(e: &Error) -> pb::Error {
    pb::Error {
        code: crate::rpc::status::code_of(e.kind) as i32,
        reason: e.reason.to_string(),
        message: e.message.clone(),
        metadata: e.details.clone().into_iter().collect(),
    }
}

/// An in-stream proto error back to a domain error.
pub fn error_from_proto(e: &pb::Error) -> Error {
    let status = tonic::Status::new(tonic::Code::from(e.code), e.message.clone());
    let mut error = crate::rpc::status::from_status(&status);
    error.reason = e.reason.clone().into();
    error.details = e.metadata.clone().into_iter().collect();
    error
}
