//! Deferred wake-ups of the journals' writers. A push wakes its journal's writer, which
//! takes the open round at once: a request appending to 1,000 partitions one after the
//! other would otherwise have the writer sync its first few frames, then the next few,
//! thousands of rounds a second of a few partitions each, with a wake-up of the writer,
//! of the notifier and of the waiting task per round. Inside [`deferring`] a push only
//! notes its journal, and the writers are woken once, when the request's appends are all
//! in: one round for the request.
//!
//! A wait for the journal inside the scope (a cut's frame, a roll's catch-up, a push
//! waiting for room, an acknowledgement awaited there: a transaction's own write) wakes the
//! writers first ([`wake_deferred`], `Journal::kick`), so nothing waits on a round nobody
//! will take.

use std::cell::RefCell;
use std::sync::Arc;

use smallvec::SmallVec;

use super::Journal;

/// The journals pushed to inside a scope whose writers are yet to be woken; woken when
/// the scope ends, however it ends (a request's future dropped half-way included).
#[derive(Default)]
struct Noted(RefCell<SmallVec<[Arc<Journal>; 2]>>);

impl Drop for Noted {
    fn drop(&mut self) {
        for journal in self.0.get_mut().drain(..) {
            journal.kick();
        }
    }
}

tokio::task_local! {
    /// Set inside [`deferring`] and [`deferring_task`]: per task, so that a request's
    /// appends are noted wherever its task runs, and another task's are not.
    static NOTED: Noted;
}

/// Runs `f` with the journal writers' wake-ups for its pushes deferred to its end.
pub fn deferring<R>(f: impl FnOnce() -> R) -> R {
    NOTED.sync_scope(Noted::default(), f)
}

/// [`deferring`] for a future: the pushes made while it runs (on the task polling it, not
/// on threads it hands work to) wake their writers when it ends or is dropped. A plain
/// function, not an `async fn`: one of those would hold `f` twice (its argument, then the
/// scope it is moved into), and a request's future, boxed per request, is copied whole.
pub fn deferring_task<F: std::future::Future>(
    f: F,
) -> impl std::future::Future<Output = F::Output> {
    NOTED.scope(Noted::default(), f)
}

/// Notes `journal` for a wake-up at the end of the enclosing scope; false outside one
/// (the caller wakes the writer itself).
pub(super) fn defer(journal: &Arc<Journal>) -> bool {
    NOTED
        .try_with(|n| {
            let mut noted = n.0.borrow_mut();
            if !noted.iter().any(|j| Arc::ptr_eq(j, journal)) {
                noted.push(journal.clone());
            }
        })
        .is_ok()
}

/// Wakes the writers of the pushes deferred so far in this scope: something in it waits
/// for them to be durable.
pub(crate) fn wake_deferred() {
    let noted = NOTED.try_with(|n| std::mem::take(&mut *n.0.borrow_mut()));
    for journal in noted.unwrap_or_default() {
        journal.kick();
    }
}
