//! Which broker this data directory belongs to: an id configured, or allocated once from
//! the metadata store and kept in `{data_dir}/broker.id`, so a restarted broker comes back
//! as itself and a data directory is never served under another broker's id.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::json::encode;
use shale_meta::{Compare, Keys, MetaStore, Txn, TxnOp, Versioned};

/// File in the data dir that records the broker id and cluster.
pub const ID_FILE: &str = "broker.id";
/// Allocated ids start here, leaving lower ids to operators (as Kafka does).
pub const FIRST_ALLOCATED_ID: i32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IdFile {
    version: u32,
    cluster: String,
    broker_id: i32,
}

fn read(data_dir: &Path) -> Result<Option<IdFile>, Error> {
    let path = data_dir.join(ID_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                Reason::CorruptBrokerId,
                format!("{} is not valid ({e}); fix or remove it", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write(data_dir: &Path, cluster: &str, broker_id: i32) -> Result<(), Error> {
    let file = IdFile { version: 1, cluster: cluster.to_string(), broker_id };
    let bytes = serde_json::to_vec(&file).map_err(|e| Error::internal(e.to_string()))?;
    shale_core::disk::write_atomic(&*shale_core::disk::process(), data_dir, ID_FILE, &bytes)
        .map_err(|e| Error::internal(format!("cannot write {}: {}", e.path.display(), e.source)))
}

/// The broker id for `data_dir`: the configured one (checked against the data dir), the
/// one recorded there, or a new one allocated through the metadata store.
pub async fn resolve(
    configured: Option<i32>,
    data_dir: &Path,
    cluster: &str,
    store: &Arc<dyn MetaStore>,
    keys: &Keys,
) -> Result<i32, Error> {
    let recorded = read(data_dir)?;
    if let Some(r) = &recorded
        && r.cluster != cluster
    {
        return Err(Error::invalid(format!(
            "data dir {} belongs to cluster {:?}, not {cluster:?}; use another data dir",
            data_dir.display(),
            r.cluster
        )));
    }
    let id = match (configured, recorded) {
        (Some(c), Some(r)) if c != r.broker_id => {
            return Err(Error::invalid(format!(
                "data dir {} belongs to broker {}, but this broker is configured as {c}; \
                 use broker id {} or another data dir",
                data_dir.display(),
                r.broker_id,
                r.broker_id
            )));
        }
        (Some(c), Some(_)) => return Ok(c),
        (Some(c), None) => c,
        (None, Some(r)) => return Ok(r.broker_id),
        (None, None) => allocate(store, keys).await?,
    };
    write(data_dir, cluster, id)?;
    Ok(id)
}

/// Takes the next id from the cluster's counter with a compare-and-swap.
async fn allocate(store: &Arc<dyn MetaStore>, keys: &Keys) -> Result<i32, Error> {
    let key = format!("{}broker_id_seq", keys.root());
    loop {
        let (next, revision) = match store.get(&key).await? {
            Some(kv) => {
                let rev = kv.mod_revision;
                (Versioned::<i32>::decode(kv)?.value, rev)
            }
            None => (FIRST_ALLOCATED_ID, 0),
        };
        let txn = Txn::new()
            .when(Compare::mod_revision(key.clone(), revision))
            .and_then(TxnOp::put(key.clone(), encode(&key, &(next + 1))?));
        if store.txn(txn).await?.succeeded {
            tracing::info!(broker = next, "allocated broker id");
            return Ok(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shale_meta::EmbeddedStore;

    #[tokio::test]
    async fn ids_are_allocated_once_and_checked() {
        let store: Arc<dyn MetaStore> = EmbeddedStore::in_memory(shale_core::clock::system());
        let keys = Keys::new("c").unwrap();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let id_a = resolve(None, a.path(), "c", &store, &keys).await.unwrap();
        let id_b = resolve(None, b.path(), "c", &store, &keys).await.unwrap();
        assert_eq!((id_a, id_b), (FIRST_ALLOCATED_ID, FIRST_ALLOCATED_ID + 1));
        assert_eq!(resolve(None, a.path(), "c", &store, &keys).await.unwrap(), id_a);
        let e = resolve(Some(7), a.path(), "c", &store, &keys).await.unwrap_err();
        assert!(e.message.contains("belongs to broker 1000"), "{}", e.message);
        let e = resolve(None, a.path(), "other", &store, &keys).await.unwrap_err();
        assert!(e.message.contains("cluster"), "{}", e.message);
        let c = tempfile::tempdir().unwrap();
        assert_eq!(resolve(Some(3), c.path(), "c", &store, &keys).await.unwrap(), 3);
        assert_eq!(resolve(None, c.path(), "c", &store, &keys).await.unwrap(), 3);
    }
}
