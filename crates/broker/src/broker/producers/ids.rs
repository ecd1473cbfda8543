//! Producer ids, allocated in blocks through the metadata store.

use std::sync::Arc;

use shale_core::error::Error;
use shale_meta::json::encode;
use shale_meta::{Compare, Keys, MetaStore, Txn, TxnOp, Versioned};

/// Producer ids a broker takes from the store at a time.
const ID_BLOCK: i64 = 1000;

/// Hands out producer ids, taking blocks of them from the store's counter.
#[derive(Debug)]
pub struct ProducerIds {
    store: Arc<dyn MetaStore>,
    key: String,
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// An allocator over the cluster's `producer_id_seq` key.
    pub fn new(store: Arc<dyn MetaStore>, keys: &Keys) -> Self {
        ProducerIds {
            store,
            key: format!("{}producer_id_seq", keys.root()),
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The next producer id.
    pub async fn next(&self) -> Result<i64, Error> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            *block = self.take_block().await?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    async fn take_block(&self) -> Result<(i64, i64), Error> {
        loop {
            let (start, revision) = match self.store.get(&self.key).await? {
                Some(kv) => {
                    let rev = kv.mod_revision;
                    (Versioned::<i64>::decode(kv)?.value, rev)
                }
                None => (0, 0),
            };
            let end = start + ID_BLOCK;
            let txn = Txn::new()
                .when(Compare::mod_revision(self.key.clone(), revision))
                .and_then(TxnOp::put(self.key.clone(), encode(&self.key, &end)?));
            if self.store.txn(txn).await?.succeeded {
                return Ok((start, end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_come_in_blocks_from_the_store() {
        let store: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("c").unwrap();
        let a = ProducerIds::new(store.clone(), &keys);
        let b = ProducerIds::new(store, &keys);
        let (x, y) = (a.next().await.unwrap(), b.next().await.unwrap());
        assert_ne!(x, y);
        assert_eq!(a.next().await.unwrap(), x + 1);
    }
}
