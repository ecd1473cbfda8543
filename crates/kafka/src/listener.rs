//! The Kafka listener: accepts connections (TLS when the broker has it), names each
//! client's principal from its certificate, and serves each connection in a task of the
//! broker's own, so that closing the broker ends them all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::Kafka;
use crate::call::Session;
use crate::connection;
use crate::settings::KafkaSettings;
use shale_broker::api::{Api, Identity, ServerTls};
use shale_core::error::Error;
use shale_core::task::OwnedTask;

/// A running Kafka listener.
#[derive(Debug)]
pub struct KafkaServer {
    addr: SocketAddr,
    accept: OwnedTask<()>,
}

impl KafkaServer {
    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections; those open end when the broker closes.
    pub fn stop(self) {
        self.accept.abort();
    }
}

/// Serves the Kafka protocol over `api` on `listener` (TLS when `tls` is given).
pub fn serve(
    api: Api,
    settings: KafkaSettings,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> Result<KafkaServer, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("cannot read the Kafka listener's address: {e}")))?;
    let kafka = Arc::new(Kafka::new(api, settings));
    tracing::info!(%addr, tls = tls.is_some(), "serving Kafka");
    // Owned: stopping the server (or dropping it) stops accepting.
    let accept = shale_core::task::spawn_owned(accept_loop(kafka, listener, tls));
    Ok(KafkaServer { addr, accept })
}

/// Connections open now, across listeners of this process (for `kafka.max_connections`).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Counts a connection while it lives.
struct Open;

impl Open {
    fn new() -> Open {
        OPEN.fetch_add(1, Ordering::AcqRel);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(kafka: Arc<Kafka>, listener: TcpListener, tls: Option<Arc<ServerTls>>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "accepting a Kafka connection failed");
                shale_core::clock::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if OPEN.load(Ordering::Acquire) >= kafka.settings.max_connections {
            tracing::warn!(%peer, max = kafka.settings.max_connections,
                "refusing a Kafka connection: kafka.max_connections are open");
            continue;
        }
        let open = Open::new();
        let _ = tcp.set_nodelay(true);
        let (kafka2, tls) = (kafka.clone(), tls.clone());
        kafka.api.spawn(async move {
            let _open = open;
            start(kafka2, tcp, peer, tls).await;
        });
    }
}

/// Finishes the TLS handshake (bounded), names the principal and serves the connection.
async fn start(kafka: Arc<Kafka>, tcp: TcpStream, peer: SocketAddr, tls: Option<Arc<ServerTls>>) {
    static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let connection = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let session = |identity| Session {
        peer,
        connection,
        identity,
        client_id: String::new(),
        sasl: Default::default(),
        bare_sasl: false,
        close_after: false,
    };
    match tls {
        None => connection::serve(kafka, tcp, session(Identity::anonymous())).await,
        Some(tls) => {
            let (acceptor, within) = tls.acceptor();
            let stream = match tokio::time::timeout(within, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "Kafka TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "Kafka TLS handshake timed out");
                    return;
                }
            };
            let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
            let identity = match leaf {
                None => Identity::anonymous(),
                Some(cert) => match kafka.api.authenticate(None, Some(cert.as_ref())).await {
                    Ok(identity) => identity,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "refusing a Kafka client certificate");
                        kafka.api.refused("kafka connection", &e);
                        return;
                    }
                },
            };
            connection::serve(kafka, stream, session(identity)).await;
        }
    }
}
