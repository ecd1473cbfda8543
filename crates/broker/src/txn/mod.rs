//! Transactions (Kafka's exactly-once: KIP-98, with KIP-890's transactions v2): what a
//! transactional id's coordinator decides.
//!
//! - `coordinator`: the coordinator of the ids a broker wins: decisions stored before
//!   answers, markers written and transactions completed (`TxnHost`: what it needs of its
//!   broker); `coordinator/sweep`: what it decides on its own (recovery after a
//!   coordinator's death, timeouts, an operator's abort) and the cluster-wide listing.
//! - `offsets`: offsets committed inside a transaction, pending until it ends.
//! - `state`: a transactional id's durable record and the pure rules that move it
//!   (InitProducerId, adding partitions and offsets, EndTxn, timeouts, completion).
//! - `store`: the records in the metadata store (`txns/{id}`), written with a compare on
//!   their revision; a coordinator's claim of an id.
//!
//! The partitions' side — open transactions, markers and the last stable offset — is in
//! `broker/producers/`.

pub mod coordinator;
pub mod offsets;
pub mod state;
pub mod store;

#[cfg(test)]
mod coordinator_tests;
#[cfg(test)]
mod state_tests;
