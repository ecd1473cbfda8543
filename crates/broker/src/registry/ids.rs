//! The schema ID watermark: the highest ID ever handed out, kept in the metadata store.
//! The log alone cannot hold it: a permanently deleted schema's records are tombstoned and
//! compaction drops them, and an ID derived from what is left would be handed out again.
//! A writer raises the watermark (compare-and-set) before it writes a new ID, so two
//! writers that both believe they write still never hand out one ID twice.

use std::sync::Arc;

use shale_core::error::Error;
use shale_meta::{Compare, Keys, MetaStore, Revision, Txn, TxnOp};

/// The watermark's key and store.
#[derive(Debug)]
pub struct IdWatermark {
    store: Arc<dyn MetaStore>,
    key: String,
}

impl IdWatermark {
    /// The cluster's watermark.
    pub fn new(store: Arc<dyn MetaStore>, keys: &Keys) -> IdWatermark {
        IdWatermark { store, key: format!("{}schema_registry/max_id", keys.root()) }
    }

    /// The highest ID handed out (0: none).
    pub async fn get(&self) -> Result<i32, Error> {
        Ok(self.read().await?.0)
    }

    async fn read(&self) -> Result<(i32, Revision), Error> {
        match self.store.get(&self.key).await? {
            None => Ok((0, 0)),
            Some(kv) => {
                let text = std::str::from_utf8(&kv.value).unwrap_or("");
                let id = text.trim().parse::<i32>().map_err(|_| {
                    Error::internal(format!(
                        "the schema ID watermark {} holds {text:?}, not an ID",
                        self.key
                    ))
                })?;
                Ok((id, kv.mod_revision))
            }
        }
    }

    /// A new ID: above the watermark and above `floor` (the highest ID the log shows),
    /// taken by raising the watermark to it.
    pub async fn next(&self, floor: i32) -> Result<i32, Error> {
        loop {
            let (current, revision) = self.read().await?;
            let id = current
                .max(floor)
                .checked_add(1)
                .ok_or_else(|| Error::unavailable("schema IDs are exhausted"))?;
            if self.cas(revision, id).await? {
                return Ok(id);
            }
        }
    }

    /// Raises the watermark to at least `id` (an imported ID).
    pub async fn raise(&self, id: i32) -> Result<(), Error> {
        loop {
            let (current, revision) = self.read().await?;
            if current >= id || self.cas(revision, id).await? {
                return Ok(());
            }
        }
    }

    async fn cas(&self, revision: Revision, id: i32) -> Result<bool, Error> {
        let txn = Txn::new()
            .when(Compare::mod_revision(self.key.clone(), revision))
            .and_then(TxnOp::put(self.key.clone(), id.to_string()));
        Ok(self.store.txn(txn).await?.succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_unique_across_writers_and_above_every_floor() {
        let store: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("c").unwrap();
        let a = IdWatermark::new(store.clone(), &keys);
        let b = IdWatermark::new(store, &keys);
        assert_eq!(a.next(0).await.unwrap(), 1);
        assert_eq!(b.next(0).await.unwrap(), 2, "a second writer does not get the first's ID");
        assert_eq!(a.next(10).await.unwrap(), 11, "above what the log shows");
        b.raise(100).await.unwrap();
        b.raise(50).await.unwrap();
        assert_eq!(a.get().await.unwrap(), 100);
        assert_eq!(a.next(0).await.unwrap(), 101);
    }
}
