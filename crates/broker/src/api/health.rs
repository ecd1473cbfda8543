//! This broker's health as an operator reads it at a glance (the console's overview): what
//! it runs, what it hosts and leads, its disk, its journal, whether it is live and caught
//! up in the metadata store, and how its bucket requests fare.

use shale_core::error::Error;

use super::Api;
use crate::acl::{CLUSTER, Operation, ResourceType};

/// This broker's health.
#[derive(Debug, Clone)]
pub struct BrokerHealth {
    /// The broker's id.
    pub id: i32,
    /// The Shale version it runs.
    pub version: &'static str,
    /// Partitions it hosts a replica of, and leads.
    pub hosted: usize,
    /// Partitions it leads.
    pub led: usize,
    /// Bytes of its partitions' local logs.
    pub local_bytes: u64,
    /// Bytes free (for an unprivileged writer) and in all on the data directory's file
    /// system; none when it cannot be read.
    pub disk: Option<(u64, u64)>,
    /// The journal's bytes not yet trimmed and its size, when it has one.
    pub journal: Option<(u64, u64)>,
    /// Live in the metadata store with its view caught up, else why not.
    pub metadata: Result<(), String>,
    /// Requests to the bucket and those that failed, since the broker started; none
    /// without a bucket.
    pub bucket: Option<(u64, u64)>,
}

impl Api {
    /// This broker's health (Describe on the cluster).
    pub fn health(&self, who: &crate::auth::Identity) -> Result<BrokerHealth, Error> {
        let acl = self.broker.acl();
        acl.check(who, "DescribeCluster", Operation::Describe, ResourceType::Cluster, CLUSTER)?;
        let b = &self.broker;
        let hosted = b.hosted();
        let led = hosted.iter().filter(|p| p.is_leader()).count();
        let local_bytes = hosted.iter().map(|p| p.log().size_bytes()).sum();
        let disk = rustix::fs::statvfs(&b.settings().broker.data_dir).ok().map(|s| {
            (s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize))
        });
        let journal = b.log_resources().journal_stats().map(|j| (j.occupancy, j.capacity));
        let bucket = b.remote_reader().map(|reader| {
            let store = &reader.catalog().bucket().metrics;
            shale_storage::tier::metrics::Op::ALL.iter().fold((0, 0), |(r, e), op| {
                let c = store.get(*op);
                (r + c.requests, e + c.errors)
            })
        });
        Ok(BrokerHealth {
            id: b.id(),
            version: env!("CARGO_PKG_VERSION"),
            hosted: hosted.len(),
            led,
            local_bytes,
            disk,
            journal,
            metadata: b.check_serving().map_err(|e| e.message),
            bucket,
        })
    }
}
