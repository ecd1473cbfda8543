//! The pure half of following the metadata: from what the store says and what this broker
//! hosts, decide which partitions to close, which to keep (with their new state and
//! config) and which to open. `follow` reads the store, calls [`plan`], and applies the
//! plan; nothing here touches the store, the disk or a task, so every rule is unit-tested.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use shale_core::topic_config::TopicConfig;
use shale_meta::controller::View;
use shale_meta::topics::PartitionState;

use super::{ClusterCache, TopicEntry, TopicPartition};

/// Who this broker is, as far as the plan is concerned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Me {
    pub id: i32,
    pub incarnation: u64,
}

/// A partition assigned to this broker, with what it opens or is updated with.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    pub key: TopicPartition,
    pub topic_id: String,
    /// The state as this broker applies it (see [`applied_state`]).
    pub state: PartitionState,
    /// The mod revision the state was stored at.
    pub revision: shale_meta::Revision,
    pub config: Arc<TopicConfig>,
}

/// What a resync does, in order: close (and delete) `close`, keep `keep` with their new
/// state and config, open `open`, and remove partition directories not in `dirs`.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub close: Vec<TopicPartition>,
    pub keep: Vec<Assignment>,
    pub open: Vec<Assignment>,
    /// Directory names (`{topic}-{partition}`) an assignment owns.
    pub dirs: HashSet<String>,
}

/// The broker's cache of the cluster from a view read from the store: each topic's config
/// is its overrides resolved over the broker's defaults (stored configs that no longer
/// validate fall back to the defaults, loudly).
pub(super) fn cache_of(view: View, defaults: &TopicConfig) -> ClusterCache {
    let mut cache = ClusterCache::default();
    for record in view.topics {
        let config = TopicConfig::resolve(defaults, &record.configs).unwrap_or_else(|e| {
            tracing::error!(topic = %record.name, error = %e,
                "stored topic configs are invalid; using defaults");
            defaults.clone()
        });
        cache.topics.insert(record.name.clone(), TopicEntry { record, config: Arc::new(config) });
    }
    cache.states = view.partitions.into_iter().collect();
    cache.brokers = view.brokers.into_iter().collect();
    cache
}

/// `state` as this broker applies it: a leadership recorded for an earlier incarnation of
/// this broker is not taken up (the partition has no leader here) until the controller
/// confirms this incarnation under a new epoch. The earlier process may have acknowledged
/// records this one lost with its unsynced data; leading at the old epoch would hand out
/// their offsets again.
pub(super) fn applied_state(state: &PartitionState, me: Me) -> PartitionState {
    match state.leader == me.id && !state.confirms(me.id, me.incarnation) {
        true => PartitionState { leader: -1, ..state.clone() },
        false => state.clone(),
    }
}

/// Plans a resync. `hosted` maps each partition open here to its topic id.
///
/// A hosted partition is closed when its topic is gone, when this broker is no longer a
/// replica, or when the topic was deleted and re-created under the same name (another
/// topic id), so the new incarnation opens a fresh directory.
pub(super) fn plan(cache: &ClusterCache, hosted: &HashMap<TopicPartition, String>, me: Me) -> Plan {
    let mut assigned: BTreeMap<TopicPartition, Assignment> = BTreeMap::new();
    for ((topic, p), (state, revision)) in &cache.states {
        let Some(entry) = cache.topics.get(topic) else { continue };
        if state.replicas.contains(&me.id) {
            let key = (topic.clone(), *p);
            assigned.insert(
                key.clone(),
                Assignment {
                    key,
                    topic_id: entry.record.id.clone(),
                    state: applied_state(state, me),
                    revision: *revision,
                    config: entry.config.clone(),
                },
            );
        }
    }
    let mut plan = Plan {
        dirs: assigned.keys().map(|(t, p)| format!("{t}-{p}")).collect(),
        ..Plan::default()
    };
    let mut close: Vec<TopicPartition> = hosted
        .iter()
        .filter(|(key, topic_id)| assigned.get(*key).is_none_or(|a| &a.topic_id != *topic_id))
        .map(|(key, _)| key.clone())
        .collect();
    close.sort();
    for (key, a) in assigned {
        match hosted.get(&key) {
            Some(topic_id) if *topic_id == a.topic_id => plan.keep.push(a),
            _ => plan.open.push(a),
        }
    }
    plan.close = close;
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shale_meta::topics::{PartitionState, TopicRecord};

    use super::*;

    const ME: Me = Me { id: 1, incarnation: 7 };

    fn topic(name: &str, id: &str) -> TopicRecord {
        TopicRecord {
            name: name.into(),
            id: id.into(),
            partitions: 2,
            replication_factor: 2,
            configs: BTreeMap::new(),
            created_ms: 0,
        }
    }

    fn state(leader: i32, replicas: &[i32]) -> PartitionState {
        PartitionState::new(replicas.to_vec(), leader, 3, replicas.to_vec())
    }

    fn cache(topics: &[TopicRecord], states: &[((&str, u32), PartitionState)]) -> ClusterCache {
        let mut view = View { topics: topics.to_vec(), ..View::default() };
        for ((t, p), s) in states {
            view.partitions.insert((t.to_string(), *p), (s.clone(), 1));
        }
        cache_of(view, &TopicConfig::default())
    }

    fn keys(a: &[Assignment]) -> Vec<TopicPartition> {
        a.iter().map(|a| a.key.clone()).collect()
    }

    fn tp(t: &str, p: u32) -> TopicPartition {
        (t.to_string(), p)
    }

    #[test]
    fn opens_what_is_assigned_here_and_nothing_else() {
        let c = cache(
            &[topic("orders", "id-1")],
            &[(("orders", 0), state(1, &[1, 2])), (("orders", 1), state(2, &[2, 3]))],
        );
        let plan = plan(&c, &HashMap::new(), ME);
        assert_eq!(keys(&plan.open), vec![tp("orders", 0)]);
        assert!(plan.keep.is_empty() && plan.close.is_empty());
        assert_eq!(plan.dirs, HashSet::from(["orders-0".to_string()]));
    }

    #[test]
    fn keeps_hosted_partitions_with_their_new_state_and_config() {
        let mut t = topic("orders", "id-1");
        t.configs.insert("retention.ms".into(), "1000".into());
        let c = cache(&[t], &[(("orders", 0), state(2, &[1, 2]))]);
        let hosted = HashMap::from([(tp("orders", 0), "id-1".to_string())]);
        let plan = plan(&c, &hosted, ME);
        assert_eq!(keys(&plan.keep), vec![tp("orders", 0)]);
        assert_eq!(plan.keep[0].state.leader, 2);
        assert_eq!(plan.keep[0].config.retention_ms, 1000);
        assert!(plan.open.is_empty() && plan.close.is_empty());
    }

    #[test]
    fn closes_partitions_of_deleted_topics_and_moved_replicas() {
        let c = cache(&[topic("orders", "id-1")], &[(("orders", 0), state(2, &[2, 3]))]);
        let hosted = HashMap::from([
            (tp("orders", 0), "id-1".to_string()),
            (tp("gone", 0), "id-9".to_string()),
        ]);
        let plan = plan(&c, &hosted, ME);
        assert_eq!(plan.close, vec![tp("gone", 0), tp("orders", 0)]);
        assert!(plan.open.is_empty() && plan.keep.is_empty() && plan.dirs.is_empty());
    }

    #[test]
    fn a_recreated_topic_closes_the_old_incarnation_and_opens_the_new() {
        let c = cache(&[topic("orders", "id-2")], &[(("orders", 0), state(1, &[1]))]);
        let hosted = HashMap::from([(tp("orders", 0), "id-1".to_string())]);
        let plan = plan(&c, &hosted, ME);
        assert_eq!(plan.close, vec![tp("orders", 0)]);
        assert_eq!(keys(&plan.open), vec![tp("orders", 0)]);
        assert_eq!(plan.open[0].topic_id, "id-2");
    }

    #[test]
    fn a_state_without_its_topic_record_opens_nothing() {
        let c = cache(&[], &[(("orders", 0), state(1, &[1]))]);
        let plan = plan(&c, &HashMap::new(), ME);
        assert!(plan.open.is_empty() && plan.dirs.is_empty());
    }

    #[test]
    fn leadership_of_an_earlier_incarnation_is_not_taken_up() {
        let mut s = state(1, &[1, 2]);
        s.incarnations = BTreeMap::from([(1, 6), (2, 4)]);
        let applied = applied_state(&s, ME);
        assert_eq!(applied.leader, -1, "recorded for incarnation 6, this is 7");
        s.incarnations.insert(1, 7);
        assert_eq!(applied_state(&s, ME).leader, 1);
        let follower = state(2, &[1, 2]);
        assert_eq!(applied_state(&follower, ME).leader, 2);
    }
}
