//! The broker's settings: its sections of the settings file (`[cluster]`, `[broker]`,
//! `[log]`, ...), validated with the offending key named. The file's root, with each front
//! end's own section beside these, is the process's (`shale::settings`, which reads the
//! file, `SHALE_*` environment variables and flags).
//!
//! Settings are plain data. The injected parts (metadata store, clock) are chosen by the
//! caller that assembles a broker (`server`), not here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, Reason};
use shale_core::topic_config::TopicConfig;
pub use shale_groups::settings::GroupSettings;
pub use shale_storage::tier::TierSettings;

/// Default gRPC port.
pub const DEFAULT_PORT: u16 = 9292;

/// Everything a broker process is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[cluster]`.
    pub cluster: ClusterSettings,
    /// `[broker]`.
    pub broker: BrokerSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[replication]`.
    pub replication: ReplicationSettings,
    /// `[topics]`: defaults for topic creation.
    pub topics: TopicSettings,
    /// `[tier]`: the object store and tiered storage.
    pub tier: TierSettings,
    /// `[groups]`: consumer group timeouts.
    pub groups: GroupSettings,
    /// `[topic_defaults]`: topic configs by Kafka name, for topics that don't set them.
    pub topic_defaults: BTreeMap<String, String>,
    /// `[tls]`: TLS on the gRPC listener and to other brokers.
    pub tls: crate::tls::TlsSettings,
    /// `[auth]`: how callers are authenticated.
    pub auth: crate::auth::AuthSettings,
    /// `[acl]`: authorization.
    pub acl: crate::acl::AclSettings,
    /// `[quota]`: how per-principal quotas are enforced.
    pub quota: crate::quota::QuotaSettings,
    /// The front ends' addresses clients dial, set by the process that assembles the
    /// broker (not read from the file): the broker registers them so that every broker
    /// can name them (Kafka's Metadata and FindCoordinator).
    #[serde(skip)]
    pub front_ends: FrontEndAddresses,
}

/// The front ends' advertised addresses (`host:port`; empty: that front end is off).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontEndAddresses {
    /// The Kafka listener's.
    pub kafka: String,
    /// The schema registry listener's.
    pub schema_registry: String,
}

/// `[cluster]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Cluster name; prefixes every metadata key (`/shale/{name}/`).
    pub name: String,
    /// etcd endpoints (`http://host:port`, or `https://` with TLS); empty means the
    /// embedded metadata store.
    pub etcd_endpoints: Vec<String>,
    /// PEM CA bundle etcd's certificate must chain to; turns on TLS to etcd.
    pub etcd_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd's `--client-cert-auth` (with `etcd_tls_key_file`).
    pub etcd_tls_cert_file: Option<PathBuf>,
    /// PEM key of `etcd_tls_cert_file`.
    pub etcd_tls_key_file: Option<PathBuf>,
    /// etcd user (etcd's own authentication), with `etcd_password_file`.
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password.
    pub etcd_password_file: Option<PathBuf>,
    /// TTL of a broker's lease (seconds): how long a broker whose process is gone without
    /// a trace (a host without power, a network partition) is still taken as registered.
    pub lease_ttl_secs: u64,
    /// Between two heartbeats of a broker on etcd (ms).
    pub heartbeat_interval_ms: u64,
    /// A broker whose heartbeat nobody saw change for this long (ms) is fenced and its
    /// leaderships move: how long a frozen leader (SIGSTOP, a paused VM, a stalled disk)
    /// holds its partitions. It trusts a heartbeat for this less one interval after sending
    /// it. 0 turns heartbeats off (failover of a frozen broker then takes the lease TTL).
    pub heartbeat_timeout_ms: u64,
}

impl ClusterSettings {
    /// The heartbeat settings, when this broker beats: on etcd, unless turned off.
    pub fn heartbeats(&self) -> Option<shale_meta::heartbeat::HeartbeatSettings> {
        (!self.etcd_endpoints.is_empty() && self.heartbeat_timeout_ms > 0).then(|| {
            shale_meta::heartbeat::HeartbeatSettings {
                interval: std::time::Duration::from_millis(self.heartbeat_interval_ms),
                timeout: std::time::Duration::from_millis(self.heartbeat_timeout_ms),
            }
        })
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            name: "shale".to_string(),
            etcd_endpoints: Vec::new(),
            etcd_tls_ca_file: None,
            etcd_tls_cert_file: None,
            etcd_tls_key_file: None,
            etcd_user: None,
            etcd_password_file: None,
            lease_ttl_secs: 10,
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms: 500,
        }
    }
}

/// `[broker]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// Broker id, unique in the cluster; unset means "allocate one once and keep it in the
    /// data dir".
    pub id: Option<i32>,
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// Address clients are told to use; empty means `listen`.
    pub advertise: String,
    /// Rack or zone, for replica placement.
    pub rack: String,
    /// Where partition logs and the embedded metadata live.
    pub data_dir: PathBuf,
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); none means
    /// no listener.
    pub admin_listen: Option<SocketAddr>,
    /// Longest a graceful shutdown (SIGTERM) waits for leadership to move to in-sync
    /// replicas and for uploads in flight to finish before the broker closes anyway (ms).
    pub drain_timeout_ms: u64,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            id: None,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            advertise: String::new(),
            rack: String::new(),
            data_dir: PathBuf::from("./shale-data"),
            admin_listen: None,
            drain_timeout_ms: 30_000,
        }
    }
}

impl BrokerSettings {
    /// The address clients should dial.
    pub fn advertised_address(&self) -> String {
        if self.advertise.is_empty() { self.listen.to_string() } else { self.advertise.clone() }
    }
}

/// `[log]`: local storage tuning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Open read handles kept for sealed segments, across all partitions.
    pub fd_cache_capacity: u64,
    /// Bytes of sealed-segment indexes kept in memory, across all partitions.
    pub index_cache_bytes: u64,
    /// Partitions waiting for an fsync together share one `syncfs(2)` of the data
    /// directory's file system instead of an fsync each. A failed fsync then stops every
    /// partition on that file system (the kernel cannot say which file failed). Off by
    /// default: it pays at hundreds of partitions under `flush.policy=always`, and costs
    /// latency with a few partitions or brokers sharing a file system.
    pub shared_fsync: bool,
    /// Appends of every partition on the data directory also go, framed, into one
    /// preallocated journal file, and one fsync of it per round makes them durable for all
    /// partitions that wrote into the round (`flush.policy=always` acknowledges then); the
    /// segment files are made durable in bulk by checkpoints, off the acknowledgement
    /// path. Off: each partition fsyncs its own segment file before acknowledging.
    pub journal: bool,
    /// Directory of the journal file (`journal`, and `journal.streams` beside it); empty:
    /// the data directory. Give it a disk of its own to keep its fsyncs apart from the
    /// segment files' writeback.
    pub journal_dir: String,
    /// Bytes of the journal (a multiple of 4096, at least 16 MiB); written once, with zeros,
    /// when it is created, and reused lap after lap. A checkpoint starts when half of it is
    /// in use; appends wait for one when it is full. An existing journal keeps its size.
    pub journal_bytes: u64,
    /// Bytes written into the journal since the last checkpoint that start the next (at
    /// least 1 MiB, at most half of `journal_bytes`): small, frequent checkpoints keep each
    /// `syncfs` short, so the journal's fsyncs do not queue behind a burst of writeback.
    pub journal_checkpoint_bytes: u64,
    /// The least time between two journal rounds (µs; at most 100,000): under load the
    /// frames that arrive meanwhile share one write and fdatasync, one wake-up of the
    /// writer, its notifier and each waiting request. 0 starts a round as soon as the
    /// last one is synced. Idle, a round starts at once either way.
    pub journal_round_interval_us: u64,
    /// How often retention runs (ms).
    pub retention_check_interval_ms: u64,
    /// Threads compacting the partitions of compacted topics (Kafka's
    /// `log.cleaner.threads`); 0 stops compaction on this broker.
    pub cleaner_threads: u32,
    /// Memory of the cleaners' offset maps, shared out between the threads (Kafka's
    /// `log.cleaner.dedupe.buffer.size`): a clean maps as many keys of the dirty section
    /// as fit (32 bytes each) and cleans up to there.
    pub cleaner_dedupe_buffer_bytes: u64,
    /// Bytes per second the cleaners read, together (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`); 0: no limit.
    pub cleaner_io_bytes_per_second: u64,
    /// How long a cleaner waits when no partition is due (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub cleaner_backoff_ms: u64,
    /// Nice value of the cleaners' threads (Linux; 0 to 19): under CPU contention they get
    /// a smaller share than the threads serving produce and fetch (nice 0).
    pub cleaner_nice: i32,
    /// Largest gRPC request accepted (bytes).
    pub max_request_bytes: usize,
    /// Batch bytes per Fetch response message when the client does not say (bytes).
    pub fetch_max_bytes: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            fd_cache_capacity: 1024,
            index_cache_bytes: 64 * 1024 * 1024,
            shared_fsync: false,
            journal: true,
            journal_dir: String::new(),
            journal_bytes: 256 << 20,
            journal_checkpoint_bytes: 2 << 20,
            journal_round_interval_us: 1000,
            retention_check_interval_ms: 30_000,
            cleaner_threads: 1,
            cleaner_dedupe_buffer_bytes: 128 << 20,
            cleaner_io_bytes_per_second: 0,
            cleaner_backoff_ms: 15_000,
            cleaner_nice: 10,
            max_request_bytes: 64 * 1024 * 1024,
            fetch_max_bytes: 1024 * 1024,
        }
    }
}

/// `[replication]`: how followers fetch and when they drop out of the ISR.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSettings {
    /// A follower that has not caught up for this long leaves the ISR
    /// (Kafka's `replica.lag.time.max.ms`).
    pub lag_time_max_ms: u64,
    /// Batch bytes per replica fetch answer.
    pub fetch_max_bytes: u32,
    /// How long the leader holds a replica fetch open when there is nothing new.
    pub fetch_max_wait_ms: u32,
    /// Reassignments in progress at once, cluster-wide; more wait their turn. The
    /// controller's setting applies.
    pub max_moves: usize,
    /// Bytes per second this broker copies for replicas it is gaining in a reassignment
    /// (Kafka's follower replication throttle); 0 means unthrottled. Replicas already in
    /// the partition are never throttled.
    pub move_throttle_bytes_per_sec: u64,
    /// The controller balances replicas and leaders across brokers by itself whenever no
    /// reassignment is moving or pending (as `shale cluster rebalance --execute` does on
    /// request). The controller's setting applies.
    pub auto_balance: bool,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            lag_time_max_ms: 10_000,
            fetch_max_bytes: 4 * 1024 * 1024,
            fetch_max_wait_ms: 500,
            max_moves: shale_meta::controller::DEFAULT_MAX_MOVES,
            move_throttle_bytes_per_sec: 128 * 1024 * 1024,
            auto_balance: false,
        }
    }
}

/// `[topics]`: how topics are created when a request leaves things out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    /// Partitions when CreateTopic says 0.
    pub default_partitions: u32,
    /// Replication factor when CreateTopic says 0.
    pub default_replication_factor: u32,
    /// Upper bound on partitions of one topic.
    pub max_partitions: u32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            default_partitions: 1,
            default_replication_factor: 1,
            max_partitions: 10_000,
        }
    }
}

fn invalid(key: &str, why: String) -> Error {
    Error::new(
        shale_core::error::ErrorKind::Invalid,
        Reason::InvalidSetting,
        format!("setting {key}: {why}"),
    )
    .with("key", key)
}

impl Settings {
    /// Checks every value, naming the key of the first bad one.
    ///
    /// Long on purpose: a flat list, one check per setting in the order of the file, each
    /// naming its key; splitting it would only scatter the list.
    pub fn validate(&self) -> Result<(), Error> {
        self.tls.validate()?;
        self.auth.validate(&self.tls)?;
        self.acl.validate()?;
        let name = &self.cluster.name;
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "cluster.name",
                format!("{name:?} must be non-empty [a-zA-Z0-9_-]"),
            ));
        }
        if let Some(id) = self.broker.id.filter(|id| *id < 0) {
            return Err(invalid("broker.id", format!("{id} must be >= 0")));
        }
        if !(1..=3600).contains(&self.cluster.lease_ttl_secs) {
            return Err(invalid(
                "cluster.lease_ttl_secs",
                format!("{} must be from 1 to 3600", self.cluster.lease_ttl_secs),
            ));
        }
        let c = &self.cluster;
        if c.heartbeat_timeout_ms > 0 {
            if !(10..=10_000).contains(&c.heartbeat_interval_ms) {
                return Err(invalid(
                    "cluster.heartbeat_interval_ms",
                    format!("{} must be from 10 to 10000", c.heartbeat_interval_ms),
                ));
            }
            if c.heartbeat_timeout_ms < 2 * c.heartbeat_interval_ms
                || c.heartbeat_timeout_ms >= 1000 * c.lease_ttl_secs
            {
                return Err(invalid(
                    "cluster.heartbeat_timeout_ms",
                    format!(
                        "{} must be at least twice cluster.heartbeat_interval_ms ({}) and \
                         below the lease TTL ({} s), or 0 (off)",
                        c.heartbeat_timeout_ms, c.heartbeat_interval_ms, c.lease_ttl_secs
                    ),
                ));
            }
        }
        for e in &c.etcd_endpoints {
            if e.trim().is_empty() || e.contains(char::is_whitespace) {
                return Err(invalid("cluster.etcd_endpoints", format!("{e:?} is not an endpoint")));
            }
            if c.etcd_tls_ca_file.is_some() && !e.starts_with("https://") {
                return Err(invalid(
                    "cluster.etcd_endpoints",
                    format!("{e:?} must be https://host:port with cluster.etcd_tls_ca_file set"),
                ));
            }
        }
        if c.etcd_tls_cert_file.is_some() != c.etcd_tls_key_file.is_some() {
            return Err(invalid(
                "cluster.etcd_tls_cert_file",
                "and cluster.etcd_tls_key_file go together: set both or neither".to_string(),
            ));
        }
        if c.etcd_tls_cert_file.is_some() && c.etcd_tls_ca_file.is_none() {
            return Err(invalid(
                "cluster.etcd_tls_cert_file",
                "needs cluster.etcd_tls_ca_file (TLS to etcd)".to_string(),
            ));
        }
        if c.etcd_user.is_some() != c.etcd_password_file.is_some() {
            return Err(invalid(
                "cluster.etcd_user",
                "and cluster.etcd_password_file go together: set both or neither".to_string(),
            ));
        }
        let g = &self.groups;
        if g.min_session_timeout_ms == 0
            || g.min_session_timeout_ms > g.max_session_timeout_ms
            || !(g.min_session_timeout_ms..=g.max_session_timeout_ms)
                .contains(&g.session_timeout_ms)
        {
            return Err(invalid(
                "groups.session_timeout_ms",
                format!(
                    "{} must lie within groups.min_session_timeout_ms {} and \
                     groups.max_session_timeout_ms {} (min at least 1)",
                    g.session_timeout_ms, g.min_session_timeout_ms, g.max_session_timeout_ms
                ),
            ));
        }
        if g.heartbeat_interval_ms == 0 || g.rebalance_timeout_ms == 0 {
            return Err(invalid(
                "groups.heartbeat_interval_ms",
                "groups.heartbeat_interval_ms and groups.rebalance_timeout_ms must be above 0"
                    .to_string(),
            ));
        }
        if g.lag_metrics_interval_ms < 100 {
            return Err(invalid(
                "groups.lag_metrics_interval_ms",
                format!("{} is too small: use at least 100", g.lag_metrics_interval_ms),
            ));
        }
        if self.broker.data_dir.as_os_str().is_empty() {
            return Err(invalid("broker.data_dir", "must not be empty".to_string()));
        }
        if self.log.fd_cache_capacity < 16 {
            return Err(invalid("log.fd_cache_capacity", "must be at least 16".to_string()));
        }
        let jb = self.log.journal_bytes;
        if jb < shale_storage::log::MIN_JOURNAL_BYTES || !jb.is_multiple_of(4096) {
            return Err(invalid(
                "log.journal_bytes",
                format!("{jb} is not a multiple of 4096 of at least 16 MiB (16777216)"),
            ));
        }
        let cb = self.log.journal_checkpoint_bytes;
        if cb < 1 << 20 || cb > jb / 2 {
            return Err(invalid(
                "log.journal_checkpoint_bytes",
                format!(
                    "{cb} is outside 1 MiB (1048576) ..= half of log.journal_bytes ({})",
                    jb / 2
                ),
            ));
        }
        let ri = self.log.journal_round_interval_us;
        if ri > 100_000 {
            return Err(invalid(
                "log.journal_round_interval_us",
                format!("{ri} is above 100000 (100 ms)"),
            ));
        }
        if self.log.cleaner_threads > 64 {
            let v = self.log.cleaner_threads;
            return Err(invalid("log.cleaner_threads", format!("{v}: at most 64")));
        }
        if self.log.cleaner_threads > 0
            && self.log.cleaner_dedupe_buffer_bytes
                < (1 << 20) * u64::from(self.log.cleaner_threads)
        {
            let v = self.log.cleaner_dedupe_buffer_bytes;
            return Err(invalid(
                "log.cleaner_dedupe_buffer_bytes",
                format!("{v}: at least 1 MiB per cleaner thread"),
            ));
        }
        if !(0..=19).contains(&self.log.cleaner_nice) {
            let v = self.log.cleaner_nice;
            return Err(invalid("log.cleaner_nice", format!("{v}: from 0 to 19")));
        }
        if self.log.cleaner_backoff_ms == 0 {
            return Err(invalid("log.cleaner_backoff_ms", "must be > 0".to_string()));
        }
        if self.log.retention_check_interval_ms == 0 {
            return Err(invalid("log.retention_check_interval_ms", "must be > 0".to_string()));
        }
        if self.log.max_request_bytes < 1024 {
            return Err(invalid("log.max_request_bytes", "must be at least 1024".to_string()));
        }
        if self.log.fetch_max_bytes == 0 {
            return Err(invalid("log.fetch_max_bytes", "must be > 0".to_string()));
        }
        if self.replication.lag_time_max_ms < 100 {
            return Err(invalid("replication.lag_time_max_ms", "must be at least 100".to_string()));
        }
        if self.replication.fetch_max_bytes < 1024 {
            return Err(invalid(
                "replication.fetch_max_bytes",
                "must be at least 1024".to_string(),
            ));
        }
        if self.replication.fetch_max_wait_ms == 0 {
            return Err(invalid("replication.fetch_max_wait_ms", "must be > 0".to_string()));
        }
        if self.replication.max_moves == 0 {
            return Err(invalid("replication.max_moves", "must be > 0".to_string()));
        }
        if self.topics.default_partitions == 0 {
            return Err(invalid("topics.default_partitions", "must be > 0".to_string()));
        }
        if self.topics.default_replication_factor == 0 {
            return Err(invalid("topics.default_replication_factor", "must be > 0".to_string()));
        }
        self.topic_defaults().map_err(|e| invalid("topic_defaults", e.message))?;
        let t = &self.tier;
        if !t.object_store.is_empty() {
            shale_storage::tier::StoreUrl::parse(&t.object_store)
                .map_err(|e| invalid("tier.object_store", e.message))?;
        }
        for (key, value, min) in [
            ("tier.request_timeout_ms", t.request_timeout_ms, 1),
            ("tier.request_max_attempts", u64::from(t.request_max_attempts), 1),
            ("tier.upload_interval_ms", t.upload_interval_ms, 1),
            ("tier.upload_concurrency", t.upload_concurrency as u64, 1),
            ("tier.multipart_part_bytes", t.multipart_part_bytes, 5 * 1024 * 1024),
            ("tier.upload_buffer_bytes", t.upload_buffer_bytes, t.multipart_part_bytes),
            ("tier.chunk_bytes", t.chunk_bytes, 4096),
            ("tier.get_max_bytes", t.get_max_bytes, t.chunk_bytes),
            ("tier.cold_read_threads", t.cold_read_threads as u64, 1),
            ("tier.remote_read_concurrency", t.remote_read_concurrency as u64, 1),
            ("tier.scrub_interval_ms", t.scrub_interval_ms, 1),
        ] {
            if value < min {
                return Err(invalid(key, format!("{value} must be at least {min}")));
            }
        }
        if !(0..=19).contains(&t.cold_read_nice) {
            let nice = t.cold_read_nice;
            return Err(invalid("tier.cold_read_nice", format!("{nice} must be from 0 to 19")));
        }
        Ok(())
    }

    /// The broker-wide topic config defaults.
    pub fn topic_defaults(&self) -> Result<TopicConfig, Error> {
        TopicConfig::resolve(&TopicConfig::default(), &self.topic_defaults)
    }
}
