//! Joining: new members (KIP-394 ids), static members back under a new id (KIP-345),
//! starting a rebalance, and completing it (a new generation, a protocol, a leader).

use tokio::sync::oneshot;

use super::*;

impl ClassicGroup {
    /// Applies a join at `now`; `new_id` names a new member.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: i64,
        bounds: Bounds,
        new_id: impl FnOnce() -> String,
    ) -> Result<JoinStep, Error> {
        let group = self.name.clone();
        if !(bounds.min_session_timeout_ms..=bounds.max_session_timeout_ms)
            .contains(&req.session_timeout_ms)
        {
            return Err(err(
                Reason::InvalidSessionTimeout,
                ErrorKind::Invalid,
                format!(
                    "session timeout {} ms is outside {}..={} ms (groups.min_session_timeout_ms, groups.max_session_timeout_ms)",
                    req.session_timeout_ms,
                    bounds.min_session_timeout_ms,
                    bounds.max_session_timeout_ms
                ),
                &group,
            ));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(err(
                Reason::InconsistentGroupProtocol,
                ErrorKind::Invalid,
                format!(
                    "a join of group {group:?} needs a protocol type and at least one protocol"
                ),
                &group,
            ));
        }
        if self.state != State::Empty {
            let same_type = self.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let common = self.common_protocols();
            let shares = req.protocols.iter().any(|(n, _)| common.contains(n));
            if !same_type || !shares {
                return Err(err(
                    Reason::InconsistentGroupProtocol,
                    ErrorKind::Invalid,
                    format!(
                        "group {group:?} runs protocol type {:?} with protocols {common:?}; this member offers {:?} {:?}",
                        self.protocol_type,
                        req.protocol_type,
                        req.protocols.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ),
                    &group,
                ));
            }
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            member_id = new_id();
            let replaces = req.instance_id.as_deref().and_then(|i| {
                self.members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_deref() == Some(i))
                    .map(|(id, _)| id.clone())
            });
            if let Some(old) = replaces {
                return Ok(self.replace_static(old, member_id, req, now));
            }
            if req.require_known_member_id && req.instance_id.is_none() {
                self.pending.insert(member_id.clone());
                return Err(err(
                    Reason::MemberIdRequired,
                    ErrorKind::Invalid,
                    format!("join group {group:?} again with member id {member_id:?}"),
                    &group,
                )
                .with("member_id", &member_id));
            }
        } else if !self.members.contains_key(&member_id) && !self.pending.remove(&member_id) {
            return Err(self.unknown(&member_id));
        } else if req.instance_id.is_some() {
            self.check_member_or_new(&member_id, req.instance_id.as_deref())?;
        }
        let existing = self.members.get(&member_id);
        let unchanged = existing.is_some_and(|m| m.protocols == req.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        if (self.state == State::Stable && unchanged && !is_leader)
            || (self.state == State::CompletingRebalance && unchanged)
        {
            // Rejoining with the same subscription (a lost answer, or a follower in a
            // stable group): this generation stands; the leader gets the roster again.
            if let Some(m) = self.members.get_mut(&member_id) {
                m.last_seen_ms = now;
            }
            let mut answer = self.joined_answer(&member_id);
            if is_leader {
                answer.members = self.roster();
            }
            return Ok(JoinStep::Now(answer));
        }
        let member = ClassicMember {
            instance_id: req.instance_id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            principal: req.principal,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms.max(req.session_timeout_ms),
            protocols: req.protocols,
            topics: req.topics,
            assignment: existing.map(|m| m.assignment.clone()).unwrap_or_default(),
            assigned: existing.map(|m| m.assigned.clone()).unwrap_or_default(),
            last_seen_ms: now,
            joined: true,
        };
        let was_empty = self.state == State::Empty;
        if was_empty {
            self.protocol_type = Some(req.protocol_type);
        }
        let new = self.members.insert(member_id.clone(), member).is_none();
        match self.state {
            State::Empty | State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now, bounds, was_empty);
                self.mark_joined(&member_id);
            }
            State::PreparingRebalance => {
                if new && self.delay_until_ms > now {
                    // Kafka's initial delay: each new member extends it, up to the timeout.
                    self.delay_until_ms =
                        (now + i64::from(bounds.initial_delay_ms)).min(self.deadline_ms);
                }
                let rejoin = i64::from(self.members[&member_id].rebalance_timeout_ms);
                self.deadline_ms = self.deadline_ms.max(now + rejoin).max(self.delay_until_ms);
            }
        }
        let (tx, rx) = oneshot::channel();
        if let Some(old) = self.join_waiters.insert(member_id, tx) {
            let _ = old.send(Err(self.rebalancing()));
        }
        Ok(JoinStep::Wait(rx))
    }

    /// An instance id a join names may be this member's own or unheld.
    fn check_member_or_new(&self, member: &str, instance: Option<&str>) -> Result<(), Error> {
        match self.check_member(member, instance) {
            Err(e) if e.reason == Reason::UnknownMemberId => Ok(()),
            other => other,
        }
    }

    /// A static member back under a new member id (KIP-345): the old id is fenced. In a
    /// stable group with the same subscription, and unless it led, it keeps its place and
    /// assignment without a rebalance.
    fn replace_static(&mut self, old: String, new: String, req: JoinRequest, now: i64) -> JoinStep {
        let Some(mut m) = self.members.remove(&old) else {
            return JoinStep::Now(self.joined_answer(&new));
        };
        if let Some(w) = self.join_waiters.remove(&old) {
            let _ = w.send(Err(self.fenced_instance(&req)));
        }
        if let Some(w) = self.sync_waiters.remove(&old) {
            let _ = w.send(Err(self.fenced_instance(&req)));
        }
        let same = m.protocols == req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(req.session_timeout_ms);
        m.protocols = req.protocols;
        m.last_seen_ms = now;
        let led = self.leader.as_deref() == Some(old.as_str());
        if led {
            self.leader = Some(new.clone());
        }
        m.joined = true;
        self.members.insert(new.clone(), m);
        if self.state == State::Stable && same && !led {
            return JoinStep::Now(self.joined_answer(&new));
        }
        // Otherwise it takes part in a rebalance like any rejoining member.
        let bounds = Bounds {
            min_session_timeout_ms: 0,
            max_session_timeout_ms: i32::MAX,
            initial_delay_ms: 0,
        };
        if self.state != State::PreparingRebalance {
            self.prepare_rebalance(now, bounds, false);
            self.mark_joined(&new);
        }
        let (tx, rx) = oneshot::channel();
        self.join_waiters.insert(new, tx);
        JoinStep::Wait(rx)
    }

    fn fenced_instance(&self, req: &JoinRequest) -> Error {
        err(
            Reason::FencedInstanceId,
            ErrorKind::Fenced,
            format!(
                "instance id {:?} of group {:?} joined again under another member id",
                req.instance_id, self.name
            ),
            &self.name,
        )
    }

    /// The join answer of a stable group for `member`.
    fn joined_answer(&self, member: &str) -> Joined {
        Joined {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member.to_string(),
            members: Vec::new(),
        }
    }

    /// Starts a rebalance: every member must join again; syncs in flight are told so.
    pub(super) fn prepare_rebalance(&mut self, now: i64, bounds: Bounds, initial: bool) {
        for (_, w) in self.sync_waiters.drain() {
            let _ = w.send(Err(err(
                Reason::RebalanceInProgress,
                ErrorKind::Fenced,
                format!("group {:?} started another rebalance; join again", self.name),
                &self.name,
            )));
        }
        for m in self.members.values_mut() {
            m.joined = false;
        }
        let timeout =
            self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0);
        self.state = State::PreparingRebalance;
        self.delay_until_ms = if initial { now + i64::from(bounds.initial_delay_ms) } else { now };
        self.deadline_ms = (now + timeout).max(self.delay_until_ms);
    }

    /// Marks `member` as rejoined (its join is being applied).
    pub fn mark_joined(&mut self, member: &str) {
        if let Some(m) = self.members.get_mut(member) {
            m.joined = true;
        }
    }

    /// Completes the rebalance under way if every member rejoined (and the initial delay
    /// passed) or the deadline passed, removing members that did not rejoin. True if it
    /// completed.
    pub fn maybe_complete_join(&mut self, now: i64) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all = self.members.values().all(|m| m.joined);
        if !(all && now >= self.delay_until_ms) && now < self.deadline_ms {
            return false;
        }
        let missing: Vec<String> =
            self.members.iter().filter(|(_, m)| !m.joined).map(|(id, _)| id.clone()).collect();
        for id in missing {
            tracing::info!(group = %self.name, member = %id, "removing a classic group member that did not rejoin the rebalance in time");
            self.members.remove(&id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return true;
        }
        self.protocol = self.choose_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = State::CompletingRebalance;
        // The leader has until then to send the assignment (Kafka's pending-sync timeout).
        let timeout = self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max();
        self.deadline_ms = now + timeout.unwrap_or(0);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster = self.roster();
        for (id, w) in self.join_waiters.drain() {
            let members = if id == leader { roster.clone() } else { Vec::new() };
            let _ = w.send(Ok(Joined {
                generation: self.generation,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                protocol: protocol.clone(),
                leader: leader.clone(),
                member_id: id,
                members,
            }));
        }
        true
    }
}
