//! `[kafka]`: the Kafka listener's settings, beside gRPC's (the broker's `[broker]`). TLS on it follows `[tls]` (the same
//! certificate, client authentication and reload), and the same rule holds: no plaintext
//! on an address other than loopback unless `tls.allow_plaintext` says so.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// Kafka's default port.
pub const DEFAULT_KAFKA_PORT: u16 = 9092;

/// The SASL mechanisms the Kafka listener can offer.
pub const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// `[kafka]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Address the Kafka listener binds; none means no Kafka listener.
    pub listen: Option<SocketAddr>,
    /// `host:port` Kafka clients are told to dial (Metadata, FindCoordinator); empty
    /// means the bound address.
    pub advertise: String,
    /// Largest request a client may send, in bytes (Kafka's `socket.request.max.bytes`);
    /// a larger frame closes its connection before anything is allocated for it.
    pub max_request_bytes: usize,
    /// A connection with no request for this long, and none in flight, is closed
    /// (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Requests of one connection taken in before their answers are sent; the connection
    /// is not read further until one is (answers always go out in request order).
    pub max_in_flight_per_connection: usize,
    /// Connections served at once; more are closed as they arrive (Kafka's
    /// `max.connections`).
    pub max_connections: usize,
    /// Create a topic that Metadata names and that does not exist, with the broker's
    /// defaults (Kafka's `auto.create.topics.enable`). Off: a typo in a topic name is an
    /// error, not a topic.
    pub auto_create_topics: bool,
    /// Incremental fetch sessions kept (KIP-227; Kafka's
    /// `max.incremental.fetch.session.cache.slots`); past it the least recently used one
    /// is evicted and its client falls back to a full fetch.
    pub fetch_session_cache_slots: usize,
    /// Share sessions kept (KIP-932; Kafka's `group.share.max.share.sessions`): past it a
    /// member opening one is told SHARE_SESSION_LIMIT_REACHED.
    pub share_session_cache_slots: usize,
    /// SASL mechanisms offered: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (checked against
    /// users' credentials, `shale user`) and `OAUTHBEARER` (tokens validated as gRPC's
    /// bearer tokens). PLAIN sends passwords as they are: offer it over TLS only.
    pub sasl_mechanisms: Vec<String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            listen: None,
            advertise: String::new(),
            max_request_bytes: 100 * 1024 * 1024,
            connections_max_idle_ms: 600_000,
            max_in_flight_per_connection: 100,
            max_connections: 10_000,
            auto_create_topics: false,
            fetch_session_cache_slots: 1000,
            share_session_cache_slots: 2000,
            sasl_mechanisms: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"]
                .map(String::from)
                .to_vec(),
        }
    }
}

fn invalid(key: &str, why: String) -> Error {
    Error::new(ErrorKind::Invalid, Reason::InvalidSetting, format!("setting {key}: {why}"))
        .with("key", key)
}

impl KafkaSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.advertise.is_empty() && !is_host_port(&self.advertise) {
            return Err(invalid(
                "kafka.advertise",
                format!("{:?} is not host:port (a port from 1 to 65535)", self.advertise),
            ));
        }
        if !(1024..=1 << 30).contains(&self.max_request_bytes) {
            return Err(invalid(
                "kafka.max_request_bytes",
                format!("{} must be from 1024 to 1073741824", self.max_request_bytes),
            ));
        }
        if self.connections_max_idle_ms < 1000 {
            return Err(invalid(
                "kafka.connections_max_idle_ms",
                format!("{} must be at least 1000", self.connections_max_idle_ms),
            ));
        }
        if !(1..=10_000).contains(&self.max_in_flight_per_connection) {
            return Err(invalid(
                "kafka.max_in_flight_per_connection",
                format!("{} must be from 1 to 10000", self.max_in_flight_per_connection),
            ));
        }
        for m in &self.sasl_mechanisms {
            if !MECHANISMS.contains(&m.as_str()) {
                return Err(invalid(
                    "kafka.sasl_mechanisms",
                    format!("{m:?} is not one of {}", MECHANISMS.join(", ")),
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("kafka.max_connections", "0 would refuse every client".into()));
        }
        Ok(())
    }

    /// The `host:port` clients dial: `advertise`, else the listen address.
    pub fn advertised_address(&self) -> String {
        match (&self.listen, self.advertise.is_empty()) {
            (_, false) => self.advertise.clone(),
            (Some(l), true) => l.to_string(),
            (None, true) => String::new(),
        }
    }
}

/// Whether `s` is `host:port` with a non-empty host and a port from 1 to 65535.
pub(crate) fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Splits an advertised `host:port` (validated by [`is_host_port`]); `("", -1)` for an
/// empty one.
pub(crate) fn split_host_port(s: &str) -> (String, i32) {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (host.to_string(), port.parse::<u16>().map_or(-1, i32::from))
        }
        None => (String::new(), -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let bad = [
            KafkaSettings { advertise: "no-port".into(), ..Default::default() },
            KafkaSettings { advertise: "host:0".into(), ..Default::default() },
            KafkaSettings { max_request_bytes: 10, ..Default::default() },
            KafkaSettings { connections_max_idle_ms: 5, ..Default::default() },
            KafkaSettings { max_in_flight_per_connection: 0, ..Default::default() },
            KafkaSettings { max_connections: 0, ..Default::default() },
        ];
        for (s, key) in bad.iter().zip([
            "kafka.advertise",
            "kafka.advertise",
            "kafka.max_request_bytes",
            "kafka.connections_max_idle_ms",
            "kafka.max_in_flight_per_connection",
            "kafka.max_connections",
        ]) {
            let e = s.validate().unwrap_err();
            assert_eq!(e.details.get("key").map(String::as_str), Some(key), "{}", e.message);
        }
        KafkaSettings::default().validate().unwrap();
    }

    #[test]
    fn advertised_addresses_split_into_host_and_port() {
        assert_eq!(split_host_port("broker-1.example:9092"), ("broker-1.example".into(), 9092));
        assert_eq!(split_host_port("[::1]:19092"), ("::1".into(), 19092));
        assert_eq!(split_host_port(""), (String::new(), -1));
        let s =
            KafkaSettings { listen: Some("127.0.0.1:9092".parse().unwrap()), ..Default::default() };
        assert_eq!(s.advertised_address(), "127.0.0.1:9092");
    }
}
