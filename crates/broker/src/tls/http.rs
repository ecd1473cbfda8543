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
