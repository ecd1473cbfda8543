//! The gRPC server of one broker: the services, health and reflection behind the
//! authentication and latency layers, over plaintext or TLS, until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::admin_service::AdminService;
use crate::groups_service::GroupsService;
use crate::log_service::LogService;
use crate::replica_service::ReplicaService;
use crate::txn_service::TransactionsService;
use shale_broker::api::{Api, ServerTls};
use shale_core::error::Error;
use shale_core::task::OwnedTask;
use shale_proto::pb;
use shale_proto::transport::{CONNECTION_WINDOW, MAX_STREAMS_PER_CONNECTION, STREAM_WINDOW};

/// How long [`GrpcServer::stop`] waits for the server to end before aborting it.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// A running gRPC server.
#[derive(Debug)]
pub struct GrpcServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serve: OwnedTask<Result<(), tonic::transport::Error>>,
}

/// Serves `api` on `listener` (TLS when `tls` is given) until [`GrpcServer::begin_stop`].
pub async fn serve(
    api: Api,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<GrpcServer, Error> {
    let health_reporter = tonic_health::server::HealthReporter::new();
    health_reporter.set_serving::<pb::log_server::LogServer<LogService>>().await;
    health_reporter.set_serving::<pb::admin_server::AdminServer<AdminService>>().await;
    health_reporter.set_serving::<pb::groups_server::GroupsServer<GroupsService>>().await;
    health_reporter
        .set_serving::<pb::transactions_server::TransactionsServer<TransactionsService>>()
        .await;
    start(api, listener, tls, health_reporter)
}

/// Builds the server and spawns it. Not async, so tonic's server is compiled here once
/// rather than again in every crate that awaits [`serve`] (a coroutine's body is compiled
/// where it is polled).
fn start(
    api: Api,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    health_reporter: tonic_health::server::HealthReporter,
) -> Result<GrpcServer, Error> {
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health_reporter.clone()),
    );
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("cannot read the bound address: {e}")))?;
    let max_request = api.settings().log.max_request_bytes;
    // The overall status ("") is readiness: SERVING while the broker holds its lease, has
    // caught up with the metadata and is not draining. Kubernetes' gRPC readiness probe asks
    // for it; liveness asks for a named service, which stays SERVING while the process runs.
    api.spawn(track_readiness(api.clone(), health_reporter.clone()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::internal(format!("cannot build the reflection service: {e}")))?;

    let log = pb::log_server::LogServer::new(LogService::new(api.clone()))
        .max_decoding_message_size(max_request)
        .max_encoding_message_size(usize::MAX);
    let admin = pb::admin_server::AdminServer::new(AdminService::new(api.clone()));
    let groups = pb::groups_server::GroupsServer::new(GroupsService::new(api.clone()));
    let txns =
        pb::transactions_server::TransactionsServer::new(TransactionsService::new(api.clone()));
    let replica = pb::replica_server::ReplicaServer::new(ReplicaService::new(api.clone()))
        .max_encoding_message_size(usize::MAX);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .layer(crate::latency::GrpcLatencyLayer::new(api.metrics().clone()))
        .layer(crate::auth_layer::AuthLayer::new(api.clone()))
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
        .add_service(txns)
        .add_service(replica);
    let stop = async move {
        let _ = stop_rx.await;
    };
    // Owned: dropping the server without stopping it stops the accept loop too.
    let serve = match &tls {
        Some(tls) => {
            let (incoming, accept_loop) = tls.incoming(listener);
            api.spawn(accept_loop);
            shale_core::task::spawn_owned(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            // Nagle's algorithm would hold the last frame of each answer until the peer's
            // delayed ACK (~40 ms per unary call); gRPC frames are already batched by h2.
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60)));
            shale_core::task::spawn_owned(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };
    tracing::info!(%addr, broker = api.broker_id(), tls = tls.is_some(), "serving gRPC");
    Ok(GrpcServer { addr, stop: Some(stop_tx), serve })
}

/// Keeps the gRPC health service's overall status equal to the broker's readiness.
async fn track_readiness(api: Api, reporter: tonic_health::server::HealthReporter) {
    use tonic_health::ServingStatus;
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let ready = api.is_ready();
        if last != Some(ready) {
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            last = Some(ready);
        }
    }
}

impl GrpcServer {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the server to stop accepting calls (in-flight ones go on).
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server to end after [`begin_stop`](Self::begin_stop) and the broker
    /// closed (which ends long-lived streams); aborts it after ten seconds.
    pub async fn wait(mut self) {
        self.begin_stop();
        match tokio::time::timeout(STOP_WITHIN, &mut self.serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "grpc server task failed"),
            Err(_) => {
                tracing::warn!("grpc server did not stop within {STOP_WITHIN:?}; aborting");
                self.serve.abort();
            }
        }
    }
}
