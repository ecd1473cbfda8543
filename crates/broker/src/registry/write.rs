//! The one writer: the leader of `_schemas`/0. A write waits until this broker's state
//! has applied its whole (committed) log, decides against that state, takes new IDs from
//! the watermark, appends exactly at the log's end at its leader epoch, and answers once
//! its own state has applied what it wrote. Two brokers that both believe they lead
//! cannot both write: the append at an expected offset fails on a log that moved, and a
//! deposed leader's append never commits.

use std::time::Duration;

use shale_schema::registry::plan::{IdSource, RegisterPlan, Registration};
use shale_schema::registry::{Store, plan::Record};

use super::{Failure, Registry, WriterPosition};

/// How long a write waits for this broker's state to apply the log it writes after.
const CATCH_UP: Duration = Duration::from_secs(10);

/// What a write decided: records to append (none: nothing to write) and the answer.
#[derive(Debug)]
pub struct Decision<T> {
    /// The records, in order.
    pub records: Vec<Record>,
    /// The answer once they are applied.
    pub answer: T,
}

impl Registry {
    /// Runs a write: `decide` sees the state with the whole log applied and says what to
    /// append and what to answer.
    pub async fn write<T>(
        &self,
        decide: impl FnOnce(&Store) -> Result<Decision<T>, Failure>,
    ) -> Result<T, Failure> {
        let (_one, at) = self.begin().await?;
        let decision = self.read(decide)?;
        if decision.records.is_empty() {
            return Ok(decision.answer);
        }
        let last = self.host.append_at(at, decision.records).await?;
        self.caught_up(last + 1, CATCH_UP).await?;
        Ok(decision.answer)
    }

    /// Takes the write lock and this broker's position as the writer, once its state has
    /// applied the whole log.
    async fn begin(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, WriterPosition), Failure> {
        let one = self.writer.lock().await;
        self.host.ensure_log().await?;
        let at = self.host.writer_position().await?;
        self.caught_up(at.end, CATCH_UP).await?;
        Ok((one, at))
    }

    /// Registers a schema: its ID (an existing one when the subject already holds it).
    pub async fn register(&self, req: &Registration) -> Result<i32, Failure> {
        // Confluent's fast path, on any broker and in any mode: already registered.
        let parsed = self.read(|s| s.parse(req.schema_type, &req.schema, &req.references))?;
        if let Some(id) = self.read(|s| s.already_registered(req, &parsed)) {
            return Ok(id);
        }
        let (_one, at) = self.begin().await?;
        let (plan, floor) = self.read(|s| (s.plan_register(req), s.max_id()));
        let new = match plan? {
            RegisterPlan::Registered(id) => return Ok(id),
            RegisterPlan::Write(new) => new,
        };
        let id = match new.id {
            IdSource::Existing(id) => id,
            IdSource::Given(id) => {
                self.host.ids().raise(id).await?;
                id
            }
            IdSource::New => self.host.ids().next(floor).await?,
        };
        let last = self.host.append_at(at, new.records(id)).await?;
        self.caught_up(last + 1, CATCH_UP).await?;
        Ok(id)
    }
}
