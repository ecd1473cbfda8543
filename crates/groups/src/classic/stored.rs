//! What a classic group keeps in the store: `groups/{g}/classic`, one JSON record with
//! the generation, the protocol and every member with its subscription and assignment
//! (bytes as base64), written when a rebalance completes and when the group empties. Its
//! commits go through the one offset store (`crate::offsets`), fenced by this record's
//! revision so that a broker that lost the group to another coordinator cannot commit for it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::group::{ClassicGroup, ClassicMember, State};
use crate::records;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::keys::Keys;
use shale_meta::{Compare, MetaStore, Revision, Txn, TxnOp};

/// `groups/{g}/classic`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicRecord {
    /// The generation.
    pub generation: i32,
    /// The members' protocol type (`consumer`).
    pub protocol_type: String,
    /// The protocol chosen (the assignor).
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// Members by id.
    pub members: BTreeMap<String, StoredMember>,
}

/// A member as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    /// Static membership id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The principal that joined.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Protocols with their metadata, base64.
    pub protocols: Vec<(String, String)>,
    /// Its subscribed topics (as decoded at its join; absent in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Its assignment as the leader encoded it, base64.
    pub assignment: String,
    /// The same as topic partitions.
    pub assigned: BTreeMap<String, Vec<u32>>,
}

fn b64(b: &Bytes) -> String {
    B64.encode(b)
}

fn unb64(s: &str, what: &str) -> Result<Bytes, Error> {
    B64.decode(s).map(Bytes::from).map_err(|e| {
        Error::new(ErrorKind::Data, Reason::CorruptMetadata, format!("{what} is not base64: {e}"))
    })
}

/// The record of `group` and its mod revision, if stored.
pub(super) async fn read(
    meta: &dyn MetaStore,
    keys: &Keys,
    group: &str,
) -> Result<Option<(ClassicRecord, Revision)>, Error> {
    let Some(kv) = meta.get(&keys.group_classic(group)).await? else { return Ok(None) };
    let record = records::decode(&kv.value, &format!("classic group {group:?}"))?;
    Ok(Some((record, kv.mod_revision)))
}

/// The group as stored: stable with its members (each with a fresh session), or empty.
pub(super) async fn load(
    meta: &dyn MetaStore,
    keys: &Keys,
    group: &str,
    now: i64,
) -> Result<ClassicGroup, Error> {
    let mut g = ClassicGroup::new(group);
    let Some((r, rev)) = read(meta, keys, group).await? else { return Ok(g) };
    g.stored_rev = rev;
    g.generation = r.generation;
    if r.members.is_empty() {
        return Ok(g);
    }
    g.state = State::Stable;
    g.protocol_type = Some(r.protocol_type);
    g.protocol = Some(r.protocol);
    g.leader = Some(r.leader);
    for (id, m) in r.members {
        let what = |w: &str| format!("member {id:?} {w} of classic group {group:?}");
        let mut protocols = Vec::with_capacity(m.protocols.len());
        for (name, meta) in &m.protocols {
            protocols.push((name.clone(), unb64(meta, &what("metadata"))?));
        }
        let member = ClassicMember {
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            principal: m.principal,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols,
            topics: m.topics,
            assignment: unb64(&m.assignment, &what("assignment"))?,
            assigned: m.assigned,
            last_seen_ms: now,
            joined: true,
        };
        g.members.insert(id, member);
    }
    Ok(g)
}

/// Writes the group if nobody else did since this broker last read or wrote it.
pub(super) async fn store(
    meta: &dyn MetaStore,
    keys: &Keys,
    g: &mut ClassicGroup,
) -> Result<(), Error> {
    let record = ClassicRecord {
        generation: g.generation,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol: g.protocol.clone().unwrap_or_default(),
        leader: g.leader.clone().unwrap_or_default(),
        members: g
            .members
            .iter()
            .map(|(id, m)| {
                let stored = StoredMember {
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    principal: m.principal.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m.protocols.iter().map(|(n, b)| (n.clone(), b64(b))).collect(),
                    topics: m.topics.clone(),
                    assignment: b64(&m.assignment),
                    assigned: m.assigned.clone(),
                };
                (id.clone(), stored)
            })
            .collect(),
    };
    let key = keys.group_classic(&g.name);
    let txn = Txn::new()
        .when(Compare::mod_revision(key.clone(), g.stored_rev))
        .and_then(TxnOp::put(key, records::encode(&record)));
    let outcome = meta.txn(txn).await?;
    if !outcome.succeeded {
        return Err(Error::new(
            ErrorKind::Unavailable,
            Reason::NotCoordinator,
            format!("classic group {:?} was written by another coordinator; find it again", g.name),
        )
        .with("group", &g.name));
    }
    g.stored_rev = outcome.revision;
    Ok(())
}
