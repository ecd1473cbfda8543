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
//!
//! [`deferring_task`] also returns where the scope's pushes end in each journal
//! ([`JournalMarks`]): a request then waits once for its rounds ([`JournalMarks::told`])
//! before it looks at its partitions' acknowledgements, rather than once per partition.

use std::cell::RefCell;
use std::sync::Arc;

use smallvec::SmallVec;

use super::Journal;

/// A journal pushed to inside a scope: how far its pushes there go, and whether its
/// writer was woken for them.
struct Push {
    journal: Arc<Journal>,
    end: u64,
    kicked: bool,
}

/// The journals pushed to inside a scope; those whose writers are yet to be woken are
/// woken when the scope ends, however it ends (a request's future dropped half-way
/// included).
#[derive(Default)]
struct Noted(RefCell<SmallVec<[Push; 2]>>);

impl Drop for Noted {
    fn drop(&mut self) {
        for push in self.0.get_mut().drain(..).filter(|p| !p.kicked) {
            push.journal.kick();
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
/// on threads it hands work to) wake their writers when it ends or is dropped. Returns
/// its output and where its pushes end, per journal. Combinators, not `async` blocks: one
/// of those holds the future it awaits twice (moved in, then awaited), and a request's
/// future, boxed per request, is copied whole.
pub fn deferring_task<F: std::future::Future>(
    f: F,
) -> impl std::future::Future<Output = (F::Output, JournalMarks)> {
    use futures::FutureExt;
    // The closure runs inside the scope's poll, where `NOTED` is set.
    NOTED.scope(
        Noted::default(),
        f.map(|out| {
            let marks = NOTED.with(|n| {
                n.0.borrow().iter().map(|p| (p.journal.clone(), p.end)).collect::<SmallVec<_>>()
            });
            (out, JournalMarks(marks))
        }),
    )
}

/// Where a scope's pushes end in each journal it pushed to.
#[derive(Debug, Default)]
pub struct JournalMarks(SmallVec<[(Arc<Journal>, u64); 1]>);

impl JournalMarks {
    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves once each journal has synced the scope's frames and told their rounds'
    /// members on its writer's thread (or stopped). A log whose writer handed it to the
    /// notifier may not be told yet, and one appended to off the scope's task was not
    /// marked: what waits on a log's own signal after this still waits for those.
    pub async fn told(&self) {
        for (journal, end) in &self.0 {
            journal.told(*end).await;
        }
    }
}

/// Notes `journal`, whose push ends at `end`, for a wake-up at the end of the enclosing
/// scope; false outside one (the caller wakes the writer itself).
pub(super) fn defer(journal: &Arc<Journal>, end: u64) -> bool {
    NOTED
        .try_with(|n| {
            let mut noted = n.0.borrow_mut();
            match noted.iter_mut().find(|p| Arc::ptr_eq(&p.journal, journal)) {
                Some(p) => {
                    p.end = p.end.max(end);
                    // Woken already for earlier pushes: this one waits for a wake-up too.
                    p.kicked = false;
                }
                None => noted.push(Push { journal: journal.clone(), end, kicked: false }),
            }
        })
        .is_ok()
}

/// Wakes the writers of the pushes deferred so far in this scope: something in it waits
/// for them to be durable.
pub(crate) fn wake_deferred() {
    let _ = NOTED.try_with(|n| {
        for p in n.0.borrow_mut().iter_mut().filter(|p| !p.kicked) {
            p.kicked = true;
            p.journal.kick();
        }
    });
}
