//! The Rust client of Shale. It depends only on `shale-core` and `shale-proto`: no object
//! store, no etcd (`scripts/check-layers.sh` keeps it so).
//!
//! Connections and metadata (partition leaders), plus
//! - `admin`: topic and cluster administration,
//! - `cli` (feature `cli`): flags, tracing setup and the error exit Shale's binaries share,
//! - `producer`: batching, compression, partitioning, pipelined sends, retries,
//! - `consumer`: assigned partitions read through long-polling Fetch streams,
//! - `groups`: the group consumer (KIP-848 style heartbeats, assignment, committed offsets)
//!   and group administration,
//! - `partitioner`: Kafka-compatible murmur2 key hashing,
//! - `retry`: bounded waits for a leader, with exponential backoff,
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
mod scope;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;
use shale_proto::pb::admin_client::AdminClient;
use shale_proto::pb::log_client::LogClient;

pub use admin::Admin;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, StartAt};
pub use groups::{GroupAdmin, GroupConfig, GroupConsumer, OffsetReset, RebalanceListener};
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use retry::RetryPolicy;
pub(crate) use scope::{locate, reword};

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

/// How long a metadata request waits for the current bootstrap broker before it asks the
/// next one too (metadata answers in milliseconds).
const HEDGE_AFTER: Duration = Duration::from_millis(150);

/// Leaders and partition counts of the topics the client has looked up.
#[derive(Debug, Default, Clone)]
struct Metadata {
    brokers: HashMap<i32, String>,
    /// topic → leader id per partition (-1 when offline).
    topics: HashMap<String, Vec<i32>>,
    /// When each topic's entry was last read from a broker.
    read_at: HashMap<String, shale_core::clock::Instant>,
    /// The broker that answered the last metadata request.
    from: String,
}

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
    metadata: RwLock<Metadata>,
    /// Held while `leader` refreshes metadata on a miss, so that thousands of partitions
    /// starting at once (a producer's first record to each) ask the broker once, not once
    /// each.
    refreshing: tokio::sync::Mutex<()>,
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
                metadata: RwLock::new(Metadata::default()),
                refreshing: tokio::sync::Mutex::new(()),
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

    /// The address of a broker, from cached metadata (refreshed once if unknown).
    pub async fn broker_address(&self, id: i32) -> Option<String> {
        if let Some(a) = self.cached(|md| md.brokers.get(&id).cloned()) {
            return Some(a);
        }
        self.refresh_metadata(&[]).await.ok()?;
        self.cached(|md| md.brokers.get(&id).cloned())
    }

    /// A raw Groups gRPC client to the current bootstrap broker.
    pub fn groups_rpc(&self) -> Result<pb::groups_client::GroupsClient<Transport>, Error> {
        Ok(pb::groups_client::GroupsClient::with_interceptor(
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

    /// Asks `addr` for the brokers and leaders of `topics`.
    async fn metadata_from(
        &self,
        addr: &str,
        topics: &[String],
    ) -> Result<(String, pb::GetMetadataResponse), Error> {
        let request = pb::GetMetadataRequest { topics: topics.to_vec() };
        match self.admin_rpc_at(addr)?.get_metadata(request).await {
            Ok(resp) => Ok((addr.to_string(), resp.into_inner())),
            Err(s) => Err(locate(status_error(&s), addr, None, None)),
        }
    }

    /// Metadata from the current bootstrap broker, or, if it has not answered within
    /// [`HEDGE_AFTER`], from whichever of it and the next one answers first (a hedged
    /// request): a frozen broker (SIGSTOP, a paused VM) keeps its connections open and
    /// answers nothing, and a leader lookup must not wait for its connection to be given
    /// up. The one that answered becomes the current bootstrap broker.
    async fn metadata_hedged(
        &self,
        topics: &[String],
    ) -> Result<(String, pb::GetMetadataResponse), Error> {
        let n = self.inner.bootstrap.len();
        let i = self.inner.current.load(std::sync::atomic::Ordering::Relaxed);
        let first = self.inner.bootstrap[i % n].clone();
        let second = self.inner.bootstrap[(i + 1) % n].clone();
        let asked = self.metadata_from(&first, topics);
        if n < 2 {
            return asked.await;
        }
        tokio::pin!(asked);
        tokio::select! {
            answer = &mut asked => return answer,
            _ = shale_core::clock::sleep(HEDGE_AFTER) => {}
        }
        let hedge = self.metadata_from(&second, topics);
        tokio::pin!(hedge);
        let (answer, other, hedged) = tokio::select! {
            answer = &mut asked => (answer, hedge.as_mut(), false),
            answer = &mut hedge => (answer, asked.as_mut(), true),
        };
        let answer = match answer {
            Ok(answer) => Ok((answer, hedged)),
            Err(_) => other.await.map(|a| (a, !hedged)),
        };
        answer.map(|(answer, from_second)| {
            if from_second {
                let _ = self.inner.current.compare_exchange(
                    i,
                    i + 1,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            answer
        })
    }

    /// Re-reads brokers and leaders of `topics` (all topics when empty): from the bootstrap
    /// brokers, else from the other brokers the cluster named before.
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<(), Error> {
        let asked = self.retrying(|| self.metadata_hedged(topics)).await;
        let (from, resp) = match asked {
            Err(e) if e.kind.is_retriable() => {
                let others: Vec<String> = self
                    .cached(|md| Some(md.brokers.values().cloned().collect()))
                    .unwrap_or_default();
                let mut answer = Err(e);
                for addr in others.iter().filter(|a| !self.inner.bootstrap.contains(a)) {
                    answer = self.metadata_from(addr, topics).await;
                    if answer.is_ok() {
                        break;
                    }
                }
                answer?
            }
            other => other?,
        };
        let now = shale_core::clock::monotonic_now();
        let mut md =
            self.inner.metadata.write().map_err(|_| Error::internal("metadata poisoned"))?;
        md.from = from;
        for b in resp.brokers {
            md.brokers.insert(b.id, b.address);
        }
        for t in resp.topics {
            let Some(info) = t.topic else { continue };
            let mut leaders = vec![-1; info.partitions as usize];
            for p in t.partitions {
                if let Some(slot) = leaders.get_mut(p.partition as usize) {
                    *slot = p.leader_id;
                }
            }
            md.read_at.insert(info.name.clone(), now);
            md.topics.insert(info.name, leaders);
        }
        Ok(())
    }

    /// The broker that answered the last metadata request (a bootstrap broker before any).
    fn metadata_source(&self) -> String {
        self.cached(|md| Some(md.from.clone()).filter(|f| !f.is_empty()))
            .unwrap_or_else(|| self.bootstrap().to_string())
    }

    /// Number of partitions of a topic: cached, and read again once older than the
    /// metadata max age (a stale count is kept while no broker answers).
    pub async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        let max_age = self.inner.metadata_max_age;
        let now = shale_core::clock::monotonic_now();
        let cached = self.cached(|md| {
            let n = md.topics.get(topic)?.len() as u32;
            let fresh = md.read_at.get(topic).is_some_and(|at| now.duration_since(*at) < max_age);
            Some((n, fresh))
        });
        let located = |e| locate(e, &self.metadata_source(), Some(topic), None);
        match cached {
            Some((n, true)) => return Ok(n),
            Some((n, false)) => match self.refresh_metadata(&[topic.to_string()]).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {
                    self.forget(topic);
                    return Err(located(e));
                }
                Err(e) => {
                    tracing::debug!(topic, error = %e, "metadata refresh failed; keeping the count");
                    return Ok(n);
                }
            },
            None => self.refresh_metadata(&[topic.to_string()]).await.map_err(located)?,
        }
        self.cached(|md| md.topics.get(topic).map(|l| l.len() as u32)).ok_or_else(|| {
            located(Error::new(
                ErrorKind::NotFound,
                Reason::UnknownTopic,
                format!("unknown topic {topic:?}"),
            ))
        })
    }

    /// [`partition_count`](Self::partition_count), retrying while no broker answers, for up
    /// to `policy.total`.
    pub async fn partition_count_within(
        &self,
        topic: &str,
        policy: RetryPolicy,
    ) -> Result<u32, Error> {
        // The deadline starts at the first failure: a cached answer (the producer's hot
        // path) starts no backoff.
        let mut backoff = None;
        loop {
            match self.partition_count(topic).await {
                Err(e) if e.kind.is_retriable() => {
                    match backoff.get_or_insert_with(|| policy.start()).next_delay() {
                        Some(pause) => shale_core::clock::sleep(pause).await,
                        None => return Err(retry::gave_up("metadata", e, policy.total)),
                    }
                }
                result => return result,
            }
        }
    }

    /// Address of a partition's leader.
    pub async fn leader(&self, topic: &str, partition: u32) -> Result<String, Error> {
        if let Some(addr) = self.leader_cached(topic, partition) {
            return Ok(addr);
        }
        let located = |e| locate(e, &self.metadata_source(), Some(topic), Some(partition));
        {
            let _refreshing = self.inner.refreshing.lock().await;
            // Another caller's refresh may have brought the answer meanwhile.
            if let Some(addr) = self.leader_cached(topic, partition) {
                return Ok(addr);
            }
            self.refresh_metadata(&[topic.to_string()]).await.map_err(located)?;
        }
        if let Some(addr) = self.leader_cached(topic, partition) {
            return Ok(addr);
        }
        let count = self.partition_count(topic).await.map_err(located)?;
        if partition >= count {
            let e = shale_core::error::partition_out_of_range(topic, partition, count);
            return Err(located(e));
        }
        Err(located(Error::unavailable("no leader right now")))
    }

    /// Runs a request against a partition's leader; on `NOT_LEADER` or an unavailable
    /// broker it refreshes metadata and tries again (a few times, for about a second).
    pub async fn on_leader<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(LogClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.on_leader_within(topic, partition, RetryPolicy::QUICK, call).await
    }

    /// Runs a request against a partition's leader, waiting for one for up to
    /// `policy.total`: on `NOT_LEADER` or an unreachable broker it pauses (exponential
    /// backoff), looks the leader up again and retries. Errors name the broker and partition.
    pub async fn on_leader_within<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(LogClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.at_leader_within(topic, partition, policy, |addr| {
            let rpc = self.log_rpc(addr);
            let call = &call;
            async move {
                match rpc {
                    Ok(rpc) => call(rpc)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| status_error(&s)),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    /// Runs a call against the address of a partition's leader, retried as
    /// [`on_leader_within`](Self::on_leader_within) retries: for requests of other services
    /// than `Log` that only the leader answers (DeleteRecords).
    pub async fn at_leader_within<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut backoff = policy.start();
        loop {
            // A broker's answer is retried as reads and sends retry it (its metadata may be
            // behind); the cluster's own metadata saying the topic is gone is final.
            let e = match self.leader(topic, partition).await {
                Ok(addr) => match call(&addr).await {
                    Ok(resp) => return Ok(resp),
                    Err(e) if retry::worth_retrying(&e) => {
                        locate(e, &addr, Some(topic), Some(partition))
                    }
                    Err(e) => return Err(locate(e, &addr, Some(topic), Some(partition))),
                },
                Err(e) if e.kind.is_retriable() => e,
                Err(e) => return Err(e),
            };
            self.invalidate(topic);
            match backoff.next_delay() {
                Some(pause) => shale_core::clock::sleep(pause).await,
                None => return Err(retry::gave_up("leader", e, policy.total)),
            }
        }
    }

    /// Marks a topic's leaders and partition count stale so the next lookup asks the
    /// cluster again. What was known stays for lookups already under way (another task of
    /// this client may be between its refresh and its read), and as the partition count to
    /// fall back on while no broker answers.
    pub fn invalidate(&self, topic: &str) {
        if let Ok(mut md) = self.inner.metadata.write() {
            md.read_at.remove(topic);
        }
    }

    /// Forgets a topic the cluster says does not exist.
    fn forget(&self, topic: &str) {
        if let Ok(mut md) = self.inner.metadata.write() {
            md.topics.remove(topic);
            md.read_at.remove(topic);
        }
    }

    /// Test only: `topic` has one partition, led by broker `node` at `leader`, as if a
    /// metadata answer had just said so.
    #[cfg(test)]
    pub(crate) fn seed_metadata(&self, topic: &str, node: i32, leader: &str) {
        let mut md = self.inner.metadata.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        md.brokers.insert(node, leader.to_string());
        md.topics.insert(topic.to_string(), vec![node]);
        md.read_at.insert(topic.to_string(), shale_core::clock::monotonic_now());
    }

    fn leader_cached(&self, topic: &str, partition: u32) -> Option<String> {
        self.cached(|md| {
            md.read_at.get(topic)?;
            let leader = *md.topics.get(topic)?.get(partition as usize)?;
            md.brokers.get(&leader).cloned()
        })
    }

    fn cached<T>(&self, f: impl FnOnce(&Metadata) -> Option<T>) -> Option<T> {
        self.inner.metadata.read().ok().and_then(|md| f(&md))
    }
}
