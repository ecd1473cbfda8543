//! Preferred-leader election on request (Kafka's `ElectLeaders`). The controller already
//! moves leadership back to a partition's preferred replica (its first) whenever that one
//! is live and in sync; a request checks that it can happen and waits until it did.

use std::time::Duration;

use super::Broker;
use shale_core::error::{Error, ErrorKind, Reason};

/// What a preferred-leader election found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elected {
    /// The preferred replica leads now.
    Done,
    /// It led already.
    NotNeeded,
}

impl Broker {
    /// Waits (at most `within`) until `topic`-`partition`'s preferred replica leads it;
    /// an error when it cannot (not live, not in sync), or did not within the time.
    pub async fn elect_preferred(
        &self,
        topic: &str,
        partition: u32,
        within: Duration,
    ) -> Result<Elected, Error> {
        let state = self.partition_state(topic, partition)?;
        let preferred = *state.replicas.first().ok_or_else(|| {
            Error::unavailable(format!("{topic}-{partition} has no replicas yet; retry"))
        })?;
        if state.leader == preferred {
            return Ok(Elected::NotNeeded);
        }
        let live = self.cached_broker(preferred).is_some_and(|b| !b.draining);
        if !live || !state.isr.contains(&preferred) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                Reason::Other("PREFERRED_LEADER_NOT_AVAILABLE".into()),
                format!(
                    "{topic}-{partition}'s preferred leader, broker {preferred}, is not {}",
                    if live { "in sync" } else { "live" }
                ),
            ));
        }
        let moved = self.wait_for_metadata(within, |b| {
            b.partition_state(topic, partition).is_ok_and(|s| s.leader == preferred)
        });
        if moved.await {
            return Ok(Elected::Done);
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            Reason::RequestTimedOut,
            format!(
                "{topic}-{partition}'s leadership did not move to broker {preferred} within {within:?}"
            ),
        ))
    }

    /// A partition's state as cached here.
    pub(super) fn partition_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<shale_meta::topics::PartitionState, Error> {
        let cache =
            self.view.cache.read().map_err(|_| Error::internal("metadata cache poisoned"))?;
        let entry = cache.topics.get(topic).ok_or_else(|| super::unknown_topic(topic))?;
        if partition >= entry.record.partitions {
            return Err(shale_core::error::partition_out_of_range(
                topic,
                partition,
                entry.record.partitions,
            ));
        }
        cache.states.get(&(topic.to_string(), partition)).map(|(s, _)| s.clone()).ok_or_else(|| {
            Error::unavailable(format!("{topic}-{partition} is being created; retry"))
        })
    }
}
