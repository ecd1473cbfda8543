//! Produce acknowledgement levels, shared by the client and the broker.

/// How many replicas must have the batch before the producer hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Answer once appended (not awaiting fsync).
    None,
    /// Answer once the leader has it durably (per `flush.policy`).
    Leader,
    /// Answer once every in-sync replica has it durably.
    All,
}
