//! Translation between the trait's types and `etcd-client`'s, and of etcd's errors into
//! `MetaError`s that say whether to retry.

use bytes::Bytes;
use etcd_client::{
    Compare as EtcdCompare, CompareOp, DeleteOptions, PutOptions, Txn as EtcdTxn,
    TxnOp as EtcdTxnOp,
};
use tonic::Code;

use super::super::{Compare, KeyValue, LeaseId, MetaError, Txn, TxnOp};

/// What a failed call was doing, for error messages and for naming a missing lease.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    /// The endpoints the store talks to, joined for messages.
    pub endpoints: &'a str,
    /// The operation, e.g. "put".
    pub op: &'static str,
    /// The key, prefix or lease the operation is about.
    pub target: &'a str,
    /// The lease a "lease not found" answer refers to, when only one can be meant.
    pub lease: Option<LeaseId>,
}

impl Call<'_> {
    fn context(&self) -> String {
        if self.target.is_empty() {
            format!("etcd at {} ({})", self.endpoints, self.op)
        } else {
            format!("etcd at {} ({} {:?})", self.endpoints, self.op, self.target)
        }
    }

    /// The error for a call that got no answer within `timeout`.
    pub(super) fn timed_out(&self, timeout: std::time::Duration) -> MetaError {
        MetaError::Unavailable(format!("{}: no answer within {timeout:?}", self.context()))
    }

    /// Maps an `etcd-client` error onto the trait's error kinds.
    pub(super) fn error(&self, e: etcd_client::Error) -> MetaError {
        use etcd_client::Error as E;
        let ctx = self.context();
        match e {
            E::GRpcStatus(status) => self.status(status),
            // The client library says this when etcd answers a keepalive with TTL 0.
            E::LeaseKeepAliveError(m) if m.contains("lease not found") => {
                MetaError::LeaseNotFound(self.lease.unwrap_or_default())
            }
            E::InvalidArgs(m) | E::EndpointError(m) => {
                MetaError::Invalid(format!("{ctx}: {m}; check the etcd endpoints setting"))
            }
            E::InvalidUri(u) => MetaError::Invalid(format!(
                "{ctx}: bad endpoint uri: {u}; use host:port or http://host:port"
            )),
            other => MetaError::Unavailable(format!("{ctx}: {other}")),
        }
    }

    fn status(&self, status: tonic::Status) -> MetaError {
        let ctx = self.context();
        let msg = status.message();
        match status.code() {
            Code::NotFound if msg.contains("lease not found") => {
                MetaError::LeaseNotFound(self.lease.unwrap_or_default())
            }
            // etcd's request limits (too many ops, request too large, duplicate key) and a
            // gRPC message over the server's limit: the same request will fail again.
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                MetaError::Invalid(format!("{ctx}: etcd rejected the request: {msg}"))
            }
            Code::ResourceExhausted if !msg.contains("too many requests") => {
                MetaError::Invalid(format!("{ctx}: etcd rejected the request as too large: {msg}"))
            }
            Code::PermissionDenied | Code::Unauthenticated => MetaError::Invalid(format!(
                "{ctx}: etcd refused access: {msg}; shale does not log in to etcd, so run it \
                 without auth or behind a proxy that does"
            )),
            // Unavailable, deadline, "no leader", "too many requests", broken transports:
            // all may pass once etcd is back or has a leader again.
            code => MetaError::Unavailable(format!("{ctx}: {code:?}: {msg}")),
        }
    }
}

/// Converts an etcd key-value pair; keys must be UTF-8 as every key Shale writes is.
pub(super) fn key_value(kv: etcd_client::KeyValue) -> Result<KeyValue, MetaError> {
    let (create_revision, mod_revision, version, lease) =
        (kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease());
    let (key, value) = kv.into_key_value();
    Ok(KeyValue {
        key: utf8_key(key)?,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
        version,
        lease: (lease != 0).then_some(lease),
    })
}

/// A key as a string, or `BadValue` naming its lossy form.
pub(super) fn utf8_key(key: Vec<u8>) -> Result<String, MetaError> {
    String::from_utf8(key).map_err(|e| MetaError::BadValue {
        key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        reason: "the key is not UTF-8; a process other than shale wrote under shale's prefix"
            .into(),
    })
}

/// Builds etcd's transaction from a (validated) trait transaction.
pub(super) fn txn(t: &Txn) -> EtcdTxn {
    let compares: Vec<EtcdCompare> = t
        .compares
        .iter()
        .map(|c| match c {
            // etcd compares an absent key's mod revision as 0, so `absent` maps directly.
            Compare::ModRevision { key, revision } => {
                EtcdCompare::mod_revision(key.as_str(), CompareOp::Equal, *revision)
            }
            Compare::Value { key, value } => {
                EtcdCompare::value(key.as_str(), CompareOp::Equal, value.to_vec())
            }
        })
        .collect();
    EtcdTxn::new().when(compares).and_then(ops(&t.success)).or_else(ops(&t.failure))
}

fn ops(ops: &[TxnOp]) -> Vec<EtcdTxnOp> {
    ops.iter()
        .map(|op| match op {
            TxnOp::Put { key, value, lease } => EtcdTxnOp::put(
                key.as_str(),
                value.to_vec(),
                lease.map(|l| PutOptions::new().with_lease(l)),
            ),
            TxnOp::Delete { key } => EtcdTxnOp::delete(key.as_str(), None),
            TxnOp::DeletePrefix { prefix } => {
                EtcdTxnOp::delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
            }
        })
        .collect()
}

/// The distinct leases a transaction's puts use, in order of appearance.
pub(super) fn txn_leases(t: &Txn) -> Vec<LeaseId> {
    let mut leases = Vec::new();
    for op in t.success.iter().chain(&t.failure) {
        if let TxnOp::Put { lease: Some(l), .. } = op
            && !leases.contains(l)
        {
            leases.push(*l);
        }
    }
    leases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(lease: Option<LeaseId>) -> Call<'static> {
        Call { endpoints: "127.0.0.1:2379", op: "put", target: "/k", lease }
    }

    #[test]
    fn maps_etcd_errors_onto_kinds() {
        let lease = tonic::Status::not_found("etcdserver: requested lease not found");
        let e = call(Some(7)).error(etcd_client::Error::GRpcStatus(lease));
        assert!(matches!(e, MetaError::LeaseNotFound(7)));

        let too_many = tonic::Status::invalid_argument("etcdserver: too many operations in txn");
        let e = call(None).error(etcd_client::Error::GRpcStatus(too_many));
        assert!(matches!(&e, MetaError::Invalid(m) if m.contains("too many operations")));

        let big = tonic::Status::resource_exhausted("grpc: received message larger than max");
        assert!(matches!(
            call(None).error(etcd_client::Error::GRpcStatus(big)),
            MetaError::Invalid(_)
        ));

        let busy = tonic::Status::resource_exhausted("etcdserver: too many requests");
        assert!(call(None).error(etcd_client::Error::GRpcStatus(busy)).is_retriable());

        let down = tonic::Status::unavailable("error trying to connect");
        let e = call(None).error(etcd_client::Error::GRpcStatus(down));
        assert!(e.is_retriable());
        assert!(e.to_string().contains("127.0.0.1:2379") && e.to_string().contains("\"/k\""));

        let keeper = etcd_client::Error::LeaseKeepAliveError("lease not found".into());
        assert!(matches!(call(Some(9)).error(keeper), MetaError::LeaseNotFound(9)));

        let t = call(None).timed_out(std::time::Duration::from_secs(5));
        assert!(t.is_retriable() && t.to_string().contains("5s"));
    }

    #[test]
    fn converts_key_values() {
        assert!(utf8_key(vec![0xff, b'a']).is_err());
        assert_eq!(utf8_key(b"/a".to_vec()).ok().as_deref(), Some("/a"));
    }

    #[test]
    fn lists_distinct_txn_leases() {
        let t = Txn::new()
            .and_then(TxnOp::put_with_lease("/a", "1", 5))
            .and_then(TxnOp::put_with_lease("/b", "1", 5))
            .and_then(TxnOp::put("/c", "1"))
            .or_else(TxnOp::put_with_lease("/a", "1", 6));
        assert_eq!(txn_leases(&t), [5, 6]);
    }
}
