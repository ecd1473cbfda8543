//! TLS for the gRPC, Kafka and schema registry listeners and for the broker's own
//! connections to its peers (rustls, ring): the certificate and key a broker serves, the
//! CA bundle that client (and peer) certificates must chain to, and whether a client
//! certificate is asked for, required or neither. Certificates are read again from disk every `reload_interval_ms` and swapped
//! in when they changed (Kubernetes and cert-manager rotate them in place): new handshakes
//! use the new ones, open connections keep theirs. A file that fails to parse keeps the
//! previous material and is logged; the broker never stops serving over a bad rotation.
//!
//! Handshakes run in a task per connection (bounded by `HANDSHAKE_TIMEOUT`), so a client
//! that connects and says nothing cannot hold up the others.
//!
//! Layout: this file, the material and the handshakes; `http`, the listener and server the
//! HTTP/1.1 front ends (the schema registry, the console) serve axum with.

mod http;

pub use http::{Http1Listener, Http1Server};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use shale_core::error::Error;

/// How long a connection whose handshake failed is read from (and what it sends thrown
/// away) before it is closed.
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// Reads and discards what the client still sends, until it closes or `DRAIN_FOR` passes.
/// In TLS 1.3 a client sends its first request before the server has checked its
/// certificate; closing on that unread request would reset the connection, and the client
/// would see "broken pipe" instead of the alert that says why (e.g. `UnknownCA`).
async fn drain(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections whose handshake is done, waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// Whether the listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client may present a certificate; if it does, it must chain to `ca_file`.
    Optional,
    /// Every client must present a certificate that chains to `ca_file` (mTLS).
    Required,
}

/// `[tls]`: TLS on the gRPC listener and on connections to other brokers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain the broker serves (leaf first); with `key_file`, turns TLS on.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle: client certificates must chain to it, and so must the certificates
    /// of the other brokers this broker connects to. Needed for `client_auth` other than
    /// `none` and for a cluster; without it, peers are verified against nothing and TLS to
    /// them fails.
    pub ca_file: Option<PathBuf>,
    /// `none`, `optional` or `required` (mTLS).
    pub client_auth: ClientAuth,
    /// How often the files are read again for a rotation (ms).
    pub reload_interval_ms: u64,
    /// Serve plaintext on an address other than loopback. Off by default: a broker without
    /// TLS refuses to start on, say, `0.0.0.0` unless this is set.
    pub allow_plaintext: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: None,
            key_file: None,
            ca_file: None,
            client_auth: ClientAuth::None,
            reload_interval_ms: 10_000,
            allow_plaintext: false,
        }
    }
}

impl TlsSettings {
    /// Whether the listener serves TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks the combination of keys, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(Error::invalid(
                "tls.cert_file and tls.key_file go together: set both or neither",
            ));
        }
        if self.client_auth != ClientAuth::None && self.ca_file.is_none() {
            return Err(Error::invalid(format!(
                "tls.client_auth = {:?} needs tls.ca_file, the CA bundle client certificates \
                 must chain to",
                self.client_auth
            )));
        }
        if self.client_auth != ClientAuth::None && !self.enabled() {
            return Err(Error::invalid(
                "tls.client_auth needs TLS: set tls.cert_file and tls.key_file",
            ));
        }
        if self.reload_interval_ms == 0 {
            return Err(Error::invalid("tls.reload_interval_ms must be at least 1"));
        }
        Ok(())
    }

    /// Refuses plaintext on an address other than loopback unless `allow_plaintext` says
    /// the operator means it.
    pub fn check_listener(&self, listen: SocketAddr, protocol: &str) -> Result<(), Error> {
        if self.enabled() || self.allow_plaintext || listen.ip().is_loopback() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "refusing to serve plaintext {protocol} on {listen}, which is not a loopback address: \
             set tls.cert_file and tls.key_file (--tls-cert, --tls-key), or allow it with \
             tls.allow_plaintext = true (--allow-plaintext)"
        )))
    }
}

/// The crypto provider every TLS config here uses (explicit, so that two providers in the
/// dependency tree never make rustls guess).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    // Built once: every handshake asks for its signature schemes.
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The PEM contents of the files, as read; compared to notice a rotation.
#[derive(Clone, PartialEq, Eq)]
struct Pems {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Option<Vec<u8>>,
}

impl fmt::Debug for Pems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pems").field("cert_bytes", &self.cert.len()).finish_non_exhaustive()
    }
}

/// What one reading of the files yields.
#[derive(Debug)]
struct Material {
    pems: Pems,
    certified: Arc<CertifiedKey>,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// A broker's TLS material, swapped in place on rotation.
#[derive(Debug)]
pub struct ServerTls {
    settings: TlsSettings,
    current: RwLock<Arc<Material>>,
    config: Arc<rustls::ServerConfig>,
    /// The same certificate and client verifier without ALPN (`h2` is gRPC's): for the
    /// Kafka listener, whose clients offer none.
    plain_config: Arc<rustls::ServerConfig>,
    /// Bumped on every rotation; peer channels made under an older one are replaced.
    generation: std::sync::atomic::AtomicU64,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(format!("cannot read the TLS {what} {}: {e}", path.display()))
            .with("path", path.display())
    })
}

fn certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
            Error::invalid(format!("{} is not a PEM certificate file: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

impl Pems {
    /// The files' contents, as they are now.
    fn read(s: &TlsSettings) -> Result<Pems, Error> {
        let (Some(cert_file), Some(key_file)) = (&s.cert_file, &s.key_file) else {
            return Err(Error::invalid("TLS needs tls.cert_file and tls.key_file"));
        };
        Ok(Pems {
            cert: read(cert_file, "certificate")?,
            key: read(key_file, "private key")?,
            ca: s.ca_file.as_deref().map(|p| read(p, "CA bundle")).transpose()?,
        })
    }
}

impl Material {
    /// Parses `pems`, read from the files `s` names.
    fn parse(s: &TlsSettings, pems: Pems) -> Result<Material, Error> {
        let (Some(cert_file), Some(key_file)) = (&s.cert_file, &s.key_file) else {
            return Err(Error::invalid("TLS needs tls.cert_file and tls.key_file"));
        };
        let chain = certs(&pems.cert, cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&pems.key).map_err(|e| {
            Error::invalid(format!("{} is not a PEM private key: {e}", key_file.display()))
        })?;
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
            Error::invalid(format!(
                "the key in {} does not go with the certificate in {}: {e}",
                key_file.display(),
                cert_file.display()
            ))
        })?;
        let verifier = match (&pems.ca, s.client_auth) {
            (_, ClientAuth::None) | (None, _) => {
                Arc::new(rustls::server::NoClientAuth) as Arc<dyn ClientCertVerifier>
            }
            (Some(ca), mode) => {
                let path = s.ca_file.as_deref().unwrap_or(Path::new("tls.ca_file"));
                let roots = Arc::new(roots(ca, path)?);
                let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let builder = if mode == ClientAuth::Optional {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder.build().map_err(|e| {
                    Error::invalid(format!("cannot verify clients with {}: {e}", path.display()))
                })?
            }
        };
        Ok(Material { pems, certified: Arc::new(certified), verifier })
    }
}

/// The trust roots in a PEM CA bundle.
pub(crate) fn roots(pem: &[u8], path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem, path)? {
        roots.add(cert).map_err(|e| {
            Error::invalid(format!("{} holds a CA certificate rustls rejects: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

impl ServerTls {
    /// Reads the files once; an error names the file and what is wrong with it.
    pub fn load(settings: &TlsSettings) -> Result<Arc<ServerTls>, Error> {
        settings.validate()?;
        let material = Arc::new(Material::parse(settings, Pems::read(settings)?)?);
        let tls = Arc::new_cyclic(|weak: &std::sync::Weak<ServerTls>| {
            let parts = Arc::new(Current(weak.clone()));
            let plain_config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_client_cert_verifier(parts.clone())
                .with_cert_resolver(parts);
            let mut config = plain_config.clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            ServerTls {
                settings: settings.clone(),
                current: RwLock::new(material),
                config: Arc::new(config),
                plain_config: Arc::new(plain_config),
                generation: std::sync::atomic::AtomicU64::new(0),
            }
        });
        Ok(tls)
    }

    fn material(&self) -> Arc<Material> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reads the files again; true if they changed and the new material is in use.
    pub fn reload(&self) -> Result<bool, Error> {
        let pems = Pems::read(&self.settings)?;
        if self.material().pems == pems {
            return Ok(false);
        }
        let next = Material::parse(&self.settings, pems)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(true)
    }

    /// How many rotations were taken in.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How often to look for a rotation.
    pub fn reload_interval(&self) -> Duration {
        Duration::from_millis(self.settings.reload_interval_ms)
    }

    /// What a connection to another broker needs: the CA bundle to verify it against and
    /// this broker's own certificate and key to present (it authenticates as a broker).
    pub fn peer_client_config(&self) -> tonic::transport::ClientTlsConfig {
        let m = self.material();
        let mut config = tonic::transport::ClientTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&m.pems.cert, &m.pems.key));
        if let Some(ca) = &m.pems.ca {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
        }
        config
    }

    /// A TLS acceptor with the live certificate and client verifier and no ALPN, for a
    /// listener that runs its own accept loop (the Kafka listener), and how long it gives a
    /// handshake.
    pub fn acceptor(&self) -> (TlsAcceptor, Duration) {
        (TlsAcceptor::from(self.plain_config.clone()), HANDSHAKE_TIMEOUT)
    }

    /// What an HTTPS connection to another broker needs (the schema registry forwarding a
    /// change to its writer): the CA bundle to verify it against and this broker's own
    /// certificate to present, as [`peer_client_config`](Self::peer_client_config) for gRPC.
    pub fn peer_https_config(&self) -> Result<rustls::ClientConfig, Error> {
        let m = self.material();
        let Some(ca) = &m.pems.ca else {
            return Err(Error::invalid(
                "reaching another broker over HTTPS needs tls.ca_file, the CA bundle its \
                 certificate chains to",
            ));
        };
        let roots =
            roots(ca, self.settings.ca_file.as_deref().unwrap_or(Path::new("tls.ca_file")))?;
        let key = PrivateKeyDer::from_pem_slice(&m.pems.key)
            .map_err(|e| Error::invalid(format!("the TLS private key is not PEM: {e}")))?;
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(m.certified.cert.clone(), key)
            .map_err(|e| {
                Error::invalid(format!("the broker's certificate cannot be presented: {e}"))
            })
    }

    /// Accepts connections on `listener` and hands over those whose handshake succeeded;
    /// the returned stream is what `tonic`'s server serves (ALPN `h2`). The accept loop
    /// runs until the stream is dropped.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> (
        impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        accepting(self.config.clone(), listener)
    }

    /// [`incoming`](Self::incoming) without ALPN, for an HTTP/1.1 listener (the schema
    /// registry's, the console's: [`Http1Listener`]).
    pub fn incoming_http1(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> (
        impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        accepting(self.plain_config.clone(), listener)
    }
}

/// The handshaken connections of `listener` under `config`, and the accept loop that
/// makes them (see [`ServerTls::incoming`]).
fn accepting(
    config: Arc<rustls::ServerConfig>,
    listener: TcpListener,
) -> (
    impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    let acceptor = TlsAcceptor::from(config);
    let accept_loop = async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        shale_core::clock::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            tune(&tcp);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            // Detached: one handshake, bounded by HANDSHAKE_TIMEOUT.
            shale_core::task::spawn_detached(async move {
                let accept = acceptor.accept(tcp).into_fallible();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err((e, tcp))) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        drain(tcp).await;
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    };
    (tokio_stream::wrappers::ReceiverStream::new(rx), accept_loop)
}

/// Nagle off (gRPC frames are batched by h2) and TCP keepalive, as on the plaintext path.
fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// Reloads the files every interval until the broker closes; a failed reading keeps the
/// previous material and says why.
pub(crate) async fn reload_loop(tls: Arc<ServerTls>) {
    loop {
        shale_core::clock::sleep(tls.reload_interval()).await;
        match tls.reload() {
            Ok(true) => tracing::info!(
                generation = tls.generation(),
                "TLS certificates changed on disk; new connections use them"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "TLS certificates on disk are unusable; \
                keeping the previous ones"),
        }
    }
}

/// The live material, as rustls sees it: the certificate to serve and the client verifier,
/// read from the current material at each handshake.
#[derive(Debug)]
struct Current(std::sync::Weak<ServerTls>);

impl Current {
    fn material(&self) -> Option<Arc<Material>> {
        self.0.upgrade().map(|t| t.material())
    }

    /// The client verifier in use; an error once the broker is gone.
    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.material()
            .map(|m| m.verifier.clone())
            .ok_or_else(|| rustls::Error::General("broker closed".into()))
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.material().map(|m| m.certified.clone())
    }
}

impl ClientCertVerifier for Current {
    fn offer_client_auth(&self) -> bool {
        self.material().is_some_and(|m| m.verifier.offer_client_auth())
    }

    fn client_auth_mandatory(&self) -> bool {
        self.material().is_none_or(|m| m.verifier.client_auth_mandatory())
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from material that a rotation may replace; with none, a
        // client presents whatever certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
