//! The admin HTTP listener (`--admin-listen`): Prometheus metrics at `/metrics`, liveness at
//! `/healthz` and readiness at `/readyz`.
//!
//! Metrics are read from the broker's own counters at scrape time (a prometheus
//! `Collector`, in `collector.rs`; the logs' journal and cleaner families and the remote
//! compactor's in `log_metrics.rs`; the encoding helpers both use in `encode.rs`), so the hot paths only bump atomics and nothing is kept
//! twice.

mod collector;
mod encode;
mod log_metrics;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::broker::Broker;
use shale_core::error::Error;

/// Content type of the OpenMetrics text exposition (Prometheus reads it).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running admin listener.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Set once the client listeners accept connections: `/readyz` says ready only then.
    accepting: Arc<std::sync::atomic::AtomicBool>,
}

impl AdminServer {
    /// Binds `addr` and serves until the broker closes.
    pub async fn start(addr: SocketAddr, broker: &Arc<Broker>) -> Result<AdminServer, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::unavailable(format!("cannot listen on admin address {addr}: {e}"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the bound admin address: {e}")))?;
        let registry = collector::registry(broker);
        let accepting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = Arc::new(AdminState {
            broker: Arc::downgrade(broker),
            registry,
            accepting: accepting.clone(),
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(state);
        let mut closed = broker.closed_signal();
        let task = broker.spawn(async move {
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
        self.accepting.store(true, std::sync::atomic::Ordering::Release);
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

#[derive(Debug)]
struct AdminState {
    broker: Weak<Broker>,
    registry: Registry,
    accepting: Arc<std::sync::atomic::AtomicBool>,
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics failed: {e}\n"))
            .into_response(),
    }
}

/// Live while the process answers and the broker is open.
async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    match state.broker.upgrade() {
        Some(b) if !b.is_closing() => (StatusCode::OK, "ok\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "closing\n").into_response(),
    }
}

/// Ready when a produce to any partition the broker leads would be accepted; otherwise
/// 503 with the reason (see `Broker::readiness`).
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let Some(b) = state.broker.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "closed\n").into_response();
    };
    if !state.accepting.load(std::sync::atomic::Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not accepting connections yet\n")
            .into_response();
    }
    match b.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", e.message)).into_response(),
    }
}
