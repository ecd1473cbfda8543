//! The machine-readable reasons an [`Error`](super::Error) carries: one variant each, with
//! the wire name clients see in the status's `ErrorInfo.reason`.

use std::fmt;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// Why a request failed, in more detail than its [`ErrorKind`](super::ErrorKind).
        /// Code matches on the variant; the wire carries [`Reason::as_str`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
            /// A reason this build does not know, as received from a peer.
            Other(String),
        }

        impl Reason {
            /// Every reason this build knows.
            pub const ALL: &[Reason] = &[$(Reason::$variant,)*];

            /// The wire name, in SCREAMING_SNAKE_CASE.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Reason::$variant => $wire,)*
                    Reason::Other(s) => s,
                }
            }

            /// The reason a wire name stands for (unknown names are kept as `Other`).
            pub fn from_wire(name: &str) -> Reason {
                match name {
                    $($wire => Reason::$variant,)*
                    other => Reason::Other(other.to_string()),
                }
            }
        }
    };
}

reasons! {
    /// The record batch is malformed.
    InvalidBatch = "INVALID_BATCH",
    /// A batch's CRC does not match its contents.
    CorruptBatch = "CORRUPT_BATCH",
    /// A batch or record exceeds a size limit.
    BatchTooLarge = "BATCH_TOO_LARGE",
    /// A batch holds more records than allowed.
    TooManyRecords = "TOO_MANY_RECORDS",
    /// A compression codec this build does not support.
    UnsupportedCompression = "UNSUPPORTED_COMPRESSION",
    /// A malformed request argument.
    InvalidArgument = "INVALID_ARGUMENT",
    /// A topic config key or value is invalid.
    InvalidConfig = "INVALID_CONFIG",
    /// A topic config key is unknown.
    UnknownConfig = "UNKNOWN_CONFIG",
    /// A broker setting is invalid.
    InvalidSetting = "INVALID_SETTING",
    /// An object store URL is invalid.
    InvalidObjectStoreUrl = "INVALID_OBJECT_STORE_URL",
    /// A topic name is invalid.
    InvalidTopicName = "INVALID_TOPIC_NAME",
    /// A group name is invalid.
    InvalidGroup = "INVALID_GROUP",
    /// A partition count is invalid.
    InvalidPartitions = "INVALID_PARTITIONS",
    /// A replication factor is invalid.
    InvalidReplicationFactor = "INVALID_REPLICATION_FACTOR",
    /// A requested replica set is invalid (empty, repeated or unknown brokers).
    InvalidReplicaAssignment = "INVALID_REPLICA_ASSIGNMENT",
    /// A cancel named a partition that is not being reassigned.
    NoReassignmentInProgress = "NO_REASSIGNMENT_IN_PROGRESS",
    /// The topic does not exist.
    UnknownTopic = "UNKNOWN_TOPIC",
    /// The partition index is past the topic's count.
    UnknownPartition = "UNKNOWN_PARTITION",
    /// The topic exists already.
    TopicExists = "TOPIC_EXISTS",
    /// An offset outside the valid range.
    OffsetOutOfRange = "OFFSET_OUT_OF_RANGE",
    /// This broker does not lead the partition.
    NotLeader = "NOT_LEADER",
    /// The partition has no live leader.
    PartitionOffline = "PARTITION_OFFLINE",
    /// The request's leader epoch is not the current one.
    FencedLeaderEpoch = "FENCED_LEADER_EPOCH",
    /// The follower's log diverges from the leader's at its fetch position.
    DivergingEpoch = "DIVERGING_EPOCH",
    /// Fewer in-sync replicas than `min.insync.replicas`; nothing was written.
    NotEnoughReplicas = "NOT_ENOUGH_REPLICAS",
    /// Written by the leader, but the in-sync replicas fell below the minimum meanwhile.
    NotEnoughReplicasAfterAppend = "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    /// The replicas did not acknowledge in time.
    RequestTimedOut = "REQUEST_TIMED_OUT",
    /// An idempotent producer's epoch is stale.
    InvalidProducerEpoch = "INVALID_PRODUCER_EPOCH",
    /// An idempotent producer's sequence skips or repeats out of order.
    OutOfOrderSequence = "OUT_OF_ORDER_SEQUENCE",
    /// A request that the producer's transaction state does not allow (a plain write while
    /// its transaction is open, a marker for a transaction that is not).
    InvalidTxnState = "INVALID_TXN_STATE",
    /// A transaction marker from a coordinator older than one that already wrote.
    TransactionCoordinatorFenced = "TRANSACTION_COORDINATOR_FENCED",
    /// A newer instance of the transactional producer exists (its epoch is newer).
    ProducerFenced = "PRODUCER_FENCED",
    /// The transaction is between its decision and its markers: retry shortly.
    ConcurrentTransactions = "CONCURRENT_TRANSACTIONS",
    /// The producer id is not the one the transactional id has.
    InvalidProducerIdMapping = "INVALID_PRODUCER_ID_MAPPING",
    /// A transaction timeout of zero or less, or above `transactions.max_timeout_ms`.
    InvalidTransactionTimeout = "INVALID_TRANSACTION_TIMEOUT",
    /// No transactional id by that name.
    TransactionalIdNotFound = "TRANSACTIONAL_ID_NOT_FOUND",
    /// Another part of the request failed, so this part was not tried (Kafka answers the
    /// partitions of an AddPartitionsToTxn so when some of them fail its checks).
    OperationNotAttempted = "OPERATION_NOT_ATTEMPTED",
    /// A transaction still holds offsets of the partition that it may commit: a reader
    /// that asked for stable offsets retries (KIP-447).
    UnstableOffsetCommit = "UNSTABLE_OFFSET_COMMIT",
    /// The broker is draining and hands its work to others.
    BrokerDraining = "BROKER_DRAINING",
    /// The local log bytes are over `tier.local_disk_budget_bytes`.
    LocalDiskBudgetExceeded = "LOCAL_DISK_BUDGET_EXCEEDED",
    /// The partition log stopped taking writes after a failed fsync.
    LogFailed = "LOG_FAILED",
    /// The partition log is closed.
    LogClosed = "LOG_CLOSED",
    /// An I/O error on the partition log.
    LogIoError = "LOG_IO_ERROR",
    /// The broker is out of file descriptors.
    TooManyOpenFiles = "TOO_MANY_OPEN_FILES",
    /// The partition log is damaged.
    CorruptLog = "CORRUPT_LOG",
    /// A partition's metadata file is damaged.
    CorruptPartitionMetadata = "CORRUPT_PARTITION_METADATA",
    /// A stored metadata file is damaged.
    CorruptMetadata = "CORRUPT_METADATA",
    /// The stored broker id is damaged.
    CorruptBrokerId = "CORRUPT_BROKER_ID",
    /// Another live broker holds this broker id.
    BrokerIdInUse = "BROKER_ID_IN_USE",
    /// The broker is not a live member of the cluster.
    BrokerNotLive = "BROKER_NOT_LIVE",
    /// The metadata store is unreachable.
    MetaUnavailable = "META_UNAVAILABLE",
    /// The metadata store compacted the revision asked for.
    MetaCompacted = "META_COMPACTED",
    /// The metadata store's lease is gone.
    MetaLeaseNotFound = "META_LEASE_NOT_FOUND",
    /// A request to the metadata store is invalid.
    MetaInvalid = "META_INVALID",
    /// The metadata store's files are damaged.
    MetaCorrupt = "META_CORRUPT",
    /// A value in the metadata store does not decode.
    MetaBadValue = "META_BAD_VALUE",
    /// An I/O error in the metadata store.
    MetaIo = "META_IO",
    /// An object store request failed.
    ObjectStoreError = "OBJECT_STORE_ERROR",
    /// A tier manifest does not decode.
    CorruptManifest = "CORRUPT_MANIFEST",
    /// A remote segment's index is damaged.
    CorruptRemoteIndex = "CORRUPT_REMOTE_INDEX",
    /// A remote segment is damaged.
    CorruptRemoteSegment = "CORRUPT_REMOTE_SEGMENT",
    /// The tier pointer moved under this writer.
    TierConflict = "TIER_CONFLICT",
    /// This broker does not coordinate the group.
    NotCoordinator = "NOT_COORDINATOR",
    /// The group does not exist.
    GroupNotFound = "GROUP_NOT_FOUND",
    /// The group still has members.
    GroupNotEmpty = "GROUP_NOT_EMPTY",
    /// The member was removed and must rejoin.
    UnknownMemberId = "UNKNOWN_MEMBER_ID",
    /// The member's epoch is stale.
    FencedMemberEpoch = "FENCED_MEMBER_EPOCH",
    /// The member was fenced.
    FencedMember = "FENCED_MEMBER",
    /// A commit carried a member epoch other than the member's (KIP-848): the member
    /// retries once its heartbeat brought the current one.
    StaleMemberEpoch = "STALE_MEMBER_EPOCH",
    /// A static member's instance id is held by a member that has not left (KIP-848).
    UnreleasedInstanceId = "UNRELEASED_INSTANCE_ID",
    /// A server-side assignor the broker does not have.
    UnsupportedAssignor = "UNSUPPORTED_ASSIGNOR",
    /// The request's version cannot carry what the request needs.
    UnsupportedVersion = "UNSUPPORTED_VERSION",
    /// A subscription's regular expression does not compile.
    InvalidRegularExpression = "INVALID_REGULAR_EXPRESSION",
    /// An acknowledgement of records the member does not hold (KIP-932): not acquired by
    /// it, or already acknowledged.
    InvalidRecordState = "INVALID_RECORD_STATE",
    /// A share session this broker does not have (KIP-932): the client opens a new one.
    ShareSessionNotFound = "SHARE_SESSION_NOT_FOUND",
    /// A share request at an epoch other than its session's next (KIP-932).
    InvalidShareSessionEpoch = "INVALID_SHARE_SESSION_EPOCH",
    /// A classic group member's generation is not the group's.
    IllegalGeneration = "ILLEGAL_GENERATION",
    /// The group is rebalancing: the member rejoins.
    RebalanceInProgress = "REBALANCE_IN_PROGRESS",
    /// A new classic member must join again with the member id it was given (KIP-394).
    MemberIdRequired = "MEMBER_ID_REQUIRED",
    /// The group is used with another protocol, or its members share no protocol.
    InconsistentGroupProtocol = "INCONSISTENT_GROUP_PROTOCOL",
    /// A session timeout outside the broker's bounds.
    InvalidSessionTimeout = "INVALID_SESSION_TIMEOUT",
    /// Another member now holds this static member's instance id (KIP-345).
    FencedInstanceId = "FENCED_INSTANCE_ID",
    /// The group's members consume the topic whose offsets were to be deleted.
    GroupSubscribedToTopic = "GROUP_SUBSCRIBED_TO_TOPIC",
    /// Temporarily unavailable.
    Unavailable = "UNAVAILABLE",
    /// A bug or an unexpected failure.
    Internal = "INTERNAL",
    /// The request carries no valid credential.
    Unauthenticated = "UNAUTHENTICATED",
    /// The caller's principal may not do this (ACLs); details name the principal, the
    /// operation and the resource.
    AuthorizationFailed = "AUTHORIZATION_FAILED",
    /// The caller's principal is over a quota; the answer carries how long to wait.
    QuotaExceeded = "QUOTA_EXCEEDED",
    /// The connection failed (client side).
    TransportError = "TRANSPORT_ERROR",
    /// The call's deadline passed (client side).
    DeadlineExceeded = "DEADLINE_EXCEEDED",
    /// The call was cancelled (client side).
    Cancelled = "CANCELLED",
    /// A gRPC status without Shale's error details (client side).
    GrpcError = "GRPC_ERROR",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason reads as its wire name (`&*e.reason == "NOT_LEADER"`).
impl std::ops::Deref for Reason {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Compares with a wire name, for tests and callers that hold one.
impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Compares with a wire name, for tests and callers that hold one.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn wire_names_are_unique_and_read_back() {
        let mut seen = HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
            assert_eq!(&Reason::from_wire(r.as_str()), r);
            assert!(r.as_str().chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{r}");
        }
        assert_eq!(Reason::from_wire("NEWER_REASON"), Reason::Other("NEWER_REASON".into()));
        assert_eq!(Reason::from_wire("NEWER_REASON").as_str(), "NEWER_REASON");
    }
}
