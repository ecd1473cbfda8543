//! Log compaction (`cleanup.policy=compact`): the cleaner that keeps, per key, only the
//! latest record below a cleaning point, as Kafka's log cleaner does.
//!
//! - `offset_map`: the dirty section's keys and the offsets of their latest records, in
//!   bounded memory.
//! - `section`: mapping a dirty section and cleaning batches against the map (offsets
//!   kept, tombstones past `delete.retention.ms` removed, producers' last batches kept).
//! - `rewrite`: cleaned segments written beside the sealed segments they replace (grouped
//!   up to `segment.bytes`), durable.
//!
//! Swapping cleaned segments in, and finishing or undoing a swap a stop interrupted, is the
//! log's (`log::swap`): its open does it. `swap_tests` cuts the power at every step of one.
//!
//! Being built (issue 39): choosing what to clean, the live log's state and caches around
//! a swap, and the remote compactor. Nothing here runs yet: `cleanup.policy=compact` is still refused.

#![allow(dead_code, reason = "the cleaner's parts land before the cleaner that runs them")]

mod offset_map;
mod rewrite;
mod section;
#[cfg(test)]
mod swap_tests;
