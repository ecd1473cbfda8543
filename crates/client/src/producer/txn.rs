//! The transactional producer (Kafka's `transactional.id`, transactions v2, KIP-890): the
//! records it sends between `begin` and `commit` — to any partitions, with the offsets of
//! the consumer they came from (`send_offsets`) — become visible to `read_committed`
//! readers together, or, after `abort`, never.
//!
//! `init` fences every older instance of the transactional id (the coordinator aborts its
//! open transaction, and its writes and commits are refused from then on). Each partition
//! joins the transaction with its first batch (the produce names the id); each end bumps
//! the producer's epoch, so every transaction's batches start at sequence 0. Retriable
//! failures are retried within `max_block`; a fencing failure ends the producer (another
//! instance took the id over); a record that finally failed lets the transaction only
//! abort.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Delivery, Producer, ProducerConfig, ProducerRecord};
use crate::{Client, RetryPolicy};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;

/// A transactional producer's settings.
#[derive(Debug, Clone)]
pub struct TransactionalConfig {
    /// `transactional.id`: the same id across restarts of one application instance, so a
    /// restart fences the instance it replaces.
    pub transactional_id: String,
    /// `transaction.timeout.ms`: a transaction open longer is aborted by the coordinator
    /// (at most the broker's `transaction.max.timeout.ms`).
    pub transaction_timeout: Duration,
    /// Batching, acks and retries (idempotence is implied).
    pub producer: ProducerConfig,
}

impl TransactionalConfig {
    /// Defaults (Kafka's 60 s timeout) for transactional id `id`.
    pub fn new(id: impl Into<String>) -> TransactionalConfig {
        TransactionalConfig {
            transactional_id: id.into(),
            transaction_timeout: Duration::from_secs(60),
            producer: ProducerConfig::default(),
        }
    }
}

/// The consumer whose offsets a transaction commits (Kafka's `ConsumerGroupMetadata`):
/// its group, and its member id and epoch there, which the group checks as it checks the
/// consumer's own commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// The group.
    pub group: String,
    /// The consumer's member id (empty for a consumer outside the group protocol, allowed
    /// only while the group has no members).
    pub member_id: String,
    /// The consumer's member epoch.
    pub member_epoch: i32,
}

/// What the producer's lanes and the transactional layer share.
#[derive(Debug)]
pub(super) struct Session {
    /// The transactional id, named by every produce.
    pub(super) id: Arc<str>,
    state: Mutex<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    /// The producer id and epoch, once `init` got them.
    producer: Option<(i64, i16)>,
    /// A transaction is open.
    open: bool,
    /// The open transaction sent something (a record or offsets): its end goes to the
    /// coordinator.
    sent: bool,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The producer id and epoch for a record of the open transaction.
    pub(super) fn producer_in_txn(&self) -> Result<(i64, i16), Error> {
        let mut st = self.lock();
        match (st.producer, st.open) {
            (Some(p), true) => {
                st.sent = true;
                Ok(p)
            }
            (Some(_), false) => Err(txn_state(&self.id, "no transaction is open: begin one first")),
            (None, _) => Err(txn_state(&self.id, "the producer is not initialized")),
        }
    }
}

fn txn_state(id: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        Reason::InvalidTxnState,
        format!("transactional id {id:?}: {why}"),
    )
    .with("transactional_id", id)
}

/// Sends records in transactions; see the module docs.
pub struct TransactionalProducer {
    producer: Producer,
    session: Arc<Session>,
    /// Records that had failed when the open transaction began.
    failed_before: usize,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer").field("session", &self.session).finish()
    }
}

impl TransactionalProducer {
    /// A producer with `config`'s transactional id over `client`: gets the id's producer
    /// id and a new epoch, which fences every older instance (the coordinator aborts its
    /// open transaction first; meanwhile this waits, within `max_block`).
    pub async fn init(
        client: Client,
        config: TransactionalConfig,
    ) -> Result<TransactionalProducer, Error> {
        let id = config.transactional_id.clone();
        if id.is_empty() {
            return Err(Error::invalid("a transactional id must not be empty"));
        }
        let timeout_ms = u32::try_from(config.transaction_timeout.as_millis()).map_err(|_| {
            Error::invalid(format!(
                "transaction timeout {:?} is longer than u32::MAX ms",
                config.transaction_timeout
            ))
        })?;
        let mut producer_config = config.producer;
        producer_config.idempotence = true;
        let session = Arc::new(Session { id: id.as_str().into(), state: Mutex::default() });
        let producer = Producer::with_session(client, producer_config, Some(session.clone()));
        let request = pb::InitTransactionsRequest {
            transactional_id: id,
            transaction_timeout_ms: timeout_ms,
        };
        let answer = producer
            .txn_call(request, |mut rpc, r| async move { rpc.init_transactions(r).await })
            .await?;
        session.lock().producer = Some((answer.producer_id, epoch(answer.producer_epoch)?));
        Ok(TransactionalProducer { producer, session, failed_before: 0 })
    }

    /// The producer id and epoch the next records are written at.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.session.lock().producer
    }

    /// Opens a transaction.
    pub fn begin(&mut self) -> Result<(), Error> {
        self.check_fenced()?;
        let mut st = self.session.lock();
        if st.open {
            return Err(txn_state(&self.session.id, "a transaction is open already"));
        }
        st.open = true;
        st.sent = false;
        self.failed_before = self.producer.inner.pending.failed.load(super::Ordering::Acquire);
        Ok(())
    }

    /// Queues a record of the open transaction; the [`Delivery`] resolves when its
    /// partition's leader has it (it stays invisible to `read_committed` readers until the
    /// commit).
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, Error> {
        self.check_fenced()?;
        self.producer.send(record).await
    }

    /// Commits `offsets` (topic, partition, next offset to read) of `group`'s consumer with
    /// the open transaction: they become the group's committed offsets if, and when, it
    /// commits.
    pub async fn send_offsets(
        &self,
        group: &GroupMetadata,
        offsets: &[(String, u32, i64)],
    ) -> Result<(), Error> {
        self.check_fenced()?;
        let (producer_id, producer_epoch) = self.session.producer_in_txn()?;
        let request = pb::SendOffsetsRequest {
            transactional_id: self.session.id.to_string(),
            producer_id,
            producer_epoch: i32::from(producer_epoch),
            group: group.group.clone(),
            member_id: group.member_id.clone(),
            member_epoch: group.member_epoch,
            offsets: offsets
                .iter()
                .map(|(topic, partition, offset)| pb::OffsetCommit {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        self.producer
            .txn_call(request, |mut rpc, r| async move { rpc.send_offsets(r).await })
            .await?;
        Ok(())
    }

    /// Commits the open transaction: waits for every record sent (any that failed makes
    /// this fail; then [`abort`](Self::abort)), then asks the coordinator, which answers
    /// once the commit is decided and durable.
    pub async fn commit(&mut self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Aborts the open transaction: waits for the records in flight, then asks the
    /// coordinator; none of the transaction's records or offsets will be visible.
    pub async fn abort(&mut self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), Error> {
        let id = self.session.id.clone();
        let (producer, sent) = {
            let st = self.session.lock();
            if !st.open {
                return Err(txn_state(&id, "no transaction is open"));
            }
            (st.producer, st.sent)
        };
        let (producer_id, producer_epoch) =
            producer.ok_or_else(|| txn_state(&id, "the producer is not initialized"))?;
        self.producer.flush().await?;
        self.check_fenced()?;
        let failed = self.producer.inner.pending.failed.load(super::Ordering::Acquire);
        if commit && failed > self.failed_before {
            return Err(txn_state(
                &id,
                &format!(
                    "{} record(s) of the transaction failed; it can only be aborted",
                    failed - self.failed_before
                ),
            ));
        }
        if sent {
            let request = pb::EndTransactionRequest {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch: i32::from(producer_epoch),
                commit,
            };
            let answer = self
                .producer
                .txn_call(request, |mut rpc, r| async move { rpc.end_transaction(r).await })
                .await?;
            let next = (answer.producer_id, epoch(answer.producer_epoch)?);
            self.producer.restart_sequences().await;
            self.session.lock().producer = Some(next);
        }
        self.session.lock().open = false;
        Ok(())
    }

    /// The fencing failure that ended this producer, if one did.
    fn check_fenced(&self) -> Result<(), Error> {
        match self.producer.inner.pending.fenced.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

fn epoch(wire: i32) -> Result<i16, Error> {
    i16::try_from(wire)
        .map_err(|_| Error::internal(format!("producer epoch {wire} is not an int16")))
}

type TxnRpc = pb::transactions_client::TransactionsClient<crate::Transport>;

impl Producer {
    /// A Transactions call, retried (at the next bootstrap broker each time) while it
    /// fails retriably, within `max_block`.
    async fn txn_call<Req, T, F, Fut>(&self, request: Req, call: F) -> Result<T, Error>
    where
        Req: Clone,
        F: Fn(TxnRpc, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let config = &self.inner.config;
        let wait = RetryPolicy {
            initial: config.retry_backoff,
            max: Duration::from_secs(1),
            total: config.max_block,
        };
        let client = &self.inner.client;
        wait.retry("the transaction coordinator", || {
            client.call_bootstrap(Client::txn_rpc, request.clone(), &call)
        })
        .await
    }
}
