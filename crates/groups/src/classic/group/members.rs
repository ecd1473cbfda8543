//! What members do between rebalances: sync (the leader's assignment), heartbeat, leave,
//! expire, and commit offsets.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::*;

impl ClassicGroup {
    /// Applies a sync.
    pub fn sync(&mut self, req: SyncRequest, now: i64) -> Result<SyncStep, Error> {
        self.check_member(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != self.generation {
            return Err(self.illegal_generation(req.generation));
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.last_seen_ms = now;
        }
        match self.state {
            State::Empty | State::PreparingRebalance => Err(self.rebalancing()),
            State::Stable => Ok(SyncStep::Now(self.synced(&req.member_id))),
            State::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(old) = self.sync_waiters.insert(req.member_id.clone(), tx) {
                    let _ = old.send(Err(self.rebalancing()));
                }
                if self.leader.as_deref() != Some(req.member_id.as_str()) {
                    return Ok(SyncStep::Wait(rx));
                }
                let mut given: HashMap<String, (Bytes, BTreeMap<String, Vec<u32>>)> =
                    req.assignments.into_iter().map(|(id, b, a)| (id, (b, a))).collect();
                for (id, m) in self.members.iter_mut() {
                    let (bytes, assigned) = given.remove(id).unwrap_or_default();
                    m.assignment = bytes;
                    m.assigned = assigned;
                }
                Ok(SyncStep::Persist(rx))
            }
        }
    }

    /// After the leader's assignment was persisted (or not): the group is stable and every
    /// waiting member gets its assignment, or, failing, everyone rejoins.
    pub fn synced_outcome(&mut self, persisted: Result<(), Error>, now: i64, bounds: Bounds) {
        match persisted {
            Ok(()) => {
                self.state = State::Stable;
                for (id, w) in std::mem::take(&mut self.sync_waiters) {
                    let _ = w.send(Ok(self.synced(&id)));
                }
            }
            Err(e) => {
                for (_, w) in self.sync_waiters.drain() {
                    let _ = w.send(Err(e.clone()));
                }
                self.prepare_rebalance(now, bounds, false);
            }
        }
    }

    fn synced(&self, member: &str) -> Synced {
        Synced {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            assignment: self.members.get(member).map(|m| m.assignment.clone()).unwrap_or_default(),
            partitions: None,
        }
    }

    /// A heartbeat: REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &mut self,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), Error> {
        self.check_member(member, instance)?;
        if let Some(m) = self.members.get_mut(member) {
            m.last_seen_ms = now;
        }
        match self.state {
            State::PreparingRebalance => Err(self.rebalancing()),
            _ if generation != self.generation => Err(self.illegal_generation(generation)),
            _ => Ok(()),
        }
    }

    /// Members leave (by member id, or by instance id for static members); a rebalance
    /// follows. The outcome per member, in order.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: i64,
        bounds: Bounds,
    ) -> Vec<Result<(), Error>> {
        let mut out = Vec::with_capacity(leaving.len());
        let mut any = false;
        for (member, instance) in leaving {
            let id = match (member.is_empty(), instance) {
                (true, Some(i)) => self
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_deref() == Some(i))
                    .map(|(id, _)| id.clone()),
                _ => Some(member.clone()),
            };
            let Some(id) = id.filter(|id| self.members.contains_key(id)) else {
                out.push(Err(self.unknown(member)));
                continue;
            };
            if let Err(e) = self.check_member(&id, instance.as_deref()) {
                out.push(Err(e));
                continue;
            }
            self.remove(&id);
            any = true;
            out.push(Ok(()));
        }
        if any {
            self.after_removal(now, bounds);
        }
        out
    }

    fn remove(&mut self, id: &str) {
        self.members.remove(id);
        if let Some(w) = self.join_waiters.remove(id) {
            let _ = w.send(Err(self.unknown(id)));
        }
        if let Some(w) = self.sync_waiters.remove(id) {
            let _ = w.send(Err(self.unknown(id)));
        }
    }

    /// After members left or expired: a rebalance, or an empty group.
    fn after_removal(&mut self, now: i64, bounds: Bounds) {
        match self.state {
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now, bounds, false)
            }
            State::PreparingRebalance => {
                self.maybe_complete_join(now);
            }
            State::Empty => {}
        }
        if self.members.is_empty() && self.state == State::PreparingRebalance {
            self.maybe_complete_join(self.deadline_ms.max(now));
        }
    }

    /// Removes members whose session ran out (those waiting in a join are kept: their
    /// join holds them), and, when the leader did not send the assignment within the
    /// rebalance timeout, those that did not sync; true if any was.
    pub fn expire(&mut self, now: i64, bounds: Bounds) -> bool {
        let stalled_sync = self.state == State::CompletingRebalance && now > self.deadline_ms;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(id, m)| {
                let timed_out = !self.join_waiters.contains_key(*id)
                    && now - m.last_seen_ms > i64::from(m.session_timeout_ms);
                // The leader never sent the assignment: whoever has not synced goes.
                timed_out || (stalled_sync && !self.sync_waiters.contains_key(*id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.name, member = %id, "removing a classic group member whose session timed out");
            self.remove(id);
        }
        if !expired.is_empty() {
            self.after_removal(now, bounds);
        }
        !expired.is_empty()
    }

    /// Whether an offset commit may be applied: a current member at the current generation
    /// (also while a rebalance prepares: its revoked partitions' last commits), or, with
    /// generation -1 and no member id, a client outside the group protocol while the group
    /// has no members.
    pub fn check_commit(
        &self,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), Error> {
        if generation < 0 && member.is_empty() {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(err(
                Reason::UnknownMemberId,
                ErrorKind::Fenced,
                format!(
                    "group {:?} has {} members; only they may commit",
                    self.name,
                    self.members.len()
                ),
                &self.name,
            ));
        }
        self.check_member(member, instance)?;
        if generation != self.generation {
            return Err(self.illegal_generation(generation));
        }
        if self.state == State::CompletingRebalance {
            return Err(self.rebalancing());
        }
        Ok(())
    }
}
