//! Routes one request to its API: the request must be at least a header long, name an API
//! and version this listener serves (`ApiVersions` above ours is answered at version 0,
//! KIP-511; anything else unserved closes the connection, as Kafka does), and come from
//! an authenticated client where the broker requires one. Every request is charged to its
//! principal's request quota; the wait becomes the answer's throttle time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;

use crate::Kafka;
use crate::call::{Answer, Call, Replier, Session};
use crate::frame;
use crate::versions;
use shale_broker::api::{QuotaKind, Via};

/// Routes `frame`, read from the connection of `session`.
pub(crate) async fn request(kafka: &Arc<Kafka>, session: &mut Session, frame: Bytes) -> Answer {
    let peer = session.peer;
    let Some(p) = frame::prefix(&frame) else {
        tracing::info!(%peer, size = frame.len(), "closing a Kafka connection: a request shorter than its header");
        return Answer::Close;
    };
    let Ok(key) = ApiKey::try_from(p.key) else {
        tracing::info!(%peer, api_key = p.key, "closing a Kafka connection: unknown API key");
        return Answer::Close;
    };
    if !versions::serves(key, p.version) {
        if key == ApiKey::ApiVersions && p.version > 0 {
            return unsupported_api_versions(p.correlation_id);
        }
        tracing::info!(%peer, api = ?key, version = p.version,
            "closing a Kafka connection: an API version this broker does not serve");
        return Answer::Close;
    }
    let req = match frame::split(frame, key, p.version) {
        Ok(req) => req,
        Err(why) => {
            tracing::info!(%peer, error = %why, "closing a Kafka connection");
            return Answer::Close;
        }
    };
    if let Some(id) = &req.client_id
        && id.as_str() != session.client_id
    {
        session.client_id = id.as_str().to_string();
    }
    let anonymous = session.identity.via == Via::None;
    if anonymous && kafka.api.auth_required() && !before_authentication(key) {
        let e = shale_broker::api::unauthenticated(
            "this broker requires authentication: use SASL or a client certificate",
        );
        kafka.api.refused(&format!("kafka {key:?}"), &e);
        tracing::info!(%peer, api = ?key, "closing a Kafka connection: not authenticated");
        return Answer::Close;
    }
    let throttle = match kafka.api.charge(&session.identity, QuotaKind::Requests, 1) {
        Ok(wait) => wait,
        // Far over its request rate: Kafka throttles rather than refuses.
        Err(e) => e.retry_after().unwrap_or(Duration::from_secs(1)),
    };
    let replier =
        Replier { key, version: req.version, correlation_id: req.correlation_id, throttle };
    let mut call = Call { body: req.body, replier };
    let answer = match key {
        ApiKey::ApiVersions => Ok(api_versions(&call)),
        ApiKey::Metadata => crate::metadata::metadata(kafka, session, &mut call).await,
        ApiKey::DescribeCluster => crate::metadata::describe_cluster(kafka, session, &mut call),
        ApiKey::Produce => crate::produce::produce(kafka, session, &mut call).await,
        ApiKey::InitProducerId => crate::produce::init_producer_id(kafka, session, &mut call),
        ApiKey::AddPartitionsToTxn => {
            crate::transactions::add_partitions(kafka, session, &mut call)
        }
        ApiKey::AddOffsetsToTxn => crate::transactions::add_offsets(kafka, session, &mut call),
        ApiKey::TxnOffsetCommit => {
            crate::transactions::txn_offset_commit(kafka, session, &mut call)
        }
        ApiKey::EndTxn => crate::transactions::end_txn(kafka, session, &mut call),
        ApiKey::Fetch => crate::fetch::fetch(kafka, session, &mut call),
        ApiKey::ListOffsets => crate::offsets::list_offsets(kafka, session, &mut call),
        ApiKey::OffsetForLeaderEpoch => crate::offsets::for_leader_epoch(kafka, session, &mut call),
        ApiKey::CreateTopics => crate::topics::create(kafka, session, &mut call),
        ApiKey::DeleteTopics => crate::topics::delete(kafka, session, &mut call),
        ApiKey::DeleteRecords => crate::delete_records::delete_records(kafka, session, &mut call),
        ApiKey::DescribeProducers => {
            crate::producers::describe_producers(kafka, session, &mut call)
        }
        ApiKey::ListTransactions => crate::txns::list_transactions(kafka, session, &mut call),
        ApiKey::DescribeTransactions => {
            crate::txns::describe_transactions(kafka, session, &mut call)
        }
        ApiKey::FindCoordinator => crate::groups::find_coordinator(kafka, session, &mut call),
        ApiKey::JoinGroup => crate::groups::join(kafka, session, &mut call),
        ApiKey::SyncGroup => crate::groups::sync(kafka, session, &mut call),
        ApiKey::Heartbeat => crate::groups::heartbeat(kafka, session, &mut call),
        ApiKey::LeaveGroup => crate::groups::leave(kafka, session, &mut call),
        ApiKey::ConsumerGroupHeartbeat => {
            crate::consumer_groups::heartbeat(kafka, session, &mut call)
        }
        ApiKey::ConsumerGroupDescribe => {
            crate::consumer_groups::describe(kafka, session, &mut call)
        }
        ApiKey::ShareGroupHeartbeat => crate::share_groups::heartbeat(kafka, session, &mut call),
        ApiKey::ShareGroupDescribe => crate::share_groups::describe(kafka, session, &mut call),
        ApiKey::ShareFetch => crate::share_fetch::fetch(kafka, session, &mut call),
        ApiKey::ShareAcknowledge => crate::share_fetch::acknowledge(kafka, session, &mut call),
        ApiKey::DescribeShareGroupOffsets => {
            crate::share_offsets::describe(kafka, session, &mut call)
        }
        ApiKey::AlterShareGroupOffsets => crate::share_offsets::alter(kafka, session, &mut call),
        ApiKey::DeleteShareGroupOffsets => crate::share_offsets::delete(kafka, session, &mut call),
        ApiKey::OffsetCommit => crate::commits::commit(kafka, session, &mut call),
        ApiKey::OffsetFetch => crate::commits::fetch(kafka, session, &mut call),
        ApiKey::ListGroups => crate::group_admin::list(kafka, session, &mut call),
        ApiKey::DescribeGroups => crate::group_admin::describe(kafka, session, &mut call),
        ApiKey::DeleteGroups => crate::group_admin::delete(kafka, session, &mut call),
        ApiKey::OffsetDelete => crate::group_admin::delete_offsets(kafka, session, &mut call),
        ApiKey::CreatePartitions => crate::topics::create_partitions(kafka, session, &mut call),
        ApiKey::DescribeConfigs => crate::configs::describe(kafka, session, &mut call),
        ApiKey::AlterConfigs => crate::configs::alter(kafka, session, &mut call),
        ApiKey::AlterPartitionReassignments => crate::moves::alter(kafka, session, &mut call),
        ApiKey::ListPartitionReassignments => crate::moves::list(kafka, session, &mut call),
        ApiKey::ElectLeaders => crate::moves::elect(kafka, session, &mut call),
        ApiKey::SaslHandshake => crate::sasl::handshake(kafka, session, &mut call),
        ApiKey::SaslAuthenticate => crate::sasl::authenticate(kafka, session, &mut call).await,
        ApiKey::AlterUserScramCredentials => {
            crate::sasl::alter_credentials(kafka, session, &mut call)
        }
        ApiKey::DescribeUserScramCredentials => {
            crate::sasl::describe_credentials(kafka, session, &mut call)
        }
        ApiKey::CreateAcls => crate::acls::create(kafka, session, &mut call),
        ApiKey::DescribeAcls => crate::acls::describe(kafka, session, &mut call),
        ApiKey::DeleteAcls => crate::acls::delete(kafka, session, &mut call),
        ApiKey::IncrementalAlterConfigs => {
            crate::configs::incremental_alter(kafka, session, &mut call)
        }
        other => Err(format!("{other:?} is listed as served but has no handler")),
    };
    answer.unwrap_or_else(|why| {
        tracing::info!(%peer, error = %why, "closing a Kafka connection");
        Answer::Close
    })
}

/// `ApiVersions` at a served version.
fn api_versions(call: &Call) -> Answer {
    let mut body = versions::answer(0);
    body.throttle_time_ms = call.throttle_ms(Duration::ZERO);
    call.reply(&body, Duration::ZERO)
}

/// `ApiVersions` above the versions served: `UNSUPPORTED_VERSION` with the served list, at
/// version 0 (whose response header is version 0 too), so the client retries at one of
/// ours.
fn unsupported_api_versions(correlation_id: i32) -> Answer {
    let body = versions::answer(ResponseError::UnsupportedVersion.code());
    match frame::encode_response(correlation_id, 0, 0, &body) {
        Ok(bytes) => Answer::Ready(bytes, Duration::ZERO),
        Err(_) => Answer::Close,
    }
}

/// Whether `key` may be asked before the client authenticated (SASL's own requests).
fn before_authentication(key: ApiKey) -> bool {
    matches!(key, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
}
