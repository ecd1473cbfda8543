//! Conversions between protobuf messages and the domain types both ends use.

use std::collections::BTreeSet;

use crate::pb;
use shale_core::acks::Acks;
use shale_core::error::{Error, Reason};
use shale_core::offsets::OffsetSpec;
use shale_core::record::{Compression, Header, Record};

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

/// Domain compression codec to the proto's.
pub fn compression_to_proto(c: Compression) -> pb::Compression {
    match c {
        Compression::None => pb::Compression::None,
        Compression::Gzip => pb::Compression::Gzip,
        Compression::Snappy => pb::Compression::Snappy,
        Compression::Lz4 => pb::Compression::Lz4,
        Compression::Zstd => pb::Compression::Zstd,
    }
}

/// Proto compression codec to the domain's; an unknown value is refused, naming it.
pub fn compression(value: i32) -> Result<Compression, Error> {
    match pb::Compression::try_from(value) {
        Ok(pb::Compression::None) => Ok(Compression::None),
        Ok(pb::Compression::Gzip) => Ok(Compression::Gzip),
        Ok(pb::Compression::Snappy) => Ok(Compression::Snappy),
        Ok(pb::Compression::Lz4) => Ok(Compression::Lz4),
        Ok(pb::Compression::Zstd) => Ok(Compression::Zstd),
        Err(_) => Err(Error::invalid(format!(
            "invalid compression value {value}: expected 0 (none), 1 (gzip), 2 (snappy), \
             3 (lz4) or 4 (zstd)"
        ))),
    }
}

/// Proto fetch format: whether the records are wanted decoded; an unknown value is
/// refused, naming it.
pub fn decoded(format: i32) -> Result<bool, Error> {
    match pb::FetchFormat::try_from(format) {
        Ok(pb::FetchFormat::Batches) => Ok(false),
        Ok(pb::FetchFormat::Records) => Ok(true),
        Err(_) => Err(Error::invalid(format!(
            "invalid fetch format {format}: expected 0 (batches) or 1 (records)"
        ))),
    }
}

/// Whether a fetch's `isolation` (a `pb::Isolation`) reads committed records only.
pub fn read_committed(isolation: i32) -> Result<bool, Error> {
    match pb::Isolation::try_from(isolation) {
        Ok(pb::Isolation::ReadUncommitted) => Ok(false),
        Ok(pb::Isolation::ReadCommitted) => Ok(true),
        Err(_) => Err(Error::invalid(format!(
            "invalid isolation {isolation}: expected 0 (read_uncommitted) or 1 (read_committed)"
        ))),
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

/// An error as the in-stream proto error.
pub fn error_to_proto(e: &Error) -> pb::Error {
    pb::Error {
        code: crate::status::code_of(e.kind) as i32,
        reason: e.reason.as_str().to_string(),
        message: e.message.clone(),
        metadata: e.details.clone().into_iter().collect(),
    }
}

/// An in-stream proto error back to a domain error.
pub fn error_from_proto(e: &pb::Error) -> Error {
    let status = tonic::Status::new(tonic::Code::from(e.code), e.message.clone());
    let mut error = crate::status::from_status(&status);
    error.reason = Reason::from_wire(&e.reason);
    error.details = e.metadata.clone().into_iter().collect();
    error
}

/// Partitions as a member reports them: (topic, partition) pairs.
pub fn partition_set(owned: &[pb::TopicPartitions]) -> BTreeSet<(String, u32)> {
    owned.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.clone(), *p))).collect()
}

/// A set of (topic, partition) pairs as sent on the wire: one entry per topic, partitions
/// sorted.
pub fn partition_set_to_proto(set: &BTreeSet<(String, u32)>) -> Vec<pb::TopicPartitions> {
    let mut out: Vec<pb::TopicPartitions> = Vec::new();
    for (topic, partition) in set {
        match out.last_mut() {
            Some(last) if last.topic == *topic => last.partitions.push(*partition),
            _ => {
                out.push(pb::TopicPartitions { topic: topic.clone(), partitions: vec![*partition] })
            }
        }
    }
    out
}

/// An offset spec as the `shale.v1` wire says it.
pub fn offset_spec_to_proto(spec: OffsetSpec) -> pb::list_offsets_request::Spec {
    use pb::list_offsets_request::Spec;
    match spec {
        OffsetSpec::Earliest => Spec::Earliest(true),
        OffsetSpec::Latest => Spec::Latest(true),
        OffsetSpec::LastStable => Spec::LastStable(true),
        OffsetSpec::Timestamp(ts) => Spec::TimestampMs(ts),
        OffsetSpec::MaxTimestamp => Spec::MaxTimestamp(true),
        OffsetSpec::EarliestLocal => Spec::EarliestLocal(true),
        OffsetSpec::LatestTiered => Spec::LatestTiered(true),
    }
}

/// The offset spec a `shale.v1` request says (latest when it says none).
pub fn offset_spec(spec: Option<pb::list_offsets_request::Spec>) -> OffsetSpec {
    use pb::list_offsets_request::Spec;
    match spec {
        Some(Spec::Earliest(_)) => OffsetSpec::Earliest,
        None | Some(Spec::Latest(_)) => OffsetSpec::Latest,
        Some(Spec::TimestampMs(ts)) => OffsetSpec::Timestamp(ts),
        Some(Spec::MaxTimestamp(_)) => OffsetSpec::MaxTimestamp,
        Some(Spec::EarliestLocal(_)) => OffsetSpec::EarliestLocal,
        Some(Spec::LatestTiered(_)) => OffsetSpec::LatestTiered,
        Some(Spec::LastStable(_)) => OffsetSpec::LastStable,
    }
}
