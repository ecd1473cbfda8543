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

use std::sync::Arc;

use tokio::net::TcpListener;

use shale_broker::api::{Api, Http1Server, ServerTls};
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

/// A running registry listener: its address, URL and `stop`.
pub type RegistryServer = shale_broker::api::Http1Server;

/// Serves the registry on `listener` until stopped or the broker closes: over TLS with
/// `tls` (the broker's material, as the other listeners use it), else plaintext.
pub fn serve(
    api: Api,
    settings: &RegistrySettings,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<RegistryServer, Error> {
    let state = Arc::new(Registry {
        api: api.clone(),
        max_request_bytes: settings.max_request_bytes,
        http: forward::Client::new(tls.clone()),
    });
    let app = routes::router(state);
    Http1Server::serve(listener, app, tls, api.closed_signal(), "the schema registry")
}
