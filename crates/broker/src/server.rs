//! Assembles a broker and its gRPC server from settings and the injected parts, and runs
//! it until asked to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::rpc::admin_service::AdminService;
use crate::rpc::log_service::LogService;
use crate::settings::Settings;
use shale_core::clock::SharedClock;
use shale_core::error::Error;
use shale_meta::MetaStore;
use shale_meta::embedded::EmbeddedStore;
use shale_proto::pb;

use shale_proto::transport::{CONNECTION_WINDOW, MAX_STREAMS_PER_CONNECTION, STREAM_WINDOW};

/// A broker serving gRPC.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    admin: Option<crate::admin::AdminServer>,
    broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    serve: shale_core::task::OwnedTask<Result<(), tonic::transport::Error>>,
}

/// The metadata store the settings ask for: etcd when endpoints are configured, else the
/// embedded store under the data dir.
pub async fn meta_store(
    settings: &Settings,
    clock: SharedClock,
) -> Result<Arc<dyn MetaStore>, Error> {
    let endpoints = &settings.cluster.etcd_endpoints;
    if endpoints.is_empty() {
        return embedded_meta(settings, clock);
    }
    let store = shale_meta::etcd::EtcdStore::connect(endpoints, etcd_options(settings)?).await?;
    Ok(store)
}

/// The etcd client's TLS and credentials from the settings' files; an error names the file.
fn etcd_options(settings: &Settings) -> Result<shale_meta::etcd::EtcdOptions, Error> {
    let c = &settings.cluster;
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            Error::invalid(format!("cannot read the etcd {what} {}: {e}", path.display()))
        })
    };
    let tls = match &c.etcd_tls_ca_file {
        None => None,
        Some(ca) => {
            let identity = match (&c.etcd_tls_cert_file, &c.etcd_tls_key_file) {
                (Some(cert), Some(key)) => {
                    Some((read(cert, "TLS certificate")?, read(key, "TLS key")?))
                }
                _ => None,
            };
            Some(shale_meta::etcd::EtcdTls { ca_pem: read(ca, "CA bundle")?, identity })
        }
    };
    let user = match (&c.etcd_user, &c.etcd_password_file) {
        (Some(user), Some(file)) => {
            let password = String::from_utf8(read(file, "password file")?).map_err(|_| {
                Error::invalid(format!("the etcd password file {} is not UTF-8", file.display()))
            })?;
            Some((user.clone(), password.trim_end_matches(['\n', '\r']).to_string()))
        }
        _ => None,
    };
    Ok(shale_meta::etcd::EtcdOptions { tls, user, ..Default::default() })
}

/// Opens the embedded metadata store under the data dir (`shale standalone`).
pub fn embedded_meta(settings: &Settings, clock: SharedClock) -> Result<Arc<dyn MetaStore>, Error> {
    let dir = settings.broker.data_dir.join("meta");
    let store = EmbeddedStore::open(&dir, clock)?;
    Ok(store)
}

/// Binds the listen address, opens the broker and starts serving.
///
/// Long on purpose: the assembly of a running server, one step per concern (listener,
/// broker, admin listener, health, services, transport settings), in the order they must
/// happen.
pub async fn start(
    mut settings: Settings,
    meta: Arc<dyn MetaStore>,
    clock: SharedClock,
) -> Result<RunningServer, Error> {
    settings.validate()?;
    settings.tls.check_listener(settings.broker.listen)?;
    let authenticator = crate::auth::Authenticator::new(&settings.auth, clock.clone()).await?;
    let tls = match settings.tls.enabled() {
        true => Some(crate::tls::ServerTls::load(&settings.tls)?),
        false => None,
    };
    let listener = TcpListener::bind(settings.broker.listen).await.map_err(|e| {
        Error::unavailable(format!("cannot listen on {}: {e}", settings.broker.listen))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("cannot read the bound address: {e}")))?;
    // With port 0 the real port is known only now; advertise it.
    if settings.broker.advertise.is_empty() {
        settings.broker.advertise = addr.to_string();
    }
    let max_request = settings.log.max_request_bytes;
    let admin_listen = settings.broker.admin_listen;
    let bucket = match settings.tier.object_store.as_str() {
        "" => None,
        url => Some(shale_storage::tier::Bucket::open(url, &settings.tier)?),
    };
    let broker = Broker::open(settings, meta, clock, bucket, tls.clone()).await?;
    let admin_http = match admin_listen {
        Some(a) => match crate::admin::AdminServer::start(a, &broker).await {
            Ok(admin) => Some(admin),
            Err(e) => {
                let _ = broker.close().await;
                return Err(e);
            }
        },
        None => None,
    };

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<pb::log_server::LogServer<LogService>>().await;
    health_reporter.set_serving::<pb::admin_server::AdminServer<AdminService>>().await;
    health_reporter
        .set_serving::<pb::groups_server::GroupsServer<crate::rpc::groups_service::GroupsService>>()
        .await;
    // The overall status ("") is readiness: SERVING while the broker holds its lease, has
    // caught up with the metadata and is not draining. Kubernetes' gRPC readiness probe asks
    // for it; liveness asks for a named service, which stays SERVING while the process runs.
    broker.spawn(track_readiness(Arc::downgrade(&broker), health_reporter.clone()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::internal(format!("cannot build the reflection service: {e}")))?;

    let log = pb::log_server::LogServer::new(LogService::new(broker.clone()))
        .max_decoding_message_size(max_request)
        .max_encoding_message_size(usize::MAX);
    let admin = pb::admin_server::AdminServer::new(AdminService::new(broker.clone()));
    let groups = pb::groups_server::GroupsServer::new(
        crate::rpc::groups_service::GroupsService::new(broker.clone()),
    );
    let replica = pb::replica_server::ReplicaServer::new(
        crate::rpc::replica_service::ReplicaService::new(broker.clone()),
    )
    .max_encoding_message_size(usize::MAX);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .layer(crate::metrics::GrpcLatencyLayer::new(broker.request_metrics().clone()))
        .layer(crate::auth::layer::AuthLayer::new(authenticator, broker.quotas().clone()))
        // Large windows: throughput for big batches, and h2's budget for small buffered
        // DATA frames scales with the connection window, so a producer pipelining many
        // tiny batches over many partitions is not mistaken for a flood.
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        // A consumer keeps one Fetch stream per partition open; announce a limit far above
        // any partition count so clients never queue streams behind parked long-polls.
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(log)
        .add_service(admin)
        .add_service(groups)
        .add_service(replica);
    // Nagle's algorithm would hold the last frame of each answer until the peer's delayed
    // ACK (~40 ms per unary call); gRPC frames are already batched by h2.
    let stop = async move {
        let _ = stop_rx.await;
    };
    // Owned: dropping the server without closing it stops the accept loop too.
    let serve = match &tls {
        Some(tls) => {
            let (incoming, accept_loop) = tls.incoming(listener);
            broker.spawn(accept_loop);
            shale_core::task::spawn_owned(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60)));
            shale_core::task::spawn_owned(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };
    tracing::info!(%addr, broker = broker.id(), tls = tls.is_some(), "serving gRPC");
    Ok(RunningServer { addr, admin: admin_http, broker, stop: Some(stop_tx), serve })
}

/// Keeps the gRPC health service's overall status equal to the broker's readiness.
async fn track_readiness(
    broker: std::sync::Weak<Broker>,
    reporter: tonic_health::server::HealthReporter,
) {
    use tonic_health::ServingStatus;
    let mut last = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        let ready = !b.is_closing() && !b.is_draining() && b.check_serving().is_ok();
        drop(b);
        if last != Some(ready) {
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            last = Some(ready);
        }
    }
}

impl RunningServer {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the admin HTTP listener, when one was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::AdminServer::addr)
    }

    /// The broker behind the server.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Graceful shutdown: drains (produce refused, leadership handed to in-sync replicas,
    /// uploads in flight finished; bounded by `broker.drain_timeout_ms`), then stops
    /// accepting requests, lets in-flight ones finish, closes the broker and deregisters.
    pub async fn shutdown(self) -> Result<crate::broker::DrainReport, Error> {
        let timeout =
            std::time::Duration::from_millis(self.broker.settings().broker.drain_timeout_ms);
        let report = self.broker.drain(timeout).await;
        self.close().await?;
        Ok(report)
    }

    /// Stops accepting requests, lets in-flight ones finish, and closes the broker, without
    /// draining first.
    pub async fn close(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Long-lived fetch streams would hold the graceful shutdown open; closing the broker
        // ends them, so close first, then wait for the server.
        let closed = self.broker.close().await;
        match tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "grpc server task failed"),
            Err(_) => {
                tracing::warn!("grpc server did not stop within 10s; aborting");
                self.serve.abort();
            }
        }
        closed
    }
}
