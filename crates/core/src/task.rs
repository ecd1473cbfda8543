//! Where tasks are spawned outside a broker's lifecycle. `clippy.toml` disallows a bare
//! `tokio::spawn`: a broker's background work runs under its lifecycle (tracked, cancelled
//! and awaited on close), and everything else says here which of two kinds it is.
//!
//! - [`spawn_owned`]: the task belongs to a handle and stops when the handle is dropped
//!   (a consumer's per-partition fetch loop, a group member's heartbeat, a partition's
//!   high-watermark follower, a server's accept loop).
//! - [`spawn_detached`]: the task ends by itself and nobody needs to stop it; each call
//!   site says what bounds it (a read-ahead GET under its timeout, a linger timer, a flush
//!   nobody waits for, a sender that drains its queue once the queue closes).

use std::future::Future;

use tokio_util::task::AbortOnDropHandle;

/// A task that stops when this handle is dropped; awaiting it yields the task's output.
pub type OwnedTask<T> = AbortOnDropHandle<T>;

/// Runs `task` until it ends or the returned handle is dropped.
pub fn spawn_owned<F>(task: F) -> OwnedTask<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(clippy::disallowed_methods, reason = "this module is where tasks are spawned")]
    let handle = tokio::spawn(task);
    AbortOnDropHandle::new(handle)
}

/// Runs `task` to its end, owned by nobody. Only for work that ends by itself; say at the
/// call site what bounds it.
pub fn spawn_detached<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    #[allow(clippy::disallowed_methods, reason = "this module is where tasks are spawned")]
    tokio::spawn(task);
}

/// Lowers the calling thread's CPU priority to `nice` (Linux, where nice is per thread;
/// 0 leaves it): background work that should yield the CPU to the threads serving
/// produce and fetch (cold reads, the log cleaner). `what` names the thread in the
/// warning logged when the system refuses.
pub fn lower_thread_priority(nice: i32, what: &str) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::warn!(error = %e, nice, thread = what, "cannot lower a thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, what);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn dropping_the_handle_stops_an_owned_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = spawn_owned(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(task);
        // The sender lives in the task; it is dropped once the task is.
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the owned task was not stopped when its handle was dropped")
            .expect_err("the task cannot have sent");
    }

    #[tokio::test]
    async fn an_owned_task_yields_its_output() {
        let out = spawn_owned(async { 7 }).await.expect("the task panicked");
        assert_eq!(out, 7);
    }
}
