//! Shale's schema registry front end: Confluent Schema Registry's REST API (7.x) over the
//! broker's operations (`shale_broker::api`), on a listener of its own
//! (`schema_registry.listen`, 8081 by default for `shale standalone`). It translates HTTP
//! into `api` calls and their results into Confluent's bodies and error codes; the
//! registry's rules are `shale-schema`'s, its storage and writer the broker's.
//!
//! Layout:
//! - this file: [`serve`] and the running listener.
//! - `settings`: `[schema_registry]`.
//! - `routes` (private): the API, route by route.
//! - `request` (private): the caller's identity, the body and the query.
//! - `reply` (private): Confluent's answers and error codes.
//! - `forward` (private): what this broker cannot answer, sent to the writer.

mod forward;
mod reply;
mod request;
mod routes;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use shale_broker::api::Api;
use shale_core::error::Error;

pub use settings::RegistrySettings;

/// What every route shares.
#[derive(Debug)]
struct Registry {
    api: Api,
    max_request_bytes: usize,
    /// For forwarding to the writer.
    http: reqwest::Client,
}

/// A running registry listener.
#[derive(Debug)]
pub struct RegistryServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when stopped or when the broker closes, and is aborted
    /// if this is dropped first.
    _task: shale_core::task::OwnedTask<()>,
}

/// Serves the registry on `listener` until stopped or the broker closes.
pub fn serve(
    api: Api,
    settings: &RegistrySettings,
    listener: TcpListener,
) -> Result<RegistryServer, Error> {
    let addr = listener.local_addr().map_err(|e| {
        Error::internal(format!("cannot read the schema registry's bound address: {e}"))
    })?;
    let state = Arc::new(Registry {
        api: api.clone(),
        max_request_bytes: settings.max_request_bytes,
        http: forward::client(),
    });
    let app = routes::router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut closed = api.closed_signal();
    let shutdown = async move {
        tokio::select! {
            _ = stopped => {}
            _ = closed.wait_for(|c| *c) => {}
        }
    };
    let task = shale_core::task::spawn_owned(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, "the schema registry listener ended with an error");
        }
    });
    tracing::info!(%addr, "serving the schema registry (Confluent's REST API)");
    Ok(RegistryServer { addr, stop: Some(stop), _task: task })
}

impl RegistryServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
