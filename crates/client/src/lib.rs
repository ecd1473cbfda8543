//! The Rust client of Shale. It depends only on `shale-core` and `shale-proto`: no object
//! store, no etcd (`scripts/check-layers.sh` keeps it so).
//!
//! Connections to the brokers, plus
//! - `admin`: topic and cluster administration,
//! - `cli` (feature `cli`): flags, tracing setup and the error exit Shale's binaries share,
//! - `producer`: batching, compression, partitioning, pipelined sends, retries,
//! - `consumer`: assigned partitions read through long-polling Fetch streams,
//! - `groups`: the group consumer (KIP-848 style heartbeats, assignment, committed offsets)
//!   and group administration,
//! - `partitioner`: Kafka-compatible murmur2 key hashing,
//! - `retry`: bounded waits for a leader, with exponential backoff,
//! - `routing`: metadata (brokers, partition leaders; hedged requests) and calls at a
//!   partition's leader that look it up again and retry,
//! - `scope`: errors that name the broker, topic and partition they concern.
//! - `tls`: TLS to the brokers (CA bundle, client certificate for mTLS) and bearer tokens.
//!
//! Requests for a partition go to its leader as named by `GetMetadata`; on `NOT_LEADER` or
//! an unreachable broker the client refreshes metadata and retries. Metadata comes from the
//! bootstrap brokers, or, when none of them answers, from the other brokers the cluster
//! named, so a client given one broker's address survives that broker.

pub mod admin;
#[cfg(feature = "cli")]
pub mod cli;
pub mod consumer;
pub mod groups;
pub mod partitioner;
pub mod producer;
pub mod retry;
mod routing;
mod scope;
pub mod tls;
mod txn_admin;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use shale_core::error::Error;
use shale_proto::pb;
use shale_proto::pb::admin_client::AdminClient;
use shale_proto::pb::log_client::LogClient;

pub use admin::Admin;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Isolation, StartAt};
pub use groups::{
    AckKind, GroupAdmin, GroupConfig, GroupConsumer, OffsetReset, RebalanceListener, ShareConfig,
    ShareConsumer, SharedRecord,
};
pub use producer::{
    GroupMetadata, Producer, ProducerConfig, ProducerRecord, RecordMetadata, TransactionalConfig,
    TransactionalProducer,
};
pub use retry::RetryPolicy;
pub(crate) use scope::{locate, reword};
pub use txn_admin::TxnAdmin;

/// Largest message the client sends or accepts.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How often an HTTP/2 PING checks each connection, busy or idle, and how long its answer
/// may take. A frozen broker (SIGSTOP, a paused VM) keeps its TCP connections open and
/// answers nothing: without this a call to it would wait for its own timeout (30 s for a
/// produce). With it the connection fails within 0.75 s, its calls fail (retriable), and
/// the client looks the leader up again, by then on the broker that replaced it (a
/// frozen broker is fenced after `cluster.heartbeat_timeout_ms`, 500 ms). A broker that
/// is only busy answers a PING from its connection task in milliseconds.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(250);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(500);

/// A handle to a Shale cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bootstrap: Vec<String>,
    /// Which bootstrap broker admin and metadata calls go to; moves on after a failure.
    current: std::sync::atomic::AtomicUsize,
    channels: RwLock<HashMap<String, Channel>>,
    metadata: RwLock<routing::Metadata>,
    /// Held while `leader` refreshes metadata on a miss, so that thousands of partitions
    /// starting at once (a producer's first record to each) ask the broker once, not once
    /// each; it keeps the outcome of the last such refresh for those that waited for it.
    refreshing: tokio::sync::Mutex<routing::LastRefresh>,
    /// How many of those refreshes have ended (read before waiting for `refreshing`).
    refreshes: std::sync::atomic::AtomicU64,
    connect_timeout: Duration,
    /// See [`ClientBuilder::metadata_max_age`].
    metadata_max_age: Duration,
    tls: Option<tls::TlsOptions>,
    credentials: tls::Credentials,
}

/// What every generated gRPC client of this crate runs over: a channel, with the bearer
/// token (if any) added to each call.
pub type Transport = tonic::service::interceptor::InterceptedService<Channel, tls::Credentials>;

/// Turns a transport or RPC failure into the public error.
pub(crate) fn status_error(status: &tonic::Status) -> Error {
    shale_proto::status::from_status(status)
}

fn endpoint_uri(addr: &str, tls: bool) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// How to build a [`Client`]: the bootstrap brokers, and TLS.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    brokers: String,
    tls: Option<tls::TlsOptions>,
    credentials: tls::Credentials,
    metadata_max_age: Duration,
}

/// How long a topic's partition count is used before it is read again (Kafka's
/// `metadata.max.age.ms`): partitions added to a topic are taken up within this.
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

impl ClientBuilder {
    /// Connect over TLS, verifying the brokers against `options`' CA bundle (and
    /// presenting its certificate, for mTLS).
    pub fn tls(mut self, options: tls::TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// Send `token` as a bearer token with every call (`authorization: Bearer …`).
    pub fn token(mut self, token: &str) -> Result<Self, Error> {
        self.credentials = tls::Credentials::token(token)?;
        Ok(self)
    }

    /// Send the token in `path` with every call, read again whenever the file changes
    /// (Kubernetes projected tokens are rotated in place).
    pub fn token_file(mut self, path: impl Into<std::path::PathBuf>) -> Result<Self, Error> {
        self.credentials = tls::Credentials::token_file(path.into())?;
        Ok(self)
    }

    /// Read a topic's partition count again once it is older than `age` (default
    /// [`METADATA_MAX_AGE`]), so that producers take up partitions added to it.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// The client; connections are made lazily.
    pub fn build(self) -> Result<Client, Error> {
        Client::with(&self.brokers, self.tls, self.credentials, self.metadata_max_age)
    }
}

impl Client {
    /// A client that bootstraps from `brokers`: one `host:port`, or several separated by
    /// commas (admin and metadata calls then go to whichever of them is reachable).
    /// Connections are made lazily.
    pub fn new(brokers: &str) -> Result<Client, Error> {
        Client::builder(brokers).build()
    }

    /// A builder for a client of `brokers`, for options such as TLS.
    pub fn builder(brokers: &str) -> ClientBuilder {
        ClientBuilder {
            brokers: brokers.to_string(),
            tls: None,
            credentials: tls::Credentials::default(),
            metadata_max_age: METADATA_MAX_AGE,
        }
    }

    fn with(
        brokers: &str,
        tls: Option<tls::TlsOptions>,
        credentials: tls::Credentials,
        metadata_max_age: Duration,
    ) -> Result<Client, Error> {
        let list: Vec<&str> = brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
        if list.is_empty() {
            return Err(Error::invalid(format!("no broker address in {brokers:?}")));
        }
        let client = Client {
            inner: Arc::new(Inner {
                bootstrap: list.iter().map(|b| b.to_string()).collect(),
                current: std::sync::atomic::AtomicUsize::new(0),
                channels: RwLock::new(HashMap::new()),
                metadata: RwLock::new(routing::Metadata::default()),
                refreshing: tokio::sync::Mutex::default(),
                refreshes: std::sync::atomic::AtomicU64::new(0),
                connect_timeout: Duration::from_secs(5),
                metadata_max_age,
                tls,
                credentials,
            }),
        };
        for addr in &list {
            client.channel(addr)?;
        }
        Ok(client)
    }

    fn endpoint(&self, addr: &str) -> Result<Endpoint, Error> {
        let tls = self.inner.tls.as_ref();
        let mut endpoint = Endpoint::from_shared(endpoint_uri(addr, tls.is_some()))
            .map_err(|e| Error::invalid(format!("invalid broker address {addr:?}: {e}")))?;
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.config())
                .map_err(|e| Error::invalid(format!("cannot set up TLS to {addr}: {e}")))?;
        }
        Ok(endpoint
            .connect_timeout(self.inner.connect_timeout)
            .tcp_nodelay(true)
            .initial_connection_window_size(shale_proto::transport::CONNECTION_WINDOW)
            .initial_stream_window_size(shale_proto::transport::STREAM_WINDOW)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true))
    }

    /// The credentials added to every call.
    pub fn credentials(&self) -> tls::Credentials {
        self.inner.credentials.clone()
    }

    /// A channel to `addr`, created on first use and shared afterwards.
    pub fn channel(&self, addr: &str) -> Result<Channel, Error> {
        if let Some(c) = self.inner.channels.read().ok().and_then(|m| m.get(addr).cloned()) {
            return Ok(c);
        }
        let endpoint = self.endpoint(addr)?;
        let channel = endpoint.connect_lazy();
        if let Ok(mut m) = self.inner.channels.write() {
            m.insert(addr.to_string(), channel.clone());
        }
        Ok(channel)
    }

    /// The bootstrap broker admin and metadata calls currently go to.
    pub fn bootstrap(&self) -> &str {
        let i = self.inner.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.inner.bootstrap[i % self.inner.bootstrap.len()]
    }

    /// Moves admin and metadata calls on to the next bootstrap broker.
    fn next_bootstrap(&self) {
        self.inner.current.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// An admin client.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A raw Admin gRPC client to the current bootstrap broker.
    pub fn admin_rpc(&self) -> Result<AdminClient<Transport>, Error> {
        self.admin_rpc_at(self.bootstrap())
    }

    /// A raw Admin gRPC client to `addr`.
    pub fn admin_rpc_at(&self, addr: &str) -> Result<AdminClient<Transport>, Error> {
        Ok(AdminClient::with_interceptor(self.channel(addr)?, self.credentials())
            .max_decoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// A raw Groups gRPC client to the current bootstrap broker.
    pub fn groups_rpc(&self) -> Result<pb::groups_client::GroupsClient<Transport>, Error> {
        Ok(pb::groups_client::GroupsClient::with_interceptor(
            self.channel(self.bootstrap())?,
            self.credentials(),
        ))
    }

    /// A raw Groups gRPC client to `addr` (a partition's leader, for share fetches).
    pub fn groups_rpc_at(
        &self,
        addr: &str,
    ) -> Result<pb::groups_client::GroupsClient<Transport>, Error> {
        Ok(pb::groups_client::GroupsClient::with_interceptor(
            self.channel(addr)?,
            self.credentials(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// A raw Transactions gRPC client to the current bootstrap broker (which forwards a
    /// transactional id's calls to its coordinator).
    pub fn txn_rpc(&self) -> Result<pb::transactions_client::TransactionsClient<Transport>, Error> {
        Ok(pb::transactions_client::TransactionsClient::with_interceptor(
            self.channel(self.bootstrap())?,
            self.credentials(),
        ))
    }

    /// A raw Log gRPC client to the current bootstrap broker.
    pub fn log_rpc_any(&self) -> Result<LogClient<Transport>, Error> {
        self.log_rpc(self.bootstrap())
    }

    /// A raw Log gRPC client to `addr`.
    pub fn log_rpc(&self, addr: &str) -> Result<LogClient<Transport>, Error> {
        Ok(LogClient::with_interceptor(self.channel(addr)?, self.credentials())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Calls one RPC of the service `connect` opens at the current bootstrap broker,
    /// retrying retriable failures on the next bootstrap broker (the admin calls any broker
    /// answers or forwards: groups, transactions).
    pub(crate) async fn call_bootstrap<S, Req, Resp, F, Fut>(
        &self,
        connect: fn(&Client) -> Result<S, Error>,
        request: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(S, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let rpc = &rpc;
        self.retrying(|| {
            let request = request.clone();
            async move {
                let broker = self.bootstrap();
                let resp = rpc(connect(self)?, request).await;
                Ok(resp.map_err(|s| locate(status_error(&s), broker, None, None))?.into_inner())
            }
        })
        .await
    }

    /// Runs a call to the bootstrap brokers again when it fails retriably, moving on to the
    /// next bootstrap broker each time, so one broker being down costs a retry, not an error.
    pub(crate) async fn retrying<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0u64;
        loop {
            match call().await {
                Err(e)
                    if e.kind.is_retriable() && attempt < 2 * self.inner.bootstrap.len() as u64 =>
                {
                    attempt += 1;
                    self.next_bootstrap();
                    // Over a quota, the broker says when to come back (RetryInfo).
                    let backoff = Duration::from_millis(20 * attempt);
                    shale_core::clock::sleep(e.retry_after().unwrap_or_default().max(backoff))
                        .await;
                }
                result => return result,
            }
        }
    }
}
