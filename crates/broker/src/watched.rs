//! A prefix of the metadata store kept in memory: read once, then followed by a watch, and
//! read again whenever the watch breaks. ACLs and quotas are held this way; each decodes
//! its own values and publishes its own view after every change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use shale_core::error::Error;
use shale_meta::{MetaStore, Revision, WatchEvent};

/// How long the follower waits before reading again after the watch broke; doubled on
/// each failed read, up to `RETRY_AT_MOST`.
const RETRY_AFTER: Duration = Duration::from_millis(500);
const RETRY_AT_MOST: Duration = Duration::from_secs(5);

/// Decodes one stored value; `None` skips it (the decoder says why in the log).
pub type Decode<T> = fn(key: &str, value: &[u8]) -> Option<T>;

/// Every decodable key under `prefix` and the revision of the read.
pub async fn read<T>(
    store: &dyn MetaStore,
    prefix: &str,
    decode: Decode<T>,
) -> Result<(BTreeMap<String, T>, Revision), Error> {
    let read = store.range(prefix).await?;
    let values =
        read.kvs.iter().filter_map(|kv| Some((kv.key.clone(), decode(&kv.key, &kv.value)?)));
    Ok((values.collect(), read.revision))
}

/// Keeps `known` (read at revision `from`) equal to what is stored under `prefix`, calling
/// `publish` after every change. Runs until its task is stopped.
pub async fn follow<T>(
    store: Arc<dyn MetaStore>,
    prefix: String,
    mut from: Revision,
    mut known: BTreeMap<String, T>,
    decode: Decode<T>,
    publish: impl Fn(&BTreeMap<String, T>) + Send,
) {
    let mut retry = RETRY_AFTER;
    loop {
        if let Ok(mut watch) = store.watch_prefix(&prefix, from + 1).await {
            while let Some(Ok(event)) = watch.next().await {
                match event {
                    WatchEvent::Put(kv) => {
                        from = kv.mod_revision;
                        match decode(&kv.key, &kv.value) {
                            Some(v) => known.insert(kv.key, v),
                            None => known.remove(&kv.key),
                        };
                    }
                    WatchEvent::Delete { key, mod_revision } => {
                        from = mod_revision;
                        known.remove(&key);
                    }
                    WatchEvent::Reset => break,
                }
                publish(&known);
            }
        }
        shale_core::clock::sleep(retry).await;
        match read(&*store, &prefix, decode).await {
            Ok((values, revision)) => {
                (known, from) = (values, revision);
                publish(&known);
                retry = RETRY_AFTER;
            }
            // Once per outage at warn: the store's own clients say more, and louder.
            Err(e) if retry == RETRY_AFTER => {
                tracing::warn!(error = %e, %prefix, "cannot read again; retrying");
                retry = (retry * 2).min(RETRY_AT_MOST);
            }
            Err(e) => {
                tracing::debug!(error = %e, %prefix, "cannot read again; retrying");
                retry = (retry * 2).min(RETRY_AT_MOST);
            }
        }
    }
}
