//! Shale's web console: pages over the broker's operations (`shale_broker::api`), on a
//! listener of its own (`console.listen`, 8080 by default for `shale standalone`), served
//! by every broker. Pages are rendered on the server from askama templates compiled into
//! the binary, with one stylesheet and one small script embedded beside them: no build
//! step outside cargo, every page works without the script, and each is a URL.
//! Authentication, authorization and audit are the broker's, as for every API: a page
//! acts as its session's identity, and each change is one `api` call.
//!
//! Layout:
//! - this file: [`serve`] and the running listener.
//! - `settings`: `[console]`.
//! - `session` (private): sessions, their cookie, CSRF.
//! - `view` (private): the frame of every page, the error page, how values are shown.
//! - `show` (private): how a record's bytes are shown (text, JSON, hex).
//! - `pages` (private): the routes, a file per page.
//! - `assets` (private): the stylesheet and the script.

mod assets;
mod pages;
mod session;
pub mod settings;
mod show;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use shale_broker::api::{Api, ServerTls};
use shale_core::error::Error;

pub use settings::ConsoleSettings;

/// What every page shares.
#[derive(Debug)]
struct Console {
    api: Api,
    sessions: session::Sessions,
    read_only: bool,
}

/// A running console listener.
#[derive(Debug)]
pub struct ConsoleServer {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when stopped or when the broker closes, and is aborted
    /// if this is dropped first.
    _task: shale_core::task::OwnedTask<()>,
}

/// Serves the console on `listener` until stopped or the broker closes: over TLS with
/// `tls` (the broker's material, as the other listeners use it), else plaintext.
pub fn serve(
    api: Api,
    settings: &ConsoleSettings,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<ConsoleServer, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("cannot read the console's bound address: {e}")))?;
    let idle = Duration::from_secs(settings.session_idle_secs);
    let state = Arc::new(Console {
        api: api.clone(),
        sessions: session::Sessions::new(idle, tls.is_some()),
        read_only: settings.read_only,
    });
    let app = pages::router(state);
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
                let listener =
                    shale_broker::api::Http1Listener::new(&tls, listener, addr, "the console");
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "the console listener ended with an error");
        }
    });
    tracing::info!(%addr, scheme, "serving the web console");
    Ok(ConsoleServer { addr, scheme, stop: Some(stop), _task: task })
}

impl ConsoleServer {
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
