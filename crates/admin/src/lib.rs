//! Shale's admin HTTP listener (`broker.admin_listen`, `--admin-listen`): Prometheus
//! metrics at `/metrics`, liveness at `/healthz` and readiness at `/readyz`, over the
//! broker's operations (`shale_broker::api`), like the other front ends. What the metrics
//! are is the broker's business (its `prometheus` room); this crate serves them.
//!
//! Layout: this file only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use shale_broker::api::{Api, Exposition, OPENMETRICS};
use shale_core::error::Error;

/// A running admin listener.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Set once the client listeners accept connections: `/readyz` says ready only then.
    accepting: Arc<AtomicBool>,
}

#[derive(Debug)]
struct AdminState {
    api: Api,
    metrics: Exposition,
    accepting: Arc<AtomicBool>,
}

impl AdminServer {
    /// Binds `addr` and serves until the broker closes.
    pub async fn start(addr: SocketAddr, api: Api) -> Result<AdminServer, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::unavailable(format!("cannot listen on admin address {addr}: {e}"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the bound admin address: {e}")))?;
        let accepting = Arc::new(AtomicBool::new(false));
        let state = Arc::new(AdminState {
            metrics: api.metrics_exposition(),
            api: api.clone(),
            accepting: accepting.clone(),
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(state);
        let mut closed = api.closed_signal();
        let task = api.spawn(async move {
            let shutdown = async move {
                let _ = closed.wait_for(|c| *c).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(error = %e, "admin listener ended with an error");
            }
        });
        tracing::info!(%addr, "serving admin HTTP (/metrics, /healthz, /readyz)");
        Ok(AdminServer { addr, task, accepting })
    }

    /// The client listeners accept connections now: `/readyz` may say ready (until then
    /// a produce would be refused at the door however ready the broker is).
    pub fn mark_accepting(&self) {
        self.accepting.store(true, Ordering::Release);
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (the broker closing stops it too).
    pub fn abort(&self) {
        self.task.abort();
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    match state.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{}\n", e.message)).into_response(),
    }
}

/// Live while the process answers and the broker is open.
async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    match state.api.is_open() {
        true => (StatusCode::OK, "ok\n").into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, "closing\n").into_response(),
    }
}

/// Ready when a produce to any partition the broker leads would be accepted; otherwise
/// 503 with the reason (see `Api::readiness`).
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if !state.accepting.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not accepting connections yet\n")
            .into_response();
    }
    match state.api.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", e.message)).into_response(),
    }
}
