//! What a group keeps in etcd: `groups/{g}/state` (group epoch, assignor),
//! `groups/{g}/members/{m}` (one per member: subscription, member epoch, the partitions it
//! owns and those it is giving up) and `offsets/{g}/{topic}/{p}` (committed offsets).
//!
//! Member records change only when the member joins, leaves, changes its subscription or
//! its assignment changes; heartbeats that change nothing write nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assignor::{Assignor, Tp};
use super::types::GroupProtocol;
use shale_core::error::{Error, ErrorKind, Reason};

/// `groups/{g}/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Bumped on every change of membership, subscriptions or subscribed topics' partitions.
    pub epoch: i32,
    /// The assignor the group uses.
    pub assignor: Assignor,
    /// A group of Kafka's consumer protocol (its first member joined with it, or it was
    /// converted from a classic group), rather than of Shale's gRPC members.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kafka: bool,
    /// A share group (KIP-932): its members share partitions, record by record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share: bool,
}

impl GroupRecord {
    /// The protocol the group's state says it uses.
    pub fn protocol(&self) -> GroupProtocol {
        match (self.share, self.kafka) {
            (true, _) => GroupProtocol::Share,
            (false, true) => GroupProtocol::Consumer,
            (false, false) => GroupProtocol::Shale,
        }
    }
}

/// `groups/{g}/members/{m}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Free text from the client.
    pub client_id: String,
    /// The principal that joined: only it may heartbeat as this member, and the member is
    /// given only topics it may read. Empty in records written before ACLs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// Subscribed topics (or empty with a pattern).
    pub topics: Vec<String>,
    /// Glob over topic names.
    pub pattern: String,
    /// Removed after this long without a heartbeat.
    pub session_timeout_ms: u32,
    /// Bumped whenever this member's assignment changes.
    pub epoch: i32,
    /// Partitions the member owns.
    pub assigned: BTreeMap<String, Vec<u32>>,
    /// Partitions taken from the member, not yet released by it.
    pub revoking: BTreeMap<String, Vec<u32>>,
    /// When the oldest partition now in `revoking` was taken (ms), 0 if none.
    pub revoking_since_ms: i64,
    /// Joined through Kafka's consumer protocol (KIP-848) rather than Shale's gRPC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kafka: bool,
    /// A regular expression (RE2 syntax) over topic names, besides `topics` (Kafka's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub regex: String,
    /// A static member's instance id (Kafka's `group.instance.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// A static member that left for a while (member epoch -2): it keeps its partitions
    /// for its session, for a member with the same instance id to take over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub away: bool,
    /// The member's rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_host: String,
    /// A member of Kafka's classic protocol in a group that became a consumer group
    /// (KIP-848's online upgrade): it joins and syncs, and is given what the broker
    /// assigns. The protocol name it is answered with (its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classic: Option<String>,
    /// How long the member may hold partitions it was told to give up (ms); 0: the
    /// broker's `rebalance_timeout_ms`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rebalance_timeout_ms: u32,
    /// A member of a share group (Kafka's `ShareGroupHeartbeat`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share: bool,
}

impl MemberRecord {
    /// The protocol the member speaks.
    pub fn protocol(&self) -> GroupProtocol {
        match (self.share, self.kafka, &self.classic) {
            (true, _, _) => GroupProtocol::Share,
            (false, true, Some(_)) => GroupProtocol::Classic,
            (false, true, None) => GroupProtocol::Consumer,
            (false, false, _) => GroupProtocol::Shale,
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// `offsets/{g}/{topic}/{p}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRecord {
    /// The next offset to read.
    pub offset: i64,
    /// Client metadata.
    #[serde(default)]
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_ms: i64,
    /// Id of the topic incarnation it was committed for: offsets of a deleted and
    /// re-created topic are ignored.
    pub topic_id: String,
}

/// A set of partitions as stored (topic → sorted partitions).
pub fn to_map(set: &BTreeSet<Tp>) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (t, p) in set {
        out.entry(t.clone()).or_default().push(*p);
    }
    out
}

/// The stored form back as a set.
pub fn to_set(map: &BTreeMap<String, Vec<u32>>) -> BTreeSet<Tp> {
    map.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect()
}

/// Decodes a JSON record of `what`, or a precise `Data` error.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::new(ErrorKind::Data, Reason::CorruptMetadata, format!("{what} is not valid: {e}"))
    })
}

/// Encodes a record as JSON.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Whether `topic` matches the glob `pattern` (`*` any run of characters, `?` one).
pub fn glob_match(pattern: &str, topic: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), topic.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        for (pat, topic, want) in [
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("orders-*", "orders-eu", true),
            ("orders-*", "orders", false),
            ("*", "anything", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-eu-*", "orders-eu-1", true),
            ("*x", "abc", false),
        ] {
            assert_eq!(glob_match(pat, topic), want, "{pat} ~ {topic}");
        }
    }

    #[test]
    fn partition_sets_round_trip() {
        let set: BTreeSet<Tp> = [("a".into(), 2), ("a".into(), 0), ("b".into(), 1)].into();
        assert_eq!(to_set(&to_map(&set)), set);
        assert_eq!(to_map(&set)["a"], vec![0, 2]);
    }
}
