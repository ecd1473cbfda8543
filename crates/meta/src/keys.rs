//! The metadata key layout under `/shale/{cluster}/` (see DESIGN.md, "etcd keys").
//!
//! Names are escaped as path components (`%XX` for every byte outside `[A-Za-z0-9._-]`),
//! so a group called `a/b` cannot land under group `a`'s prefix. Kafka-legal topic names
//! need no escaping and read as themselves in `etcdctl`. Every prefix ends with `/`, so
//! `brokers/1` never matches a prefix meant for `brokers/10`.

use std::fmt::Write as _;

use super::MetaError;

/// Builds and parses the keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys for `cluster`, which must be non-empty and use only `[A-Za-z0-9._-]`.
    pub fn new(cluster: &str) -> Result<Self, MetaError> {
        if cluster.is_empty() || !cluster.bytes().all(is_plain) {
            return Err(MetaError::Invalid(format!(
                "cluster name {cluster:?} is invalid: use 1 or more of [A-Za-z0-9._-]"
            )));
        }
        Ok(Keys { root: format!("/shale/{cluster}/") })
    }

    /// `/shale/{cluster}/`: every key of the cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `brokers/{id}`: a live broker's registration (lease-bound).
    pub fn broker(&self, id: u32) -> String {
        format!("{}brokers/{id}", self.root)
    }

    /// Prefix of all broker registrations.
    pub fn brokers(&self) -> String {
        format!("{}brokers/", self.root)
    }

    /// `controller`: the elected controller (lease-bound).
    pub fn controller(&self) -> String {
        format!("{}controller", self.root)
    }

    /// `topics/{name}`: a topic's id, partition count, replication factor and config.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}topics/{}", self.root, escape(topic))
    }

    /// Prefix of all topics.
    pub fn topics(&self) -> String {
        format!("{}topics/", self.root)
    }

    /// `partitions/{topic}/{p}`: replicas, leader, leader epoch, ISR.
    pub fn partition(&self, topic: &str, partition: u32) -> String {
        format!("{}{partition}", self.partitions(topic))
    }

    /// Prefix of all partitions of `topic`.
    pub fn partitions(&self, topic: &str) -> String {
        format!("{}partitions/{}/", self.root, escape(topic))
    }

    /// Prefix of all partitions of all topics.
    pub fn all_partitions(&self) -> String {
        format!("{}partitions/", self.root)
    }

    /// `tier/{topic}/{p}`: manifest pointer and remote start offset.
    pub fn tier(&self, topic: &str, partition: u32) -> String {
        format!("{}{partition}", self.tiers(topic))
    }

    /// Prefix of the tier pointers of `topic`.
    pub fn tiers(&self, topic: &str) -> String {
        format!("{}tier/{}/", self.root, escape(topic))
    }

    /// Prefix of all tier pointers.
    pub fn all_tiers(&self) -> String {
        format!("{}tier/", self.root)
    }

    /// `tier-uploads/{topic}/{p}/{stem}`: an upload in flight, bound to its uploader's
    /// lease, so the scrubber leaves its objects alone.
    pub fn upload(&self, topic: &str, partition: u32, stem: &str) -> String {
        format!("{}{stem}", self.uploads(topic, partition))
    }

    /// Prefix of the uploads in flight of one partition.
    pub fn uploads(&self, topic: &str, partition: u32) -> String {
        format!("{}{}/{partition}/", self.all_uploads(), escape(topic))
    }

    /// Prefix of all uploads in flight.
    pub fn all_uploads(&self) -> String {
        format!("{}tier-uploads/", self.root)
    }

    /// `decommissioned/{id}`: broker `id` is leaving the cluster for good (no value needed
    /// beyond its presence): the controller moves every replica off it and places nothing
    /// new on it.
    pub fn decommissioned(&self, id: i32) -> String {
        format!("{}{id}", self.all_decommissioned())
    }

    /// Prefix of every decommissioned broker.
    pub fn all_decommissioned(&self) -> String {
        format!("{}decommissioned/", self.root)
    }

    /// `loads/{id}`: the local bytes of the partitions broker `id` leads, bound to its lease
    /// (the balancer's byte counts).
    pub fn load(&self, id: i32) -> String {
        format!("{}{id}", self.all_loads())
    }

    /// Prefix of every broker's published load.
    pub fn all_loads(&self) -> String {
        format!("{}loads/", self.root)
    }

    /// `heartbeats/{id}`: broker `id`'s latest heartbeat, or that it was fenced (bound to
    /// its lease; see `heartbeat`).
    pub fn heartbeat(&self, id: i32) -> String {
        format!("{}{id}", self.heartbeats())
    }

    /// Prefix of every broker's heartbeat. Watched only by the heartbeat watchdogs: beats
    /// change it many times a second and plan nothing.
    pub fn heartbeats(&self) -> String {
        format!("{}heartbeats/", self.root)
    }

    /// Whether a change of `key` can change the cluster's placement and leadership plan:
    /// brokers, topics, partition states, decommissions and the controller. Everything else (tier
    /// pointers, upload claims, groups, offsets, id counters) changes often and plans
    /// nothing, so brokers and the controller do not re-read the cluster for it.
    pub fn shapes_placement(&self, key: &str) -> bool {
        key.starts_with(&self.brokers())
            || key.starts_with(&self.topics())
            || key.starts_with(&self.all_partitions())
            || key.starts_with(&self.all_decommissioned())
            || key == self.controller()
    }

    /// The prefixes whose keys [`shapes_placement`](Self::shapes_placement): what the
    /// controller and every broker watch, and nothing else (offsets, groups, upload claims
    /// and id counters change far more often and plan nothing).
    pub fn placement_prefixes(&self) -> Vec<String> {
        vec![
            self.brokers(),
            self.topics(),
            self.all_partitions(),
            self.all_decommissioned(),
            self.controller(),
        ]
    }

    /// Prefix of everything about consumer group `group` (`groups/{group}/`).
    pub fn group(&self, group: &str) -> String {
        format!("{}groups/{}/", self.root, escape(group))
    }

    /// `groups/{group}/state`: generation and assignment.
    pub fn group_state(&self, group: &str) -> String {
        format!("{}state", self.group(group))
    }

    /// `groups/{group}/classic`: a group of Kafka's classic protocol (generation, members
    /// and their assignments), written when a rebalance completes.
    pub fn group_classic(&self, group: &str) -> String {
        format!("{}classic", self.group(group))
    }

    /// `groups/{group}/members/{member}`: one member (lease-bound or heartbeat-timed).
    pub fn group_member(&self, group: &str, member: &str) -> String {
        format!("{}{}", self.group_members(group), escape(member))
    }

    /// Prefix of the members of `group`.
    pub fn group_members(&self, group: &str) -> String {
        format!("{}members/", self.group(group))
    }

    /// Prefix of all groups.
    pub fn groups(&self) -> String {
        format!("{}groups/", self.root)
    }

    /// `offsets/{group}/{topic}/{p}`: committed offset and metadata.
    pub fn offset(&self, group: &str, topic: &str, partition: u32) -> String {
        format!("{}{partition}", self.group_topic_offsets(group, topic))
    }

    /// Prefix of all committed offsets of `group`.
    pub fn group_offsets(&self, group: &str) -> String {
        format!("{}offsets/{}/", self.root, escape(group))
    }

    /// Prefix of `group`'s committed offsets for `topic`.
    pub fn group_topic_offsets(&self, group: &str, topic: &str) -> String {
        format!("{}{}/", self.group_offsets(group), escape(topic))
    }

    /// `share/{g}/{topic}/{p}`: a share group's state of one partition (KIP-932): its
    /// start offset and the records in flight past it, written by the partition's leader.
    pub fn share_state(&self, group: &str, topic: &str, partition: u32) -> String {
        format!("{}{partition}", self.group_topic_share_states(group, topic))
    }

    /// Prefix of `group`'s share-partition states of `topic`.
    pub fn group_topic_share_states(&self, group: &str, topic: &str) -> String {
        format!("{}{}/", self.group_share_states(group), escape(topic))
    }

    /// Prefix of every share-partition state of `group`.
    pub fn group_share_states(&self, group: &str) -> String {
        format!("{}share/{}/", self.root, escape(group))
    }

    /// `share_resets/{g}`: bumped whenever an administrator changes `group`'s share
    /// state (offsets altered or deleted, the group deleted), for the partitions' leaders
    /// to drop what they hold of it.
    pub fn share_reset(&self, group: &str) -> String {
        format!("{}{}", self.share_resets(), escape(group))
    }

    /// Prefix of every group's share reset marker.
    pub fn share_resets(&self) -> String {
        format!("{}share_resets/", self.root)
    }

    /// `group_configs/{g}`: a group's config overrides (Kafka's GROUP config resource).
    pub fn group_config(&self, group: &str) -> String {
        format!("{}{}", self.group_configs(), escape(group))
    }

    /// Prefix of every group's config overrides.
    pub fn group_configs(&self) -> String {
        format!("{}group_configs/", self.root)
    }

    /// Prefix of all committed offsets.
    pub fn all_offsets(&self) -> String {
        format!("{}offsets/", self.root)
    }

    /// `txns/{transactional id}`: a transactional id's record (its producer id and epoch,
    /// state, and the partitions and groups of its open transaction).
    pub fn txn(&self, transactional_id: &str) -> String {
        format!("{}{}", self.txns(), escape(transactional_id))
    }

    /// Prefix of all transactional ids' records.
    pub fn txns(&self) -> String {
        format!("{}txns/", self.root)
    }

    /// The transactional id of a `txns/{id}` key.
    pub fn parse_txn(&self, key: &str) -> Option<String> {
        match self.components(&self.txns(), key)?.as_mut_slice() {
            [id] => Some(std::mem::take(id)),
            _ => None,
        }
    }

    /// `txn_offsets/{group}/{transactional id}`: the offsets a transaction commits for
    /// `group` once it commits.
    pub fn txn_offsets(&self, group: &str, transactional_id: &str) -> String {
        format!("{}{}", self.group_txn_offsets(group), escape(transactional_id))
    }

    /// Prefix of the offsets transactions will commit for `group`.
    pub fn group_txn_offsets(&self, group: &str) -> String {
        format!("{}txn_offsets/{}/", self.root, escape(group))
    }

    /// `acls/{resource type}/{pattern type}/{name}/{principal}/{operation}/{permission}`:
    /// one access-control binding per key, so adding one twice is one key and a binding
    /// is removed by deleting its key.
    pub fn acl(&self, parts: [&str; 6]) -> String {
        let mut key = self.acls();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push('/');
            }
            key.push_str(&escape(part));
        }
        key
    }

    /// Prefix of every access-control binding.
    pub fn acls(&self) -> String {
        format!("{}acls/", self.root)
    }

    /// `quotas/{principal}`: one principal's quotas (`*`: every principal without its own).
    pub fn quota(&self, principal: &str) -> String {
        format!("{}{}", self.quotas(), escape(principal))
    }

    /// Prefix of every principal's quotas.
    pub fn quotas(&self) -> String {
        format!("{}quotas/", self.root)
    }

    /// `scram/{user}/{mechanism}`: a user's salted SCRAM credential for one mechanism
    /// (SASL/SCRAM and SASL/PLAIN on the Kafka listener).
    pub fn scram(&self, user: &str, mechanism: &str) -> String {
        format!("{}{}/{}", self.scram_all(), escape(user), escape(mechanism))
    }

    /// Prefix of every user's SCRAM credentials.
    pub fn scram_all(&self) -> String {
        format!("{}scram/", self.root)
    }

    /// `producer_id_secret`: the cluster's key for tagging producer ids with the principal
    /// they were issued to.
    pub fn producer_id_secret(&self) -> String {
        format!("{}producer_id_secret", self.root)
    }

    /// The unescaped components of `key` after `prefix` (a prefix built by this struct);
    /// `None` if the key is not under it or is badly escaped.
    pub fn components(&self, prefix: &str, key: &str) -> Option<Vec<String>> {
        key.strip_prefix(prefix)?.split('/').map(unescape).collect()
    }

    /// The broker id of a `brokers/{id}` key.
    pub fn parse_broker(&self, key: &str) -> Option<u32> {
        match self.components(&self.brokers(), key)?.as_slice() {
            [id] => id.parse().ok(),
            _ => None,
        }
    }

    /// The topic name of a `topics/{name}` key.
    pub fn parse_topic(&self, key: &str) -> Option<String> {
        match self.components(&self.topics(), key)?.as_mut_slice() {
            [name] => Some(std::mem::take(name)),
            _ => None,
        }
    }

    /// Topic and partition of a `partitions/{topic}/{p}` key.
    pub fn parse_partition(&self, key: &str) -> Option<(String, u32)> {
        topic_partition(self.components(&self.all_partitions(), key)?)
    }

    /// Topic and partition of a `tier/{topic}/{p}` key.
    pub fn parse_tier(&self, key: &str) -> Option<(String, u32)> {
        topic_partition(self.components(&self.all_tiers(), key)?)
    }

    /// Group, topic and partition of an `offsets/{group}/{topic}/{p}` key.
    pub fn parse_offset(&self, key: &str) -> Option<(String, String, u32)> {
        let mut parts = self.components(&self.all_offsets(), key)?;
        if parts.len() != 3 {
            return None;
        }
        let partition = parts.pop()?.parse().ok()?;
        let topic = parts.pop()?;
        Some((parts.pop()?, topic, partition))
    }
}

fn topic_partition(mut parts: Vec<String>) -> Option<(String, u32)> {
    if parts.len() != 2 {
        return None;
    }
    let partition = parts.pop()?.parse().ok()?;
    Some((parts.pop()?, partition))
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Escapes a name into one path component.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Reverses [`escape`]; `None` for malformed escapes or non-UTF-8 results.
pub fn unescape(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = component.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys() -> Keys {
        Keys::new("prod").unwrap()
    }

    #[test]
    fn layout_matches_design() {
        let k = keys();
        assert_eq!(k.broker(3), "/shale/prod/brokers/3");
        assert_eq!(k.controller(), "/shale/prod/controller");
        assert_eq!(k.topic("orders"), "/shale/prod/topics/orders");
        assert_eq!(k.partition("orders", 7), "/shale/prod/partitions/orders/7");
        assert_eq!(k.tier("orders", 7), "/shale/prod/tier/orders/7");
        assert_eq!(k.group_state("g1"), "/shale/prod/groups/g1/state");
        assert_eq!(k.group_member("g1", "m-1"), "/shale/prod/groups/g1/members/m-1");
        assert_eq!(k.offset("g1", "orders", 7), "/shale/prod/offsets/g1/orders/7");
        for prefix in [k.brokers(), k.topics(), k.partitions("t"), k.group("g"), k.all_offsets()] {
            assert!(prefix.ends_with('/') && prefix.starts_with(k.root()), "{prefix}");
        }
    }

    #[test]
    fn prefixes_are_isolated() {
        let k = keys();
        assert!(!k.broker(10).starts_with(&format!("{}1/", k.brokers())));
        assert!(!k.partition("ab", 0).starts_with(&k.partitions("a")));
        // A group name containing '/' stays inside its own prefix.
        assert!(!k.group_state("a/b").starts_with(&k.group("a")));
        assert!(!k.offset("a/b", "t", 0).starts_with(&k.group_offsets("a")));
        assert!(k.offset("g", "t", 0).starts_with(&k.group_topic_offsets("g", "t")));
    }

    #[test]
    fn rejects_bad_cluster_names() {
        assert!(Keys::new("").is_err());
        assert!(Keys::new("a/b").is_err());
        assert!(Keys::new("dev-1.eu_west").is_ok());
    }

    #[test]
    fn parses_what_it_builds() {
        let k = keys();
        assert_eq!(k.parse_broker(&k.broker(12)), Some(12));
        assert_eq!(k.parse_topic(&k.topic("orders")), Some("orders".into()));
        assert_eq!(k.parse_partition(&k.partition("orders", 3)), Some(("orders".into(), 3)));
        assert_eq!(k.parse_tier(&k.tier("orders", 4)), Some(("orders".into(), 4)));
        assert_eq!(
            k.parse_offset(&k.offset("g/1", "orders", 5)),
            Some(("g/1".into(), "orders".into(), 5))
        );
        assert_eq!(k.parse_partition(&k.topic("orders")), None);
        assert_eq!(k.parse_broker("/shale/prod/brokers/x"), None);
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%4"), None);
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_stays_one_component(name in ".*") {
            let e = escape(&name);
            prop_assert!(!e.contains('/'));
            prop_assert_eq!(unescape(&e), Some(name.clone()));
            let k = keys();
            prop_assert_eq!(k.parse_offset(&k.offset(&name, &name, 9)), Some((name.clone(), name, 9)));
        }
    }

    #[test]
    fn the_placement_prefixes_cover_exactly_the_keys_that_shape_placement() {
        let k = Keys::new("c1").unwrap();
        let keys = [
            k.broker(3),
            k.controller(),
            k.topic("orders"),
            k.partition("orders", 2),
            k.tier("orders", 2),
            k.upload("orders", 2, "00000000000000000000"),
            k.group_state("g"),
            k.group_member("g", "m"),
            k.offset("g", "orders", 2),
            format!("{}producer_id_seq", k.root()),
            format!("{}broker_id_seq", k.root()),
        ];
        for key in keys {
            let watched = k.placement_prefixes().iter().any(|p| key.starts_with(p.as_str()));
            assert_eq!(watched, k.shapes_placement(&key), "{key}");
        }
    }
}
