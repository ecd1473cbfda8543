//! Following the log: apply every committed record of `_schemas`, in order, to this
//! broker's state, from wherever the log is read (this broker's replica of it).

use std::sync::Arc;

use super::Registry;

/// How long the follower waits after a failed read before it reads again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

impl Registry {
    /// Applies the log as it grows, until the broker closes or is gone.
    pub async fn follow(self: Arc<Self>) {
        while !self.host.is_gone() {
            let from = self.applied();
            match self.host.read(from).await {
                Ok(Some(read)) if read.next_offset > from => self.apply(read),
                Ok(_) => self.host.wait_for_more(from).await,
                Err(e) => {
                    tracing::warn!(error = %e, offset = from, "reading the schema registry's log failed; retrying");
                    // Not at once: an error that persists would otherwise be a busy loop.
                    shale_core::clock::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    fn apply(&self, read: super::LogRead) {
        {
            let mut store = self.store.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in &read.records {
                let Some(key) = r.key.as_deref() else {
                    tracing::warn!(
                        offset = r.offset,
                        "a record of the schema registry's log has no key; skipped"
                    );
                    continue;
                };
                if let Err(e) = store.apply(r.offset, key, r.value.as_deref()) {
                    tracing::warn!(offset = r.offset, error = %e, "a record of the schema registry's log was skipped");
                }
            }
        }
        self.applied.send_replace(read.next_offset);
    }
}
