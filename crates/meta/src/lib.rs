//! The `MetaStore` seam: etcd-level primitives that membership, controller election,
//! partition state and offsets are written on once, for every backend.
//!
//! The trait mirrors etcd's v3 API so the `etcd-client` implementation maps 1:1: a global
//! revision bumped once per write transaction, per-key create/mod revision and version,
//! transactions that compare mod revisions or values, leases with a TTL, and watches by
//! prefix from a start revision. The embedded store implements the same semantics in
//! process for `shale standalone` and unit tests.
//!
//! # Layout
//! - this file: the trait, its request/response types, txn builders, request validation.
//! - `error`: `MetaError` and its mapping onto the public error kinds.
//! - `json`: typed JSON helpers (`get_json`, `put_json`, `put_json_if`) over any backend.
//! - `keys`: the key layout under `/shale/{cluster}/` and prefix helpers.
//! - `embedded`: `EmbeddedStore`, in process, persisted as a WAL plus snapshot.
//! - `etcd`: `EtcdStore`, on a real etcd cluster through `etcd-client`.
//! - `topics`: topic, partition-state and broker records on top of the trait.
//! - `heartbeat`: a broker's heartbeats, the short leader lease that fences a frozen broker.
//! - `membership`: a broker's lease-bound registration and proof of liveness.
//! - `watchdog`: every broker's watch over the heartbeats; it fences the silent ones.
//! - `controller`: controller election, partition placement and leader failover.
//!
//! Below: `shale-core` only (errors, the clock, the disk seam of the embedded store).

pub mod controller;
pub mod embedded;
mod error;
pub mod etcd;
pub mod heartbeat;
pub mod json;
pub mod keys;
pub mod membership;
#[cfg(test)]
mod testing;
pub mod topics;
pub mod watchdog;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::MetaError;
pub use etcd::{EtcdOptions, EtcdStore, EtcdTls};
pub use json::{MetaStoreJson, Versioned};
pub use keys::Keys;

/// A lease id; etcd assigns them, positive and never 0.
pub type LeaseId = i64;

/// A store revision: bumped once per write transaction that changes something.
pub type Revision = i64;

/// Checks a watch start revision (0 = from now; negative is invalid), for every backend.
pub fn validate_watch_start(start_revision: Revision) -> Result<(), MetaError> {
    if start_revision < 0 {
        return Err(MetaError::Invalid(format!(
            "watch start revision {start_revision} is negative; use 0 for \"from now\""
        )));
    }
    Ok(())
}

/// Most compares or ops per txn branch; etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// Largest request (keys plus values) in bytes; etcd's default `--max-request-bytes`.
pub const MAX_REQUEST_BYTES: usize = 1_572_864;

/// Longest lease TTL in seconds; etcd's `MaxLeaseTTL`.
pub const MAX_LEASE_TTL_SECS: u64 = 9_000_000_000;

/// One key with its value and revision metadata, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Revision of the put that created the key (since its last delete).
    pub create_revision: Revision,
    /// Revision of the last put to the key.
    pub mod_revision: Revision,
    /// Number of puts since the key was created; 1 after the first.
    pub version: i64,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

/// The result of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// Matching keys, sorted by key (byte order).
    pub kvs: Vec<KeyValue>,
    /// The store revision the read saw; watch from `revision + 1` to follow on from it.
    pub revision: Revision,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's mod revision equals `revision`; 0 means the key is absent.
    ModRevision {
        /// The key to check.
        key: String,
        /// Expected mod revision, 0 for absent.
        revision: Revision,
    },
    /// The key exists and its value equals `value` (false when absent, as in etcd).
    Value {
        /// The key to check.
        key: String,
        /// Expected value.
        value: Bytes,
    },
}

impl Compare {
    /// The key's mod revision equals `revision` (0 = absent).
    pub fn mod_revision(key: impl Into<String>, revision: Revision) -> Self {
        Compare::ModRevision { key: key.into(), revision }
    }

    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare::ModRevision { key: key.into(), revision: 0 }
    }

    /// The key exists with exactly this value.
    pub fn value(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Compare::Value { key: key.into(), value: value.into() }
    }

    /// The key this compare reads.
    pub fn key(&self) -> &str {
        match self {
            Compare::ModRevision { key, .. } | Compare::Value { key, .. } => key,
        }
    }
}

/// A write inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Sets a key, optionally bound to a lease.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
        /// Lease to bind the key to; it must exist.
        lease: Option<LeaseId>,
    },
    /// Deletes one key (a no-op when absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Deletes every key starting with `prefix` (which must not be empty).
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
}

impl TxnOp {
    /// A put without lease.
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        TxnOp::Put { key: key.into(), value: value.into(), lease: None }
    }

    /// A put bound to `lease`.
    pub fn put_with_lease(key: impl Into<String>, value: impl Into<Bytes>, lease: LeaseId) -> Self {
        TxnOp::Put { key: key.into(), value: value.into(), lease: Some(lease) }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<String>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    /// A delete of every key under `prefix`.
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        TxnOp::DeletePrefix { prefix: prefix.into() }
    }
}

/// An atomic transaction: if all compares hold, run `success`, else run `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compares: Vec<Compare>,
    /// Ops run when every compare holds.
    pub success: Vec<TxnOp>,
    /// Ops run otherwise.
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// An empty transaction (no compares: the success branch runs).
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds a condition.
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    /// Adds an op to the success branch.
    pub fn and_then(mut self, op: TxnOp) -> Self {
        self.success.push(op);
        self
    }

    /// Adds an op to the failure branch.
    pub fn or_else(mut self, op: TxnOp) -> Self {
        self.failure.push(op);
        self
    }
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    /// Store revision after the txn; the mod revision of its puts if it wrote anything.
    pub revision: Revision,
}

/// One change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated.
    Put(KeyValue),
    /// A key was deleted (explicitly, by prefix, or by its lease ending).
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the delete.
        mod_revision: Revision,
    },
    /// Events were lost (the watcher fell behind, or the connection dropped) and the stream
    /// ends: re-read with `range` and watch again from `RangeResult::revision + 1`.
    Reset,
}

impl WatchEvent {
    /// The revision of a put or delete; `None` for `Reset`.
    pub fn revision(&self) -> Option<Revision> {
        match self {
            WatchEvent::Put(kv) => Some(kv.mod_revision),
            WatchEvent::Delete { mod_revision, .. } => Some(*mod_revision),
            WatchEvent::Reset => None,
        }
    }

    /// The key of a put or delete; `None` for `Reset`.
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put(kv) => Some(&kv.key),
            WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Reset => None,
        }
    }
}

/// A watch: events in revision order (op order within one txn). It ends only after a
/// `Reset`, after an `Err` (`Compacted` first thing when the start revision is gone), or
/// with `Err(Unavailable)` when the store shuts down.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, MetaError>> + Send>>;

/// etcd-level metadata primitives; see the module docs.
#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetaError>;

    /// Reads every key starting with `prefix` ("" = all keys), sorted by key.
    async fn range(&self, prefix: &str) -> Result<RangeResult, MetaError>;

    /// Sets a key, optionally bound to an existing lease; returns the new revision.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError>;

    /// Deletes one key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, MetaError>;

    /// Deletes every key under a non-empty `prefix`; returns how many existed.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetaError>;

    /// Runs a transaction atomically (see [`validate_txn`] for the rules).
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError>;

    /// Grants a lease; the TTL is rounded up to whole seconds (etcd may raise it to its
    /// minimum TTL, so read the real TTL from `keep_alive`).
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError>;

    /// Refreshes a lease once and returns its TTL; `Err(LeaseNotFound)` once it expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, MetaError>;

    /// Ends a lease now and deletes its keys; `Err(LeaseNotFound)` if it is gone already.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError>;

    /// Watches keys under `prefix` ("" = all), delivering events with revision
    /// `>= start_revision` (0 = only changes after now). A start revision older than the
    /// store's history yields `Err(Compacted { revision })` and ends the stream.
    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Revision,
    ) -> Result<WatchStream, MetaError>;
}

/// Watches several prefixes from one revision as one stream: the events of each prefix in
/// order, the prefixes interleaved. A reader that only needs to know *that* something under
/// these prefixes changed (and then re-reads) subscribes to no other traffic this way; a
/// broken watch on any prefix ends or errs the merged stream like a single watch would.
pub async fn watch_prefixes(
    store: &dyn MetaStore,
    prefixes: &[String],
    start_revision: Revision,
) -> Result<WatchStream, MetaError> {
    let mut watches = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        watches.push(store.watch_prefix(prefix, start_revision).await?);
    }
    Ok(Box::pin(futures::stream::select_all(watches)))
}

/// Rejects an empty key, as etcd does.
pub fn validate_key(key: &str) -> Result<(), MetaError> {
    if key.is_empty() {
        return Err(MetaError::Invalid("empty key: every metadata key must be non-empty".into()));
    }
    Ok(())
}

/// Checks a transaction against etcd's rules, so code that works embedded works on etcd:
/// non-empty keys and prefixes, at most [`MAX_TXN_OPS`] compares or ops per branch, at
/// most [`MAX_REQUEST_BYTES`] in total, no key put twice in one branch, and no put to a
/// key that the same branch deletes.
pub fn validate_txn(txn: &Txn) -> Result<(), MetaError> {
    for (what, n) in [
        ("compares", txn.compares.len()),
        ("success ops", txn.success.len()),
        ("failure ops", txn.failure.len()),
    ] {
        if n > MAX_TXN_OPS {
            return Err(MetaError::Invalid(format!(
                "txn has {n} {what}, more than the limit of {MAX_TXN_OPS}; split it"
            )));
        }
    }
    let mut bytes = 0usize;
    for c in &txn.compares {
        validate_key(c.key())?;
        bytes += c.key().len();
        if let Compare::Value { value, .. } = c {
            bytes += value.len();
        }
    }
    for branch in [&txn.success, &txn.failure] {
        bytes += validate_branch(branch)?;
    }
    if bytes > MAX_REQUEST_BYTES {
        return Err(MetaError::Invalid(format!(
            "txn carries {bytes} bytes of keys and values, more than the limit of \
             {MAX_REQUEST_BYTES}; store large data in the bucket and a pointer here"
        )));
    }
    Ok(())
}

/// Validates one branch; returns its size in bytes.
fn validate_branch(ops: &[TxnOp]) -> Result<usize, MetaError> {
    let mut bytes = 0usize;
    let mut puts: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            TxnOp::Put { key, value, .. } => {
                validate_key(key)?;
                if puts.contains(&key.as_str()) {
                    return Err(MetaError::Invalid(format!(
                        "txn puts key {key:?} twice in one branch; etcd rejects duplicate keys"
                    )));
                }
                puts.push(key);
                bytes += key.len() + value.len();
            }
            TxnOp::Delete { key } => {
                validate_key(key)?;
                bytes += key.len();
            }
            TxnOp::DeletePrefix { prefix } => {
                if prefix.is_empty() {
                    return Err(MetaError::Invalid(
                        "delete with an empty prefix would delete every key; name a prefix".into(),
                    ));
                }
                bytes += prefix.len();
            }
        }
    }
    for op in ops {
        let overlaps = |put: &str| match op {
            TxnOp::Delete { key } => put == key,
            TxnOp::DeletePrefix { prefix } => put.starts_with(prefix.as_str()),
            TxnOp::Put { .. } => false,
        };
        if let Some(put) = puts.iter().find(|put| overlaps(put)) {
            return Err(MetaError::Invalid(format!(
                "txn both puts and deletes key {put:?} in one branch; etcd rejects overlapping ops"
            )));
        }
    }
    Ok(bytes)
}

/// Rounds a lease TTL up to whole seconds and checks etcd's bounds.
pub fn lease_ttl_secs(ttl: Duration) -> Result<u64, MetaError> {
    let secs = ttl.as_millis().div_ceil(1000);
    if secs == 0 || secs > u128::from(MAX_LEASE_TTL_SECS) {
        return Err(MetaError::Invalid(format!(
            "lease ttl {ttl:?} is out of range: use 1s to {MAX_LEASE_TTL_SECS}s"
        )));
    }
    Ok(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_txn_rejects_what_etcd_rejects() {
        let ok = Txn::new()
            .when(Compare::absent("/a"))
            .and_then(TxnOp::put("/a", "1"))
            .and_then(TxnOp::delete("/b"))
            .or_else(TxnOp::put("/a", "2"));
        assert!(validate_txn(&ok).is_ok());

        let dup = Txn::new().and_then(TxnOp::put("/a", "1")).and_then(TxnOp::put("/a", "2"));
        assert!(matches!(validate_txn(&dup), Err(MetaError::Invalid(m)) if m.contains("\"/a\"")));

        let overlap =
            Txn::new().and_then(TxnOp::put("/p/a", "1")).and_then(TxnOp::delete_prefix("/p/"));
        assert!(matches!(validate_txn(&overlap), Err(MetaError::Invalid(_))));

        let two_deletes =
            Txn::new().and_then(TxnOp::delete("/a")).and_then(TxnOp::delete_prefix("/"));
        assert!(validate_txn(&two_deletes).is_ok());

        assert!(validate_txn(&Txn::new().and_then(TxnOp::put("", "x"))).is_err());
        assert!(validate_txn(&Txn::new().and_then(TxnOp::delete_prefix(""))).is_err());
        assert!(validate_txn(&Txn::new().when(Compare::absent(""))).is_err());

        let mut many = Txn::new();
        for i in 0..=MAX_TXN_OPS {
            many = many.and_then(TxnOp::delete(format!("/k{i}")));
        }
        assert!(validate_txn(&many).is_err());

        let big = Txn::new().and_then(TxnOp::put("/big", vec![0u8; MAX_REQUEST_BYTES]));
        assert!(validate_txn(&big).is_err());
    }

    #[test]
    fn lease_ttl_rounds_up_to_seconds() {
        assert_eq!(lease_ttl_secs(Duration::from_millis(1)).ok(), Some(1));
        assert_eq!(lease_ttl_secs(Duration::from_millis(1500)).ok(), Some(2));
        assert_eq!(lease_ttl_secs(Duration::from_secs(10)).ok(), Some(10));
        assert!(lease_ttl_secs(Duration::ZERO).is_err());
    }
}
