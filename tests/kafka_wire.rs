//! The Kafka listener on the wire, spoken directly (the codec is kafka-protocol's,
//! generated from Kafka's schemas, not ours):
//! - every API at every version `ApiVersions` lists answers a well-formed request with a
//!   response that decodes at that version, carries the request's correlation id, and has
//!   no bytes left over (a field set that the version lacks would have closed the
//!   connection instead);
//! - bad input — garbage, a 2 GB size prefix, unknown API keys and versions, truncated
//!   requests, a huge array count, and a run of fuzzed frames — is answered or closes its
//!   connection within a second, while the broker keeps serving others and what it
//!   acknowledged stays readable.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an answer (or the close) may take.
const WITHIN: Duration = Duration::from_secs(1);

async fn broker() -> (shale::server::RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.groups.initial_rebalance_delay_ms = 50;
    (common::start(settings).await, dir)
}

/// A request frame (with its size prefix) of `body` as `key` at `version`.
fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// A frame with the header's fixed start (no client id) and `body` as given.
fn raw(key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(8 + body.len() as i32);
    buf.put_i16(key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_slice(body);
    buf.freeze()
}

/// The next response frame's bytes, or `None` once the broker closed the connection.
async fn read_response(conn: &mut TcpStream, within: Duration) -> Option<Bytes> {
    let read = async {
        let mut size = [0u8; 4];
        conn.read_exact(&mut size).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        conn.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    };
    tokio::time::timeout(within, read).await.expect("an answer or a close within the bound")
}

/// Whether the broker closed `conn` (within `within`).
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(tokio::time::timeout(within, conn.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
}

/// Sends one request on a new connection and decodes its response.
async fn call<Req: Encodable, Resp: Decodable>(
    addr: &str,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    call_on(&mut conn, key, version, body).await
}

/// Sends one request on `conn` and decodes its response.
async fn call_on<Req: Encodable, Resp: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    conn.write_all(&frame(key, version, 4242, body)).await.unwrap();
    let mut resp = read_response(conn, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{key:?} v{version}: the broker closed the connection"));
    let header = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 4242, "{key:?} v{version}");
    let decoded = Resp::decode(&mut resp, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: the response does not decode: {e}"));
    assert_eq!(resp.remaining(), 0, "{key:?} v{version}: bytes left after the response");
    decoded
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn batch() -> Bytes {
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
    b.push(shale::record::Record {
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"v")),
        headers: vec![],
        timestamp_ms: 1_700_000_000_000,
    });
    b.build()
}

/// The served (key, min, max) as the broker lists them.
async fn served(addr: &str) -> Vec<(ApiKey, i16, i16)> {
    let r: ApiVersionsResponse =
        call(addr, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
    r.api_keys
        .iter()
        .map(|k| (ApiKey::try_from(k.api_key).unwrap(), k.min_version, k.max_version))
        .collect()
}

/// One well-formed request of every served API at `v`, each checked on its own connection.
/// ConsumerGroupHeartbeat at `v`: a member joins group `wire-cg-{v}` (v0: the broker makes
/// its id; v1: the client does) and is given `t`'s partitions by topic id; a heartbeat at
/// another epoch is FENCED_MEMBER_EPOCH and an unknown member UNKNOWN_MEMBER_ID, and the
/// member carries on unharmed.
async fn consumer_group_heartbeat(addr: &str, v: i16, t: &str, topic_id: uuid::Uuid) {
    let key = ApiKey::ConsumerGroupHeartbeat;
    let group = GroupId(s(&format!("wire-cg-{v}")));
    let made = if v >= 1 { "wire-member/1+" } else { "" };
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group.clone())
        .with_member_id(s(made))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic(t)]))
        .with_topic_partitions(Some(vec![]));
    let r: ConsumerGroupHeartbeatResponse = call(addr, key, v, &join).await;
    assert_eq!(r.error_code, 0, "v{v}: {r:?}");
    let member = r.member_id.clone().expect("a member id");
    if v >= 1 {
        assert_eq!(member.as_str(), made, "v{v}: the client's id is kept");
    }
    let assignment = r.assignment.expect("a joining member is told its assignment");
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id, "v{v}");
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1], "v{v}");
    let epoch = r.member_epoch;
    let beat = |member: &StrBytes, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_member_id(member.clone())
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
    };
    let r: ConsumerGroupHeartbeatResponse = call(addr, key, v, &beat(&member, epoch + 5)).await;
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code(), "v{v}: {r:?}");
    let r: ConsumerGroupHeartbeatResponse = call(addr, key, v, &beat(&s("nobody"), 3)).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code(), "v{v}: {r:?}");
    let r: ConsumerGroupHeartbeatResponse = call(addr, key, v, &beat(&member, epoch)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, epoch), "v{v}: the member is unharmed");
    assert!(r.assignment.is_none(), "v{v}: an unchanged assignment is not sent again");
    // Its commits carry its member epoch (OffsetCommit v9): another is STALE_MEMBER_EPOCH,
    // and an older OffsetCommit cannot carry one (UNSUPPORTED_VERSION).
    let commit = |version: i16, epoch: i32| {
        let ct = OffsetCommitRequestTopic::default().with_name(topic(t)).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(1),
        ]);
        let req = OffsetCommitRequest::default()
            .with_group_id(group.clone())
            .with_member_id(member.clone())
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![ct]);
        async move {
            let r: OffsetCommitResponse = call(addr, ApiKey::OffsetCommit, version, &req).await;
            r.topics[0].partitions[0].error_code
        }
    };
    assert_eq!(commit(9, epoch + 1).await, ResponseError::StaleMemberEpoch.code(), "v{v}");
    assert_eq!(commit(8, epoch).await, ResponseError::UnsupportedVersion.code(), "v{v}");
    assert_eq!(commit(9, epoch).await, 0, "v{v}");
    // Its fetches too (OffsetFetch v9): another epoch is STALE_MEMBER_EPOCH, a member the
    // group does not have UNKNOWN_MEMBER_ID; an administrator (epoch -1) is not checked.
    let fetch = |member: StrBytes, epoch: i32| {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group.clone())
                .with_member_id(Some(member))
                .with_member_epoch(epoch)
                .with_topics(None),
        ]);
        async move {
            let r: OffsetFetchResponse = call(addr, ApiKey::OffsetFetch, 9, &req).await;
            r.groups[0].error_code
        }
    };
    assert_eq!(fetch(member.clone(), epoch + 1).await, ResponseError::StaleMemberEpoch.code());
    assert_eq!(fetch(s("nobody"), 1).await, ResponseError::UnknownMemberId.code(), "v{v}");
    assert_eq!(fetch(s("nobody"), -1).await, 0, "v{v}: an administrator's fetch");
    assert_eq!(fetch(member.clone(), epoch).await, 0, "v{v}");
}

/// Sets `group`'s config `key` to `value` (KIP-848's GROUP resource, type 32); the error code.
async fn set_group_config(addr: &str, group: &str, key: &str, value: &str) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request as inc;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        inc::AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s(group))
            .with_configs(vec![
                inc::AlterableConfig::default()
                    .with_name(s(key))
                    .with_config_operation(0)
                    .with_value(Some(s(value))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        call(addr, ApiKey::IncrementalAlterConfigs, 1, &req).await;
    r.responses[0].error_code
}

/// ShareAcknowledge of `first..=last` of `t`'s partition 0 as `ack` by `member` of
/// `wire-sg` at `epoch` on `conn` (a share session lives as long as its connection): the
/// top-level and the partition's error codes.
async fn share_ack(
    conn: &mut TcpStream,
    member: &str,
    epoch: i32,
    topic_id: uuid::Uuid,
    (first, last, ack): (i64, i64, i8),
) -> (i16, Option<i16>) {
    use kafka_protocol::messages::share_acknowledge_request as sa;
    let req = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s("wire-sg"))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![
            sa::AcknowledgeTopic::default().with_topic_id(topic_id).with_partitions(vec![
                sa::AcknowledgePartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(vec![
                        sa::AcknowledgementBatch::default()
                            .with_first_offset(first)
                            .with_last_offset(last)
                            .with_acknowledge_types(vec![ack]),
                    ]),
            ]),
        ]);
    let r: ShareAcknowledgeResponse = call_on(conn, ApiKey::ShareAcknowledge, 1, &req).await;
    (r.error_code, r.responses.first().map(|t| t.partitions[0].error_code))
}

/// Share groups on the wire (KIP-932): a member joins `wire-sg` (a lock duration out of
/// the broker's bounds is INVALID_CONFIG), is given `t`'s partitions, and a heartbeat at
/// another epoch is FENCED_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID. It acquires
/// records of partition 0 in a share session; acknowledging outside the session's epoch
/// is INVALID_SHARE_SESSION_EPOCH, without a session SHARE_SESSION_NOT_FOUND, and records
/// it does not hold or already accepted INVALID_RECORD_STATE; the member is unharmed.
async fn share_group(addr: &str, v: i16, t: &str, topic_id: uuid::Uuid) {
    use kafka_protocol::messages::share_fetch_request as sf;
    let lock = "share.record.lock.duration.ms";
    assert_eq!(set_group_config(addr, "wire-sg", lock, "999").await, 40, "below the bounds");
    assert_eq!(set_group_config(addr, "wire-sg", "share.delivery.count.limit", "11").await, 40);
    assert_eq!(set_group_config(addr, "wire-sg", "share.auto.offset.reset", "earliest").await, 0);
    let key = ApiKey::ShareGroupHeartbeat;
    let beat = |member: &str, epoch: i32| {
        ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("wire-sg")))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
    };
    let join = beat("wire-share-1", 0).with_subscribed_topic_names(Some(vec![topic(t)]));
    let r: ShareGroupHeartbeatResponse = call(addr, key, v, &join).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let assignment = r.assignment.expect("a joining member is told its assignment");
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id);
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);
    let epoch = r.member_epoch;
    let r: ShareGroupHeartbeatResponse = call(addr, key, v, &beat("wire-share-1", epoch + 5)).await;
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code(), "{r:?}");
    let r: ShareGroupHeartbeatResponse = call(addr, key, v, &beat("nobody", 3)).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code(), "{r:?}");
    let r: ShareGroupHeartbeatResponse = call(addr, key, v, &beat("wire-share-1", epoch)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, epoch), "the member is unharmed");
    // A consumer-protocol heartbeat cannot join a share group.
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("wire-sg")))
        .with_member_id(s("intruder"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic(t)]))
        .with_topic_partitions(Some(vec![]));
    let r: ConsumerGroupHeartbeatResponse =
        call(addr, ApiKey::ConsumerGroupHeartbeat, 1, &cg).await;
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code(), "{r:?}");

    let fetch = |epoch: i32| {
        ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s("wire-sg"))))
            .with_member_id(Some(s("wire-share-1")))
            .with_share_session_epoch(epoch)
            .with_max_wait_ms(2_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(100)
            .with_topics(vec![
                sf::FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![sf::FetchPartition::default().with_partition_index(0)]),
            ])
    };
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let r: ShareFetchResponse = call_on(&mut conn, ApiKey::ShareFetch, 1, &fetch(0)).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.acquisition_lock_timeout_ms, 30_000);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    let got = p.acquired_records.first().expect("records acquired");
    assert_eq!((got.first_offset, got.delivery_count), (0, 1), "{p:?}");
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    let last = got.last_offset;
    let member = "wire-share-1";
    let accept = (0, last, 1);
    assert_eq!(
        share_ack(&mut conn, member, 0, topic_id, accept).await.0,
        ResponseError::InvalidShareSessionEpoch.code()
    );
    assert_eq!(
        share_ack(&mut conn, "nobody", 1, topic_id, accept).await.0,
        ResponseError::ShareSessionNotFound.code()
    );
    assert_eq!(
        share_ack(&mut conn, member, 2, topic_id, accept).await.0,
        ResponseError::InvalidShareSessionEpoch.code(),
        "the session's next epoch is 1"
    );
    let beyond = (last + 1, last + 5, 1);
    let invalid = ResponseError::InvalidRecordState.code();
    assert_eq!(share_ack(&mut conn, member, 1, topic_id, beyond).await, (0, Some(invalid)));
    assert_eq!(
        share_ack(&mut conn, member, 2, topic_id, (0, last, 9)).await.1,
        Some(42),
        "bad type"
    );
    assert_eq!(share_ack(&mut conn, member, 3, topic_id, accept).await, (0, Some(0)));
    assert_eq!(
        share_ack(&mut conn, member, 4, topic_id, accept).await,
        (0, Some(invalid)),
        "twice"
    );
    // The session goes on; closing it (epoch -1) is answered.
    let r: ShareFetchResponse =
        call_on(&mut conn, ApiKey::ShareFetch, 1, &fetch(5).with_max_wait_ms(0)).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(share_ack(&mut conn, member, -1, topic_id, (0, 0, 1)).await.1, Some(invalid));
}

async fn check_version(addr: &str, key: ApiKey, v: i16, topic_id: uuid::Uuid) {
    let t = "wire-t";
    match key {
        ApiKey::ApiVersions => {
            let r: ApiVersionsResponse = call(addr, key, v, &ApiVersionsRequest::default()).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::Metadata => {
            let topics = Some(vec![MetadataRequestTopic::default().with_name(Some(topic(t)))]);
            let r: MetadataResponse =
                call(addr, key, v, &MetadataRequest::default().with_topics(topics)).await;
            assert_eq!(r.topics[0].error_code, 0, "v{v}: {r:?}");
            assert_eq!(r.topics[0].partitions.len(), 2, "v{v}");
            if v >= 10 {
                // By id, the name null or empty (as the Java client sends it for a
                // broker-side regex subscription); an unknown id is UNKNOWN_TOPIC_ID.
                let unknown = uuid::Uuid::from_u128(7);
                let topics = Some(vec![
                    MetadataRequestTopic::default().with_topic_id(topic_id),
                    MetadataRequestTopic::default()
                        .with_topic_id(topic_id)
                        .with_name(Some(topic(""))),
                    MetadataRequestTopic::default().with_topic_id(unknown),
                ]);
                let r: MetadataResponse =
                    call(addr, key, v, &MetadataRequest::default().with_topics(topics)).await;
                let found: Vec<_> = r.topics.iter().filter(|x| x.topic_id == topic_id).collect();
                assert!(
                    found
                        .iter()
                        .all(|x| x.error_code == 0
                            && x.name.as_ref().is_some_and(|n| n.0.as_str() == t)),
                    "v{v}: {r:?}"
                );
                assert!(!found.is_empty(), "v{v}: {r:?}");
                let missing = r.topics.iter().find(|x| x.topic_id == unknown).expect("answered");
                assert_eq!(missing.error_code, ResponseError::UnknownTopicId.code(), "v{v}");
            }
        }
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat(addr, v, t, topic_id).await,
        ApiKey::ShareGroupHeartbeat => share_group(addr, v, t, topic_id).await,
        ApiKey::ShareGroupDescribe => {
            let req = ShareGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(s("wire-sg")), GroupId(s("wire-cg-1"))]);
            let r: ShareGroupDescribeResponse = call(addr, key, v, &req).await;
            let g = &r.groups[0];
            assert_eq!((g.error_code, g.assignor_name.as_str()), (0, "simple"), "{r:?}");
            assert_eq!(g.members.len(), 1, "the member of the heartbeat check");
            assert_eq!(g.members[0].assignment.topic_partitions[0].topic_id, topic_id);
            assert_eq!(r.groups[1].error_code, ResponseError::GroupIdNotFound.code(), "{r:?}");
        }
        ApiKey::ShareFetch => {
            // Without a member id: INVALID_REQUEST; a session nobody opened: not found.
            let req = ShareFetchRequest::default()
                .with_group_id(Some(GroupId(s("wire-sg"))))
                .with_share_session_epoch(3);
            let r: ShareFetchResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, ResponseError::InvalidRequest.code(), "{r:?}");
            let r: ShareFetchResponse =
                call(addr, key, v, &req.with_member_id(Some(s("nobody")))).await;
            assert_eq!(r.error_code, ResponseError::ShareSessionNotFound.code(), "{r:?}");
        }
        ApiKey::DescribeShareGroupOffsets => {
            use kafka_protocol::messages::describe_share_group_offsets_request as d;
            let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                d::DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(s("wire-sg")))
                    .with_topics(Some(vec![
                        d::DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic(t))
                            .with_partitions(vec![0, 1]),
                    ])),
                d::DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(s("wire-none"))),
            ]);
            let r: DescribeShareGroupOffsetsResponse = call(addr, key, v, &req).await;
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0, "{r:?}");
            let parts = &g.topics[0].partitions;
            assert_eq!(g.topics[0].topic_id, topic_id);
            assert!(parts[0].start_offset > 0, "partition 0 moved past what was accepted: {r:?}");
            // Partition 1 was initialized when the member was given it (at the log start).
            assert!(parts[1].start_offset >= 0, "partition 1 has state: {r:?}");
            assert_eq!(r.groups[1].error_code, ResponseError::GroupIdNotFound.code(), "{r:?}");
        }
        ApiKey::AlterShareGroupOffsets => {
            use kafka_protocol::messages::alter_share_group_offsets_request as a;
            let req = AlterShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(s("wire-sg")))
                .with_topics(vec![
                    a::AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic(t))
                        .with_partitions(vec![
                            a::AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(0)
                                .with_start_offset(0),
                        ]),
                ]);
            let r: AlterShareGroupOffsetsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, ResponseError::NonEmptyGroup.code(), "a member is in: {r:?}");
            assert_eq!(r.responses[0].partitions[0].error_code, r.error_code);
        }
        ApiKey::DeleteShareGroupOffsets => {
            use kafka_protocol::messages::delete_share_group_offsets_request as d;
            let req = DeleteShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(s("wire-none")))
                .with_topics(vec![
                    d::DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic(t)),
                ]);
            let r: DeleteShareGroupOffsetsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code(), "{r:?}");
        }
        ApiKey::ShareAcknowledge => {
            let code = ResponseError::InvalidShareSessionEpoch.code();
            let mut conn = TcpStream::connect(addr).await.unwrap();
            let r = share_ack(&mut conn, "wire-share-1", 0, topic_id, (0, 0, 1)).await;
            assert_eq!(r.0, code, "epoch 0 opens no session");
        }
        ApiKey::ConsumerGroupDescribe => {
            let group = GroupId(s(&format!("wire-cg-{v}")));
            let req = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![group, GroupId(s("wire-none"))]);
            let r: ConsumerGroupDescribeResponse = call(addr, key, v, &req).await;
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0, "v{v}: {r:?}");
            assert_eq!(g.members.len(), 1, "v{v}: the member of the heartbeat check");
            assert_eq!(g.assignor_name.as_str(), "uniform");
            let assigned = &g.members[0].assignment.topic_partitions;
            assert_eq!(assigned[0].topic_id, topic_id, "v{v}");
            assert_eq!(r.groups[1].error_code, ResponseError::GroupIdNotFound.code(), "v{v}");
        }
        ApiKey::Produce => {
            let data = TopicProduceData::default().with_name(topic(t)).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(batch())),
            ]);
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![data]);
            let r: ProduceResponse = call(addr, key, v, &req).await;
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "v{v}: {p:?}");
        }
        ApiKey::Fetch => {
            let part = FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20);
            let ft = FetchTopic::default().with_partitions(vec![part]);
            let ft = if v >= 13 { ft.with_topic_id(topic_id) } else { ft.with_topic(topic(t)) };
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![ft]);
            let r: FetchResponse = call(addr, key, v, &req).await;
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "v{v}: {p:?}");
            assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()), "v{v}: no records");
        }
        ApiKey::ListOffsets => {
            // Latest and earliest at every version; the largest timestamp from v7, the
            // local log start from v8, the last tiered offset from v9 (none: not tiered).
            let specs: &[(i64, i16)] = &[(-1, 1), (-2, 1), (-3, 7), (-4, 8), (-5, 9)];
            let parts = specs
                .iter()
                .filter(|(_, since)| v >= *since)
                .map(|(ts, _)| {
                    ListOffsetsPartition::default().with_partition_index(0).with_timestamp(*ts)
                })
                .collect();
            let lt = ListOffsetsTopic::default().with_name(topic(t)).with_partitions(parts);
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                // read_committed: the high watermark (no transactions, no open ones).
                .with_isolation_level(i8::from(v >= 2))
                .with_topics(vec![lt]);
            let r: ListOffsetsResponse = call(addr, key, v, &req).await;
            let got = &r.topics[0].partitions;
            assert_eq!(got.len(), specs.iter().filter(|(_, since)| v >= *since).count());
            assert!(got.iter().all(|p| p.error_code == 0), "v{v}: {got:?}");
            assert!(got[0].offset > 0, "v{v}: latest {got:?}");
            if v >= 7 {
                assert!(got[2].offset >= 0 && got[2].timestamp > 0, "v{v}: max {got:?}");
            }
            if v >= 9 {
                assert_eq!(got[4].offset, -1, "v{v}: nothing tiered");
            }
        }
        ApiKey::DeleteRecords => {
            // Partition 1: partition 0's records are the Fetch checks' to read from 0.
            let data = TopicProduceData::default().with_name(topic(t)).with_partition_data(vec![
                PartitionProduceData::default().with_index(1).with_records(Some(batch())),
            ]);
            let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000);
            let produced: ProduceResponse =
                call(addr, ApiKey::Produce, 9, &req.with_topic_data(vec![data])).await;
            let end = produced.responses[0].partition_responses[0].base_offset + 1;
            let dt = DeleteRecordsTopic::default().with_name(topic(t)).with_partitions(vec![
                DeleteRecordsPartition::default().with_partition_index(1).with_offset(-1),
            ]);
            let req = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![dt]);
            let r: DeleteRecordsResponse = call(addr, key, v, &req).await;
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.low_watermark), (0, end), "v{v}: up to the high watermark");
        }
        ApiKey::OffsetForLeaderEpoch => {
            let ot = OffsetForLeaderTopic::default().with_topic(topic(t)).with_partitions(vec![
                OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(0),
            ]);
            let req = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ot]);
            let r: OffsetForLeaderEpochResponse = call(addr, key, v, &req).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::InitProducerId => {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            let r: InitProducerIdResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            let req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&format!("wire-init-{v}")))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let r: InitProducerIdResponse = call(addr, key, v, &req).await;
            assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}: transactional");
        }
        ApiKey::CreateTopics => {
            let ct = CreatableTopic::default()
                .with_name(topic(&format!("wire-new-{v}")))
                .with_num_partitions(1)
                .with_replication_factor(-1);
            // The controller places replicas: a manual assignment is refused as Kafka refuses
            // one it cannot follow.
            let manual = CreatableTopic::default()
                .with_name(topic(&format!("wire-manual-{v}")))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(0)]),
                ]);
            let req = CreateTopicsRequest::default()
                .with_topics(vec![ct, manual])
                .with_timeout_ms(30_000);
            let r: CreateTopicsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.topics[0].error_code, 0, "v{v}: {:?}", r.topics[0].error_message);
            assert_eq!(
                r.topics[1].error_code,
                ResponseError::InvalidReplicaAssignment.code(),
                "v{v}: {:?}",
                r.topics[1].error_message
            );
        }
        ApiKey::DeleteTopics => {
            let name = format!("wire-new-{}", v + 1);
            let req = match v {
                0..=5 => DeleteTopicsRequest::default().with_topic_names(vec![topic(&name)]),
                _ => DeleteTopicsRequest::default()
                    .with_topics(vec![DeleteTopicState::default().with_name(Some(topic(&name)))]),
            }
            .with_timeout_ms(30_000);
            let r: DeleteTopicsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.responses.len(), 1, "v{v}");
        }
        ApiKey::DescribeCluster => {
            let r: DescribeClusterResponse =
                call(addr, key, v, &DescribeClusterRequest::default()).await;
            assert_eq!((r.error_code, r.brokers.len()), (0, 1), "v{v}");
        }
        ApiKey::FindCoordinator => {
            let req = match v {
                0..=3 => FindCoordinatorRequest::default().with_key(s("wire-g")),
                _ => FindCoordinatorRequest::default().with_coordinator_keys(vec![s("wire-g")]),
            };
            let r: FindCoordinatorResponse = call(addr, key, v, &req).await;
            let code = if v <= 3 { r.error_code } else { r.coordinators[0].error_code };
            assert_eq!(code, 0, "v{v}");
            if v >= 1 {
                // Key type 1: a transactional id's coordinator.
                let req = req.with_key_type(1);
                let r: FindCoordinatorResponse = call(addr, key, v, &req).await;
                let code = if v <= 3 { r.error_code } else { r.coordinators[0].error_code };
                assert_eq!(code, 0, "v{v}: transaction");
            }
        }
        ApiKey::JoinGroup => {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&format!("wire-join-{v}"))))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"\x00\x00")),
                ]);
            let r: JoinGroupResponse = call(addr, key, v, &req).await;
            // v4+: a new member first gets an id to join with (KIP-394).
            let want = if v >= 4 { 79 } else { 0 };
            assert_eq!(r.error_code, want, "v{v}");
        }
        ApiKey::SyncGroup => {
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(s("wire-g")))
                .with_member_id(s("nobody"));
            let r: SyncGroupResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 25, "v{v}: unknown member");
        }
        ApiKey::Heartbeat => {
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(s("wire-g")))
                .with_member_id(s("nobody"));
            let r: HeartbeatResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 25, "v{v}: unknown member");
        }
        ApiKey::LeaveGroup => {
            let req = match v {
                0..=2 => LeaveGroupRequest::default().with_member_id(s("nobody")),
                _ => LeaveGroupRequest::default()
                    .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))]),
            }
            .with_group_id(GroupId(s("wire-g")));
            let r: LeaveGroupResponse = call(addr, key, v, &req).await;
            let code = if v <= 2 { r.error_code } else { r.members[0].error_code };
            assert_eq!(code, 25, "v{v}");
        }
        ApiKey::OffsetCommit => {
            let ct = OffsetCommitRequestTopic::default().with_name(topic(t)).with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1),
            ]);
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&format!("wire-commit-{v}"))))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![ct]);
            let r: OffsetCommitResponse = call(addr, key, v, &req).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::OffsetFetch => {
            let group = GroupId(s("wire-commit-2"));
            let req = match v {
                0..=7 => {
                    OffsetFetchRequest::default().with_group_id(group).with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(topic(t))
                            .with_partition_indexes(vec![0]),
                    ]))
                }
                _ => OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default().with_group_id(group).with_topics(None),
                ]),
            };
            let r: OffsetFetchResponse = call(addr, key, v, &req).await;
            let offset = match v {
                0..=7 => r.topics[0].partitions[0].committed_offset,
                _ => r.groups[0].topics[0].partitions[0].committed_offset,
            };
            assert_eq!(offset, 1, "v{v}");
        }
        ApiKey::ListGroups => {
            let r: ListGroupsResponse = call(addr, key, v, &ListGroupsRequest::default()).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == "wire-commit-2"), "v{v}");
        }
        ApiKey::DescribeGroups => {
            let req =
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s("wire-commit-2"))]);
            let r: DescribeGroupsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.groups[0].error_code, 0, "v{v}");
        }
        ApiKey::DeleteGroups => {
            let req = DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s(&format!("wire-none-{v}")))]);
            let r: DeleteGroupsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.results[0].error_code, 69, "v{v}: group id not found");
        }
        ApiKey::OffsetDelete => {
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("wire-commit-3")))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
                ]);
            let r: OffsetDeleteResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::CreatePartitions => {
            let req =
                CreatePartitionsRequest::default().with_validate_only(true).with_topics(vec![
                    CreatePartitionsTopic::default().with_name(topic(t)).with_count(3),
                ]);
            let r: CreatePartitionsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.results[0].error_code, 0, "v{v}: {:?}", r.results[0].error_message);
        }
        ApiKey::DescribeConfigs => {
            let req = DescribeConfigsRequest::default()
                .with_include_documentation(v >= 3)
                .with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(t))
                        .with_configuration_keys(None),
                    // The empty name is the default broker config: this broker's own.
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s(""))
                        .with_configuration_keys(None),
                ]);
            let r: DescribeConfigsResponse = call(addr, key, v, &req).await;
            assert!(
                r.results.iter().all(|x| x.error_code == 0 && !x.configs.is_empty()),
                "v{v}: {r:?}"
            );
            // The broker's sections and this listener's own.
            let names: Vec<String> =
                r.results[1].configs.iter().map(|c| c.name.to_string()).collect();
            for want in ["log.fd_cache_capacity", "kafka.max_request_bytes"] {
                assert!(names.iter().any(|n| n == want), "v{v}: {want} not in {names:?}");
            }
        }
        ApiKey::AlterConfigs => {
            let req = AlterConfigsRequest::default().with_validate_only(true).with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(t))
                    .with_configs(vec![
                        AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("100000"))),
                    ]),
            ]);
            let r: AlterConfigsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.responses[0].error_code, 0, "v{v}");
        }
        ApiKey::IncrementalAlterConfigs => {
            use kafka_protocol::messages::incremental_alter_configs_request as inc;
            let req = IncrementalAlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![
                    inc::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(t))
                        .with_configs(vec![
                            inc::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("100000"))),
                        ]),
                ]);
            let r: IncrementalAlterConfigsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.responses[0].error_code, 0, "v{v}");
        }
        ApiKey::CreateAcls => {
            let req = CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s(t))
                    .with_resource_pattern_type(3)
                    .with_principal(s(&format!("User:wire-{v}")))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]);
            let r: CreateAclsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.results[0].error_code, 0, "v{v}");
        }
        ApiKey::DescribeAcls => {
            let req = DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1);
            let r: DescribeAclsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert!(!r.resources.is_empty(), "v{v}");
        }
        ApiKey::DeleteAcls => {
            let req = DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_name_filter(None)
                    .with_host_filter(None)
                    .with_resource_type_filter(2)
                    .with_pattern_type_filter(1)
                    .with_principal_filter(Some(s(&format!("User:wire-{v}"))))
                    .with_operation(1)
                    .with_permission_type(1),
            ]);
            let r: DeleteAclsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.filter_results[0].error_code, 0, "v{v}");
        }
        ApiKey::AlterPartitionReassignments => {
            let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
                ReassignableTopic::default().with_name(topic(t)).with_partitions(vec![
                    ReassignablePartition::default().with_partition_index(0),
                ]),
            ]);
            let r: AlterPartitionReassignmentsResponse = call(addr, key, v, &req).await;
            assert_eq!(
                r.responses[0].partitions[0].error_code, 85,
                "v{v}: no reassignment in progress"
            );
        }
        ApiKey::ListPartitionReassignments => {
            let r: ListPartitionReassignmentsResponse =
                call(addr, key, v, &ListPartitionReassignmentsRequest::default()).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::ElectLeaders => {
            let req = ElectLeadersRequest::default().with_timeout_ms(1000).with_topic_partitions(
                Some(vec![
                    kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![0]),
                ]),
            );
            let r: ElectLeadersResponse = call(addr, key, v, &req).await;
            assert_eq!(
                r.replica_election_results[0].partition_result[0].error_code, 84,
                "v{v}: not needed"
            );
        }
        ApiKey::SaslHandshake => {
            let r: SaslHandshakeResponse =
                call(addr, key, v, &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")))
                    .await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::SaslAuthenticate => {
            let r: SaslAuthenticateResponse =
                call(addr, key, v, &SaslAuthenticateRequest::default()).await;
            assert_eq!(r.error_code, 34, "v{v}: no handshake before");
        }
        ApiKey::AlterUserScramCredentials => {
            let up = ScramCredentialUpsertion::default()
                .with_name(s("wire-user"))
                .with_mechanism(2)
                .with_iterations(4096)
                .with_salt(Bytes::from_static(b"salt"))
                .with_salted_password(Bytes::from(vec![7u8; 64]));
            let r: AlterUserScramCredentialsResponse = call(
                addr,
                key,
                v,
                &AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]),
            )
            .await;
            assert_eq!(r.results[0].error_code, 0, "v{v}: {:?}", r.results[0].error_message);
        }
        ApiKey::DescribeUserScramCredentials => {
            let r: DescribeUserScramCredentialsResponse =
                call(addr, key, v, &DescribeUserScramCredentialsRequest::default()).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::DescribeProducers => {
            let r: DescribeProducersResponse = call(addr, key, v, &describe_producers(t)).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::ListTransactions => {
            let req = ListTransactionsRequest::default().with_duration_filter(-1);
            let r: ListTransactionsResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::DescribeTransactions => {
            let ids = vec![TransactionalId(s("wire-none"))];
            let req = DescribeTransactionsRequest::default().with_transactional_ids(ids);
            let r: DescribeTransactionsResponse = call(addr, key, v, &req).await;
            // TRANSACTIONAL_ID_NOT_FOUND: the one broker coordinates every id.
            assert_eq!(r.transaction_states[0].error_code, 105, "v{v}");
        }
        ApiKey::AddPartitionsToTxn => {
            let id = format!("wire-ap-{v}");
            let (pid, epoch) = txn_producer(addr, &id).await;
            let topics = vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic(t))
                    .with_partitions(vec![0]),
            ];
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics);
            let r: AddPartitionsToTxnResponse = call(addr, key, v, &req).await;
            let p = &r.results_by_topic_v3_and_below[0].results_by_partition[0];
            assert_eq!((p.partition_index, p.partition_error_code), (0, 0), "v{v}");
            end_txn(addr, &id, (pid, epoch), 3).await;
        }
        ApiKey::AddOffsetsToTxn => {
            let id = format!("wire-ao-{v}");
            let (pid, epoch) = txn_producer(addr, &id).await;
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(s("wire-txn-g")));
            let r: AddOffsetsToTxnResponse = call(addr, key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            end_txn(addr, &id, (pid, epoch), 3).await;
        }
        ApiKey::TxnOffsetCommit => {
            let id = format!("wire-toc-{v}");
            let (pid, epoch) = txn_producer(addr, &id).await;
            if v < 5 {
                // Transactions v1: the group joins by AddOffsetsToTxn first.
                let req = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(&id)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(s("wire-txn-g")));
                let r: AddOffsetsToTxnResponse = call(addr, ApiKey::AddOffsetsToTxn, 3, &req).await;
                assert_eq!(r.error_code, 0, "v{v}");
            }
            let partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1);
            let req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_group_id(GroupId(s("wire-txn-g")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![partition]),
                ]);
            let r: TxnOffsetCommitResponse = call(addr, key, v, &req).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
            end_txn(addr, &id, (pid, epoch), if v >= 5 { 5 } else { 3 }).await;
        }
        ApiKey::EndTxn => {
            let id = format!("wire-end-{v}");
            let (pid, epoch) = txn_producer(addr, &id).await;
            let topics = vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic(t))
                    .with_partitions(vec![1]),
            ];
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics);
            let r: AddPartitionsToTxnResponse =
                call(addr, ApiKey::AddPartitionsToTxn, 3, &req).await;
            assert_eq!(
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
                0
            );
            let next = end_txn(addr, &id, (pid, epoch), v).await;
            // v5 (transactions v2) answers the next transaction's epoch, one up.
            let want = if v >= 5 { (pid, epoch + 1) } else { (-1, -1) };
            assert_eq!(next, want, "v{v}");
        }
        other => panic!("{other:?} is served but this test has no request for it: add one"),
    }
}

#[tokio::test]
async fn every_served_api_answers_at_every_served_version() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    let info = admin.create_topic("wire-t", 2, 1, Default::default()).await.unwrap();
    let topic_id = uuid::Uuid::parse_str(&info.id).unwrap();
    // Data to fetch before the Fetch checks, and a commit for OffsetFetch's.
    check_version(&addr, ApiKey::Produce, 3, topic_id).await;
    check_version(&addr, ApiKey::OffsetCommit, 2, topic_id).await;
    check_version(&addr, ApiKey::OffsetCommit, 3, topic_id).await;
    let served = served(&addr).await;
    let mut checked = 0;
    for (key, min, max) in served {
        for v in min..=max {
            check_version(&addr, key, v, topic_id).await;
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked} API versions checked");
    // Above the versions served, ApiVersions answers at v0 with UNSUPPORTED_VERSION and
    // the list, so the client can retry (KIP-511).
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(&raw(18, 99, 9, b"\x00")).await.unwrap();
    let mut resp = read_response(&mut conn, WITHIN).await.unwrap();
    assert_eq!(ResponseHeader::decode(&mut resp, 0).unwrap().correlation_id, 9);
    let r = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.len() > 30);
}

/// One batch of one record at `ts`.
fn batch_at(ts: i64) -> Bytes {
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
    b.push(shale::record::Record {
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: vec![],
        timestamp_ms: ts,
    });
    b.build()
}

async fn delete_records(addr: &str, topic_name: &str, offset: i64) -> (i16, i64) {
    let dt = DeleteRecordsTopic::default().with_name(topic(topic_name)).with_partitions(vec![
        DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset),
    ]);
    let req = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![dt]);
    let r: DeleteRecordsResponse = call(addr, ApiKey::DeleteRecords, 2, &req).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// ListOffsets v9 of partition 0 of `topic` at `timestamp`: (error, offset, timestamp).
async fn list_offset(addr: &str, topic_name: &str, timestamp: i64, epoch: i32) -> (i16, i64, i64) {
    let lt = ListOffsetsTopic::default().with_name(topic(topic_name)).with_partitions(vec![
        ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp)
            .with_current_leader_epoch(epoch),
    ]);
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![lt]);
    let r: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, 9, &req).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// A consumer's fetch (no session) of partition 0 of `topic_name` from `offset`, up to 1 MiB.
fn fetch_request(topic_name: &str, offset: i64) -> FetchRequest {
    let part = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default().with_topic(topic(topic_name)).with_partitions(vec![part]),
        ])
}

/// Fetch v12 of partition 0 of `topic` at `offset`: the error and the first offset returned.
async fn fetch_at(addr: &str, topic_name: &str, offset: i64) -> (i16, i64, Option<i64>) {
    let req = fetch_request(topic_name, offset);
    let r: FetchResponse = call(addr, ApiKey::Fetch, 12, &req).await;
    let p = &r.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    let first = shale::record::decode_batches(&records, &Default::default())
        .unwrap()
        .into_iter()
        .map(|r| r.offset)
        .find(|o| *o >= offset);
    (p.error_code, p.log_start_offset, first)
}

/// DeleteRecords moves the start that Fetch and ListOffsets see, never backwards and never
/// past the high watermark; ListOffsets v7-9 answer the record with the largest timestamp
/// (not the last one), the local start and the last tiered offset, and refuse another
/// leader epoch than the leader's.
#[tokio::test]
async fn delete_records_moves_the_log_start_that_fetch_and_list_offsets_see() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-dr", 1, 1, Default::default()).await.unwrap();
    // Ten records, one per batch, the largest timestamp at offset 6.
    let t0 = 1_700_000_000_000;
    for i in 0..10 {
        let ts = if i == 6 { t0 + 1_000 } else { t0 + i * 10 };
        let data =
            TopicProduceData::default().with_name(topic("wire-dr")).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(batch_at(ts))),
            ]);
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000);
        let r: ProduceResponse =
            call(&addr, ApiKey::Produce, 9, &req.with_topic_data(vec![data])).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    assert_eq!(list_offset(&addr, "wire-dr", -3, -1).await, (0, 6, t0 + 1_000));

    assert_eq!(delete_records(&addr, "wire-dr", 4).await, (0, 4));
    assert_eq!(fetch_at(&addr, "wire-dr", 3).await.0, 1, "OFFSET_OUT_OF_RANGE below the start");
    assert_eq!(fetch_at(&addr, "wire-dr", 4).await, (0, 4, Some(4)));
    assert_eq!(list_offset(&addr, "wire-dr", -2, -1).await, (0, 4, -1), "earliest");
    assert_eq!(list_offset(&addr, "wire-dr", -4, -1).await, (0, 4, -1), "earliest local");
    assert_eq!(list_offset(&addr, "wire-dr", -5, -1).await, (0, -1, -1), "nothing tiered");
    assert_eq!(list_offset(&addr, "wire-dr", t0, -1).await, (0, 4, t0 + 40), "by time");
    assert_eq!(delete_records(&addr, "wire-dr", 2).await, (0, 4), "never backwards");
    assert_eq!(delete_records(&addr, "wire-dr", 11).await.0, 1, "past the high watermark");
    assert_eq!(delete_records(&addr, "wire-dr", -2).await.0, 1, "below -1");
    assert_eq!(delete_records(&addr, "wire-dr", 7).await, (0, 7));
    assert_eq!(list_offset(&addr, "wire-dr", -3, -1).await, (0, 9, t0 + 90), "6 is deleted");
    assert_eq!(delete_records(&addr, "wire-dr", -1).await, (0, 10), "up to the high watermark");
    assert_eq!(list_offset(&addr, "wire-dr", -3, -1).await, (0, -1, -1), "no record left");
    // A client a leader epoch ahead learns it is: UNKNOWN_LEADER_EPOCH (75), retriable.
    assert_eq!(list_offset(&addr, "wire-dr", -1, 99).await.0, 75);
    let (code, _) = delete_records(&addr, "wire-none", 0).await;
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// A topic validating schema IDs refuses a batch with INVALID_RECORD, and names the
/// refused record (its offset in the batch) in `record_errors` (Produce v8+): here record
/// 1, a plain value, after a null one (which passes, as tombstones do).
#[tokio::test]
async fn a_refused_record_is_named_in_record_errors() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    let on = [("confluent.value.schema.validation".to_string(), "true".to_string())];
    admin.create_topic("wire-sv", 1, 1, on.into()).await.unwrap();
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
    for value in [None, Some(Bytes::from_static(b"plain"))] {
        b.push(shale::record::Record { key: None, value, headers: vec![], timestamp_ms: 1 });
    }
    let data = TopicProduceData::default().with_name(topic("wire-sv")).with_partition_data(vec![
        PartitionProduceData::default().with_index(0).with_records(Some(b.build())),
    ]);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000);
    let r: ProduceResponse =
        call(&addr, ApiKey::Produce, 9, &req.with_topic_data(vec![data])).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code(), "{p:?}");
    let named = (p.record_errors.len(), p.record_errors.first().map(|e| e.batch_index));
    assert_eq!(named, (1, Some(1)), "{p:?}");
    let message = p.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains("record 1: value: first byte 0x70"), "{message}");
    assert_eq!(fetch_at(&addr, "wire-sv", 0).await, (0, 0, None), "nothing of the batch stored");
    server.close().await.unwrap();
}

/// Produces `n` records to partition 0 of `topic` (acks=all, one batch each); their offsets.
async fn produce_acked(addr: &str, topic_name: &str, n: usize) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        let data =
            TopicProduceData::default().with_name(topic(topic_name)).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(batch())),
            ]);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![data]);
        let r: ProduceResponse = call(addr, ApiKey::Produce, 9, &req).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        offsets.push(p.base_offset);
    }
    offsets
}

/// The records of partition 0 of `topic`, read from 0 until `n` or nothing new.
async fn fetched(addr: &str, topic_name: &str, n: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut offset = 0;
    while seen.len() < n {
        let req = fetch_request(topic_name, offset);
        let r: FetchResponse = call(addr, ApiKey::Fetch, 12, &req).await;
        let records = r.responses[0].partitions[0].records.clone().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        let decoded = shale::record::decode_batches(&records, &Default::default()).unwrap();
        for rec in decoded {
            seen.push(rec.offset);
            offset = rec.offset + 1;
        }
    }
    seen
}

/// SaslHandshake v0 (what librdkafka's feature check and old clients look for): once the
/// mechanism is agreed, the SASL tokens travel as bare size-prefixed frames, outside Kafka's
/// request framing; then the connection speaks Kafka again, authenticated. A wrong
/// password, or an authorization id other than the user, closes the connection without an
/// answer, as Kafka does.
#[tokio::test]
async fn sasl_handshake_v0_runs_the_exchange_in_bare_frames() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let client = common::client(&server);
    client.admin().set_user_credential("wire-plain", "pw-0", vec![], 4096).await.unwrap();
    let token_as = |authzid: &str, user: &str, password: &str| {
        let t = format!("{authzid}\0{user}\0{password}");
        let mut framed = (t.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(t.as_bytes());
        framed
    };
    let token = |user: &str, password: &str| token_as("", user, password);
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(plain_handshake_v0(&mut conn).await.error_code, 0);
    conn.write_all(&token("wire-plain", "pw-0")).await.unwrap();
    let answer = read_response(&mut conn, WITHIN).await.expect("PLAIN's (empty) server token");
    assert!(answer.is_empty(), "PLAIN answers an empty token, got {answer:?}");
    still_serving(&mut conn, "a PLAIN login in bare frames").await;

    let mut conn = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(plain_handshake_v0(&mut conn).await.error_code, 0);
    conn.write_all(&token("wire-plain", "wrong")).await.unwrap();
    assert!(closed(&mut conn, WITHIN).await, "a wrong password must close the connection");

    // The right password, asking to act as another user: refused too (no impersonation).
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(plain_handshake_v0(&mut conn).await.error_code, 0);
    conn.write_all(&token_as("admin", "wire-plain", "pw-0")).await.unwrap();
    assert!(closed(&mut conn, WITHIN).await, "another authorization id must close it");
}

async fn plain_handshake_v0(conn: &mut TcpStream) -> SaslHandshakeResponse {
    let req = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
    conn.write_all(&frame(ApiKey::SaslHandshake, 0, 7, &req)).await.unwrap();
    let mut resp = read_response(conn, WITHIN).await.expect("a handshake answer");
    ResponseHeader::decode(&mut resp, 0).unwrap();
    SaslHandshakeResponse::decode(&mut resp, 0).unwrap()
}

/// ApiVersions on `conn` still answers within the bound.
async fn still_serving(conn: &mut TcpStream, case: &str) {
    conn.write_all(&frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()))
        .await
        .unwrap();
    let answer = read_response(conn, WITHIN).await;
    assert!(answer.is_some(), "after {case}: the healthy connection got no answer");
}

/// Sends `bytes` on a new connection; the broker must close it within the bound (after
/// answering, when `answered_ok`).
async fn refused(addr: &str, case: &str, bytes: &[u8], then_shutdown: bool) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    if then_shutdown {
        conn.shutdown().await.unwrap();
    }
    assert!(
        closed(&mut conn, WITHIN).await,
        "{case}: the connection was not closed within {WITHIN:?}"
    );
}

#[tokio::test]
async fn bad_input_closes_only_its_connection_and_loses_nothing_acknowledged() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-bad", 1, 1, Default::default()).await.unwrap();
    let acked = produce_acked(&addr, "wire-bad", 50).await;
    let mut healthy = TcpStream::connect(&addr).await.unwrap();
    still_serving(&mut healthy, "nothing").await;

    let mut garbage = 64i32.to_be_bytes().to_vec();
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    let metadata = frame(ApiKey::Metadata, 1, 3, &MetadataRequest::default().with_topics(None));
    let mut truncated = metadata.to_vec();
    truncated.truncate(truncated.len() - 2);
    let cut = (truncated.len() as i32 - 4).to_be_bytes();
    truncated[..4].copy_from_slice(&cut);
    let mut huge_count =
        frame(ApiKey::Metadata, 1, 4, &MetadataRequest::default().with_topics(Some(vec![])))
            .to_vec();
    let at = huge_count.len() - 4;
    huge_count[at..].copy_from_slice(&i32::MAX.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", garbage, false),
        ("a 2 GB size prefix", i32::MAX.to_be_bytes().to_vec(), false),
        ("a negative size prefix", (-1i32).to_be_bytes().to_vec(), false),
        ("a frame shorter than a header", [&3i32.to_be_bytes()[..], &[0, 3, 0]].concat(), false),
        ("an unknown API key", raw(9999, 0, 1, b"").to_vec(), false),
        ("Produce v2 (below the versions served)", raw(0, 2, 1, b"\x00\x00").to_vec(), false),
        ("Metadata v99", raw(3, 99, 1, b"").to_vec(), false),
        ("a truncated Metadata request", truncated, false),
        (
            "a request cut off by the client",
            [&100i32.to_be_bytes()[..], &[0, 3, 0, 1]].concat(),
            true,
        ),
        ("an array count of two billion", huge_count, false),
    ];
    for (case, bytes, shutdown) in &cases {
        let started = std::time::Instant::now();
        refused(&addr, case, bytes, *shutdown).await;
        assert!(started.elapsed() <= WITHIN, "{case}");
        still_serving(&mut healthy, case).await;
    }

    // A fuzzing run: frames of valid requests with bytes flipped, cut and extended, and
    // random ones; each answered or its connection closed within a second. APIs that wait
    // by design (long-polls, rebalances, placements) are left to the decoder's own fuzzing.
    let waiting = [
        ApiKey::Fetch,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::ElectLeaders,
        ApiKey::CreateTopics,
        ApiKey::CreatePartitions,
        ApiKey::DeleteTopics,
        ApiKey::Produce,
    ];
    let pairs: Vec<(ApiKey, i16)> = served(&addr)
        .await
        .into_iter()
        .filter(|(k, _, _)| !waiting.contains(k))
        .flat_map(|(k, min, max)| (min..=max).map(move |v| (k, v)))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261125);
    for i in 0..300 {
        let bytes: Vec<u8> = if i % 5 == 4 {
            let n: i32 = rng.random_range(8..200);
            let mut b = n.to_be_bytes().to_vec();
            b.extend((0..n).map(|_| rng.random::<u8>()));
            b
        } else {
            let (key, v) = pairs[rng.random_range(0..pairs.len())];
            let mut b = valid(key, v).to_vec();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(4..b.len());
                b[at] ^= rng.random::<u8>().max(1);
            }
            if rng.random_bool(0.3) {
                let keep = rng.random_range(12..=b.len());
                b.truncate(keep);
                let size = (b.len() as i32 - 4).to_be_bytes();
                b[..4].copy_from_slice(&size);
            }
            b
        };
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.write_all(&bytes).await.unwrap();
        let started = std::time::Instant::now();
        // An answer (then the client closes), or the broker's close.
        let outcome = tokio::time::timeout(WITHIN, async {
            let mut b = [0u8; 4];
            conn.read_exact(&mut b).await.is_ok()
        })
        .await;
        assert!(
            outcome.is_ok(),
            "fuzz frame {i}: neither answered nor closed within {WITHIN:?}: {bytes:?}"
        );
        assert!(started.elapsed() <= WITHIN + Duration::from_millis(100));
    }
    still_serving(&mut healthy, "the fuzzing run").await;
    assert_eq!(
        fetched(&addr, "wire-bad", acked.len()).await,
        acked,
        "acknowledged records changed"
    );
}

/// A transactional producer of id `id` (InitProducerId v4, 60 s timeout): its id and epoch.
async fn txn_producer(addr: &str, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = call(addr, ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0, "InitProducerId {id:?}");
    (r.producer_id.0, r.producer_epoch)
}

/// Aborts `producer`'s transaction of id `id` with EndTxn at `v`, which must succeed: the
/// producer id and epoch the answer carries.
async fn end_txn(addr: &str, id: &str, (pid, epoch): (i64, i16), v: i16) -> (i64, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(false);
    let r: EndTxnResponse = call(addr, ApiKey::EndTxn, v, &req).await;
    assert_eq!(r.error_code, 0, "EndTxn v{v} of {id:?}");
    (r.producer_id.0, r.producer_epoch)
}

/// A valid frame of `key` at `v` with a default body.
fn valid(key: ApiKey, v: i16) -> Bytes {
    macro_rules! any {
        ($($k:ident => $t:ty),* $(,)?) => {
            match key {
                $(ApiKey::$k => frame(key, v, 5, &<$t>::default()),)*
                other => panic!("no default request for {other:?}"),
            }
        };
    }
    any! {
        ListOffsets => ListOffsetsRequest, Metadata => MetadataRequest,
        DeleteRecords => DeleteRecordsRequest,
        ApiVersions => ApiVersionsRequest, InitProducerId => InitProducerIdRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest, DescribeCluster => DescribeClusterRequest,
        FindCoordinator => FindCoordinatorRequest, Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest, OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest, ListGroups => ListGroupsRequest,
        DescribeGroups => DescribeGroupsRequest, DeleteGroups => DeleteGroupsRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        ShareGroupHeartbeat => ShareGroupHeartbeatRequest,
        ShareGroupDescribe => ShareGroupDescribeRequest,
        ShareFetch => ShareFetchRequest, ShareAcknowledge => ShareAcknowledgeRequest,
        DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest,
        AlterShareGroupOffsets => AlterShareGroupOffsetsRequest,
        DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest,
        OffsetDelete => OffsetDeleteRequest, DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest, IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        CreateAcls => CreateAclsRequest, DescribeAcls => DescribeAclsRequest,
        DeleteAcls => DeleteAclsRequest, AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
        ListPartitionReassignments => ListPartitionReassignmentsRequest,
        SaslHandshake => SaslHandshakeRequest, SaslAuthenticate => SaslAuthenticateRequest,
        AlterUserScramCredentials => AlterUserScramCredentialsRequest,
        DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
        DescribeProducers => DescribeProducersRequest,
        ListTransactions => ListTransactionsRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest, AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest, TxnOffsetCommit => TxnOffsetCommitRequest,
    }
}

/// An answer is sent once it is ready, not held until the answers queued behind it are:
/// a short long-poll's answer reaches the client while a longer one asked after it on the
/// same connection still waits (answers stay in request order all the same).
#[tokio::test]
async fn a_ready_answer_is_not_held_back_by_the_next_request() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-held", 1, 1, Default::default()).await.unwrap();
    let long_poll = |max_wait_ms: i32| {
        fetch_request("wire-held", 0).with_min_bytes(1).with_max_wait_ms(max_wait_ms)
    };
    // Both in one write: the second is queued before the first is answered.
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let mut both = frame(ApiKey::Fetch, 12, 1, &long_poll(200)).to_vec();
    both.extend_from_slice(&frame(ApiKey::Fetch, 12, 2, &long_poll(60_000)));
    conn.write_all(&both).await.unwrap();
    let correlation = |mut resp: Bytes| {
        let version = ApiKey::Fetch.response_header_version(12);
        ResponseHeader::decode(&mut resp, version).unwrap().correlation_id
    };
    // The first long-poll ends empty after 200 ms; the second waits for a record.
    let first = read_response(&mut conn, Duration::from_secs(20)).await.expect("an answer");
    assert_eq!(correlation(first), 1, "the first request's answer comes first");
    produce_acked(&addr, "wire-held", 1).await;
    let second = read_response(&mut conn, Duration::from_secs(20)).await.expect("an answer");
    assert_eq!(correlation(second), 2);
}

/// A fetch waiting at the end of a partition answers as soon as the partition is gone from
/// its broker (here: deleted), with the partition's error, not after its `max_wait_ms`.
#[tokio::test]
async fn a_waiting_fetch_answers_once_its_partition_is_deleted() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-gone", 1, 1, Default::default()).await.unwrap();
    assert_eq!(fetch_at(&addr, "wire-gone", 0).await.0, 0, "the partition is served");
    // Waits at the end (offset 0 of an empty log) for up to 10 minutes.
    let req = fetch_request("wire-gone", 0).with_max_wait_ms(600_000).with_min_bytes(1);
    let waiting = tokio::spawn({
        let addr = addr.clone();
        async move { call::<_, FetchResponse>(&addr, ApiKey::Fetch, 12, &req).await }
    });
    // The fetch is waiting (it has not answered within a second) before the delete.
    tokio::time::sleep(WITHIN).await;
    assert!(!waiting.is_finished(), "a fetch at the end with min_bytes 1 waits");
    admin.delete_topic("wire-gone").await.unwrap();
    let r = waiting.await.expect("the fetch answers once the partition is deleted");
    let code = r.responses[0].partitions[0].error_code;
    // UNKNOWN_TOPIC_OR_PARTITION (3), LEADER_NOT_AVAILABLE (5, while the delete goes on)
    // or NOT_LEADER_OR_FOLLOWER (6): each makes the client refresh its metadata.
    assert!(matches!(code, 3 | 5 | 6), "error code {code}, not the partition's loss");
}

/// Produce v9 (acks=all) of `batch` to partition 0 of `topic`: the partition's answer.
async fn produce_batch(
    addr: &str,
    topic_name: &str,
    batch: Bytes,
) -> produce_response::PartitionProduceResponse {
    let data = TopicProduceData::default().with_name(topic(topic_name)).with_partition_data(vec![
        PartitionProduceData::default().with_index(0).with_records(Some(batch)),
    ]);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000);
    let r: ProduceResponse = call(addr, ApiKey::Produce, 9, &req.with_topic_data(vec![data])).await;
    r.responses[0].partition_responses[0].clone()
}

/// A transactional batch needs a transaction begun with a coordinator; a producer with no
/// transactional id has none, so its transactional batch is refused with INVALID_TXN_STATE
/// (48) and nothing is stored (it would hold every `read_committed` reader back for ever).
#[tokio::test]
async fn a_transactional_batch_outside_a_transaction_is_refused_and_not_stored() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-txn", 1, 1, Default::default()).await.unwrap();
    let init: InitProducerIdResponse = call(
        &addr,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )
    .await;
    assert_eq!(init.error_code, 0);
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None)
        .with_producer(init.producer_id.0, init.producer_epoch, 0)
        .transactional();
    b.push(shale::record::Record {
        key: None,
        value: Some(Bytes::from_static(b"in no transaction")),
        headers: vec![],
        timestamp_ms: 1_700_000_000_000,
    });
    let p = produce_batch(&addr, "wire-txn", b.build()).await;
    assert_eq!(p.error_code, 48, "INVALID_TXN_STATE: {:?}", p.error_message);
    assert_eq!(list_offset(&addr, "wire-txn", -1, -1).await, (0, 0, -1), "nothing stored");
}

/// DescribeProducers of partition 0 of `topic`.
fn describe_producers(topic_name: &str) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic(topic_name))
            .with_partition_indexes(vec![0]),
    ])
}

/// DescribeProducers lists each idempotent producer a partition keeps state for: its id and
/// epoch, the sequence and timestamp of its last batch, and no open transaction (-1); a
/// partition this broker does not have answers its error.
#[tokio::test]
async fn describe_producers_lists_the_producers_a_partition_knows() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-dp", 1, 1, Default::default()).await.unwrap();
    let init: InitProducerIdResponse = call(
        &addr,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default().with_transactional_id(None),
    )
    .await;
    let pid = init.producer_id.0;
    for seq in 0..3 {
        let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None)
            .with_producer(pid, init.producer_epoch, seq);
        b.push(shale::record::Record {
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000 + i64::from(seq),
        });
        assert_eq!(produce_batch(&addr, "wire-dp", b.build()).await.error_code, 0);
    }
    let r: DescribeProducersResponse =
        call(&addr, ApiKey::DescribeProducers, 0, &describe_producers("wire-dp")).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    let got: Vec<(i64, i32, i32, i64, i64)> = p
        .active_producers
        .iter()
        .map(|s| {
            let id = s.producer_id.0;
            (id, s.producer_epoch, s.last_sequence, s.last_timestamp, s.current_txn_start_offset)
        })
        .collect();
    let epoch = i32::from(init.producer_epoch);
    assert_eq!(got, vec![(pid, epoch, 2, 1_700_000_000_002, -1)]);
    let r: DescribeProducersResponse =
        call(&addr, ApiKey::DescribeProducers, 0, &describe_producers("wire-none")).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// ListTransactions and DescribeTransactions show the transactions this broker coordinates:
/// an open one with its partitions, filtered by state, producer id and age; an unknown
/// state name is reported back, an unknown id is TRANSACTIONAL_ID_NOT_FOUND (105).
#[tokio::test]
async fn list_and_describe_transactions_show_what_the_coordinator_holds() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-tx", 2, 1, Default::default()).await.unwrap();
    let txn = server.broker().txn().unwrap().clone();
    let (pid, epoch) = txn.init_producer_id("wire-app", 60_000, None).await.unwrap();
    let parts = [("wire-tx".to_string(), 0), ("wire-tx".to_string(), 1)];
    txn.add("wire-app", (pid, epoch), &parts, &[], true).await.unwrap();
    txn.init_producer_id("wire-idle", 60_000, None).await.unwrap();
    let list = |states: &[&str], pids: Vec<i64>, duration: i64| {
        ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|x| s(x)).collect())
            .with_producer_id_filters(pids.into_iter().map(ProducerId).collect())
            .with_duration_filter(duration)
    };
    let listed = |r: &ListTransactionsResponse| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = r
            .transaction_states
            .iter()
            .map(|t| (t.transactional_id.0.to_string(), t.transaction_state.to_string()))
            .collect();
        v.sort();
        v
    };
    let r: ListTransactionsResponse =
        call(&addr, ApiKey::ListTransactions, 1, &list(&[], vec![], -1)).await;
    let both = vec![
        ("wire-app".to_string(), "Ongoing".to_string()),
        ("wire-idle".to_string(), "Empty".to_string()),
    ];
    assert_eq!(listed(&r), both);
    let r: ListTransactionsResponse =
        call(&addr, ApiKey::ListTransactions, 1, &list(&["Ongoing", "Bogus"], vec![], -1)).await;
    assert_eq!(listed(&r), both[..1].to_vec());
    assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
    let r: ListTransactionsResponse =
        call(&addr, ApiKey::ListTransactions, 1, &list(&[], vec![pid], -1)).await;
    assert_eq!(listed(&r), both[..1].to_vec(), "by producer id");
    let r: ListTransactionsResponse =
        call(&addr, ApiKey::ListTransactions, 1, &list(&["Ongoing"], vec![], 3_600_000)).await;
    assert!(listed(&r).is_empty(), "not open for an hour");
    let ids = vec![TransactionalId(s("wire-app")), TransactionalId(s("wire-gone"))];
    let req = DescribeTransactionsRequest::default().with_transactional_ids(ids);
    let r: DescribeTransactionsResponse = call(&addr, ApiKey::DescribeTransactions, 0, &req).await;
    let app = &r.transaction_states[0];
    assert_eq!(app.error_code, 0);
    assert_eq!(app.transaction_state.as_str(), "Ongoing");
    assert_eq!(
        (app.producer_id.0, app.producer_epoch, app.transaction_timeout_ms),
        (pid, epoch, 60_000)
    );
    assert!(app.transaction_start_time_ms > 0);
    assert_eq!(app.topics.len(), 1);
    assert_eq!(app.topics[0].partitions, vec![0, 1]);
    assert_eq!(r.transaction_states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
}

/// OffsetFetch for `group`'s partition 0 of `topic_name` at v7, with or without
/// `require_stable`: (offset, error code).
async fn fetch_offset(addr: &str, group: &str, topic_name: &str, stable: bool) -> (i64, i16) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(stable)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic(topic_name))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = call(addr, ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// While a transaction holds offsets of a partition, OffsetFetch with `require_stable`
/// answers UNSTABLE_OFFSET_COMMIT (88) for it, and without it the last committed offset
/// (KIP-447); once the transaction commits, the offset is stable and committed.
#[tokio::test]
async fn offsets_held_by_a_transaction_are_unstable_until_it_commits() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-unstable", 1, 1, Default::default()).await.unwrap();
    let (pid, epoch) = txn_producer(&addr, "wire-unstable-txn").await;
    let partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(7);
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("wire-unstable-txn")))
        .with_group_id(GroupId(s("wire-unstable-g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("wire-unstable"))
                .with_partitions(vec![partition]),
        ]);
    let r: TxnOffsetCommitResponse = call(&addr, ApiKey::TxnOffsetCommit, 5, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let g = "wire-unstable-g";
    assert_eq!(fetch_offset(&addr, g, "wire-unstable", true).await, (-1, 88), "unstable");
    assert_eq!(fetch_offset(&addr, g, "wire-unstable", false).await, (-1, 0), "not yet committed");
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("wire-unstable-txn")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    let r: EndTxnResponse = call(&addr, ApiKey::EndTxn, 5, &req).await;
    assert_eq!(r.error_code, 0);
    let mut got = (0, 0);
    for _ in 0..500 {
        got = fetch_offset(&addr, g, "wire-unstable", true).await;
        if got.1 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, (7, 0), "committed and stable within 10 s");
}

/// A Produce v12 (transactions v2) of `batch` to partition 0 of `topic_name` for
/// transactional id `id`: the partition's error code.
async fn produce_txn(addr: &str, topic_name: &str, id: &str, batch: Bytes) -> i16 {
    let data = TopicProduceData::default().with_name(topic(topic_name)).with_partition_data(vec![
        PartitionProduceData::default().with_index(0).with_records(Some(batch)),
    ]);
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![data]);
    let r: ProduceResponse = call(addr, ApiKey::Produce, 12, &req).await;
    r.responses[0].partition_responses[0].error_code
}

/// One transactional batch of producer `(pid, epoch)` at sequence `seq`, one record.
fn txn_batch((pid, epoch): (i64, i16), seq: i32) -> Bytes {
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None)
        .with_producer(pid, epoch, seq)
        .transactional();
    b.push(shale::record::Record {
        key: None,
        value: Some(Bytes::from_static(b"t")),
        headers: vec![],
        timestamp_ms: 1_700_000_000_000,
    });
    b.build()
}

/// Transactional requests a producer may not make are answered with Kafka's codes and
/// store nothing: EndTxn and TxnOffsetCommit for an id with no producer
/// (INVALID_PRODUCER_ID_MAPPING, 49); once a newer instance took the id, the older one's
/// EndTxn (PRODUCER_FENCED, 90; INVALID_PRODUCER_EPOCH, 47, before v2) and its produce
/// (INVALID_PRODUCER_EPOCH); a produce out of sequence (OUT_OF_ORDER_SEQUENCE, 45); a
/// control batch sent by a client (INVALID_RECORD, 87).
#[tokio::test]
async fn bad_transactional_requests_get_kafkas_codes_and_store_nothing() {
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let admin = common::client(&server).admin();
    admin.create_topic("wire-txn-bad", 1, 1, Default::default()).await.unwrap();
    let end = |id: &str, (pid, epoch): (i64, i16), v: i16| {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(true);
        let addr = addr.clone();
        async move {
            let r: EndTxnResponse = call(&addr, ApiKey::EndTxn, v, &req).await;
            r.error_code
        }
    };
    assert_eq!(end("wire-nobody", (1, 0), 5).await, 49, "EndTxn, unknown id");
    let partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1);
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("wire-nobody")))
        .with_group_id(GroupId(s("wire-bad-g")))
        .with_producer_id(ProducerId(1))
        .with_producer_epoch(0)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("wire-txn-bad"))
                .with_partitions(vec![partition]),
        ]);
    let r: TxnOffsetCommitResponse = call(&addr, ApiKey::TxnOffsetCommit, 5, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 49, "TxnOffsetCommit, unknown id");

    // The old instance writes in a transaction; a new one takes the id and fences it.
    let old = txn_producer(&addr, "wire-zombie").await;
    assert_eq!(produce_txn(&addr, "wire-txn-bad", "wire-zombie", txn_batch(old, 0)).await, 0);
    let mut new = (-1, -1);
    for _ in 0..500 {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("wire-zombie"))))
            .with_transaction_timeout_ms(60_000);
        let r: InitProducerIdResponse = call(&addr, ApiKey::InitProducerId, 4, &req).await;
        if r.error_code == 0 {
            new = (r.producer_id.0, r.producer_epoch);
            break;
        }
        // CONCURRENT_TRANSACTIONS while the old instance's transaction is aborted.
        assert_eq!(r.error_code, 51, "{r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(new.1 > old.1, "a newer epoch within 10 s: {new:?} after {old:?}");
    let end_of_log = list_offset(&addr, "wire-txn-bad", -1, -1).await.1;
    assert_eq!(end_of_log, 2, "the old transaction's record and its abort marker");
    assert_eq!(end("wire-zombie", old, 5).await, 90, "EndTxn v5 of the fenced instance");
    assert_eq!(end("wire-zombie", old, 1).await, 47, "EndTxn v1 of the fenced instance");
    let zombie = produce_txn(&addr, "wire-txn-bad", "wire-zombie", txn_batch(old, 1)).await;
    assert_eq!(zombie, 47, "the fenced instance's produce");
    assert_eq!(produce_txn(&addr, "wire-txn-bad", "wire-zombie", txn_batch(new, 0)).await, 0);
    let gap = produce_txn(&addr, "wire-txn-bad", "wire-zombie", txn_batch(new, 5)).await;
    assert_eq!(gap, 45, "sequence 5 after 0");
    let marker = shale::record::control::Marker {
        kind: shale::record::control::MarkerKind::Commit,
        coordinator_epoch: 99,
    };
    let control = produce_batch(&addr, "wire-txn-bad", marker.batch(new.0, new.1, 1)).await;
    assert_eq!(control.error_code, 87, "a control batch from a client: {control:?}");
    let end_of_log = list_offset(&addr, "wire-txn-bad", -1, -1).await.1;
    assert_eq!(end_of_log, 3, "only the new instance's record was stored");
}

/// A group's configs (KIP-848's GROUP resource, type 32): set with IncrementalAlterConfigs
/// and AlterConfigs, described with DescribeConfigs (source GROUP_CONFIG, else the
/// broker's default); a value out of range is INVALID_CONFIG naming it, and changes
/// nothing.
#[tokio::test]
async fn group_configs_are_set_and_described_through_the_kafka_apis() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request as inc;
    let (server, _dir) = broker().await;
    let addr = server.kafka_addr().unwrap().to_string();
    let set = |key: &str, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            inc::AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(s("cfg-group"))
                .with_configs(vec![
                    inc::AlterableConfig::default()
                        .with_name(s(key))
                        .with_config_operation(0)
                        .with_value(Some(s(value))),
                ]),
        ])
    };
    let describe = || async {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(s("cfg-group"))
                .with_configuration_keys(None),
        ]);
        let r: DescribeConfigsResponse = call(&addr, ApiKey::DescribeConfigs, 4, &req).await;
        assert_eq!(r.results[0].error_code, 0, "{r:?}");
        r.results[0]
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.clone().unwrap_or_default().to_string(),
                    c.config_source,
                )
            })
            .collect::<Vec<_>>()
    };
    let before = describe().await;
    assert!(
        before.contains(&("consumer.session.timeout.ms".into(), "45000".into(), 5)),
        "{before:?}"
    );
    let r: IncrementalAlterConfigsResponse = call(
        &addr,
        ApiKey::IncrementalAlterConfigs,
        1,
        &set("consumer.session.timeout.ms", "20000"),
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");
    let r: IncrementalAlterConfigsResponse = call(
        &addr,
        ApiKey::IncrementalAlterConfigs,
        1,
        &set("consumer.heartbeat.interval.ms", "99999999"),
    )
    .await;
    assert_eq!(r.responses[0].error_code, ResponseError::InvalidConfig.code());
    let message = r.responses[0].error_message.clone().unwrap_or_default();
    assert!(message.contains("99999999"), "{message}");
    let after = describe().await;
    assert!(
        after.contains(&("consumer.session.timeout.ms".into(), "20000".into(), 8)),
        "{after:?}"
    );
    assert!(
        after.contains(&("consumer.heartbeat.interval.ms".into(), "5000".into(), 5)),
        "{after:?}"
    );
}
