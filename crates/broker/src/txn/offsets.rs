//! Offsets committed inside a transaction (`TxnOffsetCommit`): pending at
//! `txn_offsets/{group}/{transactional id}` until the transaction ends. Its commit writes
//! them to the group's committed offsets (`offsets/{group}/{topic}/{p}`) in etcd
//! transactions of at most [`PUTS_PER_TXN`] puts (etcd allows 128 operations in one), then
//! deletes them; its abort deletes them. A coordinator that dies between the chunks leaves
//! the pending offsets in place, and the next one writes the same values again.
//!
//! While a group has pending offsets for a partition, a reader that asks for stable offsets
//! (KIP-447's `require_stable`) is told to retry ([`PendingOffsets::pending`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::groups::records::{OffsetRecord, decode, encode};
use shale_core::error::Error;
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Txn, TxnOp};

/// Puts per etcd transaction when pending offsets are committed.
pub const PUTS_PER_TXN: usize = 100;
/// Attempts of a read-modify-write before giving up (another write kept winning).
const ATTEMPTS: usize = 10;

/// A transaction's pending offsets of one group: by topic, then partition.
type Pending = BTreeMap<String, BTreeMap<u32, OffsetRecord>>;

/// The pending offsets of every transaction.
#[derive(Debug, Clone)]
pub struct PendingOffsets {
    store: Arc<dyn MetaStore>,
    keys: Keys,
}

impl PendingOffsets {
    /// The pending offsets of the cluster under `keys`.
    pub fn new(store: Arc<dyn MetaStore>, keys: Keys) -> PendingOffsets {
        PendingOffsets { store, keys }
    }

    /// Adds `offsets` (topic, partition, offset) to what transaction `txn` commits for
    /// `group`; a later offset of a partition replaces an earlier one.
    pub async fn add(
        &self,
        txn: &str,
        group: &str,
        offsets: &[(String, u32, OffsetRecord)],
    ) -> Result<(), Error> {
        let key = self.keys.txn_offsets(group, txn);
        for _ in 0..ATTEMPTS {
            let (mut pending, revision) = match self.store.get(&key).await? {
                Some(kv) => (
                    decode::<Pending>(&kv.value, &format!("pending offsets {key}"))?,
                    kv.mod_revision,
                ),
                None => (Pending::new(), 0),
            };
            for (topic, partition, record) in offsets {
                pending.entry(topic.clone()).or_default().insert(*partition, record.clone());
            }
            let txn = Txn::new()
                .when(Compare::mod_revision(key.clone(), revision))
                .and_then(TxnOp::put(key.clone(), encode(&pending)));
            if self.store.txn(txn).await?.succeeded {
                return Ok(());
            }
        }
        Err(Error::unavailable(format!(
            "the pending offsets of group {group:?} in transaction {txn:?} kept changing; retry"
        )))
    }

    /// Ends transaction `txn`'s pending offsets of `group`: written to the group's
    /// committed offsets when `commit`, then deleted either way.
    pub async fn end(&self, txn: &str, group: &str, commit: bool) -> Result<(), Error> {
        let key = self.keys.txn_offsets(group, txn);
        let Some(kv) = self.store.get(&key).await? else { return Ok(()) };
        if commit {
            let pending: Pending = decode(&kv.value, &format!("pending offsets {key}"))?;
            let puts: Vec<TxnOp> = pending
                .iter()
                .flat_map(|(topic, ps)| {
                    ps.iter().map(move |(p, record)| {
                        TxnOp::put(self.keys.offset(group, topic, *p), encode(record))
                    })
                })
                .collect();
            for chunk in puts.chunks(PUTS_PER_TXN) {
                let txn = chunk.iter().fold(Txn::new(), |t, op| t.and_then(op.clone()));
                self.store.txn(txn).await?;
            }
        }
        let delete = Txn::new()
            .when(Compare::mod_revision(key.clone(), kv.mod_revision))
            .and_then(TxnOp::delete(key));
        self.store.txn(delete).await?;
        Ok(())
    }

    /// The partitions of `group` that some open or deciding transaction has offsets for.
    pub async fn pending(&self, group: &str) -> Result<BTreeSet<(String, u32)>, Error> {
        let range = self.store.range(&self.keys.group_txn_offsets(group)).await?;
        let mut out = BTreeSet::new();
        for kv in range.kvs {
            let pending: Pending = decode(&kv.value, &format!("pending offsets {}", kv.key))?;
            for (topic, ps) in pending {
                out.extend(ps.into_keys().map(|p| (topic.clone(), p)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> OffsetRecord {
        OffsetRecord { offset, metadata: String::new(), commit_ms: 1, topic_id: "id".into() }
    }

    async fn committed(store: &Arc<dyn MetaStore>, keys: &Keys, p: u32) -> Option<i64> {
        let kv = store.get(&keys.offset("g", "t", p)).await.unwrap()?;
        Some(decode::<OffsetRecord>(&kv.value, "offset").unwrap().offset)
    }

    /// A commit writes the pending offsets (more than one etcd transaction's worth) and
    /// removes them; an abort only removes them; pending ones are reported meanwhile.
    #[tokio::test]
    async fn pending_offsets_are_written_by_a_commit_and_dropped_by_an_abort() {
        let store: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("c").unwrap();
        let pending = PendingOffsets::new(store.clone(), keys.clone());
        let many: Vec<(String, u32, OffsetRecord)> =
            (0..250).map(|p| ("t".to_string(), p, record(i64::from(p)))).collect();
        pending.add("app", "g", &many).await.unwrap();
        pending.add("app", "g", &[("t".into(), 0, record(7))]).await.unwrap();
        pending.add("other", "g", &[("u".into(), 1, record(3))]).await.unwrap();
        let open = pending.pending("g").await.unwrap();
        assert_eq!(open.len(), 251, "both transactions' partitions");
        assert_eq!(committed(&store, &keys, 0).await, None, "nothing committed yet");
        pending.end("app", "g", true).await.unwrap();
        assert_eq!(committed(&store, &keys, 0).await, Some(7), "the later offset");
        assert_eq!(committed(&store, &keys, 249).await, Some(249), "past the first chunks");
        pending.end("other", "g", false).await.unwrap();
        assert!(pending.pending("g").await.unwrap().is_empty());
        assert!(store.get(&keys.offset("g", "u", 1)).await.unwrap().is_none(), "aborted");
        pending.end("app", "g", true).await.unwrap();
    }
}
