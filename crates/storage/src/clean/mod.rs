//! Log compaction (`cleanup.policy=compact`): the cleaner that keeps, per key, only the
//! latest record below a cleaning point, as Kafka's log cleaner does.
//!
//! - `offset_map`: the dirty section's keys and the offsets of their latest records, in
//!   bounded memory.
//! - `section`: mapping a dirty section and cleaning batches against the map (offsets
//!   kept, tombstones past `delete.retention.ms` removed, producers' last batches kept).
//! - `rewrite`: cleaned segments written beside the sealed segments they replace (grouped
//!   up to `segment.bytes`), durable.
//! - `pass`: one clean of one log: what is cleanable and dirty, the cleaning point, the
//!   rewrite and the swap ([`PartitionLog::clean`](crate::log::PartitionLog::clean)).
//!
//! Swapping cleaned segments in, and finishing or undoing a swap a stop interrupted, is the
//! log's (`log::swap`): its open does it. `swap_tests` cuts the power at every step of one.
//!
//! A tiered topic's remote log is compacted by the same rules, batch by batch, in
//! `tier::compactor`, which takes `section`'s mapping and cleaning.

#[cfg(test)]
mod log_tests;
mod offset_map;
mod pass;
mod rewrite;
mod section;
#[cfg(test)]
mod swap_tests;

pub use offset_map::OffsetMap;
pub use pass::{CleanHooks, CleanRequest, CleanStats, CompactionConfig, DirtyState};
pub(crate) use section::{Cleaned, Markers, Rules, clean_batch, map_batch};
