//! Transactional ids in the metadata store: `txns/{id}` holds its [`TxnRecord`] as JSON.
//! Every change is one write that compares the record's revision, so two brokers that
//! both believe they coordinate an id (while their views of the live brokers differ)
//! cannot both move it: the loser's write fails and it reloads.
//!
//! A coordinator that takes an id over (at start, after a failover) first writes the
//! record back with its `coordinator_epoch` one higher ([`TxnStore::claim`]): its markers
//! carry that epoch, and partitions refuse markers of an older one, so a coordinator that
//! lost the id and wakes up late cannot end a transaction it no longer decides.

use std::sync::Arc;

use super::state::TxnRecord;
use crate::groups::records::{decode, encode};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Revision, Txn, TxnOp};

/// A record as stored, with the revision its next write compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The record.
    pub record: TxnRecord,
    /// Its mod revision.
    pub revision: Revision,
}

/// The transactional ids' records.
#[derive(Debug, Clone)]
pub struct TxnStore {
    store: Arc<dyn MetaStore>,
    keys: Keys,
}

/// The error when a record changed under a write: another broker moved the id.
fn moved(id: &str) -> Error {
    Error::new(
        ErrorKind::NotLeader,
        Reason::NotCoordinator,
        format!(
            "transactional id {id:?} was changed by another broker meanwhile: this one no \
             longer coordinates it; find the coordinator again"
        ),
    )
}

impl TxnStore {
    /// The records of the cluster under `keys`.
    pub fn new(store: Arc<dyn MetaStore>, keys: Keys) -> TxnStore {
        TxnStore { store, keys }
    }

    /// The record of `id`, if it has one.
    pub async fn load(&self, id: &str) -> Result<Option<Stored>, Error> {
        let key = self.keys.txn(id);
        let Some(kv) = self.store.get(&key).await? else { return Ok(None) };
        let record = decode(&kv.value, &format!("transaction record {key}"))?;
        Ok(Some(Stored { record, revision: kv.mod_revision }))
    }

    /// Writes `record` for `id` if the stored one is still `previous` (none: still
    /// absent); the stored result, or `NOT_COORDINATOR` when another broker wrote first.
    pub async fn write(
        &self,
        id: &str,
        record: TxnRecord,
        previous: Option<&Stored>,
    ) -> Result<Stored, Error> {
        let key = self.keys.txn(id);
        let compare = Compare::mod_revision(key.clone(), previous.map_or(0, |s| s.revision));
        let txn = Txn::new().when(compare).and_then(TxnOp::put(key, encode(&record)));
        let outcome = self.store.txn(txn).await?;
        if !outcome.succeeded {
            return Err(moved(id));
        }
        Ok(Stored { record, revision: outcome.revision })
    }

    /// Takes `id` over as its coordinator: its record written back with the coordinator
    /// epoch one higher (none: nothing to take over).
    pub async fn claim(&self, id: &str) -> Result<Option<Stored>, Error> {
        let Some(stored) = self.load(id).await? else { return Ok(None) };
        let mut record = stored.record.clone();
        record.coordinator_epoch = record.coordinator_epoch.saturating_add(1);
        self.write(id, record, Some(&stored)).await.map(Some)
    }

    /// Every transactional id with its record.
    pub async fn list(&self) -> Result<Vec<(String, Stored)>, Error> {
        let range = self.store.range(&self.keys.txns()).await?;
        let mut out = Vec::with_capacity(range.kvs.len());
        for kv in range.kvs {
            let Some(id) = self.keys.parse_txn(&kv.key) else { continue };
            let record = decode(&kv.value, &format!("transaction record {}", kv.key))?;
            out.push((id, Stored { record, revision: kv.mod_revision }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::state::{InitAsk, InitOutcome, init_producer_id};

    fn store() -> TxnStore {
        let meta: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        TxnStore::new(meta, Keys::new("c").unwrap())
    }

    fn record() -> TxnRecord {
        let ask =
            InitAsk { timeout_ms: 60_000, expected: None, max_timeout_ms: 900_000, now_ms: 1 };
        match init_producer_id("a/b", None, &ask, Some(7)).unwrap() {
            InitOutcome::Ready(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn writes_compare_the_revision_and_a_claim_bumps_the_coordinator_epoch() {
        let s = store();
        assert!(s.load("a/b").await.unwrap().is_none());
        let first = s.write("a/b", record(), None).await.unwrap();
        assert_eq!(s.load("a/b").await.unwrap(), Some(first.clone()));
        let e = s.write("a/b", record(), None).await.unwrap_err();
        assert_eq!(e.reason, Reason::NotCoordinator, "a second create: {e}");
        let claimed = s.claim("a/b").await.unwrap().unwrap();
        assert_eq!(claimed.record.coordinator_epoch, first.record.coordinator_epoch + 1);
        let e = s.write("a/b", record(), Some(&first)).await.unwrap_err();
        assert_eq!(e.reason, Reason::NotCoordinator, "a write on the claimed record: {e}");
        assert!(s.claim("none").await.unwrap().is_none());
        let listed = s.list().await.unwrap();
        assert_eq!(listed, vec![("a/b".to_string(), claimed)], "the id unescaped");
    }
}
