//! The broker's metrics as Prometheus reads them: the OpenMetrics text the admin
//! listener serves at `/metrics` (`shale-admin`, through `api`).
//!
//! Metrics are read from the broker's own counters at scrape time (a prometheus
//! `Collector`, in `collector.rs`; the logs' journal and cleaner families and the remote
//! compactor's in `log_metrics.rs`; the encoding helpers both use in `encode.rs`), so the
//! hot paths only bump atomics and nothing is kept twice.

mod collector;
mod encode;
mod log_metrics;

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::broker::Broker;
use shale_core::error::Error;

/// Content type of the OpenMetrics text exposition (Prometheus reads it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One broker's metrics, ready to be encoded at each scrape.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// The metrics of `broker` (held weakly: a scrape after it closed shows the request
    /// metrics only).
    pub(crate) fn new(broker: &Arc<Broker>) -> Exposition {
        Exposition { registry: collector::registry(broker) }
    }

    /// The metrics now, as OpenMetrics text.
    pub fn encode(&self) -> Result<String, Error> {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &self.registry)
            .map_err(|e| Error::internal(format!("encoding metrics failed: {e}")))?;
        Ok(body)
    }
}
