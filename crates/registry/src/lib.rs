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

use shale_broker::api::{Api, ServerTls};
use shale_core::error::Error;

pub use settings::RegistrySettings;

/// What every route shares.
#[derive(Debug)]
struct Registry {
    api: Api,
    max_request_bytes: usize,
    /// For forwarding to the writer: over HTTPS, with this broker's certificate, when the
    /// listeners serve TLS.
    http: forward::Client,
}

/// A running registry listener.
#[derive(Debug)]
pub struct RegistryServer {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when stopped or when the broker closes, and is aborted
    /// if this is dropped first.
    _task: shale_core::task::OwnedTask<()>,
}

/// Serves the registry on `listener` until stopped or the broker closes: over TLS with
/// `tls` (the broker's material, as the other listeners use it), else plaintext.
pub fn serve(
    api: Api,
    settings: &RegistrySettings,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<RegistryServer, Error> {
    let addr = listener.local_addr().map_err(|e| {
        Error::internal(format!("cannot read the schema registry's bound address: {e}"))
    })?;
    let state = Arc::new(Registry {
        api: api.clone(),
        max_request_bytes: settings.max_request_bytes,
        http: forward::Client::new(tls.clone()),
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = shale_core::task::spawn_owned(async move {
        let served = match tls {
            None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
            Some(tls) => {
                let what = "the schema registry";
                let listener = shale_broker::api::Http1Listener::new(&tls, listener, addr, what);
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "the schema registry listener ended with an error");
        }
    });
    tracing::info!(%addr, scheme, "serving the schema registry (Confluent's REST API)");
    Ok(RegistryServer { addr, scheme, stop: Some(stop), _task: task })
}

impl RegistryServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL: `https://` when it serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting requests.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
