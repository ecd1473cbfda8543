//! An HTTP/1.1 listener over TLS, for the front ends that serve axum (the schema registry,
//! the console): connections handshaken by the broker's TLS material (`[tls]`, rotated in
//! place) without ALPN, as HTTP/1.1 clients connect. A handshake runs in a task of its
//! own, bounded, so a client that connects and says nothing holds up no one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::ServerTls;

type Accepted = Pin<Box<dyn Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send>>;

/// A listener whose connections have finished their TLS handshake.
pub struct Http1Listener {
    accepted: Accepted,
    addr: SocketAddr,
    /// What serves on it, for the log ("the schema registry").
    what: &'static str,
    /// The accept loop: ends when this listener is dropped.
    _accepting: shale_core::task::OwnedTask<()>,
}

impl Http1Listener {
    /// Handshakes the connections `listener` (bound at `addr`) accepts, for `what`.
    pub fn new(
        tls: &Arc<ServerTls>,
        listener: TcpListener,
        addr: SocketAddr,
        what: &'static str,
    ) -> Self {
        let (accepted, accept_loop) = tls.incoming_http1(listener);
        Http1Listener {
            accepted: Box::pin(accepted),
            addr,
            what,
            _accepting: shale_core::task::spawn_owned(accept_loop),
        }
    }
}

impl axum::serve::Listener for Http1Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match self.accepted.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.addr);
                    return (stream, peer);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, listener = self.what, "a TLS connection failed")
                }
                // The accept loop ended (the broker closes): accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// An HTTP/1.1 front end's running listener (the schema registry's, the console's):
/// serving `axum` over TLS or plaintext until stopped or the broker closes.
#[derive(Debug)]
pub struct Http1Server {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task: it ends when stopped or when the broker closes, and is aborted
    /// if this is dropped first.
    _task: shale_core::task::OwnedTask<()>,
}

impl Http1Server {
    /// Serves `app` on `listener` for `what` ("the console") until [`stop`](Self::stop)
    /// or `closed` turns true: over TLS with `tls` (the broker's material, as the other
    /// listeners use it), else plaintext.
    pub fn serve(
        listener: TcpListener,
        app: axum::Router,
        tls: Option<Arc<ServerTls>>,
        mut closed: tokio::sync::watch::Receiver<bool>,
        what: &'static str,
    ) -> Result<Http1Server, shale_core::error::Error> {
        let addr = listener.local_addr().map_err(|e| {
            shale_core::error::Error::internal(format!("cannot read {what}'s bound address: {e}"))
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
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
                    let listener = Http1Listener::new(&tls, listener, addr, what);
                    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
                }
            };
            if let Err(e) = served {
                tracing::warn!(error = %e, listener = what, "an HTTP listener ended with an error");
            }
        });
        tracing::info!(%addr, scheme, listener = what, "serving HTTP");
        Ok(Http1Server { addr, scheme, stop: Some(stop), _task: task })
    }

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
