//! The group domain's own types: what `api` takes and answers about groups and their
//! offsets. Each front end converts its wire to and from them (gRPC in
//! `shale_grpc::convert`, the Kafka listener from its requests), so no protobuf type
//! crosses `api` for groups.

use std::collections::BTreeSet;

/// One committed offset to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: u32,
    /// The next offset to read.
    pub offset: i64,
    /// Client metadata.
    pub metadata: String,
}

/// Offsets a member commits, fenced by its member epoch; with an empty member id, a
/// client outside the group protocol (allowed only while the group has no members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsets {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub offsets: Vec<OffsetToCommit>,
}

/// A group's committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    /// The committer's metadata string.
    pub metadata: String,
    pub commit_time_ms: i64,
}

/// What a group's members are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedState {
    /// No members.
    Empty,
    /// Every member owns its target assignment.
    Stable,
    /// Some member still gives up partitions (or waits for them).
    Reconciling,
}

impl ListedState {
    /// The state of a group with `members`, some of them `reconciling`.
    pub fn of(members: usize, reconciling: bool) -> ListedState {
        match (members, reconciling) {
            (0, _) => ListedState::Empty,
            (_, true) => ListedState::Reconciling,
            _ => ListedState::Stable,
        }
    }

    /// `empty`, `stable` or `reconciling`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListedState::Empty => "empty",
            ListedState::Stable => "stable",
            ListedState::Reconciling => "reconciling",
        }
    }
}

/// The group protocol a group's members use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The broker assigns partitions by member epochs: Shale's gRPC groups.
    Shale,
    /// Kafka's JoinGroup/SyncGroup, a member assigning.
    Classic,
    /// Kafka's consumer protocol (KIP-848, `ConsumerGroupHeartbeat`): the broker assigns,
    /// as for Shale's groups, under Kafka's rules.
    Consumer,
    /// Kafka's share groups (KIP-932, `ShareGroupHeartbeat`): members share partitions
    /// and acknowledge records one by one.
    Share,
}

impl GroupProtocol {
    /// `shale`, `classic`, `consumer` or `share`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Shale => "shale",
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
            GroupProtocol::Share => "share",
        }
    }
}

/// A group as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub state: ListedState,
    pub members: u32,
    /// None for a group with only committed offsets.
    pub protocol: Option<GroupProtocol>,
}

/// Where [`ResetOffsets`] moves a group's committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first offset at or after this time (the high watermark when none is).
    Timestamp(i64),
    /// This offset, which must lie between the log start and the high watermark.
    Offset(i64),
}

/// Sets an empty group's committed offsets of a topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsets {
    pub group: String,
    pub topic: String,
    /// Empty means every partition of the topic.
    pub partitions: Vec<u32>,
    pub to: ResetTo,
    /// Compute and answer, change nothing.
    pub dry_run: bool,
}

/// A member as a group's description shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    /// Its member epoch (a classic member's: the group's generation).
    pub member_epoch: i32,
    /// The topics it subscribed to by name.
    pub topics: Vec<String>,
    /// Its subscription pattern, empty when none.
    pub topic_pattern: String,
    pub assignment: BTreeSet<(String, u32)>,
    /// Partitions being given up, not yet released by the member.
    pub revoking: BTreeSet<(String, u32)>,
    /// What the coordinator means the member to own once reconciled (its assignment when
    /// the coordinator has not computed one since it loaded the group).
    pub target: BTreeSet<(String, u32)>,
    /// Its subscription's regular expression (Kafka's consumer protocol), empty when none.
    pub topic_regex: String,
    /// A static member's instance id.
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub client_host: String,
    /// Which protocol the member speaks.
    pub protocol: GroupProtocol,
}

/// One partition of a group's topics: the committed offset, the end and the lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    /// -1 when nothing is committed.
    pub committed: i64,
    /// The high watermark (the end a consumer can read to); -1 when unknown.
    pub log_end: i64,
    /// `log_end - committed` (`log_end -` log start when nothing is committed); -1 when
    /// unknown.
    pub lag: i64,
    /// The member that owns the partition, if any.
    pub member_id: Option<String>,
    /// A share group's records in flight (`committed` is then its start offset).
    pub share: Option<ShareInFlight>,
}

/// A share partition's records in flight as stored: from its start offset to the end of
/// what the store knows was delivered (a first delivery is stored with the partition's
/// next change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareInFlight {
    /// Records from the start offset on that were delivered.
    pub in_flight: i64,
    /// Of them, accepted.
    pub acknowledged: i64,
    /// Of them, rejected, past the delivery limit, or gaps.
    pub archived: i64,
    /// The most deliveries a record not done has had.
    pub max_deliveries: u16,
}

/// A group's members, assignment and per-partition lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// The group's kind: a consumer group may have classic members (converted online).
    pub protocol: GroupProtocol,
    pub state: ListedState,
    /// The group epoch (a classic group's generation).
    pub group_epoch: i32,
    /// The assignor (a classic group's protocol).
    pub assignor: String,
    /// The broker coordinating the group, if one is live.
    pub coordinator: Option<i32>,
    pub members: Vec<MemberDescription>,
    pub partitions: Vec<PartitionLag>,
}

/// A member's heartbeat in a group whose broker assigns partitions (Shale's gRPC
/// groups): member epoch 0 joins, -1 leaves, otherwise the epoch last received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub group: String,
    /// Empty when joining: the coordinator picks one and answers with it.
    pub member_id: String,
    pub member_epoch: i32,
    /// Subscribed topics (or a pattern); both empty keeps the current subscription.
    pub topics: Vec<String>,
    /// A glob over topic names (`*` any run of characters, `?` one), instead of topics.
    pub topic_pattern: String,
    /// Partitions the member holds right now (it has stopped reading any it gave up);
    /// None when it did not say (a Kafka client sends them only when they changed).
    pub owned: Option<BTreeSet<(String, u32)>>,
    /// `cooperative-sticky` (default) or `range`; the first member's choice holds while
    /// the group has members.
    pub assignor: String,
    /// 0 means the broker default.
    pub session_timeout_ms: u32,
    /// Free text a description shows (host, process).
    pub client_id: String,
    /// Present for Kafka's `ConsumerGroupHeartbeat` (KIP-848), whose rules are stricter:
    /// see [`KafkaMember`].
    pub kafka: Option<KafkaMember>,
    /// A member of a share group (Kafka's `ShareGroupHeartbeat`, with `kafka`): its
    /// epoch must be its current one, and it is given partitions other members share.
    pub share: bool,
}

/// What a Kafka consumer-protocol member (KIP-848) says beyond a [`Heartbeat`], and the
/// rules it brings: the member makes its own id; a heartbeat at an epoch other than its
/// current one is fenced (`FENCED_MEMBER_EPOCH`) unless it is the previous epoch and the
/// partitions it owns are still its own; each field left out (None) keeps what the member
/// said before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaMember {
    /// `SubscribedTopicNames`.
    pub topic_names: Option<Vec<String>>,
    /// `SubscribedTopicRegex`, RE2 syntax; empty clears it.
    pub topic_regex: Option<String>,
    /// `InstanceId`: a static member.
    pub instance_id: Option<String>,
    /// `RackId`.
    pub rack: Option<String>,
    /// `RebalanceTimeoutMs`: how long it may take to give up partitions.
    pub rebalance_timeout_ms: Option<u32>,
    /// The client's address.
    pub client_host: String,
}

/// The coordinator's answer to a [`Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    /// Heartbeat again within this many milliseconds.
    pub heartbeat_interval_ms: u32,
    /// The partitions the member owns now: start reading new ones, stop reading (and
    /// commit) the ones no longer listed, then leave them out of the next `owned`.
    pub assignment: BTreeSet<(String, u32)>,
    pub group_epoch: i32,
}
