//! Replication, in one place: each hosted partition's replication state (`state`: replicas,
//! ISR, follower positions, the high watermark), the leader's side (`leader`: answering
//! `ReplicaFetch` and `OffsetForLeaderEpoch`), the follower's side (`follower`: one fetcher
//! task per followed partition, truncating by leader epoch, then streaming from the
//! leader), and ISR maintenance on the leader (`isr`). The gRPC adapter is
//! `rpc/replica_service.rs`; `acks=all` waits on the high watermark kept in `state`.

pub(in crate::broker) mod follower;
pub(in crate::broker) mod isr;
pub(crate) mod leader;
mod state;

pub use state::Replication;
