//! A coordinator's handling of one heartbeat: join, leave or beat, then move the member
//! towards the group's target assignment, and persist what changed.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{self, Assignor, Tp};
use super::records::{self, MemberRecord};
use super::types::{Heartbeat, HeartbeatAnswer};
use super::{Coordinator, Dirty, Group, GroupHost, Member, consumer, unknown_member};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::names::validate_group;

impl Coordinator {
    /// Handles a heartbeat from `principal` on the group's coordinator (the caller checked
    /// it is this one, and that `principal` may read the group).
    pub async fn heartbeat(
        &self,
        b: &dyn GroupHost,
        req: Heartbeat,
        principal: &str,
    ) -> Result<HeartbeatAnswer, Error> {
        validate_group(&req.group)?;
        if req.kafka.is_some() {
            // A Kafka client finds the coordinator itself, and is told when it asked
            // another broker (Shale's gRPC front end forwards instead).
            let ours = super::coordinator_of(&req.group, &b.coordinator_candidates());
            if ours.is_none_or(|(id, _)| id != b.broker_id()) {
                return Err(super::not_coordinator(&req.group, b.broker_id()));
            }
        }
        if req.member_epoch == 0 {
            match req.kafka {
                // KIP-848's online upgrade: the classic group becomes a consumer group.
                Some(_) if !req.share => self.upgrade_classic(b, &req.group).await?,
                _ => self.check_not_classic(&req.group).await?,
            }
        }
        let mut guard = self.locked(b, &req.group).await?;
        let Some(g) = guard.as_mut() else { return Err(Error::internal("group slot empty")) };
        let mut dirty = Dirty::default();
        let result = self.apply_heartbeat(b, g, &req, principal, &mut dirty);
        // Validation errors change nothing; a removal for fencing does.
        let saved = self.save(&req.group, &mut guard, &dirty).await;
        let response = result?;
        saved?;
        if req.share {
            // Before the member hears of a partition, its share state starts where
            // `share.auto.offset.reset` says as of now: records written from here on are
            // the group's, however late the first fetch comes.
            self.init_share_partitions(b, &req.group, &response.assignment).await;
        }
        Ok(response)
    }

    /// Fails a join if the group id has members of Kafka's classic protocol.
    async fn check_not_classic(&self, group: &str) -> Result<(), Error> {
        let members = self.classic().describe(group).await?.map_or(0, |r| r.members.len());
        if members > 0 {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InconsistentGroupProtocol,
                format!(
                    "group {group:?} has {members} members of Kafka's classic group protocol; \
                     use another group id"
                ),
            )
            .with("group", group));
        }
        Ok(())
    }

    fn apply_heartbeat(
        &self,
        b: &dyn GroupHost,
        g: &mut Group,
        req: &Heartbeat,
        principal: &str,
        dirty: &mut Dirty,
    ) -> Result<HeartbeatAnswer, Error> {
        let now = b.now_ms();
        if let Some(m) = g.members.get(&req.member_id) {
            owned_by(m, &req.group, &req.member_id, principal)?;
        }
        if !g.members.is_empty() && g.record.share != req.share {
            return Err(other_kind(&req.group, g.record.share));
        }
        let member_id = match req.member_epoch {
            -1 => return Ok(leave(g, req, dirty)),
            -2 if req.kafka.is_some() => return consumer::leave_for_a_while(g, req, dirty),
            0 => self.join(g, req, principal, now, dirty)?,
            epoch => beat(g, req, epoch, now, dirty)?,
        };
        self.refresh_target(b, g, dirty);
        // Partitions freed by this member may unblock others; they pick them up on their
        // next heartbeat. This member moves towards its target now.
        self.reconcile(g, &member_id, now, dirty);
        let m = &g.members[&member_id];
        let (s, c) = (&self.settings, &g.configs);
        let interval = match (m.record.share, m.record.kafka) {
            (true, _) => c.share_heartbeat_interval_ms.unwrap_or(s.share_heartbeat_interval_ms),
            (false, true) => c.heartbeat_interval_ms.unwrap_or(s.consumer_heartbeat_interval_ms),
            (false, false) => s.heartbeat_interval_ms,
        };
        let session = g.session_timeout_ms(&m.record);
        Ok(HeartbeatAnswer {
            member_id: member_id.clone(),
            member_epoch: m.record.epoch,
            heartbeat_interval_ms: interval.min(session / 3).max(1),
            assignment: m.assigned.clone(),
            group_epoch: g.record.epoch,
        })
    }

    /// A new member (member epoch 0), or one rejoining under its id: it starts with nothing
    /// assigned, and the group's epoch moves.
    fn join(
        &self,
        g: &mut Group,
        req: &Heartbeat,
        principal: &str,
        now: i64,
        dirty: &mut Dirty,
    ) -> Result<String, Error> {
        let group = req.group.as_str();
        let record = match &req.kafka {
            Some(k) => {
                let session = match req.share {
                    true => self.settings.share_session_timeout_ms,
                    false => self.settings.consumer_session_timeout_ms,
                };
                let record = consumer::joining_record(req, k, principal, session)?;
                MemberRecord { share: req.share, ..record }
            }
            None => {
                if req.topics.is_empty() && req.topic_pattern.is_empty() {
                    return Err(Error::invalid(format!(
                        "joining group {group:?} needs topics or a topic pattern to subscribe to"
                    )));
                }
                MemberRecord {
                    client_id: req.client_id.clone(),
                    principal: principal.to_string(),
                    topics: consumer::sorted(&req.topics),
                    pattern: req.topic_pattern.clone(),
                    session_timeout_ms: self.session_timeout(req.session_timeout_ms)?,
                    epoch: 1,
                    ..MemberRecord::default()
                }
            }
        };
        if g.members.is_empty() {
            // Kafka's consumer protocol defaults to its `uniform` assignor.
            let name = match (&req.kafka, req.assignor.as_str()) {
                (Some(_), "") => "uniform",
                (_, name) => name,
            };
            g.record.assignor = match req.share {
                true => Assignor::Simple,
                false => Assignor::parse(name)?,
            };
            g.record.kafka = req.kafka.is_some();
            g.record.share = req.share;
        }
        let id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            validate_member_id(&req.member_id)?;
            req.member_id.clone()
        };
        if let Some(instance) = &record.instance_id
            && consumer::take_over(g, group, &id, instance, &record, now, dirty)?
        {
            return Ok(id);
        }
        let regex = consumer::compile(&record.regex)?;
        // A member rejoining under its id starts over (it dropped its partitions).
        g.members.remove(&id);
        g.members.insert(
            id.clone(),
            Member {
                record,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                last_seen_ms: now,
                regex,
            },
        );
        g.record.epoch += 1;
        dirty.state = true;
        dirty.members.insert(id.clone());
        Ok(id)
    }

    fn session_timeout(&self, asked: u32) -> Result<u32, Error> {
        let s = &self.settings;
        if asked == 0 {
            return Ok(s.session_timeout_ms);
        }
        if !(s.min_session_timeout_ms..=s.max_session_timeout_ms).contains(&asked) {
            return Err(Error::invalid(format!(
                "session_timeout_ms {asked} is outside the broker's range {}..={}",
                s.min_session_timeout_ms, s.max_session_timeout_ms
            ))
            .with("session_timeout_ms", asked));
        }
        Ok(asked)
    }

    /// Recomputes the target when the group epoch moved or a subscribed topic changed its
    /// partition count (which also bumps the epoch).
    pub(crate) fn refresh_target(&self, b: &dyn GroupHost, g: &mut Group, dirty: &mut Dirty) {
        let names = b.topic_names();
        let mut subscriptions: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut topics: BTreeMap<String, u32> = BTreeMap::new();
        for (id, m) in &g.members {
            let pattern = &m.record.pattern;
            let matched = |t: &&String| {
                (!pattern.is_empty() && records::glob_match(pattern, t))
                    || m.regex.as_ref().is_some_and(|r| r.is_match(t))
            };
            let subscribed: BTreeSet<String> =
                m.record.topics.iter().chain(names.iter().filter(matched)).cloned().collect();
            // A member is given only topics its principal may read (a pattern may match
            // others; explicitly named ones were checked at the heartbeat).
            let subscribed: BTreeSet<String> =
                subscribed.into_iter().filter(|t| b.may_read(&m.record.principal, t)).collect();
            for t in &subscribed {
                if let Ok(entry) = b.topic_record(t) {
                    topics.insert(t.clone(), entry.partitions);
                }
            }
            subscriptions.insert(id.as_str(), subscribed);
        }
        if topics != g.target_topics && g.target_epoch == g.record.epoch && !g.members.is_empty() {
            g.record.epoch += 1;
            dirty.state = true;
        }
        if g.target_epoch == g.record.epoch && topics == g.target_topics {
            return;
        }
        let current: BTreeMap<&str, BTreeSet<Tp>> = g
            .members
            .iter()
            .map(|(id, m)| (id.as_str(), m.assigned.union(&m.revoking).cloned().collect()))
            .collect();
        let member_racks: BTreeMap<&str, &str> = g
            .members
            .iter()
            .filter_map(|(id, m)| Some((id.as_str(), m.record.rack.as_deref()?)))
            .collect();
        // Rack-aware assignment asks where each partition's replicas are, only when some
        // member says where it is.
        let partition_racks = match member_racks.is_empty() {
            true => BTreeMap::new(),
            false => topics
                .iter()
                .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
                .map(|(t, p)| {
                    let racks = b.replica_racks(&t, p);
                    ((t, p), racks)
                })
                .collect(),
        };
        let input = assignor::Input {
            topics: topics.clone(),
            subscriptions,
            current,
            member_racks,
            partition_racks,
        };
        g.target = assignor::assign(g.record.assignor, &input);
        g.target_epoch = g.record.epoch;
        g.target_topics = topics;
    }

    /// Moves `member_id` towards its target: gives up what it should not own (pending its
    /// release) and takes what no other member owns or is releasing.
    pub(crate) fn reconcile(&self, g: &mut Group, member_id: &str, now: i64, dirty: &mut Dirty) {
        let desired = g.target.get(member_id).cloned().unwrap_or_default();
        let blocked: BTreeSet<Tp> = g
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.assigned.iter().chain(m.revoking.iter()).cloned())
            .collect();
        let Some(m) = g.members.get_mut(member_id) else { return };
        if m.record.share {
            // Share members own nothing exclusively: the target is theirs at once.
            if m.assigned != desired {
                m.assigned = desired;
                m.record.epoch += 1;
                dirty.members.insert(member_id.to_string());
            }
            return;
        }
        let mut changed = false;
        let revoke: Vec<Tp> = m.assigned.difference(&desired).cloned().collect();
        for tp in revoke {
            m.assigned.remove(&tp);
            m.revoking.insert(tp);
            if m.record.revoking_since_ms == 0 {
                m.record.revoking_since_ms = now;
            }
            changed = true;
        }
        for tp in desired.difference(&m.assigned).cloned().collect::<Vec<_>>() {
            if m.revoking.remove(&tp) || !blocked.contains(&tp) {
                m.assigned.insert(tp);
                changed = true;
            }
        }
        if m.revoking.is_empty() {
            m.record.revoking_since_ms = 0;
        }
        if changed {
            m.record.epoch += 1;
            dirty.members.insert(member_id.to_string());
        }
    }
}

/// GROUP_ID_NOT_FOUND for a heartbeat of the other kind than the group's (share or not),
/// as Kafka answers.
fn other_kind(group: &str, share: bool) -> Error {
    let (is, not) = match share {
        true => ("a share group", "ShareGroupHeartbeat"),
        false => ("not a share group", "ConsumerGroupHeartbeat or Shale's heartbeat"),
    };
    Error::new(
        ErrorKind::NotFound,
        Reason::GroupNotFound,
        format!("group {group:?} is {is}: its members use {not}; use another group id"),
    )
    .with("group", group)
}

/// A member leaving (member epoch -1): removed, its partitions free for the others.
fn leave(g: &mut Group, req: &Heartbeat, dirty: &mut Dirty) -> HeartbeatAnswer {
    if g.members.remove(&req.member_id).is_some() {
        g.record.epoch += 1;
        dirty.state = true;
        dirty.removed.insert(req.member_id.clone());
        g.downgrade(&req.group, dirty);
    }
    HeartbeatAnswer {
        member_id: req.member_id.clone(),
        member_epoch: -1,
        heartbeat_interval_ms: 0,
        assignment: BTreeSet::new(),
        group_epoch: g.record.epoch,
    }
}

/// A heartbeat of a current member at `epoch`: fenced if the epoch is not its own, else
/// its subscription and the partitions it says it still holds are taken in.
/// `PERMISSION_DENIED` unless `principal` is the one that joined as `m`.
fn owned_by(m: &Member, group: &str, member_id: &str, principal: &str) -> Result<(), Error> {
    if m.record.principal.is_empty() || m.record.principal == principal {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        Reason::AuthorizationFailed,
        format!(
            "member {member_id:?} of group {group:?} joined as {}, not {principal}",
            m.record.principal
        ),
    )
    .with("group", group)
    .with("member_id", member_id)
    .with("principal", principal))
}

fn beat(
    g: &mut Group,
    req: &Heartbeat,
    epoch: i32,
    now: i64,
    dirty: &mut Dirty,
) -> Result<String, Error> {
    let group = req.group.as_str();
    let Some(m) = g.members.get_mut(&req.member_id) else {
        return Err(unknown_member(group, &req.member_id));
    };
    let accepted = match &req.kafka {
        Some(_) => !m.record.away && consumer::epoch_accepted(m, epoch, req.owned.as_ref()),
        None => epoch <= m.record.epoch && epoch >= -1,
    };
    if !accepted {
        return Err(consumer::fenced(group, &req.member_id, epoch, m.record.epoch));
    }
    m.last_seen_ms = now;
    let changed_subscription = match &req.kafka {
        Some(k) => {
            let before = (m.record.rack.clone(), m.record.rebalance_timeout_ms);
            let changed = consumer::update(m, k)?;
            if changed || before != (m.record.rack.clone(), m.record.rebalance_timeout_ms) {
                dirty.members.insert(req.member_id.clone());
            }
            changed
        }
        None => {
            let topics = consumer::sorted(&req.topics);
            let changed = (!topics.is_empty() || !req.topic_pattern.is_empty())
                && (topics != m.record.topics || req.topic_pattern != m.record.pattern);
            if changed {
                m.record.topics = topics;
                m.record.pattern = req.topic_pattern.clone();
            }
            changed
        }
    };
    // Only a member that has applied its latest assignment says truly what it
    // still holds.
    if let Some(owned) = &req.owned
        && epoch == m.record.epoch
        && !m.revoking.is_empty()
    {
        let before = m.revoking.len();
        m.revoking.retain(|tp| owned.contains(tp));
        if m.revoking.len() != before {
            if m.revoking.is_empty() {
                m.record.revoking_since_ms = 0;
            }
            dirty.members.insert(req.member_id.clone());
        }
    }
    if changed_subscription {
        g.record.epoch += 1;
        dirty.state = true;
        dirty.members.insert(req.member_id.clone());
    }
    Ok(req.member_id.clone())
}

/// A member id a client made: at most 128 bytes, no control characters. Any other
/// character is kept (librdkafka's ids are base64, with `/` and `+`); the store's keys
/// escape it.
fn validate_member_id(id: &str) -> Result<(), Error> {
    if id.len() > 128 || id.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "member id {id:?} is invalid: at most 128 bytes, no control characters"
        ))
        .with("member_id", id));
    }
    Ok(())
}
