//! A broker's lifecycle: serving, draining, closing. Every background task is spawned
//! here, tracked (tokio-util's `TaskTracker`) and stopped through one `CancellationToken`,
//! so `close` cancels them all and waits until they are gone before it closes the
//! partitions, instead of aborting handles and hoping. A task stopped on its own (a
//! follower's fetcher) runs under a child token.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The broker's flags and background tasks.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    tracker: TaskTracker,
    cancel: CancellationToken,
    closing: AtomicBool,
    /// Controlled shutdown under way: produce is refused (retriable) while leadership
    /// moves away.
    draining: AtomicBool,
    /// Flips to true when the broker closes; ends long-polls.
    closed_tx: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            closed_tx: watch::channel(false).0,
        }
    }
}

impl Lifecycle {
    /// Runs `task` in the background until it ends or the broker closes.
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_until(self.cancel.clone(), task)
    }

    /// A token cancelled when the broker closes, or earlier by its holder.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Runs `task` until it ends or `token` is cancelled (see [`Lifecycle::child_token`]).
    pub(crate) fn spawn_until<F>(&self, token: CancellationToken, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[allow(clippy::disallowed_methods, reason = "the lifecycle is where tasks are spawned")]
        let handle = self.tracker.spawn(async move {
            token.run_until_cancelled(task).await;
        });
        handle
    }

    /// Whether the broker closes (or has closed).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether a drain started.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the broker draining; false if it was already.
    pub(crate) fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// Resolves to true once the broker is closing.
    pub(crate) fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed_tx.subscribe()
    }

    /// Starts closing: flags it, wakes long-polls and cancels every task. False if closing
    /// had started already.
    pub(crate) fn begin_close(&self) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.closed_tx.send_replace(true);
        self.cancel.cancel();
        self.tracker.close();
        true
    }

    /// Waits until every task has ended, at most `bound`; true if they all did. A task
    /// ends at its next await point after the cancellation; one stuck in blocking code is
    /// named by the caller's log, not waited for forever.
    pub(crate) async fn wait_for_tasks(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, self.tracker.wait()).await.is_ok()
    }

    /// Background tasks still running.
    pub(crate) fn running(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn closing_cancels_every_task_and_waits_for_it() {
        let life = Lifecycle::default();
        let ended = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let guard = DropCount(ended.clone());
            life.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        assert_eq!(life.running(), 3);
        assert!(life.begin_close());
        assert!(!life.begin_close(), "closing twice is a no-op");
        assert!(life.wait_for_tasks(Duration::from_secs(5)).await, "tasks did not end");
        assert_eq!(ended.load(Ordering::SeqCst), 3, "every task was dropped");
        assert_eq!(life.running(), 0);
        assert!(*life.closed_signal().borrow());
    }

    #[tokio::test]
    async fn a_child_token_stops_one_task_and_the_others_run_on() {
        let life = Lifecycle::default();
        let token = life.child_token();
        let one = life.spawn_until(token.clone(), std::future::pending());
        let other = life.spawn(std::future::pending());
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), one)
            .await
            .expect("the cancelled task did not end")
            .expect("the task panicked");
        assert!(!other.is_finished());
        life.begin_close();
        assert!(life.wait_for_tasks(Duration::from_secs(5)).await);
    }

    struct DropCount(Arc<AtomicUsize>);

    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
