//! Request, error and byte counts per bucket operation, kept by the gateway
//! ([`Bucket`](super::Bucket)) for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Operations counted separately (the `op` label of the `object_store_*` series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Single-request put (create-only or not).
    Put,
    /// Multipart upload: its start, each part and its completion are one request each.
    PutMultipart,
    /// Get: whole, ranged, or only the metadata.
    Get,
    /// Delete of one object.
    Delete,
    /// List, recursive or by folder.
    List,
    /// Server-side copy: Shale does not copy, but the series stays so dashboards keep it.
    Copy,
}

impl Op {
    /// Every operation, in display order.
    pub const ALL: [Op; 6] = [Op::Put, Op::PutMultipart, Op::Get, Op::Delete, Op::List, Op::Copy];

    /// Lowercase name (a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::PutMultipart => "put_multipart",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Copy => "copy",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

/// Counts of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Requests made (one per request the caller saw end, after its retries).
    pub requests: u64,
    /// Requests that ended in an error.
    pub errors: u64,
    /// Payload bytes sent (puts) or received (gets).
    pub bytes: u64,
}

/// The counters of one bucket.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    ops: [Counters; Op::ALL.len()],
}

impl StoreMetrics {
    /// Counts one request of `op`: its `bytes` when it succeeded, an error when not.
    pub(crate) fn record(&self, op: Op, ok: bool, bytes: u64) {
        let c = &self.ops[op as usize];
        c.requests.fetch_add(1, Ordering::Relaxed);
        if ok {
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
        } else {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A snapshot of one operation's counts.
    pub fn get(&self, op: Op) -> OpCounts {
        let c = &self.ops[op as usize];
        OpCounts {
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }
}
