//! Groups nobody heartbeats to. A coordinator holds a group in memory only once a request
//! for it arrives, and a member's session is timed only there. A member that is gone
//! without leaving (killed, or its leave lost) while its group's coordinator changes, or
//! while the whole cluster restarts, would then stay in etcd for ever: `describe` would
//! show it, and an empty group's offsets could not be reset. So a coordinator loads every
//! group it coordinates that has stored members, as Kafka's coordinator loads its groups
//! when it takes them over: when its view of the live brokers changes (at start too), and
//! every [`ADOPT_EVERY_MS`]. Each loaded member gets a fresh session, and the sweep removes
//! the ones that do not heartbeat within it.

use std::collections::BTreeSet;

use super::classic::ClassicRecord;
use super::records;
use super::{Coordinator, GroupHost, coordinator_of, view};

/// How often, besides at every change of the live brokers, a coordinator looks for stored
/// groups it coordinates but does not hold (one dropped after a failed write, say).
pub(super) const ADOPT_EVERY_MS: i64 = 30_000;

/// When this coordinator last looked: the broker view then and the time (ms).
pub(super) type Adopted = std::sync::Mutex<Option<(Vec<i32>, i64)>>;

impl Coordinator {
    /// Loads the stored groups with members that this broker coordinates and does not
    /// hold, if its view changed or [`ADOPT_EVERY_MS`] passed since it last looked.
    pub(super) async fn adopt(&self, b: &dyn GroupHost) {
        let (view, now) = (view(b), b.now_ms());
        let due = {
            let last = self.adopted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            last.as_ref().is_none_or(|(v, at)| *v != view || now - at >= ADOPT_EVERY_MS)
        };
        if !due {
            return;
        }
        let (shale, classic) = match self.stored_with_members().await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "looking for groups to coordinate failed; retrying");
                return;
            }
        };
        let brokers = b.coordinator_candidates();
        let ours =
            |g: &String| coordinator_of(g, &brokers).is_some_and(|(id, _)| id == b.broker_id());
        for group in shale.iter().filter(|g| ours(g)) {
            let slot = self.slot(group);
            let mut guard = slot.lock().await;
            if guard.as_ref().is_some_and(|g| g.view == view) {
                continue;
            }
            match self.load(group, view.clone(), now).await {
                Ok(g) => {
                    tracing::debug!(group = %group, members = g.members.len(), "coordinating a stored group");
                    *guard = Some(g);
                }
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not load a group to coordinate")
                }
            }
        }
        for group in classic.iter().filter(|g| ours(g)) {
            if let Err(e) = self.classic().adopt(b, group).await {
                tracing::warn!(group = %group, error = %e, "could not load a classic group to coordinate");
            }
        }
        *self.adopted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((view, now));
    }

    /// The groups with stored members: those of Shale's protocol, and the classic ones.
    async fn stored_with_members(
        &self,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), shale_core::error::Error> {
        let (mut shale, mut classic) = (BTreeSet::new(), BTreeSet::new());
        let prefix = self.keys().groups();
        for kv in self.meta().range(&prefix).await?.kvs {
            let Some(parts) = self.keys().components(&prefix, &kv.key) else { continue };
            match parts.as_slice() {
                [group, members, _] if members == "members" => {
                    shale.insert(group.clone());
                }
                [group, kind] if kind == "classic" => {
                    let what = format!("classic group {group:?}");
                    let record: ClassicRecord = records::decode(&kv.value, &what)?;
                    if !record.members.is_empty() {
                        classic.insert(group.clone());
                    }
                }
                _ => {}
            }
        }
        Ok((shale, classic))
    }
}

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod tests;
