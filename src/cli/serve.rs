//! `shale standalone` and `shale serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::ConfigArg;
use crate::cpus::CpuList;
use crate::settings::Settings;

/// `shale standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Where data and embedded metadata live.
    #[arg(long, env = "SHALE_DATA_DIR", default_value = "./shale-data")]
    pub data_dir: PathBuf,
    /// Address to serve gRPC on.
    #[arg(long, env = "SHALE_LISTEN", default_value = "127.0.0.1:9292")]
    pub listen: SocketAddr,
    /// Address to serve the Kafka protocol on; "none" for no Kafka listener.
    #[arg(long, env = "SHALE_KAFKA_LISTEN", default_value = "127.0.0.1:9092", value_parser = parse_kafka_listen)]
    pub kafka_listen: KafkaListen,
    /// Address to serve the schema registry (Confluent's REST API) on; "none" for no
    /// registry listener.
    #[arg(long, env = "SHALE_SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081", value_parser = parse_registry_listen)]
    pub schema_registry_listen: RegistryListen,
    /// Address to serve the web console on; "none" for no console.
    #[arg(long, env = "SHALE_CONSOLE_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_console_listen)]
    pub console_listen: ConsoleListen,
    /// Object store for tiered segments: s3://bucket/prefix, file:///path or memory://
    /// (default: file://{data-dir}/bucket).
    #[arg(long, env = "SHALE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Address of the admin HTTP listener (/metrics, /healthz, /readyz), e.g.
    /// 127.0.0.1:9293 (default: none).
    #[arg(long, env = "SHALE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Where the broker's threads run (each overrides `[runtime]` in the file).
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// The CPUs to confine the broker to, as Linux writes them (0, 0-3, 0,2-3): every
    /// thread of it, the runtime a worker per CPU (default: every CPU it may use).
    #[arg(long, env = "SHALE_CPUS", value_name = "LIST")]
    pub cpus: Option<CpuList>,
}

impl RuntimeArgs {
    fn apply(&self, settings: &mut Settings) {
        if let Some(cpus) = &self.cpus {
            settings.runtime.cpus = cpus.to_string();
        }
    }
}

/// Confines a server command's process to its CPUs (`--cpus`, else the file's
/// `runtime.cpus`): before the runtime starts, so that its threads, and every thread
/// started after, inherit them. A settings file that cannot be read is left to the command
/// to report.
pub(super) fn confine(command: &super::Command) -> Result<(), String> {
    let (runtime, config) = match command {
        super::Command::Standalone(a) => (&a.runtime, &a.config),
        super::Command::Serve(a) => (&a.runtime, &a.config),
        _ => return Ok(()),
    };
    let cpus = match &runtime.cpus {
        Some(cpus) => cpus.clone(),
        None => match load(config).map(|s| s.runtime.cpus()) {
            Ok(Ok(Some(cpus))) => cpus,
            _ => return Ok(()),
        },
    };
    cpus.confine().map_err(|e| format!("cannot run on CPUs {cpus}: {e}"))
}

/// TLS on the gRPC listener and to other brokers (each overrides `[tls]` in the file).
#[derive(Debug, Args)]
pub struct ServerTlsArgs {
    /// PEM certificate chain to serve; with --tls-key, turns TLS on.
    #[arg(long, env = "SHALE_BROKER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SHALE_BROKER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle client and peer certificates must chain to.
    #[arg(long, env = "SHALE_BROKER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Ask clients for a certificate: none, optional or required (mTLS).
    #[arg(long, env = "SHALE_BROKER_TLS_CLIENT_AUTH", value_parser = parse_client_auth)]
    pub tls_client_auth: Option<crate::tls::ClientAuth>,
    /// Serve plaintext on an address other than loopback (refused without this).
    #[arg(long, env = "SHALE_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}

/// `--kafka-listen`: an address, or none.
#[derive(Debug, Clone, Copy)]
pub struct KafkaListen(Option<SocketAddr>);

fn parse_kafka_listen(s: &str) -> Result<KafkaListen, String> {
    match s {
        "none" | "" => Ok(KafkaListen(None)),
        addr => addr.parse().map(|a| KafkaListen(Some(a))).map_err(|_| {
            format!("invalid Kafka listen address {addr:?}: expected HOST:PORT or none")
        }),
    }
}

/// `--schema-registry-listen`: an address, or none.
#[derive(Debug, Clone, Copy)]
pub struct RegistryListen(Option<SocketAddr>);

fn parse_registry_listen(s: &str) -> Result<RegistryListen, String> {
    match s {
        "none" | "" => Ok(RegistryListen(None)),
        addr => addr.parse().map(|a| RegistryListen(Some(a))).map_err(|_| {
            format!("invalid schema registry listen address {addr:?}: expected HOST:PORT or none")
        }),
    }
}

/// `--console-listen`: an address, or none.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleListen(Option<SocketAddr>);

fn parse_console_listen(s: &str) -> Result<ConsoleListen, String> {
    match s {
        "none" | "" => Ok(ConsoleListen(None)),
        addr => addr.parse().map(|a| ConsoleListen(Some(a))).map_err(|_| {
            format!("invalid console listen address {addr:?}: expected HOST:PORT or none")
        }),
    }
}

fn parse_client_auth(s: &str) -> Result<crate::tls::ClientAuth, String> {
    match s {
        "none" => Ok(crate::tls::ClientAuth::None),
        "optional" => Ok(crate::tls::ClientAuth::Optional),
        "required" => Ok(crate::tls::ClientAuth::Required),
        other => Err(format!("invalid client auth {other:?}: expected none, optional or required")),
    }
}

impl ServerTlsArgs {
    fn apply(self, settings: &mut Settings) {
        let tls = &mut settings.tls;
        if self.tls_cert.is_some() {
            tls.cert_file = self.tls_cert;
        }
        if self.tls_key.is_some() {
            tls.key_file = self.tls_key;
        }
        if self.tls_ca.is_some() {
            tls.ca_file = self.tls_ca;
        }
        if let Some(mode) = self.tls_client_auth {
            tls.client_auth = mode;
        }
        if self.allow_plaintext {
            tls.allow_plaintext = true;
        }
    }
}

/// `shale serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Broker id (overrides the file).
    #[arg(long, env = "SHALE_BROKER_ID")]
    pub id: Option<i32>,
    /// Address to serve gRPC on (overrides the file).
    #[arg(long, env = "SHALE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address clients should dial (overrides the file).
    #[arg(long, env = "SHALE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Address to serve the Kafka protocol on, or "none" (overrides the file's
    /// `kafka.listen`).
    #[arg(long, env = "SHALE_KAFKA_LISTEN", value_parser = parse_kafka_listen)]
    pub kafka_listen: Option<KafkaListen>,
    /// Address to serve the schema registry on, or "none" (overrides the file's
    /// `schema_registry.listen`).
    #[arg(long, env = "SHALE_SCHEMA_REGISTRY_LISTEN", value_parser = parse_registry_listen)]
    pub schema_registry_listen: Option<RegistryListen>,
    /// Address to serve the web console on, or "none" (overrides the file's
    /// `console.listen`).
    #[arg(long, env = "SHALE_CONSOLE_LISTEN", value_parser = parse_console_listen)]
    pub console_listen: Option<ConsoleListen>,
    /// Address Kafka clients should dial, host:port (overrides the file's
    /// `kafka.advertise`).
    #[arg(long, env = "SHALE_KAFKA_ADVERTISE")]
    pub kafka_advertise: Option<String>,
    /// Data directory (overrides the file).
    #[arg(long, env = "SHALE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cluster name (overrides the file).
    #[arg(long, env = "SHALE_CLUSTER")]
    pub cluster: Option<String>,
    /// etcd endpoints, comma-separated, e.g. http://10.0.0.1:2379 (overrides the file;
    /// none means the embedded store).
    #[arg(long, env = "SHALE_ETCD", value_delimiter = ',')]
    pub etcd: Option<Vec<String>>,
    /// PEM CA bundle etcd's certificate must chain to (TLS to etcd; https:// endpoints).
    #[arg(long, env = "SHALE_ETCD_TLS_CA")]
    pub etcd_tls_ca: Option<PathBuf>,
    /// PEM client certificate for etcd (--client-cert-auth); needs --etcd-tls-key.
    #[arg(long, env = "SHALE_ETCD_TLS_CERT")]
    pub etcd_tls_cert: Option<PathBuf>,
    /// PEM key of --etcd-tls-cert.
    #[arg(long, env = "SHALE_ETCD_TLS_KEY")]
    pub etcd_tls_key: Option<PathBuf>,
    /// etcd user (etcd's own authentication); needs --etcd-password-file.
    #[arg(long, env = "SHALE_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(long, env = "SHALE_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,
    /// Accept JWT bearer tokens from this OpenID Connect issuer (overrides the file's
    /// `auth.jwt.issuer`; keys from its discovery document).
    #[arg(long, env = "SHALE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The audience those JWTs must name (default `shale`, or the file's).
    #[arg(long, env = "SHALE_JWT_AUDIENCE", requires = "jwt_issuer")]
    pub jwt_audience: Option<String>,
    /// Lease TTL in seconds (overrides the file).
    #[arg(long, env = "SHALE_LEASE_TTL_SECS")]
    pub lease_ttl_secs: Option<u64>,
    /// Rack or zone (overrides the file).
    #[arg(long, env = "SHALE_RACK")]
    pub rack: Option<String>,
    /// Object store for tiered segments, shared by the cluster's brokers:
    /// s3://bucket/prefix, file:///path or memory:// (overrides the file).
    #[arg(long, env = "SHALE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Address of the admin HTTP listener (/metrics, /healthz, /readyz) (overrides the
    /// file).
    #[arg(long, env = "SHALE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
}

fn load(config: &ConfigArg) -> anyhow::Result<Settings> {
    Ok(match &config.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    })
}

pub(super) async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let mut settings = load(&args.config)?;
    args.tls.apply(&mut settings);
    args.runtime.apply(&mut settings);
    settings.broker.data_dir = args.data_dir;
    settings.broker.listen = args.listen;
    settings.kafka.listen = args.kafka_listen.0;
    settings.schema_registry.listen = args.schema_registry_listen.0;
    settings.console.listen = args.console_listen.0;
    settings.broker.id.get_or_insert(0);
    if args.admin_listen.is_some() {
        settings.broker.admin_listen = args.admin_listen;
    }
    if let Some(url) = args.object_store {
        settings.tier.object_store = url;
    }
    if settings.tier.object_store.is_empty() {
        // The embedded default: a bucket directory under the data dir.
        std::fs::create_dir_all(&settings.broker.data_dir)
            .with_context(|| format!("creating {}", settings.broker.data_dir.display()))?;
        let dir = std::fs::canonicalize(&settings.broker.data_dir)
            .with_context(|| format!("resolving {}", settings.broker.data_dir.display()))?;
        settings.tier.object_store = format!("file://{}", dir.join("bucket").display());
    }
    run(settings).await
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = load(&args.config)?;
    args.tls.apply(&mut settings);
    args.runtime.apply(&mut settings);
    if let Some(id) = args.id {
        settings.broker.id = Some(id);
    }
    if let Some(l) = args.listen {
        settings.broker.listen = l;
    }
    if let Some(a) = args.advertise {
        settings.broker.advertise = a;
    }
    if let Some(KafkaListen(l)) = args.kafka_listen {
        settings.kafka.listen = l;
    }
    if let Some(RegistryListen(l)) = args.schema_registry_listen {
        settings.schema_registry.listen = l;
    }
    if let Some(ConsoleListen(l)) = args.console_listen {
        settings.console.listen = l;
    }
    if let Some(a) = args.kafka_advertise {
        settings.kafka.advertise = a;
    }
    if let Some(d) = args.data_dir {
        settings.broker.data_dir = d;
    }
    if let Some(c) = args.cluster {
        settings.cluster.name = c;
    }
    if let Some(e) = args.etcd {
        settings.cluster.etcd_endpoints = e.into_iter().filter(|e| !e.is_empty()).collect();
    }
    let c = &mut settings.cluster;
    for (flag, setting) in [
        (args.etcd_tls_ca, &mut c.etcd_tls_ca_file),
        (args.etcd_tls_cert, &mut c.etcd_tls_cert_file),
        (args.etcd_tls_key, &mut c.etcd_tls_key_file),
        (args.etcd_password_file, &mut c.etcd_password_file),
    ] {
        if flag.is_some() {
            *setting = flag;
        }
    }
    if args.etcd_user.is_some() {
        c.etcd_user = args.etcd_user;
    }
    if let Some(issuer) = args.jwt_issuer.filter(|i| !i.is_empty()) {
        let jwt = settings.auth.jwt.get_or_insert_with(|| shale_broker::auth::JwtSettings {
            audience: "shale".into(),
            ..Default::default()
        });
        jwt.issuer = issuer;
        if let Some(a) = args.jwt_audience {
            jwt.audience = a;
        }
    }
    if let Some(t) = args.lease_ttl_secs {
        settings.cluster.lease_ttl_secs = t;
    }
    if let Some(r) = args.rack {
        settings.broker.rack = r;
    }
    if let Some(url) = args.object_store {
        settings.tier.object_store = url;
    }
    if args.admin_listen.is_some() {
        settings.broker.admin_listen = args.admin_listen;
    }
    run(settings).await
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.validate()?;
    let clock = crate::clock::system();
    let meta = crate::server::meta_store(&settings, clock.clone()).await?;
    let data_dir = settings.broker.data_dir.clone();
    let settings_etcd = settings.cluster.etcd_endpoints.clone();
    let cpus = settings.runtime.cpus()?;
    let object_store = match settings.tier.object_store.as_str() {
        "" => "no object store".to_string(),
        url => format!("object store {url}"),
    };
    let server =
        crate::server::start(settings, meta, clock).await.context("starting the broker")?;
    let metadata = if settings_etcd.is_empty() {
        "embedded metadata".to_string()
    } else {
        format!("etcd {}", settings_etcd.join(","))
    };
    let admin = server.admin_addr().map(|a| format!(", admin http://{a}")).unwrap_or_default();
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let plural = if workers == 1 { "" } else { "s" };
    let cpus = cpus.map(|c| format!(", on CPUs {c}: {workers} runtime worker{plural}"));
    let cpus = cpus.unwrap_or_default();
    let kafka = server.kafka_addr().map(|a| format!("Kafka on {a}, ")).unwrap_or_default();
    let registry =
        server.registry_url().map(|u| format!("schema registry {u}, ")).unwrap_or_default();
    let console = server.console_url().map(|u| format!("console {u}, ")).unwrap_or_default();
    println!(
        "shale broker {} listening on {} ({kafka}{registry}{console}data in {}, {metadata}, {object_store}{admin}{cpus})",
        server.broker().id(),
        server.addr(),
        data_dir.display()
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let id = server.broker().id();
    let r = server.shutdown().await?;
    println!(
        "shale broker {id} stopped: handed over {} of {} leaderships, kept {} without another \
         in-sync replica{}; uploads in flight {}",
        r.led_before.saturating_sub(r.led_after),
        r.led_before,
        r.led_after,
        if r.movable_after > 0 {
            format!(", {} timed out", r.movable_after)
        } else {
            String::new()
        },
        if r.uploads_finished { "finished" } else { "cut off by the drain timeout" },
    );
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
