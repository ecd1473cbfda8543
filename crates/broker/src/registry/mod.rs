//! The schema registry's place in the broker: every broker keeps the registry's state in
//! memory by following the `_schemas` log (`follow`), answers reads from it, and the
//! leader of `_schemas`/0 is its one writer (`write`): it decides each change against a
//! state that has applied the whole log and appends exactly where that log ends, at its
//! leader epoch, so a deposed leader's write can neither land after another's nor commit;
//! new IDs come from a watermark in the metadata store raised before they are written
//! (`ids`), so no ID is handed out twice, even after compaction drops every record that
//! carried it. The rules themselves are `shale_schema::registry`'s; what the writer needs
//! of the broker (its log, its leadership, its metadata store) is [`RegistryHost`].

mod follow;
mod ids;
mod validate;
mod write;

use std::sync::RwLock;

use shale_core::error::Error;
use shale_core::record::DecodedRecord;
use shale_schema::registry::{RegistryError, Store};
use tokio::sync::watch;

pub use ids::IdWatermark;
pub use validate::Validated;
pub use write::Decision;

/// The registry's log.
pub const TOPIC: &str = "_schemas";

/// Committed records read from the log.
#[derive(Debug)]
pub struct LogRead {
    /// The records, in offset order.
    pub records: Vec<DecodedRecord>,
    /// The offset to read next.
    pub next_offset: i64,
}

/// Where the writer appends: this broker leads `_schemas`/0 at `epoch`, and its log,
/// wholly committed, ends at `end`.
#[derive(Debug, Clone, Copy)]
pub struct WriterPosition {
    /// The leader epoch to append at.
    pub epoch: i32,
    /// The log end offset: the next record lands here.
    pub end: i64,
}

/// Where this broker's copy of the registry's state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCopy {
    /// The log does not exist yet: the empty state is the registry's.
    NoLog,
    /// This broker holds a replica of the log and follows it.
    Here,
    /// The log exists, and this broker holds no replica of it: its state is not the
    /// registry's.
    Elsewhere,
}

/// What the registry needs of its broker.
#[async_trait::async_trait]
pub trait RegistryHost: Send + Sync + 'static {
    /// Whether the broker is gone or closing: the follower stops.
    fn is_gone(&self) -> bool;

    /// Where this broker's copy comes from.
    fn copy(&self) -> LogCopy;

    /// Creates the log if it does not exist (1 partition, compacted, replicated).
    async fn ensure_log(&self) -> Result<(), Error>;

    /// Committed records from `from`, when this broker holds a replica of the log; `None`
    /// when it does not (yet).
    async fn read(&self, from: i64) -> Result<Option<LogRead>, Error>;

    /// Returns when the log may have more than `from` committed, or after a while.
    async fn wait_for_more(&self, from: i64);

    /// Where the log ends, as far as this broker knows (-1 when it has not read the log
    /// yet): a copy that has applied up to here has seen every acknowledged change.
    fn log_end(&self) -> i64;

    /// The log's high watermark at its leader, asked now: a copy that has applied up to
    /// here has seen every change acknowledged before the call.
    async fn leader_end(&self) -> Result<i64, Error>;

    /// This broker's position as the writer, once its log is all committed; `NOT_LEADER`
    /// (naming the leader) when it does not lead the log.
    async fn writer_position(&self) -> Result<WriterPosition, Error>;

    /// Appends `records` so the first lands at exactly `at.end`, at leader epoch
    /// `at.epoch`, acknowledged by every in-sync replica; the last record's offset.
    async fn append_at(
        &self,
        at: WriterPosition,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<i64, Error>;

    /// The ID watermark in the metadata store.
    fn ids(&self) -> &IdWatermark;
}

/// Why a registry operation did not happen: the registry refused it (Confluent's 4xx),
/// or the log could not be read or written (5xx).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// Refused by the registry's rules.
    #[error(transparent)]
    Refused(#[from] RegistryError),
    /// The log, the leadership or the metadata store failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// The registry of one broker.
pub struct Registry {
    host: Box<dyn RegistryHost>,
    store: RwLock<Store>,
    /// The next offset to apply, for waiters.
    applied: watch::Sender<i64>,
    /// One write at a time on this broker.
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("applied", &*self.applied.borrow()).finish()
    }
}

impl Registry {
    /// A registry over `host`, its state empty until `follow` applies the log.
    pub fn new(host: Box<dyn RegistryHost>) -> Registry {
        Registry {
            host,
            store: RwLock::new(Store::default()),
            applied: watch::channel(0).0,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        let store = self.store.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&store)
    }

    /// `Ok` when this broker's state is the registry's to answer reads from: it follows a
    /// replica of the log here, or there is no log yet, or it follows the log from its
    /// leader and has caught up with it once read.
    pub fn readable(&self) -> Result<(), Error> {
        match self.host.copy() {
            LogCopy::NoLog | LogCopy::Here => Ok(()),
            LogCopy::Elsewhere
                if self.host.log_end() >= 0 && self.applied() >= self.host.log_end() =>
            {
                Ok(())
            }
            // Not the broker to ask yet: as a write to a broker that is not the writer.
            LogCopy::Elsewhere => Err(Error::new(
                shale_core::error::ErrorKind::NotLeader,
                shale_core::error::Reason::NotLeader,
                format!(
                    "this broker holds no replica of {TOPIC}, the schema registry's log, and \
                     has not caught up with its leader yet; ask a broker that holds one"
                ),
            )),
        }
    }

    /// `Ok` when this broker's state has read the log at least once (or there is none):
    /// what a record's schema ID may be checked against.
    fn started(&self) -> Result<(), Error> {
        match self.host.copy() {
            LogCopy::Elsewhere if self.host.log_end() < 0 => Err(Error::unavailable(format!(
                "this broker has not read {TOPIC}, the schema registry's log, from its leader \
                 yet, so it cannot check schema IDs; retry"
            ))),
            _ => Ok(()),
        }
    }

    /// The offset up to which this broker's state has applied the log.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Waits until the state has applied the log up to `offset` (exclusive), for at most
    /// `within`.
    pub async fn caught_up(&self, offset: i64, within: std::time::Duration) -> Result<(), Error> {
        let mut rx = self.applied.subscribe();
        let wait = rx.wait_for(|applied| *applied >= offset);
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::unavailable(format!(
                "the schema registry's state has applied {TOPIC} up to offset {} and not yet {offset} \
                 after {within:?}; retry",
                self.applied()
            ))),
        }
    }
}
