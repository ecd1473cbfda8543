//! What a produce waits for once appended: the fsync of its records
//! (`flush.policy=always`), then the high watermark past them (the in-sync replicas),
//! failing retriably if the log is cut meanwhile (this broker stopped leading).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Partition;
use super::produce::{PendingAck, Produced};
use crate::metrics::observe_since;
use shale_core::acks::Acks;
use shale_core::clock::monotonic_now;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::topic_config::{FlushPolicyKind, TopicConfig};

/// How long an `acks=all` produce waits for the in-sync replicas.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Partition {
    /// The future that resolves once `acks` is satisfied for `produced`, appended when the
    /// log had seen `cuts` cuts. It fails, retriably, if the log is cut again before then:
    /// this broker stopped leading, and what now fills those offsets, durable or below the
    /// high watermark, is another leader's records, not these.
    pub(super) fn pending_ack(
        self: &Arc<Self>,
        produced: Produced,
        cuts: u64,
        acks: Acks,
        config: &TopicConfig,
        min_isr: usize,
    ) -> PendingAck {
        let always = config.flush_policy == FlushPolicyKind::Always;
        if always && acks != Acks::None {
            // The request's answer waits for its journal rounds first (`append_all`).
            super::produce::note_fsync_wait();
        }
        let upto = produced.last_offset + 1;
        // The errors are built only when they happen: at thousands of partitions an eager
        // message per append cost a few percent of the broker's CPU.
        let p = self.clone();
        match acks {
            Acks::All => Box::pin(async move {
                if always {
                    p.flushed(upto, cuts).await?;
                }
                // Our own part of the HW moved with the append or the fsync (the log's
                // offsets listener, `Partition::start`).
                let started = monotonic_now();
                // Reached already (no other replica, or they were quick): no subscription
                // and no timer, per partition per request.
                if p.repl.high_watermark() < upto && !p.cut_since(cuts) {
                    p.replicated(upto, cuts).await?;
                }
                p.kept(upto, cuts)?;
                observe_since(&p.stages.replicate, started);
                if p.repl.isr_len() < min_isr {
                    return Err(p.not_enough_replicas(
                        min_isr,
                        Reason::NotEnoughReplicasAfterAppend,
                        "were not acknowledged",
                    ));
                }
                Ok(produced)
            }),
            Acks::Leader if always => Box::pin(async move {
                p.flushed(upto, cuts).await?;
                Ok(produced)
            }),
            Acks::None if always => {
                // Nobody waits, but the data must still become durable (and so visible).
                // Detached: it ends with the flush.
                shale_core::task::spawn_detached(async move {
                    if let Err(e) = p.flushed(upto, cuts).await {
                        tracing::warn!(error = %e, "background flush failed");
                    }
                });
                Box::pin(std::future::ready(Ok(produced)))
            }
            _ => Box::pin(std::future::ready(Ok(produced))),
        }
    }

    /// Waits (at most [`REPLICATION_TIMEOUT`]) until the high watermark reaches `upto` or
    /// the log was cut since it had seen `cuts` cuts.
    async fn replicated(&self, upto: i64, cuts: u64) -> Result<(), Error> {
        let mut hw = self.repl.subscribe();
        let reached = hw.wait_for(|hw| *hw >= upto || self.cut_since(cuts));
        match tokio::time::timeout(REPLICATION_TIMEOUT, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::unavailable("partition closed; retry")),
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                Reason::RequestTimedOut,
                format!(
                    "{}-{}: the in-sync replicas did not all confirm offset {} within {} s; \
                     the write was not acknowledged (it may still appear)",
                    self.topic,
                    self.index,
                    upto - 1,
                    REPLICATION_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// Waits until every offset below `upto`, appended after `cuts` cuts, is fsynced.
    async fn flushed(&self, upto: i64, cuts: u64) -> Result<(), Error> {
        let started = monotonic_now();
        let flushed = self.log.flush_until(upto).await;
        // A cut explains a failure (the offsets are gone) and voids a success (the fsync
        // covered someone else's records).
        self.kept(upto, cuts)?;
        flushed?;
        observe_since(&self.stages.fsync, started);
        Ok(())
    }

    /// Whether the log was cut since it had seen `cuts` cuts.
    fn cut_since(&self, cuts: u64) -> bool {
        self.cuts.load(Ordering::Acquire) != cuts
    }

    /// Fails with a retriable NOT_LEADER error when the log was cut since the append of the
    /// records below `upto`.
    fn kept(&self, upto: i64, cuts: u64) -> Result<(), Error> {
        if !self.cut_since(cuts) {
            return Ok(());
        }
        let (leader, epoch) = self.leadership();
        Err(shale_core::error::not_leader(
            &self.topic,
            self.index,
            (leader, epoch),
            "",
            format!(
                "broker {} stopped leading {}-{} (leader {leader}, epoch {epoch}) and cut its \
                 log before offset {} was acknowledged; the write was not acknowledged: retry \
                 on the leader",
                self.broker_id,
                self.topic,
                self.index,
                upto - 1
            ),
        ))
    }

    pub(super) fn not_enough_replicas(&self, min_isr: usize, reason: Reason, what: &str) -> Error {
        let isr = self.repl.isr();
        Error::new(
            ErrorKind::Unavailable,
            reason,
            format!(
                "{}-{} has {} in-sync replica(s) {isr:?}, below min.insync.replicas {min_isr}; \
                 acks=all writes {what} until replicas catch up (retry)",
                self.topic,
                self.index,
                isr.len(),
            ),
        )
        .with("min_insync_replicas", min_isr)
    }
}
