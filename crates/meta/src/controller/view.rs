//! What one reconcile pass of the controller sees: the plan (`plan.rs`) and the balancer
//! (`balance.rs`) both read it, and neither reads the other's module for it.

use std::collections::{BTreeMap, BTreeSet};

use crate::Revision;
use crate::topics::{BrokerRecord, PartitionState, TopicRecord};

/// A consistent-enough picture of the cluster for one reconcile pass.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Live brokers by id.
    pub brokers: BTreeMap<i32, BrokerRecord>,
    /// Every topic.
    pub topics: Vec<TopicRecord>,
    /// Partition states with the mod revision of their key.
    pub partitions: BTreeMap<(String, u32), (PartitionState, Revision)>,
    /// Brokers leaving for good (`decommissioned/{id}`), live or not.
    pub decommissioned: BTreeSet<i32>,
    /// Local bytes of partitions, as their leaders last published them (`loads/{id}`);
    /// absent for partitions not reported (yet).
    pub sizes: BTreeMap<(String, u32), u64>,
    /// Brokers fenced for a silence of their heartbeats, with their heartbeat key's mod
    /// revision: the controller plans without them while that revision stands.
    pub fenced: BTreeMap<i32, Revision>,
}
