//! `EtcdStore`: the `MetaStore` on a real etcd cluster (v3 API, through `etcd-client`).
//!
//! - `mod.rs`: the store, its options, and the trait implementation.
//! - `convert.rs`: types and errors between the trait and `etcd-client`.
//! - `watch.rs`: an etcd watch as a `WatchStream`, ending with `Reset` when it breaks.
//!
//! Every call is bounded by `EtcdOptions::request_timeout`, so while etcd is down calls
//! fail with `MetaError::Unavailable` instead of hanging; the same store works again once
//! etcd is back, because the underlying channel reconnects on the next call. Requests are
//! checked with the same validation the embedded store applies before they are sent, so
//! both backends reject the same inputs with the same messages.
//!
//! An `Unavailable` from a write means its outcome is unknown (etcd may have applied it
//! before the answer was lost): writes that must not repeat are txns with compares.

mod convert;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, ConnectOptions, DeleteOptions, GetOptions, KvClient, LeaseClient, PutOptions,
    WatchClient, WatchOptions,
};

use self::convert::Call;
use super::{
    KeyValue, LeaseId, MetaError, MetaStore, RangeResult, Revision, Txn, TxnOp, TxnOutcome,
    WatchStream, lease_ttl_secs, validate_key, validate_txn,
};

/// Largest response accepted (a range over many keys); etcd-client's default is 4 MiB.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Timeouts of the etcd client; the defaults suit production.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Longest wait for a TCP connection to an endpoint.
    pub connect_timeout: Duration,
    /// Longest wait for any single request (and for a watch to be created).
    pub request_timeout: Duration,
    /// HTTP/2 ping interval that finds dead connections under open watches; etcd rejects
    /// pings more often than every 5 s (`--grpc-keepalive-min-time`).
    pub keep_alive_interval: Duration,
    /// TLS to etcd (the endpoints must be `https://`).
    pub tls: Option<EtcdTls>,
    /// etcd user and password (etcd's own authentication).
    pub user: Option<(String, String)>,
}

/// TLS to etcd: the CA bundle etcd's certificate must chain to, and a client certificate
/// and key for etcd's `--client-cert-auth`.
#[derive(Clone)]
pub struct EtcdTls {
    /// PEM CA bundle.
    pub ca_pem: Vec<u8>,
    /// PEM certificate chain and key to present.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("EtcdTls").field("identity", &self.identity.is_some()).finish()
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(10),
            tls: None,
            user: None,
        }
    }
}

/// The `MetaStore` backed by etcd; see the module docs.
pub struct EtcdStore {
    kv: KvClient,
    lease: LeaseClient,
    watch: WatchClient,
    /// The endpoints, joined for error messages.
    endpoints: String,
    options: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`host:port` or `http://host:port`) and checks that
    /// the cluster answers a read; `Unavailable` if it does not within the timeouts.
    pub async fn connect(
        endpoints: &[String],
        options: EtcdOptions,
    ) -> Result<Arc<Self>, MetaError> {
        let joined = endpoints.join(",");
        if endpoints.is_empty() {
            return Err(MetaError::Invalid(
                "no etcd endpoints given; name at least one host:port".into(),
            ));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(options.keep_alive_interval, options.request_timeout)
            // A member cut off from its cluster then fails requests and watches instead of
            // serving stale reads or silently idle watches.
            .with_require_leader(true);
        if let Some(tls) = &options.tls {
            let mut config = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user, password);
        }
        let call = Call { endpoints: &joined, op: "connect", target: "", lease: None };
        let client = match tokio::time::timeout(
            options.connect_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(call.error(e)),
            Err(_) => return Err(call.timed_out(options.connect_timeout)),
        };
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            watch: client.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES),
            endpoints: joined,
            options,
        };
        // The client connects lazily; a linearizable read proves a reachable leader now,
        // so a misconfigured endpoint fails at start-up rather than at the first write.
        let mut kv = store.kv.clone();
        let probe = GetOptions::new().with_count_only();
        store.run(store.call("connect", "", None), kv.get("/", Some(probe))).await?;
        Ok(Arc::new(store))
    }

    fn call<'a>(&'a self, op: &'static str, target: &'a str, lease: Option<LeaseId>) -> Call<'a> {
        Call { endpoints: &self.endpoints, op, target, lease }
    }

    /// Runs one request under the request timeout and maps its error.
    async fn run<T>(
        &self,
        call: Call<'_>,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, MetaError> {
        match tokio::time::timeout(self.options.request_timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(call.error(e)),
            Err(_) => Err(call.timed_out(self.options.request_timeout)),
        }
    }

    /// Names the lease a failed transaction could not find: etcd's error does not say
    /// which, so when several are used, ask etcd which of them is gone.
    async fn missing_lease(&self, txn: &Txn) -> LeaseId {
        let leases = convert::txn_leases(txn);
        if leases.len() > 1 {
            for &id in &leases {
                let mut lease = self.lease.clone();
                let call = self.call("lease ttl", "", Some(id));
                // etcd answers TTL -1 for a lease it does not know.
                if let Ok(r) = self.run(call, lease.time_to_live(id, None)).await
                    && r.ttl() < 0
                {
                    return id;
                }
            }
        }
        leases.first().copied().unwrap_or_default()
    }
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

#[async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, MetaError> {
        validate_key(key)?;
        let mut kv = self.kv.clone();
        let mut resp = self.run(self.call("get", key, None), kv.get(key, None)).await?;
        resp.take_kvs().into_iter().next().map(convert::key_value).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<RangeResult, MetaError> {
        let mut kv = self.kv.clone();
        let opts = GetOptions::new().with_prefix();
        let mut resp =
            self.run(self.call("range", prefix, None), kv.get(prefix, Some(opts))).await?;
        let revision = revision(resp.header());
        // etcd returns a range sorted by key in byte order, as the trait promises.
        let kvs = resp.take_kvs().into_iter().map(convert::key_value).collect::<Result<_, _>>()?;
        Ok(RangeResult { kvs, revision })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        lease: Option<LeaseId>,
    ) -> Result<Revision, MetaError> {
        let op = TxnOp::Put { key: key.to_string(), value: value.clone(), lease };
        validate_txn(&Txn::new().and_then(op))?;
        let mut kv = self.kv.clone();
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        let resp =
            self.run(self.call("put", key, lease), kv.put(key, value.to_vec(), opts)).await?;
        Ok(revision(resp.header()))
    }

    async fn delete(&self, key: &str) -> Result<bool, MetaError> {
        validate_key(key)?;
        let mut kv = self.kv.clone();
        let resp = self.run(self.call("delete", key, None), kv.delete(key, None)).await?;
        Ok(resp.deleted() > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, MetaError> {
        validate_txn(&Txn::new().and_then(TxnOp::delete_prefix(prefix)))?;
        let mut kv = self.kv.clone();
        let opts = DeleteOptions::new().with_prefix();
        let call = self.call("delete prefix", prefix, None);
        let resp = self.run(call, kv.delete(prefix, Some(opts))).await?;
        Ok(u64::try_from(resp.deleted()).unwrap_or(0))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        let mut kv = self.kv.clone();
        // Name a key in errors: the first compared one, else the first written one.
        let first_op = txn.success.iter().chain(&txn.failure).next().map(|op| match op {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key.as_str(),
            TxnOp::DeletePrefix { prefix } => prefix.as_str(),
        });
        let target = txn.compares.first().map(|c| c.key()).or(first_op).unwrap_or("");
        match self.run(self.call("txn", target, None), kv.txn(convert::txn(&txn))).await {
            Ok(resp) => {
                Ok(TxnOutcome { succeeded: resp.succeeded(), revision: revision(resp.header()) })
            }
            Err(MetaError::LeaseNotFound(_)) => {
                Err(MetaError::LeaseNotFound(self.missing_lease(&txn).await))
            }
            Err(e) => Err(e),
        }
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let secs = lease_ttl_secs(ttl)?;
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let mut lease = self.lease.clone();
        let resp = self.run(self.call("grant lease", "", None), lease.grant(secs, None)).await?;
        if !resp.error().is_empty() {
            return Err(MetaError::Unavailable(format!(
                "etcd at {} could not grant a lease: {}",
                self.endpoints,
                resp.error()
            )));
        }
        Ok(resp.id())
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Duration, MetaError> {
        let call = self.call("keep lease alive", "", Some(id));
        let ttl = self
            .run(call, async {
                let mut lease = self.lease.clone();
                // Opening the stream refreshes once (and fails for an unknown lease), but
                // the client keeps that answer's TTL to itself: refresh again on the same
                // stream to read it. Two refreshes cost nothing; the stream closes on drop.
                let (mut keeper, mut answers) = lease.keep_alive(id).await?;
                keeper.keep_alive().await?;
                Ok(answers.message().await?.map(|r| r.ttl()))
            })
            .await?;
        match ttl {
            Some(ttl) if ttl > 0 => Ok(Duration::from_secs(ttl.unsigned_abs())),
            // etcd answers TTL 0 for a lease it does not know (any more).
            Some(_) => Err(MetaError::LeaseNotFound(id)),
            None => Err(MetaError::Unavailable(format!(
                "etcd at {} closed the keepalive stream of lease {id}",
                self.endpoints
            ))),
        }
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<(), MetaError> {
        let mut lease = self.lease.clone();
        self.run(self.call("revoke lease", "", Some(id)), lease.revoke(id)).await.map(|_| ())
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Revision,
    ) -> Result<WatchStream, MetaError> {
        super::validate_watch_start(start_revision)?;
        let call = self.call("watch", prefix, None);
        let opts = WatchOptions::new().with_prefix().with_start_revision(start_revision);
        let mut client = self.watch.clone();
        // Wait for etcd to confirm the watcher: with start 0 it starts after the revision
        // current at registration, so a write made after this returns is always seen.
        let created = self
            .run(call, async {
                let mut stream = client.watch(prefix, Some(opts)).await?;
                let first = stream.message().await?;
                Ok((stream, first))
            })
            .await?;
        match created {
            (stream, Some(resp)) if resp.created() && !resp.canceled() => {
                Ok(watch::stream(stream, self.endpoints.clone(), prefix.to_string()))
            }
            (_, Some(resp)) if resp.compact_revision() > 0 => {
                let err = MetaError::Compacted { revision: resp.compact_revision() };
                Ok(Box::pin(futures::stream::once(async move { Err(err) })))
            }
            (_, Some(resp)) => Err(MetaError::Unavailable(format!(
                "etcd at {} refused to watch {prefix:?}: {}",
                self.endpoints,
                resp.cancel_reason()
            ))),
            (_, None) => Err(MetaError::Unavailable(format!(
                "etcd at {} closed the watch of {prefix:?} before creating it",
                self.endpoints
            ))),
        }
    }
}
