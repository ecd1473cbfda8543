use super::*;

const BOUNDS: Bounds = Bounds {
    min_session_timeout_ms: 1_000,
    max_session_timeout_ms: 60_000,
    initial_delay_ms: 3_000,
};

fn join_req(member: &str) -> JoinRequest {
    JoinRequest {
        topics: vec![],
        owned: Default::default(),
        member_id: member.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "127.0.0.1".into(),
        principal: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: true,
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("m{n}")
    }
}

/// Joins as a new member the KIP-394 way: refused with an id, then joins with it.
fn join_new(g: &mut ClassicGroup, id: &str, now: i64) -> oneshot::Receiver<Result<Joined, Error>> {
    let e = g.join(join_req(""), now, BOUNDS, || id.to_string()).unwrap_err();
    assert_eq!(e.reason, Reason::MemberIdRequired);
    assert_eq!(e.details["member_id"], id);
    match g.join(join_req(id), now, BOUNDS, || unreachable!()).unwrap() {
        JoinStep::Wait(rx) => rx,
        other => panic!("{other:?}"),
    }
}

fn done<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
    rx.try_recv().expect("answered")
}

/// Two members through a first rebalance to a stable group; returns it.
fn stable_pair() -> ClassicGroup {
    let mut g = ClassicGroup::new("g");
    let mut a = join_new(&mut g, "a", 0);
    let mut b = join_new(&mut g, "b", 100);
    assert!(!g.maybe_complete_join(1_000), "the initial delay holds the first rebalance");
    assert!(g.maybe_complete_join(3_100));
    let (ja, jb) = (done(&mut a).unwrap(), done(&mut b).unwrap());
    assert_eq!((ja.generation, jb.generation), (1, 1));
    assert_eq!(ja.leader, "a");
    assert_eq!(ja.members.len(), 2, "the leader gets the roster");
    assert!(jb.members.is_empty());
    let sync = |member: &str, assignments| SyncRequest {
        member_id: member.into(),
        instance_id: None,
        generation: 1,
        assignments,
    };
    let SyncStep::Wait(mut sb) = g.sync(sync("b", vec![]), 3_200).unwrap() else { panic!() };
    let plan = vec![
        ("a".to_string(), Bytes::from_static(b"A"), BTreeMap::from([("t".into(), vec![0])])),
        ("b".to_string(), Bytes::from_static(b"B"), BTreeMap::from([("t".into(), vec![1])])),
    ];
    let SyncStep::Persist(mut sa) = g.sync(sync("a", plan), 3_200).unwrap() else { panic!() };
    g.synced_outcome(Ok(()), 3_200, BOUNDS);
    assert_eq!(g.state, State::Stable);
    assert_eq!(done(&mut sa).unwrap().assignment, Bytes::from_static(b"A"));
    assert_eq!(done(&mut sb).unwrap().assignment, Bytes::from_static(b"B"));
    g
}

#[test]
fn members_join_sync_and_heartbeat_into_a_stable_group() {
    let mut g = stable_pair();
    g.heartbeat("a", None, 1, 4_000).unwrap();
    assert_eq!(g.heartbeat("a", None, 0, 4_000).unwrap_err().reason, Reason::IllegalGeneration);
    assert_eq!(g.heartbeat("x", None, 1, 4_000).unwrap_err().reason, Reason::UnknownMemberId);
    assert_eq!(g.members["b"].assigned["t"], vec![1]);
}

#[test]
fn a_leaving_member_starts_a_rebalance_the_others_rejoin() {
    let mut g = stable_pair();
    assert!(g.leave(&[("b".into(), None)], 5_000, BOUNDS)[0].is_ok());
    assert_eq!(g.state, State::PreparingRebalance);
    assert_eq!(g.heartbeat("a", None, 1, 5_001).unwrap_err().reason, Reason::RebalanceInProgress);
    let JoinStep::Wait(mut a) = g.join(join_req("a"), 5_002, BOUNDS, ids()).unwrap() else {
        panic!()
    };
    assert!(g.maybe_complete_join(5_002), "every member rejoined: no initial delay now");
    let joined = done(&mut a).unwrap();
    assert_eq!((joined.generation, joined.members.len()), (2, 1));
}

#[test]
fn a_silent_member_expires_and_one_that_does_not_rejoin_is_dropped_at_the_deadline() {
    let mut g = stable_pair();
    g.heartbeat("a", None, 1, 12_000).unwrap();
    assert!(g.expire(14_000, BOUNDS), "b was last heard at 3200 with a 10 s session");
    assert!(!g.members.contains_key("b"));
    assert_eq!(g.state, State::PreparingRebalance);
    // Now nobody rejoins: at the deadline the group empties.
    assert!(!g.maybe_complete_join(15_000));
    assert!(g.maybe_complete_join(14_000 + 30_000));
    assert_eq!((g.state, g.generation), (State::Empty, 2));
}

#[test]
fn a_static_member_back_under_a_new_id_keeps_its_assignment_without_a_rebalance() {
    let mut g = ClassicGroup::new("g");
    let static_req = |id: &str| JoinRequest { instance_id: Some("i1".into()), ..join_req(id) };
    let lead = JoinRequest { require_known_member_id: false, ..join_req("") };
    let JoinStep::Wait(mut a) = g.join(lead, 0, BOUNDS, || "lead".into()).unwrap() else {
        panic!()
    };
    let JoinStep::Wait(mut s) = g.join(static_req(""), 0, BOUNDS, || "s1".into()).unwrap() else {
        panic!()
    };
    assert!(g.maybe_complete_join(3_000));
    let (_, _) = (done(&mut a).unwrap(), done(&mut s).unwrap());
    let plan = vec![("s1".to_string(), Bytes::from_static(b"S"), BTreeMap::new())];
    let req = SyncRequest {
        member_id: "lead".into(),
        instance_id: None,
        generation: 1,
        assignments: plan,
    };
    let SyncStep::Persist(_) = g.sync(req, 3_000).unwrap() else { panic!() };
    g.synced_outcome(Ok(()), 3_000, BOUNDS);
    // The static member restarts: a join without member id, same instance id.
    match g.join(static_req(""), 4_000, BOUNDS, || "s2".into()).unwrap() {
        JoinStep::Now(j) => assert_eq!((j.generation, j.member_id.as_str()), (1, "s2")),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.state, State::Stable);
    let req = SyncRequest {
        member_id: "s2".into(),
        instance_id: Some("i1".into()),
        generation: 1,
        assignments: vec![],
    };
    let SyncStep::Now(synced) = g.sync(req, 4_000).unwrap() else { panic!() };
    assert_eq!(synced.assignment, Bytes::from_static(b"S"));
    let e = g.heartbeat("s1", Some("i1"), 1, 4_000).unwrap_err();
    assert_eq!(e.reason, Reason::FencedInstanceId);
}

#[test]
fn commits_are_fenced_by_member_and_generation() {
    let mut g = ClassicGroup::new("g");
    g.check_commit("", None, -1).unwrap();
    let g2 = stable_pair();
    assert_eq!(g2.check_commit("", None, -1).unwrap_err().reason, Reason::UnknownMemberId);
    assert_eq!(g2.check_commit("a", None, 0).unwrap_err().reason, Reason::IllegalGeneration);
    g2.check_commit("a", None, 1).unwrap();
    g = g2;
    g.leave(&[("b".into(), None)], 5_000, BOUNDS);
    // Preparing a rebalance: the old generation may still commit what it revokes.
    g.check_commit("a", None, 1).unwrap();
}

#[test]
fn a_member_with_another_protocol_type_or_no_shared_protocol_is_refused() {
    let mut g = stable_pair();
    let other_type = JoinRequest { protocol_type: "connect".into(), ..join_req("") };
    let e = g.join(other_type, 6_000, BOUNDS, ids()).unwrap_err();
    assert_eq!(e.reason, Reason::InconsistentGroupProtocol);
    let other = JoinRequest { protocols: vec![("sticky".into(), Bytes::new())], ..join_req("") };
    assert_eq!(
        g.join(other, 6_000, BOUNDS, ids()).unwrap_err().reason,
        Reason::InconsistentGroupProtocol
    );
    let bad_timeout = JoinRequest { session_timeout_ms: 10, ..join_req("") };
    assert_eq!(
        g.join(bad_timeout, 6_000, BOUNDS, ids()).unwrap_err().reason,
        Reason::InvalidSessionTimeout
    );
}

#[test]
fn a_leader_that_never_syncs_is_dropped_after_the_rebalance_timeout() {
    let mut g = ClassicGroup::new("g");
    let mut a = join_new(&mut g, "a", 0);
    let mut b = join_new(&mut g, "b", 0);
    assert!(g.maybe_complete_join(3_000));
    let (_, _) = (done(&mut a).unwrap(), done(&mut b).unwrap());
    let req = SyncRequest {
        member_id: "b".into(),
        instance_id: None,
        generation: 1,
        assignments: vec![],
    };
    let SyncStep::Wait(mut sb) = g.sync(req, 3_000).unwrap() else { panic!() };
    g.heartbeat("a", None, 1, 30_000).unwrap();
    g.heartbeat("b", None, 1, 30_000).unwrap();
    assert!(g.expire(33_001, BOUNDS), "30 s rebalance timeout after the join completed");
    assert!(!g.members.contains_key("a"));
    assert_eq!(done(&mut sb).unwrap_err().reason, Reason::RebalanceInProgress);
}
