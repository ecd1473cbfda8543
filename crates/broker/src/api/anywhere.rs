//! Reads of a partition from whichever broker the caller reached, for front ends that let
//! a person browse any partition from any broker (the console): authorized here like
//! every read (the ACLs are the cluster's), then served here when this broker leads the
//! partition, else read from its leader over the brokers' own channels. A read is
//! forwarded once: the leader answers it as a plain read (a leader that moved meanwhile
//! answers `NOT_LEADER`, which the caller sees).

use futures::StreamExt;
use futures::stream::BoxStream;

use super::{Api, Identity};
use crate::acl::{Operation, ResourceType};
use crate::broker::fetch::FetchChunk;
use shale_core::error::{Error, ErrorKind};
use shale_core::offsets::{ListedOffset, OffsetSpec};
use shale_proto::pb;

use super::FetchShape;

impl Api {
    /// Where partition `topic`-`partition` starts and ends, or where a time falls in it
    /// (Describe on the topic), answered by its leader, wherever it is.
    pub async fn list_offsets_anywhere(
        &self,
        who: &Identity,
        (topic, partition): (&str, u32),
        spec: OffsetSpec,
    ) -> Result<ListedOffset, Error> {
        let acl = self.broker.acl();
        acl.check(who, "ListOffsets", Operation::Describe, ResourceType::Topic, topic)?;
        self.broker.list_offsets_anywhere(topic, partition, spec).await
    }

    /// [`Api::fetch_stream`] of a partition led anywhere: here, or streamed from its
    /// leader (uncommitted reads; the isolation of `shape` is not forwarded).
    pub async fn fetch_stream_anywhere(
        &self,
        who: &Identity,
        action: &str,
        (topic, partition): (&str, u32),
        offset: i64,
        shape: &FetchShape,
    ) -> Result<BoxStream<'static, Result<FetchChunk, Error>>, Error> {
        let e = match self.fetch_stream(who, action, topic, partition, offset, shape) {
            Ok(here) => return Ok(here.boxed()),
            Err(e) if e.kind == ErrorKind::NotLeader => e,
            Err(e) => return Err(e),
        };
        let mut leader = self.broker.leader_log_client(e)?;
        let request = pb::FetchRequest {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: u32::try_from(shape.max_bytes()).unwrap_or(u32::MAX),
            max_wait_ms: shape.max_wait_ms(),
            stop_at_end: shape.stops_at_end(),
            format: pb::FetchFormat::Batches as i32,
            isolation: pb::Isolation::ReadUncommitted as i32,
        };
        let from_status = |s: tonic::Status| shale_proto::status::from_status(&s);
        let answers = leader.fetch(request).await.map_err(from_status)?.into_inner();
        Ok(answers.map(move |r| r.map(chunk_of).map_err(from_status)).boxed())
    }
}

/// A leader's answer as the chunk a local read gives.
fn chunk_of(r: pb::FetchResponse) -> FetchChunk {
    FetchChunk {
        batches: r.batches,
        high_watermark: r.high_watermark,
        last_stable_offset: r.last_stable_offset,
        log_start_offset: r.log_start_offset,
        at_end: r.next_offset >= r.high_watermark,
        next_offset: r.next_offset,
        aborted: r.aborted_transactions.iter().map(|a| (a.producer_id, a.first_offset)).collect(),
    }
}
