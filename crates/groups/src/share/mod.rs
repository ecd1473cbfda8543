//! Share groups (KIP-932): queues over partitions. A share group's members are a kind of
//! the one coordinator (`heartbeat.rs` with the `simple` assignor: members share
//! partitions); what is new lives here, on each partition's leader:
//!
//! - `state` — one share partition's records in flight: the start offset (SPSO), each
//!   record's state (available, acquired by a member under a lock, acknowledged,
//!   archived) and delivery count, bounded by the in-flight limit;
//! - `partitions` — the share partitions this broker leads, loaded from and stored to the
//!   metadata store before any change is confirmed, and fenced by leader epoch;
//! - `admin` — an administrator's view and changes of the start offsets.
//!
//! Reading the log, sessions and the wire are the broker's and the front ends'.

mod admin;
mod partitions;
mod state;

pub use admin::ShareOffset;
pub use partitions::{
    Held, Locked, SharePartitionKey, SharePartitions, ShareStateRecord, Slot, Start,
};
pub use state::{
    Ack, AckBatch, Acquired, ArchiveReason, Archived, InFlight, Limits, LogBatch, RecordState, Run,
};

/// What stored `runs` say is in flight (acquired records were stored as available).
pub(crate) fn in_flight(runs: &[Run]) -> crate::types::ShareInFlight {
    let mut out = crate::types::ShareInFlight::default();
    for r in runs {
        let n = r.last - r.first + 1;
        out.in_flight += n;
        match r.state {
            RecordState::Acknowledged => out.acknowledged += n,
            RecordState::Archived => out.archived += n,
            RecordState::Available | RecordState::Acquired => {
                out.max_deliveries = out.max_deliveries.max(r.deliveries)
            }
        }
    }
    out
}
