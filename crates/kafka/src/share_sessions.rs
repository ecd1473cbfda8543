//! Share sessions (KIP-932): a share member's partitions on this broker and the epoch of
//! its next request, keyed by group and member. Epoch 0 opens one (replacing any the
//! member had), each later `ShareFetch` or `ShareAcknowledge` carries the next epoch
//! (wrapping past `i32::MAX` to 1), and -1 closes it. A session belongs to the connection
//! that opened it: when that connection closes or the session is closed, the member's
//! acquired records on those partitions are given back at once rather than when their
//! locks lapse. A session opened again (after an error) keeps the member's records: it may
//! still acknowledge them. At most `kafka.share_session_cache_slots` sessions are kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kafka_protocol::ResponseError;

/// A partition of a session: its topic's id and name, and its index.
pub(crate) type SharePart = (uuid::Uuid, String, u32);

/// One member's session.
#[derive(Debug, Clone)]
pub(crate) struct ShareSession {
    /// The epoch its next request must carry.
    pub next_epoch: i32,
    /// The partitions it fetches from.
    pub partitions: BTreeSet<SharePart>,
    /// The connection that opened it.
    pub connection: u64,
}

/// What a request did to its member's session.
#[derive(Debug)]
pub(crate) enum Step {
    /// Opened (or continued): fetch from these partitions.
    Open(BTreeSet<SharePart>),
    /// Closed: give back what the member holds of these partitions.
    Closed(BTreeSet<SharePart>),
}

/// The sessions of one listener.
#[derive(Debug)]
pub(crate) struct ShareSessions {
    slots: usize,
    inner: Mutex<HashMap<(String, String), ShareSession>>,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

impl ShareSessions {
    /// Room for `slots` sessions.
    pub(crate) fn new(slots: usize) -> ShareSessions {
        ShareSessions { slots, inner: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ShareSession>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens `member`'s session (epoch 0) on `connection` with `partitions`, replacing
    /// any it had.
    pub(crate) fn open(
        &self,
        group: &str,
        member: &str,
        connection: u64,
        partitions: BTreeSet<SharePart>,
    ) -> Result<(), ResponseError> {
        let mut sessions = self.lock();
        let key = (group.to_string(), member.to_string());
        sessions.remove(&key);
        if sessions.len() >= self.slots {
            return Err(ResponseError::ShareSessionLimitReached);
        }
        sessions.insert(key, ShareSession { next_epoch: 1, partitions, connection });
        Ok(())
    }

    /// Continues `member`'s session at `epoch` (> 0): adds `added`, drops `forgotten`, and
    /// answers the partitions to fetch from; or closes it (`epoch` -1) and answers its
    /// partitions. SHARE_SESSION_NOT_FOUND without a session, INVALID_SHARE_SESSION_EPOCH
    /// at another epoch.
    pub(crate) fn step(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        added: &[SharePart],
        forgotten: &[SharePart],
    ) -> Result<Step, ResponseError> {
        let mut sessions = self.lock();
        let key = (group.to_string(), member.to_string());
        let Some(s) = sessions.get_mut(&key) else {
            return Err(ResponseError::ShareSessionNotFound);
        };
        if epoch == -1 {
            let s = sessions.remove(&key).map(|s| s.partitions).unwrap_or_default();
            return Ok(Step::Closed(s));
        }
        if epoch != s.next_epoch {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        s.next_epoch = next(epoch);
        for p in forgotten {
            s.partitions.remove(p);
        }
        s.partitions.extend(added.iter().cloned());
        Ok(Step::Open(s.partitions.clone()))
    }

    /// Closes the sessions `connection` opened; answers each one's group, member and
    /// partitions.
    pub(crate) fn close_connection(
        &self,
        connection: u64,
    ) -> Vec<(String, String, BTreeSet<SharePart>)> {
        let mut sessions = self.lock();
        let mut out = Vec::new();
        sessions.retain(|(g, m), s| {
            if s.connection != connection {
                return true;
            }
            out.push((g.clone(), m.clone(), std::mem::take(&mut s.partitions)));
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: u32) -> SharePart {
        (uuid::Uuid::nil(), "t".into(), p)
    }

    #[test]
    fn epochs_advance_and_a_wrong_one_is_refused() {
        let s = ShareSessions::new(2);
        assert!(matches!(s.step("g", "m", 1, &[], &[]), Err(ResponseError::ShareSessionNotFound)));
        s.open("g", "m", 7, [part(0)].into()).unwrap();
        assert!(matches!(s.step("g", "m", 1, &[part(1)], &[]), Ok(Step::Open(p)) if p.len() == 2));
        assert!(matches!(
            s.step("g", "m", 1, &[], &[]),
            Err(ResponseError::InvalidShareSessionEpoch)
        ));
        assert!(matches!(s.step("g", "m", 2, &[], &[part(0)]), Ok(Step::Open(p)) if p.len() == 1));
        assert!(matches!(s.step("g", "m", -1, &[], &[]), Ok(Step::Closed(p)) if p.len() == 1));
        assert!(matches!(s.step("g", "m", 3, &[], &[]), Err(ResponseError::ShareSessionNotFound)));
        assert_eq!(next(i32::MAX), 1);
    }

    #[test]
    fn sessions_are_bounded_and_end_with_their_connection() {
        let s = ShareSessions::new(2);
        s.open("g", "a", 1, [part(0)].into()).unwrap();
        s.open("g", "b", 2, [part(0)].into()).unwrap();
        assert!(matches!(
            s.open("g", "c", 2, BTreeSet::new()),
            Err(ResponseError::ShareSessionLimitReached)
        ));
        // Reopening replaces.
        s.open("g", "a", 1, BTreeSet::new()).unwrap();
        let closed = s.close_connection(2);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].1, "b");
        assert!(s.close_connection(2).is_empty());
    }
}
