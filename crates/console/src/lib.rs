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
mod pager;
mod pages;
mod session;
pub mod settings;
mod show;
mod view;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use shale_broker::api::{Api, Http1Server, ServerTls};
use shale_core::error::Error;

pub use settings::ConsoleSettings;

/// What every page shares.
#[derive(Debug)]
struct Console {
    api: Api,
    sessions: session::Sessions,
    read_only: bool,
}

/// A running console listener: its address, URL and `stop`.
pub type ConsoleServer = shale_broker::api::Http1Server;

/// Serves the console on `listener` until stopped or the broker closes: over TLS with
/// `tls` (the broker's material, as the other listeners use it), else plaintext.
pub fn serve(
    api: Api,
    settings: &ConsoleSettings,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<ConsoleServer, Error> {
    let idle = Duration::from_secs(settings.session_idle_secs);
    let state = Arc::new(Console {
        api: api.clone(),
        sessions: session::Sessions::new(idle, tls.is_some()),
        read_only: settings.read_only,
    });
    let app = pages::router(state);
    Http1Server::serve(listener, app, tls, api.closed_signal(), "the console")
}
