//! A broker for the group domain's unit tests: broker 1, alone, with the topics a test
//! names and a clock the test moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;

use super::{Coordinator, GroupHost};
use crate::settings::GroupSettings;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::topics::TopicRecord;
use shale_meta::{Keys, MetaStore};

pub(crate) struct Host {
    now: AtomicI64,
    topics: std::sync::Mutex<BTreeMap<String, u32>>,
}

impl Host {
    /// A host with `topics` (name, partitions), its clock at 1,000,000 ms.
    pub(crate) fn new(topics: &[(&str, u32)]) -> Host {
        let topics = topics.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        Host { now: AtomicI64::new(1_000_000), topics: std::sync::Mutex::new(topics) }
    }

    pub(crate) fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::Relaxed);
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: u32) {
        self.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.into(), partitions);
    }
}

#[async_trait]
impl GroupHost for Host {
    fn broker_id(&self) -> i32 {
        1
    }
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }
    fn coordinator_candidates(&self) -> Vec<(i32, String)> {
        vec![(1, "127.0.0.1:1".into())]
    }
    fn topic_names(&self) -> Vec<String> {
        self.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
    fn may_read(&self, _principal: &str, _topic: &str) -> bool {
        true
    }
    fn topic_record(&self, name: &str) -> Result<TopicRecord, Error> {
        let topics = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match topics.get(name) {
            Some(partitions) => Ok(TopicRecord {
                name: name.into(),
                id: format!("id-{name}"),
                partitions: *partitions,
                replication_factor: 1,
                configs: BTreeMap::new(),
                created_ms: 0,
            }),
            None => Err(Error::new(
                ErrorKind::NotFound,
                Reason::UnknownTopic,
                format!("unknown topic {name:?}"),
            )),
        }
    }
    /// Every partition's log holds offsets 5..100.
    async fn list_offsets(
        &self,
        _topic: &str,
        _partition: u32,
        spec: shale_core::offsets::OffsetSpec,
    ) -> Result<shale_core::offsets::ListedOffset, Error> {
        let offset = match spec {
            shale_core::offsets::OffsetSpec::Earliest => 5,
            _ => 100,
        };
        Ok(shale_core::offsets::ListedOffset {
            offset,
            timestamp_ms: -1,
            log_start_offset: 5,
            high_watermark: 100,
            leader_epoch: 0,
        })
    }
}

/// A coordinator over `store`, classic groups forming at once.
pub(crate) fn coordinator(store: &Arc<dyn MetaStore>) -> Coordinator {
    let settings = GroupSettings { initial_rebalance_delay_ms: 0, ..GroupSettings::default() };
    Coordinator::new(store.clone(), Keys::new("c1").unwrap_or_else(|e| panic!("{e}")), settings)
}
