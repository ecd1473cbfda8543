//! Channels to the other brokers (replication, forwarding, liveness): one shared, lazily
//! connected HTTP/2 channel per address, with the same windows and keep-alives as the
//! client listener.

use std::time::Duration;

use tonic::transport::Channel;

use super::Broker;
use shale_core::error::Error;

impl Broker {
    /// The address broker `id` serves at, as the cached view knows it.
    pub(crate) fn broker_address(&self, id: i32) -> Option<String> {
        self.view.cache.read().ok()?.brokers.get(&id).map(|b| b.address.clone())
    }

    /// A shared channel to another broker: over TLS, presenting this broker's certificate,
    /// when this broker serves TLS (a rotation makes new channels with the new one).
    pub fn peer(&self, addr: &str) -> Result<Channel, Error> {
        let tls = self.replicas.tls.as_ref();
        let generation = tls.map_or(0, |t| t.generation());
        let cached = self.replicas.peers.lock().ok().and_then(|m| m.get(addr).cloned());
        if let Some((made_under, c)) = cached
            && made_under == generation
        {
            return Ok(c);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| Error::internal(format!("invalid broker address {addr:?}: {e}")))?;
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.peer_client_config())
                .map_err(|e| Error::internal(format!("cannot set up TLS to broker {addr}: {e}")))?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .initial_connection_window_size(shale_proto::transport::CONNECTION_WINDOW)
            .initial_stream_window_size(shale_proto::transport::STREAM_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        if let Ok(mut m) = self.replicas.peers.lock() {
            m.insert(addr.to_string(), (generation, channel.clone()));
        }
        Ok(channel)
    }
}
