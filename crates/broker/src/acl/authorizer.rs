//! The broker's authorizer: the cluster's bindings cached in memory and kept fresh by a
//! watch on `acls/`, super-users from settings, and the per-request check that answers
//! `PERMISSION_DENIED` (and writes an audit event) when the bindings say no.
//!
//! It also tags producer ids with the principal they were issued to, so that one client
//! cannot write batches under another's producer id (which would make the broker drop the
//! other's batches as duplicates): an id is `counter << 32 | tag`, the tag an HMAC of the
//! principal and the counter under a secret the brokers share through the store.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{AclBinding, AclFilter, Acls, Operation, ResourceType};
use crate::audit;
use crate::auth::{Identity, Principal};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::batch::ATTR_TRANSACTIONAL;
use shale_meta::{Compare, Keys, MetaStore, Revision, Txn, TxnOp};

/// `[acl]`: authorization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AclSettings {
    /// Check every request against the cluster's ACLs. Unset: on exactly when
    /// `auth.require` is (a cluster that authenticates its callers also authorizes them).
    pub enabled: Option<bool>,
    /// Principals allowed everything (`User:admin`), like Kafka's `super.users`.
    pub super_users: Vec<String>,
}

impl AclSettings {
    /// Checks every value, naming the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        for p in &self.super_users {
            Principal::parse(p)
                .map_err(|e| Error::invalid(format!("acl.super_users: {}", e.message)))?;
        }
        Ok(())
    }
}

/// Most bindings written or deleted by one request (one store transaction).
const MAX_BINDINGS_PER_REQUEST: usize = shale_meta::MAX_TXN_OPS;

/// Checks requests against the cluster's bindings.
#[derive(Debug)]
pub struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    /// `auth.broker_principals`, for principals recorded without their identity.
    brokers: HashSet<String>,
    acls: RwLock<Arc<Acls>>,
    store: Arc<dyn MetaStore>,
    keys: Keys,
    producer_ids: ring::hmac::Key,
}

/// `PERMISSION_DENIED` naming the principal, operation and resource.
fn denied(who: &Identity, op: Operation, kind: ResourceType, name: &str) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        Reason::AuthorizationFailed,
        format!("{} may not {op} {kind} {name:?}", who.principal),
    )
    .with("principal", who.principal.to_string())
    .with("operation", op.as_str())
    .with("resource_type", kind.as_str())
    .with("resource", name)
}

impl Authorizer {
    /// Reads the bindings and the producer-id secret (creating it on first use); returns
    /// the authorizer and the store revision to [`follow`](Self::follow) from.
    pub async fn open(
        settings: &AclSettings,
        auth: &crate::auth::AuthSettings,
        store: Arc<dyn MetaStore>,
        keys: Keys,
    ) -> Result<(Arc<Authorizer>, Revision), Error> {
        settings.validate()?;
        let secret = producer_id_secret(&*store, &keys).await?;
        let (acls, revision) = crate::watched::read(&*store, &keys.acls(), decode).await?;
        let authorizer = Authorizer {
            enabled: settings.enabled.unwrap_or(auth.require),
            super_users: settings.super_users.iter().cloned().collect(),
            brokers: auth.broker_principals.iter().cloned().collect(),
            acls: RwLock::new(Arc::new(Acls::new(acls.into_values()))),
            store,
            keys,
            producer_ids: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        };
        Ok((Arc::new(authorizer), revision))
    }

    /// Whether requests are checked at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn current(&self) -> Arc<Acls> {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `principal` is a broker's (`auth.broker_principals`).
    pub fn is_broker(&self, principal: &str) -> bool {
        self.brokers.contains(principal)
    }

    fn trusted(&self, who: &Identity) -> bool {
        !self.enabled || who.broker || self.super_users.contains(who.principal.as_str())
    }

    /// Whether `who` may do `op` on the resource.
    pub fn allows(&self, who: &Identity, op: Operation, kind: ResourceType, name: &str) -> bool {
        self.trusted(who) || self.current().allows(who.principal.as_str(), op, kind, name)
    }

    /// Whether `principal` (as a group member recorded it; empty for members from before
    /// ACLs, treated as anonymous) may do `op` on the resource.
    pub fn principal_allows(
        &self,
        principal: &str,
        op: Operation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        let principal = if principal.is_empty() { "User:ANONYMOUS" } else { principal };
        !self.enabled
            || self.super_users.contains(principal)
            || self.brokers.contains(principal)
            || self.current().allows(principal, op, kind, name)
    }

    /// `Ok` if `who` may do `op` on the resource, else `PERMISSION_DENIED`, audited under
    /// `action` (the RPC).
    pub fn check(
        &self,
        who: &Identity,
        action: &str,
        op: Operation,
        kind: ResourceType,
        name: &str,
    ) -> Result<(), Error> {
        if self.allows(who, op, kind, name) {
            return Ok(());
        }
        let e = denied(who, op, kind, name);
        audit::denied(who, action, kind.as_str(), name, &e);
        Err(e)
    }

    /// Inter-broker calls (replication): only brokers, when authorization is on.
    pub fn check_broker(&self, who: &Identity, action: &str) -> Result<(), Error> {
        if !self.enabled || who.broker {
            return Ok(());
        }
        let e = denied(who, Operation::ClusterAction, ResourceType::Cluster, super::CLUSTER)
            .with("why", "only brokers replicate");
        audit::denied(who, action, "cluster", super::CLUSTER, &e);
        Err(e)
    }

    /// Idempotent producing (`InitProducerId`): IdempotentWrite on the cluster, or Write
    /// on some topic (Kafka's rule).
    pub fn check_idempotent_write(&self, who: &Identity, action: &str) -> Result<(), Error> {
        let p = who.principal.as_str();
        if self.trusted(who) || self.current().allows_any(p, Operation::Write, ResourceType::Topic)
        {
            return Ok(());
        }
        self.check(who, action, Operation::IdempotentWrite, ResourceType::Cluster, super::CLUSTER)
    }

    /// The producer id for the `counter`th id, tagged for `who`.
    pub fn producer_id(&self, counter: i64, who: &Identity) -> Result<i64, Error> {
        self.tagged(counter, who.principal.as_str())
    }

    /// The producer id for the `counter`th id, tagged for transactional id
    /// `transactional_id` (its coordinator issues it to every instance of the producer,
    /// whatever their principal: Write on the transactional id is what authorizes them).
    pub fn transactional_producer_id(
        &self,
        counter: i64,
        transactional_id: &str,
    ) -> Result<i64, Error> {
        self.tagged(counter, &format!("TransactionalId:{transactional_id}"))
    }

    fn tagged(&self, counter: i64, owner: &str) -> Result<i64, Error> {
        if !(0..1 << 31).contains(&counter) {
            return Err(Error::internal(format!("producer id counter {counter} is exhausted")));
        }
        Ok(counter << 32 | self.tag_of(counter, owner))
    }

    fn tag_of(&self, counter: i64, owner: &str) -> i64 {
        let mut ctx = ring::hmac::Context::with_key(&self.producer_ids);
        ctx.update(&counter.to_be_bytes());
        ctx.update(owner.as_bytes());
        let mac = ctx.sign();
        let b = mac.as_ref();
        i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// With authorization on, every idempotent batch in `batches` must carry a producer id
    /// issued to `who`, and every transactional batch one issued for `transactional_id`
    /// (brokers and super-users excepted); else `PERMISSION_DENIED` naming the id.
    pub fn check_producer_ids(
        &self,
        who: &Identity,
        topic: &str,
        batches: &[u8],
        transactional_id: Option<&str>,
    ) -> Result<(), Error> {
        if self.trusted(who) {
            return Ok(());
        }
        let txn_owner = transactional_id.map(|t| format!("TransactionalId:{t}"));
        for frame in shale_core::record::BatchFrames::new(batches, usize::MAX) {
            let Ok((header, _)) = frame else { return Ok(()) }; // the append names the framing error
            let id = header.producer_id;
            let transactional = header.attributes & ATTR_TRANSACTIONAL != 0;
            let owner = match (&txn_owner, transactional) {
                (Some(owner), true) => owner.as_str(),
                _ => who.principal.as_str(),
            };
            if id >= 0 && id & 0xFFFF_FFFF != self.tag_of(id >> 32, owner) {
                let e = Error::new(
                    ErrorKind::PermissionDenied,
                    Reason::AuthorizationFailed,
                    format!(
                        "producer id {id} was not issued to {owner}; call InitProducerId for one"
                    ),
                )
                .with("principal", who.principal.to_string())
                .with("producer_id", id);
                audit::denied(who, "Produce", "topic", topic, &e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stores `bindings` (each validated first; one transaction, so all or none).
    pub async fn create(&self, bindings: &[AclBinding]) -> Result<(), Error> {
        if bindings.len() > MAX_BINDINGS_PER_REQUEST {
            return Err(Error::invalid(format!(
                "{} ACL bindings in one request; at most {MAX_BINDINGS_PER_REQUEST}",
                bindings.len()
            )));
        }
        let mut txn = Txn::new();
        for b in bindings {
            b.validate()?;
            let value = serde_json::to_vec(b)
                .map_err(|e| Error::internal(format!("cannot encode ACL {b}: {e}")))?;
            txn = txn.and_then(TxnOp::put(self.keys.acl(b.key_parts()), value));
        }
        self.store.txn(txn).await?;
        Ok(())
    }

    /// The stored bindings `filter` selects, read from the store (not the cache).
    pub async fn describe(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, Error> {
        Ok(self.read(filter).await?.into_values().collect())
    }

    /// Deletes the stored bindings `filter` selects; returns them.
    pub async fn delete(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, Error> {
        let selected = self.read(filter).await?;
        for chunk in selected.keys().collect::<Vec<_>>().chunks(MAX_BINDINGS_PER_REQUEST) {
            let txn = chunk.iter().fold(Txn::new(), |t, k| t.and_then(TxnOp::delete(*k)));
            self.store.txn(txn).await?;
        }
        Ok(selected.into_values().collect())
    }

    async fn read(&self, filter: &AclFilter) -> Result<BTreeMap<String, AclBinding>, Error> {
        let (mut all, _) = crate::watched::read(&*self.store, &self.keys.acls(), decode).await?;
        all.retain(|_, b| filter.selects(b));
        Ok(all)
    }

    /// Keeps the cache equal to the stored bindings, from revision `from` on. Runs until
    /// the broker stops it.
    pub async fn follow(self: Arc<Self>, from: Revision) {
        let known =
            self.current().iter().map(|b| (self.keys.acl(b.key_parts()), b.clone())).collect();
        let (store, prefix) = (self.store.clone(), self.keys.acls());
        crate::watched::follow(store, prefix, from, known, decode, |k| self.publish(k)).await
    }

    fn publish(&self, known: &BTreeMap<String, AclBinding>) {
        let acls = Arc::new(Acls::new(known.values().cloned()));
        *self.acls.write().unwrap_or_else(|e| e.into_inner()) = acls;
    }
}

/// A stored binding; one that does not decode is skipped with a warning (it allows
/// nothing, and a denial it meant is logged).
fn decode(key: &str, value: &[u8]) -> Option<AclBinding> {
    match serde_json::from_slice::<AclBinding>(value) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(%key, error = %e, "skipping an ACL binding that does not decode");
            None
        }
    }
}

/// The cluster's producer-id secret, created (32 random bytes) by the first broker that
/// needs it.
async fn producer_id_secret(store: &dyn MetaStore, keys: &Keys) -> Result<Vec<u8>, Error> {
    let key = keys.producer_id_secret();
    loop {
        if let Some(kv) = store.get(&key).await? {
            return Ok(kv.value.to_vec());
        }
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| Error::internal("the system random source failed"))?;
        let txn = Txn::new()
            .when(Compare::absent(key.clone()))
            .and_then(TxnOp::put(key.clone(), secret.to_vec()));
        store.txn(txn).await?;
    }
}
