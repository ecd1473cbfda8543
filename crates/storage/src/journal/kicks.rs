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

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::Journal;

thread_local! {
    /// Whether this thread is inside [`deferring`].
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    /// The journals pushed to inside it whose writers are yet to be woken (kept between
    /// scopes, empty: a request allocates nothing for it).
    static NOTED: RefCell<Vec<Arc<Journal>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the journal writers' wake-ups for its pushes deferred to its end (on
/// this thread; nested calls join the outermost).
pub fn deferring<R>(f: impl FnOnce() -> R) -> R {
    if DEFERRING.with(|d| d.replace(true)) {
        return f();
    }
    /// Wakes the writers noted, also when `f` panics.
    struct Kick;
    impl Drop for Kick {
        fn drop(&mut self) {
            DEFERRING.with(|d| d.set(false));
            wake_deferred();
        }
    }
    let _kick = Kick;
    f()
}

/// Notes `journal` for a wake-up at the end of the enclosing [`deferring`]; false outside
/// one (the caller wakes the writer itself).
pub(super) fn defer(journal: &Arc<Journal>) -> bool {
    if !DEFERRING.with(Cell::get) {
        return false;
    }
    NOTED.with(|n| {
        let mut noted = n.borrow_mut();
        if !noted.iter().any(|j| Arc::ptr_eq(j, journal)) {
            noted.push(journal.clone());
        }
    });
    true
}

/// Wakes the writers of the pushes deferred so far on this thread: something in the scope
/// waits for them to be durable, or the scope ends.
pub(crate) fn wake_deferred() {
    NOTED.with(|n| {
        // Taken out first: a wake-up never runs under the borrow.
        let mut noted = std::mem::take(&mut *n.borrow_mut());
        for journal in noted.drain(..) {
            journal.kick();
        }
        let mut kept = n.borrow_mut();
        if kept.is_empty() {
            *kept = noted;
        }
    });
}
