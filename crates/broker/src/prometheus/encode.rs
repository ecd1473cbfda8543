//! Writing metric families: the helpers the collector and the logs' families share.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};

pub(super) type Labels = Vec<(&'static str, String)>;

/// Writes one metric family with its series.
pub(super) fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: Vec<(Labels, M)>,
) -> fmt::Result {
    let Some(metric_type) = series.first().map(|(_, m)| m.metric_type()) else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in &series {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

pub(super) fn one<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    m: M,
) -> fmt::Result {
    let metric_encoder = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(metric_encoder)
}
