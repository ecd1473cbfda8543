//! The registry listener over TLS: connections handshaken by the broker's TLS material
//! (`[tls]`, rotated in place) without ALPN, as HTTP/1.1 clients connect, served by axum
//! like the plaintext listener. A handshake runs in a task of its own, bounded, so a
//! client that connects and says nothing holds up no one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use shale_broker::api::ServerTls;

type Accepted = Pin<Box<dyn Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send>>;

/// A listener whose connections have finished their TLS handshake.
pub(crate) struct TlsListener {
    accepted: Accepted,
    addr: SocketAddr,
    /// The accept loop: ends when this listener is dropped.
    _accepting: shale_core::task::OwnedTask<()>,
}

impl TlsListener {
    pub(crate) fn new(tls: &Arc<ServerTls>, listener: TcpListener, addr: SocketAddr) -> Self {
        let (accepted, accept_loop) = tls.incoming_http1(listener);
        TlsListener {
            accepted: Box::pin(accepted),
            addr,
            _accepting: shale_core::task::spawn_owned(accept_loop),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match self.accepted.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.addr);
                    return (stream, peer);
                }
                Some(Err(e)) => tracing::debug!(error = %e, "a registry TLS connection failed"),
                // The accept loop ended (the broker closes): accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
