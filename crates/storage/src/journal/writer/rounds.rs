//! The journal's writer thread (see the rules in `writer`): it takes the open round,
//! writes and syncs it, and tells its members (those whose logs are busy through the
//! notifier); at most a round every `round_interval` under load, woken by a push only
//! while it waits for frames.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use shale_core::clock::{Instant, monotonic_now};

use super::{Journal, Pending, ROUND_BYTES, Writer};
use crate::journal::round::Round;

impl Journal {
    /// Whether a push of `len` payload bytes would find room at once (a hint: the state of
    /// the last push or checkpoint), without the lock.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.free.load(Ordering::Relaxed) >= 2 * crate::journal::frame::footprint(len)
    }

    /// Notes the room the open round has left (under the lock).
    pub(super) fn note_free(&self, w: &Writer) {
        let limit = (w.trim + self.capacity).saturating_sub(self.copy_reserve());
        self.free.store(limit.saturating_sub(w.open.end()), Ordering::Relaxed);
    }

    /// Wakes the writer if it waits for frames: they wait in the open round.
    pub(crate) fn kick(&self) {
        if self.idle.load(Ordering::Acquire) {
            self.work.notify_one();
        }
    }

    /// The writer thread: takes the open round, writes and syncs it, hands its members to
    /// the notifier.
    pub(super) fn write_rounds(&self, acks: std::sync::mpsc::Sender<Vec<Pending>>) {
        let mut last: Option<Instant> = None;
        loop {
            let (round, members) = {
                let mut w = self.lock();
                loop {
                    while (w.open.is_empty() || self.held()) && !w.closed && w.failed.is_none() {
                        self.idle.store(true, Ordering::Release);
                        w = self.work.wait(w).unwrap_or_else(PoisonError::into_inner);
                    }
                    self.idle.store(false, Ordering::Release);
                    if w.failed.is_some() || (w.closed && w.open.is_empty()) {
                        return;
                    }
                    // Under load, rounds at most every `round_interval`: the frames that
                    // come meanwhile share the next fsync.
                    let now = monotonic_now();
                    let wait =
                        last.map(|t| (t + self.round_interval).saturating_duration_since(now));
                    match wait.filter(|wait| !wait.is_zero()) {
                        Some(wait) if w.open.bytes().len() < ROUND_BYTES && !w.closed => {
                            w = self
                                .work
                                .wait_timeout(w, wait)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        _ => break,
                    }
                }
                last = Some(monotonic_now());
                let spare = std::mem::take(&mut w.spare);
                let next = Round::reusing(w.open.end(), self.capacity, self.generation, spare);
                w.index.clear();
                let spare = self.spare_members.lock().unwrap_or_else(PoisonError::into_inner).pop();
                // A list the notifier has not given back yet is replaced by one sized
                // here, on the writer's thread, not grown by the pushes of the next round:
                // as large as the one it replaces ever grew (its capacity, not its length:
                // a round taken in the middle of a request's appends holds only some of
                // them, and a list of its length was grown by the rest, an allocation on
                // the request's thread once in a full run of the suite).
                let fresh = spare.unwrap_or_else(|| Vec::with_capacity(w.members.capacity()));
                let members = std::mem::replace(&mut w.members, fresh);
                (std::mem::replace(&mut w.open, next), members)
            };
            let started = monotonic_now();
            let written = self.write_round(&round);
            let nanos = started.elapsed().as_nanos() as u64;
            if let Err(reason) = written {
                self.fail(reason.clone());
                for p in members {
                    p.member.failed(&reason);
                }
                return;
            }
            let s = &self.stats;
            s.rounds.fetch_add(1, Ordering::Relaxed);
            s.bytes.fetch_add(round.bytes().len() as u64, Ordering::Relaxed);
            s.round_members.fetch_add(members.len() as u64, Ordering::Relaxed);
            s.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
            let end = round.end();
            {
                let mut w = self.lock();
                w.synced = end;
                w.spare = round.into_buf();
                let since = w.synced.saturating_sub(w.trim.max(w.aimed));
                if since > self.checkpoint_bytes && !w.checkpoint_asked {
                    w.checkpoint_asked = true;
                    self.checkpoint.notify_one();
                }
            }
            self.progress.notify_all();
            // The members whose logs are not busy are told here; the others (an append
            // may hold its log's lock while it waits for this thread) by the notifier. A
            // hand-off per round cost two context switches (the notifier's wake-up and
            // its sleep): 11-15% of the broker's at 1 to 1,000 partitions.
            // `told` says the writer is done with the round: those handed off are counted
            // first, so a waiter told can read how many it may still wait for.
            let mut members = members;
            members.retain(|p| !p.member.try_synced(p.end, p.generation));
            s.handed_off.fetch_add(members.len() as u64, Ordering::Relaxed);
            self.told.send_replace(end);
            if members.is_empty() {
                self.give_back(members);
                continue;
            }
            if acks.send(members).is_err() {
                return;
            }
        }
    }

    /// Writes and syncs one round (the stream table first, if it holds new binds).
    pub(super) fn write_round(&self, round: &Round) -> Result<(), String> {
        let table = |e: std::io::Error| {
            format!("cannot sync the journal's stream table {}: {e}", self.streams.path().display())
        };
        self.streams.sync().map_err(table)?;
        // `log.fsync_eio` fails every data fsync of the broker: the journal's too.
        if shale_core::failpoint::active("log.fsync_eio") {
            let e = std::io::Error::from_raw_os_error(5);
            return Err(format!("cannot sync the journal {}: {e}", self.path().display()));
        }
        self.file.write_at(round.start(), round.bytes()).map_err(|e| e.to_string())?;
        self.file.sync().map_err(|e| e.to_string())
    }
}
