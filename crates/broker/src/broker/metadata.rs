//! The cluster as this broker's cache holds it, for clients to route by: brokers, topics
//! and their partitions' states. Served from the cache the broker itself acts on (kept by
//! the watch in `follow`), not read from the store per request: Kafka clients ask often.

use std::collections::BTreeMap;

use super::{Broker, TopicEntry};
use shale_core::error::Error;
use shale_meta::topics::{BrokerRecord, PartitionState};

/// A topic with its partitions' states, by partition index.
pub type TopicWithStates = (TopicEntry, BTreeMap<u32, PartitionState>);

impl Broker {
    /// Every live broker, by id.
    pub fn cached_brokers(&self) -> Vec<BrokerRecord> {
        let Ok(cache) = self.view.cache.read() else { return Vec::new() };
        let mut out: Vec<BrokerRecord> = cache.brokers.values().cloned().collect();
        out.sort_by_key(|b| b.id);
        out
    }

    /// A live broker's record.
    pub fn cached_broker(&self, id: i32) -> Option<BrokerRecord> {
        self.view.cache.read().ok()?.brokers.get(&id).cloned()
    }

    /// The name of the topic whose id is `id`.
    pub fn topic_name_by_id(&self, id: &str) -> Option<String> {
        let cache = self.view.cache.read().ok()?;
        cache.topics.values().find(|t| t.record.id == id).map(|t| t.record.name.clone())
    }

    /// Topics (all, or those named that exist) with their partitions' states.
    pub fn cached_topics(&self, names: Option<&[String]>) -> Result<Vec<TopicWithStates>, Error> {
        let cache =
            self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
        let entries: Vec<&TopicEntry> = match names {
            None => {
                let mut all: Vec<&TopicEntry> = cache.topics.values().collect();
                all.sort_by(|a, b| a.record.name.cmp(&b.record.name));
                all
            }
            Some(names) => names.iter().filter_map(|n| cache.topics.get(n)).collect(),
        };
        Ok(entries
            .into_iter()
            .map(|t| {
                let states = (0..t.record.partitions)
                    .filter_map(|p| {
                        let s = cache.states.get(&(t.record.name.clone(), p))?;
                        Some((p, s.0.clone()))
                    })
                    .collect();
                (t.clone(), states)
            })
            .collect())
    }
}
