//! Assembles a broker process from settings and the injected parts: the broker, its
//! client-facing front ends (gRPC; the Kafka listener; the schema registry; the web
//! console) over the broker's `api`, and the
//! admin HTTP listener; and runs it until asked to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use shale_admin::AdminServer;
use shale_broker::api::Api;
use shale_broker::broker::{Broker, DrainReport};
use shale_core::clock::SharedClock;
use shale_core::error::Error;
use shale_meta::MetaStore;
use shale_meta::embedded::EmbeddedStore;

use crate::settings::Settings;

/// A running broker process: the broker and its listeners.
#[derive(Debug)]
pub struct RunningServer {
    admin: Option<AdminServer>,
    broker: Arc<Broker>,
    grpc: shale_grpc::GrpcServer,
    kafka: Option<shale_kafka::KafkaServer>,
    registry: Option<shale_registry::RegistryServer>,
    console: Option<shale_console::ConsoleServer>,
}

/// The metadata store the settings ask for: etcd when endpoints are configured, else the
/// embedded store under the data dir.
pub async fn meta_store(
    settings: &Settings,
    clock: SharedClock,
) -> Result<Arc<dyn MetaStore>, Error> {
    let endpoints = &settings.cluster.etcd_endpoints;
    if endpoints.is_empty() {
        return embedded_meta(settings, clock);
    }
    let store = shale_meta::etcd::EtcdStore::connect(endpoints, etcd_options(settings)?).await?;
    Ok(store)
}

/// The etcd client's TLS and credentials from the settings' files; an error names the file.
fn etcd_options(settings: &Settings) -> Result<shale_meta::etcd::EtcdOptions, Error> {
    let c = &settings.cluster;
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            Error::invalid(format!("cannot read the etcd {what} {}: {e}", path.display()))
        })
    };
    let tls = match &c.etcd_tls_ca_file {
        None => None,
        Some(ca) => {
            let identity = match (&c.etcd_tls_cert_file, &c.etcd_tls_key_file) {
                (Some(cert), Some(key)) => {
                    Some((read(cert, "TLS certificate")?, read(key, "TLS key")?))
                }
                _ => None,
            };
            Some(shale_meta::etcd::EtcdTls { ca_pem: read(ca, "CA bundle")?, identity })
        }
    };
    let user = match (&c.etcd_user, &c.etcd_password_file) {
        (Some(user), Some(file)) => {
            let password = String::from_utf8(read(file, "password file")?).map_err(|_| {
                Error::invalid(format!("the etcd password file {} is not UTF-8", file.display()))
            })?;
            Some((user.clone(), password.trim_end_matches(['\n', '\r']).to_string()))
        }
        _ => None,
    };
    Ok(shale_meta::etcd::EtcdOptions { tls, user, ..Default::default() })
}

/// Opens the embedded metadata store under the data dir (`shale standalone`).
pub fn embedded_meta(settings: &Settings, clock: SharedClock) -> Result<Arc<dyn MetaStore>, Error> {
    let dir = settings.broker.data_dir.join("meta");
    let store = EmbeddedStore::open(&dir, clock)?;
    Ok(store)
}

/// Binds the listen address, opens the broker and starts serving.
///
/// Long on purpose: the assembly of a running server, one step per concern (listener,
/// broker, admin listener, front ends), in the order they must happen.
pub async fn start(
    mut settings: Settings,
    meta: Arc<dyn MetaStore>,
    clock: SharedClock,
) -> Result<RunningServer, Error> {
    settings.validate()?;
    settings.tls.check_listener(settings.broker.listen, "gRPC")?;
    let authenticator =
        shale_broker::auth::Authenticator::new(&settings.auth, clock.clone()).await?;
    let tls = match settings.tls.enabled() {
        true => Some(shale_broker::tls::ServerTls::load(&settings.tls)?),
        false => None,
    };
    // The ports are taken now (with port 0, the real port is known only now, to advertise)
    // but accept connections only once the broker serves: until then a client is refused
    // and retries, instead of waiting on a connection nobody answers.
    let (socket, addr) = bind(settings.broker.listen, "")?;
    if settings.broker.advertise.is_empty() {
        settings.broker.advertise = addr.to_string();
    }
    let kafka_socket = match settings.kafka.listen {
        None => None,
        Some(listen) => {
            settings.tls.check_listener(listen, "Kafka")?;
            let (socket, bound) = bind(listen, "for Kafka clients ")?;
            if settings.kafka.advertise.is_empty() {
                settings.kafka.advertise = bound.to_string();
            }
            Some((socket, bound))
        }
    };
    let registry_socket = match settings.schema_registry.listen {
        None => None,
        Some(listen) => {
            settings.tls.check_listener(listen, "HTTP for the schema registry")?;
            let (socket, bound) = bind(listen, "for the schema registry ")?;
            if settings.schema_registry.advertise.is_empty() {
                settings.schema_registry.advertise = bound.to_string();
            }
            Some((socket, bound))
        }
    };
    let console_socket = match settings.console.listen {
        None => None,
        Some(listen) => {
            settings.tls.check_listener(listen, "HTTP for the console")?;
            Some(bind(listen, "for the console ")?)
        }
    };
    let admin_listen = settings.broker.admin_listen;
    let bucket = match settings.tier.object_store.as_str() {
        "" => None,
        url => Some(shale_storage::tier::Bucket::open(url, &settings.tier)?),
    };
    // A standalone broker is its own controller: it confirms its leaderships under new
    // epochs before it serves, so a restart's first answers are answers, not refusals.
    let standalone = settings.cluster.etcd_endpoints.is_empty();
    let settle_within = std::time::Duration::from_secs(settings.cluster.lease_ttl_secs);
    let kafka_settings = settings.kafka.clone();
    let registry_settings = settings.schema_registry.clone();
    let console_settings = settings.console.clone();
    let broker = Broker::open(settings.broker_settings(), meta, clock, bucket, tls.clone()).await?;
    let admin = match admin_listen {
        Some(a) => {
            match AdminServer::start(a, Api::new(broker.clone(), authenticator.clone())).await {
                Ok(admin) => Some(admin),
                Err(e) => {
                    let _ = broker.close().await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    if standalone {
        let began = shale_core::clock::monotonic_now();
        match broker.settle(settle_within).await {
            Ok(()) => tracing::info!(
                took_ms = shale_core::clock::monotonic_now()
                    .saturating_duration_since(began)
                    .as_millis() as u64,
                "every leadership confirmed; serving"
            ),
            Err(e) => tracing::warn!(
                "serving after {} s with leaderships still unconfirmed: {}",
                settle_within.as_secs(),
                e.message
            ),
        }
    }
    let api = Api::new(broker.clone(), authenticator);
    let (listener, kafka_listener, registry_listener, console_listener) = match listen(socket, addr)
        .and_then(|grpc| {
            let kafka = kafka_socket.map(|(s, bound)| listen(s, bound)).transpose()?;
            let registry = registry_socket.map(|(s, bound)| listen(s, bound)).transpose()?;
            let console = console_socket.map(|(s, bound)| listen(s, bound)).transpose()?;
            Ok((grpc, kafka, registry, console))
        }) {
        Ok(listeners) => listeners,
        Err(e) => {
            let _ = broker.close().await;
            return Err(e);
        }
    };
    let serve = |l| shale_kafka::serve(api.clone(), kafka_settings, l, tls.clone());
    let kafka = match kafka_listener.map(serve) {
        None => None,
        Some(Ok(kafka)) => Some(kafka),
        Some(Err(e)) => {
            let _ = broker.close().await;
            return Err(e);
        }
    };
    let registry = match registry_listener
        .map(|l| shale_registry::serve(api.clone(), &registry_settings, l, tls.clone()))
    {
        None => None,
        Some(Ok(registry)) => Some(registry),
        Some(Err(e)) => {
            let _ = broker.close().await;
            return Err(e);
        }
    };
    let console = match console_listener
        .map(|l| shale_console::serve(api.clone(), &console_settings, l, tls.clone()))
    {
        None => None,
        Some(Ok(console)) => Some(console),
        Some(Err(e)) => {
            let _ = broker.close().await;
            return Err(e);
        }
    };
    let grpc = match shale_grpc::serve(api, listener, tls).await {
        Ok(grpc) => grpc,
        Err(e) => {
            let _ = broker.close().await;
            return Err(e);
        }
    };
    if let Some(admin) = &admin {
        admin.mark_accepting();
    }
    Ok(RunningServer { admin, broker, grpc, kafka, registry, console })
}

impl RunningServer {
    /// The address the gRPC server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.grpc.addr()
    }

    /// The address of the Kafka listener, when one was asked for.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka.as_ref().map(shale_kafka::KafkaServer::addr)
    }

    /// The address of the schema registry's listener, when one was asked for.
    pub fn registry_addr(&self) -> Option<SocketAddr> {
        self.registry.as_ref().map(shale_registry::RegistryServer::addr)
    }

    /// The schema registry's URL (`https://` over TLS), when it has a listener.
    pub fn registry_url(&self) -> Option<String> {
        self.registry.as_ref().map(shale_registry::RegistryServer::url)
    }

    /// The web console's URL (`https://` over TLS), when it has a listener.
    pub fn console_url(&self) -> Option<String> {
        self.console.as_ref().map(shale_console::ConsoleServer::url)
    }

    /// The address of the admin HTTP listener, when one was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::addr)
    }

    /// The broker behind the server.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Graceful shutdown: drains (produce refused, leadership handed to in-sync replicas,
    /// uploads in flight finished; bounded by `broker.drain_timeout_ms`), then stops
    /// accepting requests, lets in-flight ones finish, closes the broker and deregisters.
    pub async fn shutdown(self) -> Result<DrainReport, Error> {
        let timeout =
            std::time::Duration::from_millis(self.broker.settings().broker.drain_timeout_ms);
        let report = self.broker.drain(timeout).await;
        self.close().await?;
        Ok(report)
    }

    /// Stops accepting requests, lets in-flight ones finish, and closes the broker, without
    /// draining first.
    pub async fn close(mut self) -> Result<(), Error> {
        self.grpc.begin_stop();
        if let Some(kafka) = self.kafka.take() {
            kafka.stop();
        }
        if let Some(registry) = self.registry.take() {
            registry.stop();
        }
        if let Some(console) = self.console.take() {
            console.stop();
        }
        // Long-lived fetch streams would hold the graceful shutdown open; closing the broker
        // ends them, so close first, then wait for the servers.
        let closed = self.broker.close().await;
        self.grpc.wait().await;
        closed
    }
}

/// Takes `addr` (bound, not yet accepting): the socket and the address it got. `what`
/// completes the error message ("cannot listen {what}on ADDR").
fn bind(addr: SocketAddr, what: &str) -> Result<(TcpSocket, SocketAddr), Error> {
    let failed =
        |e: std::io::Error| Error::unavailable(format!("cannot listen {what}on {addr}: {e}"));
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(failed)?;
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(addr).map_err(failed)?;
    let bound = socket
        .local_addr()
        .map_err(|e| Error::internal(format!("cannot read the bound address of {addr}: {e}")))?;
    Ok((socket, bound))
}

/// Starts accepting connections on a socket from [`bind`].
fn listen(socket: TcpSocket, addr: SocketAddr) -> Result<TcpListener, Error> {
    socket.listen(1024).map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))
}
