//! Typed JSON values over any `MetaStore`, written once for every backend.

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Compare, KeyValue, LeaseId, MetaError, MetaStore, Revision, Txn, TxnOp};

/// A decoded value with the revisions needed for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The key it was read from.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// Mod revision; pass it to `put_json_if` to update only if nobody else did.
    pub mod_revision: Revision,
    /// Create revision.
    pub create_revision: Revision,
    /// Puts since creation.
    pub version: i64,
    /// Lease the key is bound to.
    pub lease: Option<LeaseId>,
}

impl<T: DeserializeOwned> Versioned<T> {
    /// Decodes a key-value's JSON value.
    pub fn decode(kv: KeyValue) -> Result<Self, MetaError> {
        let value = serde_json::from_slice(&kv.value)
            .map_err(|e| MetaError::BadValue { key: kv.key.clone(), reason: e.to_string() })?;
        Ok(Versioned {
            key: kv.key,
            value,
            mod_revision: kv.mod_revision,
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        })
    }
}

/// Encodes a value as JSON, naming the key on failure.
pub fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes, MetaError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| MetaError::Invalid(format!("cannot encode the value for key {key:?}: {e}")))
}

/// JSON helpers available on every `MetaStore` (including `dyn MetaStore`).
#[async_trait]
pub trait MetaStoreJson {
    /// Reads and decodes one key.
    async fn get_json<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, MetaError>;

    /// Reads and decodes every key under `prefix`, sorted by key, with the read revision.
    async fn range_json<T: DeserializeOwned + Send>(
        &self,
        prefix: &str,
    ) -> Result<(Vec<Versioned<T>>, Revision), MetaError>;

    /// Encodes and writes a value; returns the new revision.
    async fn put_json<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError>;

    /// Writes only if the key's mod revision is `expected_mod_revision` (0 = absent).
    /// Returns `Some(new mod revision)` if this write won, `None` if someone else's did.
    async fn put_json_if<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expected_mod_revision: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Option<Revision>, MetaError>;
}

#[async_trait]
impl<S: MetaStore + ?Sized> MetaStoreJson for S {
    async fn get_json<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, MetaError> {
        self.get(key).await?.map(Versioned::decode).transpose()
    }

    async fn range_json<T: DeserializeOwned + Send>(
        &self,
        prefix: &str,
    ) -> Result<(Vec<Versioned<T>>, Revision), MetaError> {
        let range = self.range(prefix).await?;
        let items = range.kvs.into_iter().map(Versioned::decode).collect::<Result<_, _>>()?;
        Ok((items, range.revision))
    }

    async fn put_json<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError> {
        let bytes = encode(key, value)?;
        self.put(key, bytes, lease).await
    }

    async fn put_json_if<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expected_mod_revision: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Option<Revision>, MetaError> {
        let bytes = encode(key, value)?;
        let txn = Txn::new()
            .when(Compare::mod_revision(key, expected_mod_revision))
            .and_then(TxnOp::Put { key: key.to_string(), value: bytes, lease });
        let outcome = self.txn(txn).await?;
        Ok(outcome.succeeded.then_some(outcome.revision))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::Deserialize;

    use super::*;
    use crate::EmbeddedStore;
    use shale_core::clock::ManualClock;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Topic {
        id: u32,
        partitions: u32,
    }

    #[tokio::test]
    async fn json_round_trip_and_cas() {
        let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(Arc::new(ManualClock::new(0)));
        let t = Topic { id: 1, partitions: 3 };
        assert!(store.get_json::<Topic>("/t/a").await.unwrap().is_none());

        let won = store.put_json_if("/t/a", &t, 0, None).await.unwrap();
        let rev = won.expect("absent key: create wins");
        assert!(store.put_json_if("/t/a", &t, 0, None).await.unwrap().is_none(), "exists now");

        let got = store.get_json::<Topic>("/t/a").await.unwrap().unwrap();
        assert_eq!((got.value.clone(), got.mod_revision, got.version), (t, rev, 1));

        let t2 = Topic { id: 1, partitions: 6 };
        let rev2 = store.put_json_if("/t/a", &t2, got.mod_revision, None).await.unwrap().unwrap();
        assert!(rev2 > rev);
        assert!(store.put_json_if("/t/a", &t2, got.mod_revision, None).await.unwrap().is_none());

        store.put_json("/t/b", &Topic { id: 2, partitions: 1 }, None).await.unwrap();
        let (all, at) = store.range_json::<Topic>("/t/").await.unwrap();
        assert_eq!(all.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), ["/t/a", "/t/b"]);
        assert!(at >= rev2);
    }

    #[tokio::test]
    async fn undecodable_value_names_the_key() {
        let store = EmbeddedStore::in_memory(Arc::new(ManualClock::new(0)));
        store.put("/t/bad", Bytes::from_static(b"{not json"), None).await.unwrap();
        match store.get_json::<Topic>("/t/bad").await {
            Err(MetaError::BadValue { key, .. }) => assert_eq!(key, "/t/bad"),
            other => panic!("expected BadValue, got {other:?}"),
        }
    }
}
