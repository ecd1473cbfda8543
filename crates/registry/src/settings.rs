//! `[schema_registry]`: the schema registry's HTTP listener, beside gRPC's and Kafka's.
//! The same rule as theirs holds: no plaintext on an address other than loopback unless
//! `tls.allow_plaintext` says so.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// Confluent Schema Registry's port, where registry clients look by default.
pub const DEFAULT_REGISTRY_PORT: u16 = 8081;

/// `[schema_registry]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Address the registry listener binds; none means no registry listener.
    pub listen: Option<SocketAddr>,
    /// `host:port` other brokers forward writes to; empty means the bound address.
    pub advertise: String,
    /// Largest request body, in bytes; a larger one is refused (42209) before it is read
    /// further.
    pub max_request_bytes: usize,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            listen: None,
            advertise: String::new(),
            max_request_bytes: 8 * 1024 * 1024,
        }
    }
}

impl RegistrySettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_request_bytes < 1024 {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidSetting,
                format!(
                    "setting schema_registry.max_request_bytes: {} is below the least allowed, 1024",
                    self.max_request_bytes
                ),
            )
            .with("key", "schema_registry.max_request_bytes"));
        }
        Ok(())
    }

    /// The address other brokers reach this listener at (empty: none).
    pub fn advertised_address(&self) -> String {
        match (&self.advertise, self.listen) {
            (a, _) if !a.is_empty() => a.clone(),
            (_, Some(l)) => l.to_string(),
            _ => String::new(),
        }
    }
}
