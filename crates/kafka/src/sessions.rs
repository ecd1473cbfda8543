//! Incremental fetch sessions (KIP-227). A consumer that opens a session sends its full
//! partition list once; later fetches name only the partitions whose fetch position
//! changed (and those it stops fetching), and the answer carries only the partitions with
//! something new (records, a moved high watermark or log start, an error). Sessions are
//! kept for `kafka.fetch_session_cache_slots` at most; past that the least recently used
//! is evicted and its client, told FETCH_SESSION_ID_NOT_FOUND, starts a new one. A session
//! belongs to the principal that opened it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;

/// A partition as a session keeps it: where the client fetches from, and what it was last
/// told (to judge whether a partition has news).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached {
    /// The topic's id (fetches of v13+ name topics by id).
    pub topic_id: uuid::Uuid,
    /// Where the client fetches from next.
    pub fetch_offset: i64,
    /// Bytes at most for this partition per answer.
    pub max_bytes: i32,
    /// The leader epoch the client believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// The offsets the client was last told.
    pub told: Told,
}

/// A partition's offsets as an answer tells them: a partition whose offsets are as last
/// told, with no records and no error, has no news for an incremental answer (Kafka's
/// `mustRespond`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Told {
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset.
    pub last_stable_offset: i64,
    /// The log start offset.
    pub log_start_offset: i64,
}

impl Told {
    /// Nothing told yet.
    pub(crate) const NEVER: Told =
        Told { high_watermark: -1, last_stable_offset: -1, log_start_offset: -1 };
}

/// A (topic, partition) pair.
pub(crate) type Tp = (String, i32);

/// One session: its partitions in fetch order and the epoch its next request must carry.
#[derive(Debug)]
pub(crate) struct FetchSession {
    /// The session's id.
    pub id: i32,
    /// The epoch the next incremental request must carry.
    pub next_epoch: i32,
    /// Who opened it.
    principal: String,
    /// The partitions, in the order they are read.
    pub partitions: Vec<(Tp, Cached)>,
}

impl FetchSession {
    /// Adds a partition, or updates where it is fetched from.
    pub(crate) fn upsert(&mut self, tp: Tp, mut cached: Cached) {
        match self.partitions.iter_mut().find(|(t, _)| *t == tp) {
            Some((_, c)) => {
                c.fetch_offset = cached.fetch_offset;
                c.max_bytes = cached.max_bytes;
                c.current_leader_epoch = cached.current_leader_epoch;
                c.topic_id = cached.topic_id;
            }
            None => {
                cached.told = Told::NEVER;
                self.partitions.push((tp, cached));
            }
        }
    }

    /// Stops fetching a partition.
    pub(crate) fn forget(&mut self, tp: &Tp) {
        self.partitions.retain(|(t, _)| t != tp);
    }

    /// Records what the client was told of a partition; one that got records goes to the
    /// end of the order, so partitions behind it get their turn at the byte limits.
    pub(crate) fn told(&mut self, tp: &Tp, told: Told, had_records: bool) {
        let Some(i) = self.partitions.iter().position(|(t, _)| t == tp) else { return };
        self.partitions[i].1.told = told;
        if had_records {
            let p = self.partitions.remove(i);
            self.partitions.push(p);
        }
    }
}

/// The sessions of one listener.
#[derive(Debug)]
pub(crate) struct FetchSessions {
    slots: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, (Arc<Mutex<FetchSession>>, u64)>,
    /// Bumped at every use, to find the least recently used session.
    clock: u64,
}

/// How a fetch request relates to sessions.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A full fetch outside any session (id 0 in the answer).
    Sessionless,
    /// A full fetch that opened this session.
    Opened(Arc<Mutex<FetchSession>>),
    /// An incremental fetch in this session (already advanced to its next epoch).
    Incremental(Arc<Mutex<FetchSession>>),
}

impl FetchSessions {
    /// Room for `slots` sessions.
    pub(crate) fn new(slots: usize) -> FetchSessions {
        FetchSessions { slots, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a request with `session_id` and `epoch` from `principal` means (KIP-227):
    /// `(0, -1)` a sessionless full fetch, `(0, 0)` a full fetch opening a session,
    /// `(id, -1)` closes `id` and fetches in full without one, `(id, n > 0)` continues
    /// `id` at epoch `n`. An unknown session or a wrong epoch is the error to answer.
    pub(crate) fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        principal: &str,
    ) -> Result<Plan, ResponseError> {
        let mut inner = self.lock();
        match (session_id, epoch) {
            (0, -1) => Ok(Plan::Sessionless),
            (0, 0) => {
                if self.slots == 0 {
                    return Ok(Plan::Sessionless);
                }
                if inner.sessions.len() >= self.slots {
                    let oldest = inner.sessions.iter().min_by_key(|(_, (_, used))| *used);
                    if let Some(id) = oldest.map(|(id, _)| *id) {
                        inner.sessions.remove(&id);
                    }
                }
                let id = loop {
                    let id = rand::random::<i32>() & i32::MAX;
                    if id != 0 && !inner.sessions.contains_key(&id) {
                        break id;
                    }
                };
                let session = Arc::new(Mutex::new(FetchSession {
                    id,
                    next_epoch: 1,
                    principal: principal.to_string(),
                    partitions: Vec::new(),
                }));
                inner.clock += 1;
                let used = inner.clock;
                inner.sessions.insert(id, (session.clone(), used));
                Ok(Plan::Opened(session))
            }
            (id, -1) => {
                let owned = inner.sessions.get(&id).is_some_and(|(s, _)| owner(s) == principal);
                if owned {
                    inner.sessions.remove(&id);
                }
                Ok(Plan::Sessionless)
            }
            (id, epoch) if id > 0 && epoch > 0 => {
                inner.clock += 1;
                let used = inner.clock;
                let Some((session, last)) = inner.sessions.get_mut(&id) else {
                    return Err(ResponseError::FetchSessionIdNotFound);
                };
                if owner(session) != principal {
                    return Err(ResponseError::FetchSessionIdNotFound);
                }
                let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
                if s.next_epoch != epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                s.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                drop(s);
                *last = used;
                Ok(Plan::Incremental(session.clone()))
            }
            _ => Err(ResponseError::InvalidFetchSessionEpoch),
        }
    }

    /// Sessions kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().sessions.len()
    }
}

fn owner(session: &Mutex<FetchSession>) -> String {
    session.lock().unwrap_or_else(|p| p.into_inner()).principal.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(offset: i64) -> Cached {
        Cached {
            topic_id: uuid::Uuid::nil(),
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            told: Told::NEVER,
        }
    }

    #[test]
    fn a_session_moves_through_its_epochs_and_refuses_a_wrong_one() {
        let s = FetchSessions::new(10);
        let Plan::Opened(session) = s.plan(0, 0, "User:a").unwrap() else { panic!("not opened") };
        let id = session.lock().unwrap().id;
        assert!(id > 0);
        assert!(matches!(s.plan(id, 1, "User:a"), Ok(Plan::Incremental(_))));
        assert_eq!(s.plan(id, 1, "User:a").unwrap_err(), ResponseError::InvalidFetchSessionEpoch);
        assert!(matches!(s.plan(id, 2, "User:a"), Ok(Plan::Incremental(_))));
        assert_eq!(s.plan(id, 3, "User:b").unwrap_err(), ResponseError::FetchSessionIdNotFound);
        assert_eq!(s.plan(id + 1, 1, "User:a").unwrap_err(), ResponseError::FetchSessionIdNotFound);
        assert!(matches!(s.plan(id, -1, "User:a"), Ok(Plan::Sessionless)));
        assert_eq!(s.plan(id, 3, "User:a").unwrap_err(), ResponseError::FetchSessionIdNotFound);
        assert!(matches!(s.plan(0, -1, "User:a"), Ok(Plan::Sessionless)));
    }

    #[test]
    fn the_least_recently_used_session_is_evicted_past_the_slots() {
        let s = FetchSessions::new(2);
        let open = |s: &FetchSessions| match s.plan(0, 0, "u").unwrap() {
            Plan::Opened(x) => x.lock().unwrap().id,
            other => panic!("{other:?}"),
        };
        let (a, b) = (open(&s), open(&s));
        assert!(matches!(s.plan(a, 1, "u"), Ok(Plan::Incremental(_))));
        let c = open(&s);
        assert_eq!(s.len(), 2);
        assert_eq!(s.plan(b, 1, "u").unwrap_err(), ResponseError::FetchSessionIdNotFound);
        assert!(matches!(s.plan(a, 2, "u"), Ok(Plan::Incremental(_))));
        assert!(matches!(s.plan(c, 1, "u"), Ok(Plan::Incremental(_))));
    }

    #[test]
    fn partitions_with_records_go_to_the_back_of_the_order() {
        let mut f =
            FetchSession { id: 1, next_epoch: 1, principal: "u".into(), partitions: vec![] };
        for p in 0..3 {
            f.upsert(("t".into(), p), cached(0));
        }
        let told = Told { high_watermark: 10, last_stable_offset: 10, log_start_offset: 0 };
        f.told(&("t".into(), 0), told, true);
        f.told(&("t".into(), 1), told, false);
        let order: Vec<i32> = f.partitions.iter().map(|(tp, _)| tp.1).collect();
        assert_eq!(order, vec![1, 2, 0]);
        f.upsert(("t".into(), 1), cached(7));
        assert_eq!(f.partitions[0].1.fetch_offset, 7);
        assert_eq!(f.partitions[0].1.told.high_watermark, 10, "an update keeps what was told");
        f.forget(&("t".into(), 2));
        assert_eq!(f.partitions.len(), 2);
    }
}
