//! Credentials towards the brokers: TLS (the CA bundle their certificates must chain to
//! and, for mTLS, a certificate and key to present; from PEM files or bytes) and bearer
//! tokens (fixed, or read from a file that is read again when it changes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use shale_core::error::Error;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// TLS settings of a client.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM CA bundle the brokers' certificates must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key to present (mTLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to expect in the brokers' certificates, when it is not the host of the
    /// address dialled (e.g. dialling an IP address behind a certificate for a DNS name).
    pub domain: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::invalid(format!("cannot read the TLS {what} {}: {e}", path.display()))
            .with("path", path.display())
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(Error::invalid(format!(
            "{} is not a PEM file (no BEGIN line)",
            path.display()
        ))
        .with("path", path.display()));
    }
    Ok(bytes)
}

impl TlsOptions {
    /// Reads the PEM files: `ca` to verify the brokers (without it, the system's roots),
    /// `cert` and `key` (both or neither) to present.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<TlsOptions, Error> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read(c, "certificate")?, read(k, "private key")?)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid("a TLS certificate needs its key: add --tls-key"));
            }
            (None, Some(_)) => {
                return Err(Error::invalid("a TLS key needs its certificate: add --tls-cert"));
            }
        };
        Ok(TlsOptions {
            ca_pem: ca.map(|p| read(p, "CA bundle")).transpose()?,
            identity,
            domain: None,
        })
    }

    /// The tonic configuration.
    pub(crate) fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_pem {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            // Brokers with certificates from a public or company CA the system trusts.
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        config
    }
}

/// Where a client's bearer token comes from.
#[derive(Debug)]
enum TokenSource {
    Static(tonic::metadata::MetadataValue<tonic::metadata::Ascii>),
    File {
        path: PathBuf,
        /// The file's modification time and the header value read from it.
        cached: Mutex<(Option<SystemTime>, tonic::metadata::MetadataValue<tonic::metadata::Ascii>)>,
    },
}

/// The credentials a client adds to every call: nothing, or a bearer token.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    token: Option<Arc<TokenSource>>,
}

fn header(
    token: &str,
    from: &str,
) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, Error> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::invalid(format!("the bearer token {from} is empty")));
    }
    format!("Bearer {token}").parse().map_err(|_| {
        Error::invalid(format!("the bearer token {from} has characters a header cannot carry"))
    })
}

fn read_token(
    path: &Path,
) -> Result<(Option<SystemTime>, tonic::metadata::MetadataValue<tonic::metadata::Ascii>), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("cannot read the token file {}: {e}", path.display()))
    })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((modified, header(&text, &format!("in {}", path.display()))?))
}

impl Credentials {
    /// A fixed bearer token.
    pub(crate) fn token(token: &str) -> Result<Credentials, Error> {
        let value = header(token, "given")?;
        Ok(Credentials { token: Some(Arc::new(TokenSource::Static(value))) })
    }

    /// A bearer token read from `path`, again whenever the file changes.
    pub(crate) fn token_file(path: PathBuf) -> Result<Credentials, Error> {
        let first = read_token(&path)?;
        let source = TokenSource::File { path, cached: Mutex::new(first) };
        Ok(Credentials { token: Some(Arc::new(source)) })
    }

    fn value(&self) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
        match self.token.as_deref()? {
            TokenSource::Static(v) => Some(v.clone()),
            TokenSource::File { path, cached } => {
                let mut cached = cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                if modified != cached.0 {
                    match read_token(path) {
                        Ok(next) => *cached = next,
                        Err(e) => tracing::warn!(error = %e, "keeping the previous token"),
                    }
                }
                Some(cached.1.clone())
            }
        }
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = self.value() {
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}
