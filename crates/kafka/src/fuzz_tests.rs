//! The request decoder under fuzzing: any bytes a client can send, as a frame, go through
//! the same steps as on a connection — the header prefix, the API and version check, the
//! header, then the body's decoder for that API and version — and must end in a request
//! or an error, never a panic or an allocation sized by the input. Random frames, frames
//! of valid requests with bytes flipped, truncated and extended, and a kept corpus of
//! inputs that once went wrong (`fuzz-corpus/`, replayed on every run).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use crate::frame;
use crate::versions::{SERVED, serves};

/// Expands the macro `$m` with every served API key and its request type.
macro_rules! with_served_requests {
    ($m:ident) => {
        $m! {
            Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest, ApiVersions => ApiVersionsRequest,
            InitProducerId => InitProducerIdRequest, OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
            CreateTopics => CreateTopicsRequest, DeleteTopics => DeleteTopicsRequest,
            DeleteRecords => DeleteRecordsRequest, DescribeCluster => DescribeClusterRequest, FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest, SyncGroup => SyncGroupRequest, Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest, OffsetCommit => OffsetCommitRequest,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
            ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
            ShareGroupHeartbeat => ShareGroupHeartbeatRequest,
            ShareGroupDescribe => ShareGroupDescribeRequest,
            ShareFetch => ShareFetchRequest, ShareAcknowledge => ShareAcknowledgeRequest,
            DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest,
            AlterShareGroupOffsets => AlterShareGroupOffsetsRequest,
            DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest,
            OffsetFetch => OffsetFetchRequest, ListGroups => ListGroupsRequest,
            DescribeGroups => DescribeGroupsRequest, DeleteGroups => DeleteGroupsRequest,
            OffsetDelete => OffsetDeleteRequest, CreatePartitions => CreatePartitionsRequest,
            DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
            IncrementalAlterConfigs => IncrementalAlterConfigsRequest, CreateAcls => CreateAclsRequest,
            DescribeAcls => DescribeAclsRequest, DeleteAcls => DeleteAclsRequest,
            AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
            ListPartitionReassignments => ListPartitionReassignmentsRequest,
            ElectLeaders => ElectLeadersRequest, SaslHandshake => SaslHandshakeRequest,
            SaslAuthenticate => SaslAuthenticateRequest,
            AlterUserScramCredentials => AlterUserScramCredentialsRequest,
            DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
            DescribeProducers => DescribeProducersRequest,
            ListTransactions => ListTransactionsRequest,
            DescribeTransactions => DescribeTransactionsRequest,
            AddPartitionsToTxn => AddPartitionsToTxnRequest, AddOffsetsToTxn => AddOffsetsToTxnRequest,
            EndTxn => EndTxnRequest, TxnOffsetCommit => TxnOffsetCommitRequest,
        }
    };
}

/// Decodes `body` as the request `key` at `version`; the decoded value is dropped.
fn decode_body(key: ApiKey, version: i16, mut body: Bytes) -> Result<(), String> {
    macro_rules! decode {
        ($($k:ident => $t:ty),* $(,)?) => {
            match key {
                $(ApiKey::$k => <$t>::decode(&mut body, version).map(drop).map_err(|e| e.to_string()),)*
                other => Err(format!("{other:?} is not served")),
            }
        };
    }
    with_served_requests!(decode)
}

/// A frame's way through the decoder, as a connection takes it.
fn decode_frame(frame: Bytes) -> Result<(), String> {
    let p = frame::prefix(&frame).ok_or("shorter than a header")?;
    let key = ApiKey::try_from(p.key).map_err(|_| "unknown key".to_string())?;
    if !serves(key, p.version) {
        return Err("unserved version".into());
    }
    let req = frame::split(frame, key, p.version)?;
    decode_body(key, p.version, req.body)
}

/// A valid frame (no size prefix) of `key` at `version` with a default body.
fn valid_frame(key: ApiKey, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    header.encode(&mut buf, key.request_header_version(version)).unwrap();
    macro_rules! encode {
        ($($k:ident => $t:ty),* $(,)?) => {
            match key {
                $(ApiKey::$k => <$t>::default().encode(&mut buf, version).unwrap(),)*
                _ => {}
            }
        };
    }
    with_served_requests!(encode);
    buf.freeze()
}

/// Every served (key, version).
fn served_pairs() -> Vec<(ApiKey, i16)> {
    SERVED.iter().flat_map(|(k, min, max)| (*min..=*max).map(move |v| (*k, v))).collect()
}

#[test]
fn every_served_request_decodes_at_every_served_version() {
    for (key, version) in served_pairs() {
        decode_frame(valid_frame(key, version))
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    }
}

#[test]
fn a_huge_array_count_is_refused_not_allocated() {
    // Metadata v1: the topics array's count, then nothing. Unpatched, the codec sized a Vec
    // of two billion topics from these bytes and the process aborted.
    let mut frame = BytesMut::new();
    frame.put_slice(&valid_frame(ApiKey::Metadata, 1)[..]);
    frame.truncate(frame.len() - 4);
    frame.put_i32(i32::MAX);
    let e = decode_frame(frame.freeze()).unwrap_err();
    assert!(e.contains("exceeds"), "{e}");
}

#[test]
fn the_kept_corpus_decodes_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let _ = decode_frame(Bytes::from(bytes));
        n += 1;
    }
    assert!(n >= 5, "the corpus at {} holds {n} inputs", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_frame(Bytes::from(bytes));
    }

    #[test]
    fn random_bodies_of_served_requests_never_panic(
        pair in proptest::sample::select(served_pairs()),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut frame = BytesMut::new();
        frame.put_slice(&valid_frame(pair.0, pair.1)[..]);
        frame.put_slice(&body);
        let _ = decode_frame(frame.freeze());
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        pair in proptest::sample::select(served_pairs()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut frame = valid_frame(pair.0, pair.1).to_vec();
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        frame.truncate(cut.index(frame.len() + 1));
        frame.extend_from_slice(&extra);
        let _ = decode_frame(Bytes::from(frame));
    }
}
