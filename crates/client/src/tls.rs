//! TLS to the brokers: the CA bundle their certificates must chain to and, for mTLS, a
//! certificate and key to present. Read from PEM files (`TlsOptions::from_files`) or given
//! as bytes.

use std::path::Path;

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
