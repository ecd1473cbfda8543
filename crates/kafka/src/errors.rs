//! Shale's errors as Kafka error codes: one table. Each reason maps to the code whose
//! retry semantics a Kafka client expects (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
//! NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR and the like are retried
//! after a metadata refresh; the rest are not). A reason the table does not name falls
//! back on its kind. Denials name their resource type, so each becomes the matching
//! TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::ResponseError as K;
use shale_core::error::{Error, ErrorKind, Reason};

/// What a request was about when it failed: the same kind of failure means a different
/// code to a partition's client than to a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum About {
    /// A partition or topic (produce, fetch, offsets, admin).
    Partition,
    /// A consumer group (coordinator requests).
    Group,
}

/// The Kafka error code for `e`.
pub(crate) fn code(e: &Error, about: About) -> i16 {
    kafka_error(e, about).code()
}

/// The Kafka error for `e`.
pub(crate) fn kafka_error(e: &Error, about: About) -> K {
    let by_reason = match &e.reason {
        Reason::NotLeader | Reason::BrokerDraining => Some(K::NotLeaderOrFollower),
        Reason::PartitionOffline => Some(K::LeaderNotAvailable),
        Reason::UnknownTopic | Reason::UnknownPartition => Some(K::UnknownTopicOrPartition),
        Reason::OffsetOutOfRange => Some(K::OffsetOutOfRange),
        Reason::NotEnoughReplicas => Some(K::NotEnoughReplicas),
        Reason::NotEnoughReplicasAfterAppend => Some(K::NotEnoughReplicasAfterAppend),
        Reason::RequestTimedOut => Some(K::RequestTimedOut),
        Reason::InvalidProducerEpoch => Some(K::InvalidProducerEpoch),
        Reason::OutOfOrderSequence => Some(K::OutOfOrderSequenceNumber),
        Reason::InvalidTxnState => Some(K::InvalidTxnState),
        Reason::TransactionCoordinatorFenced => Some(K::TransactionCoordinatorFenced),
        Reason::ProducerFenced => Some(K::ProducerFenced),
        Reason::ConcurrentTransactions => Some(K::ConcurrentTransactions),
        Reason::InvalidProducerIdMapping => Some(K::InvalidProducerIdMapping),
        Reason::InvalidTransactionTimeout => Some(K::InvalidTransactionTimeout),
        Reason::TransactionalIdNotFound => Some(K::TransactionalIdNotFound),
        Reason::OperationNotAttempted => Some(K::OperationNotAttempted),
        Reason::UnstableOffsetCommit => Some(K::UnstableOffsetCommit),
        Reason::FencedLeaderEpoch => Some(K::FencedLeaderEpoch),
        Reason::BatchTooLarge => Some(K::MessageTooLarge),
        Reason::CorruptBatch => Some(K::CorruptMessage),
        Reason::InvalidBatch | Reason::TooManyRecords => Some(K::InvalidRecord),
        Reason::UnsupportedCompression => Some(K::UnsupportedCompressionType),
        Reason::InvalidConfig | Reason::UnknownConfig => Some(K::InvalidConfig),
        Reason::InvalidTopicName => Some(K::InvalidTopicException),
        Reason::InvalidPartitions => Some(K::InvalidPartitions),
        Reason::InvalidReplicationFactor => Some(K::InvalidReplicationFactor),
        Reason::InvalidReplicaAssignment => Some(K::InvalidReplicaAssignment),
        Reason::NoReassignmentInProgress => Some(K::NoReassignmentInProgress),
        Reason::TopicExists => Some(K::TopicAlreadyExists),
        Reason::LocalDiskBudgetExceeded
        | Reason::LogFailed
        | Reason::LogClosed
        | Reason::LogIoError
        | Reason::TooManyOpenFiles
        | Reason::CorruptLog => Some(K::KafkaStorageError),
        Reason::NotCoordinator => Some(K::NotCoordinator),
        Reason::GroupNotFound => Some(K::GroupIdNotFound),
        Reason::GroupNotEmpty => Some(K::NonEmptyGroup),
        Reason::UnknownMemberId | Reason::FencedMember => Some(K::UnknownMemberId),
        Reason::FencedMemberEpoch => Some(K::FencedMemberEpoch),
        Reason::StaleMemberEpoch => Some(K::StaleMemberEpoch),
        Reason::UnreleasedInstanceId => Some(K::UnreleasedInstanceId),
        Reason::UnsupportedAssignor => Some(K::UnsupportedAssignor),
        Reason::InvalidRegularExpression => Some(K::InvalidRegularExpression),
        Reason::InvalidRecordState => Some(K::InvalidRecordState),
        Reason::ShareSessionNotFound => Some(K::ShareSessionNotFound),
        Reason::InvalidShareSessionEpoch => Some(K::InvalidShareSessionEpoch),
        Reason::UnsupportedVersion => Some(K::UnsupportedVersion),
        Reason::IllegalGeneration => Some(K::IllegalGeneration),
        Reason::RebalanceInProgress => Some(K::RebalanceInProgress),
        Reason::MemberIdRequired => Some(K::MemberIdRequired),
        Reason::InconsistentGroupProtocol => Some(K::InconsistentGroupProtocol),
        Reason::InvalidSessionTimeout => Some(K::InvalidSessionTimeout),
        Reason::FencedInstanceId => Some(K::FencedInstanceId),
        Reason::GroupSubscribedToTopic => Some(K::GroupSubscribedToTopic),
        Reason::InvalidGroup => Some(K::InvalidGroupId),
        Reason::Unauthenticated => Some(K::SaslAuthenticationFailed),
        Reason::QuotaExceeded => Some(K::ThrottlingQuotaExceeded),
        Reason::AuthorizationFailed => Some(denied(e)),
        Reason::Other(name) => by_wire_name(name),
        _ => None,
    };
    by_reason.unwrap_or(match (e.kind, about) {
        (ErrorKind::NotLeader, _) => K::NotLeaderOrFollower,
        (ErrorKind::Unavailable, About::Partition) => K::LeaderNotAvailable,
        (ErrorKind::Unavailable, About::Group) => K::CoordinatorNotAvailable,
        (ErrorKind::Fenced, About::Group) => K::IllegalGeneration,
        (ErrorKind::Fenced, About::Partition) => K::FencedLeaderEpoch,
        (ErrorKind::NotFound, About::Partition) => K::UnknownTopicOrPartition,
        (ErrorKind::NotFound, About::Group) => K::GroupIdNotFound,
        (ErrorKind::AlreadyExists, _) => K::TopicAlreadyExists,
        (ErrorKind::OutOfRange, _) => K::OffsetOutOfRange,
        (ErrorKind::Invalid, _) => K::InvalidRequest,
        (ErrorKind::Unauthenticated, _) => K::SaslAuthenticationFailed,
        (ErrorKind::PermissionDenied, _) => denied(e),
        (ErrorKind::ResourceExhausted, _) => K::ThrottlingQuotaExceeded,
        (ErrorKind::Data | ErrorKind::Internal, _) => K::UnknownServerError,
    })
}

/// The authorization error for the resource type a denial names.
fn denied(e: &Error) -> K {
    match e.details.get("resource_type").map(String::as_str) {
        Some("group") => K::GroupAuthorizationFailed,
        Some("cluster") => K::ClusterAuthorizationFailed,
        Some("transactional_id") => K::TransactionalIdAuthorizationFailed,
        _ => K::TopicAuthorizationFailed,
    }
}

/// Reasons that arrive by name from another broker (a forwarded request).
fn by_wire_name(name: &str) -> Option<K> {
    match name {
        "UNKNOWN_LEADER_EPOCH" => Some(K::UnknownLeaderEpoch),
        "PREFERRED_LEADER_NOT_AVAILABLE" => Some(K::PreferredLeaderNotAvailable),
        "ILLEGAL_SASL_STATE" => Some(K::IllegalSaslState),
        "RESOURCE_NOT_FOUND" => Some(K::ResourceNotFound),
        "UNSUPPORTED_SASL_MECHANISM" => Some(K::UnsupportedSaslMechanism),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: ErrorKind, reason: Reason) -> Error {
        Error::new(kind, reason, "x")
    }

    #[test]
    fn retriable_shale_errors_stay_retriable_for_kafka_clients() {
        for (err, want) in [
            (e(ErrorKind::NotLeader, Reason::NotLeader), K::NotLeaderOrFollower),
            (e(ErrorKind::Unavailable, Reason::PartitionOffline), K::LeaderNotAvailable),
            (e(ErrorKind::Unavailable, Reason::NotEnoughReplicas), K::NotEnoughReplicas),
            (e(ErrorKind::Unavailable, Reason::RequestTimedOut), K::RequestTimedOut),
            (e(ErrorKind::Unavailable, Reason::BrokerDraining), K::NotLeaderOrFollower),
            (e(ErrorKind::Unavailable, Reason::LogFailed), K::KafkaStorageError),
            (e(ErrorKind::Unavailable, Reason::Unavailable), K::LeaderNotAvailable),
            (e(ErrorKind::ResourceExhausted, Reason::QuotaExceeded), K::ThrottlingQuotaExceeded),
        ] {
            let got = kafka_error(&err, About::Partition);
            assert_eq!(got, want, "{:?}", err.reason);
            assert!(got.is_retriable(), "{got:?} must be retriable for a Kafka client");
        }
        let busy = e(ErrorKind::Unavailable, Reason::Unavailable);
        assert_eq!(kafka_error(&busy, About::Group), K::CoordinatorNotAvailable);
    }

    #[test]
    fn denials_name_the_resource_type() {
        let denial = |t: &str| {
            e(ErrorKind::PermissionDenied, Reason::AuthorizationFailed).with("resource_type", t)
        };
        assert_eq!(kafka_error(&denial("topic"), About::Partition), K::TopicAuthorizationFailed);
        assert_eq!(kafka_error(&denial("group"), About::Group), K::GroupAuthorizationFailed);
        assert_eq!(
            kafka_error(&denial("cluster"), About::Partition),
            K::ClusterAuthorizationFailed
        );
    }

    #[test]
    fn every_known_reason_maps_to_a_code_that_is_not_none() {
        for r in Reason::ALL {
            for about in [About::Partition, About::Group] {
                for kind in [ErrorKind::Invalid, ErrorKind::Unavailable, ErrorKind::Internal] {
                    assert_ne!(code(&e(kind, r.clone()), about), 0, "{r:?}");
                }
            }
        }
    }
}
