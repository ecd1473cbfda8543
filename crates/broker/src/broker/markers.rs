//! Transaction markers written on the partitions this broker leads, as a transaction
//! coordinator asks (`Replica.WriteTxnMarker`).

use super::Broker;
use shale_core::acks::Acks;
use shale_core::error::Error;
use shale_core::record::control::{Marker, MarkerKind};
use shale_proto::pb;

impl Broker {
    /// Writes the marker `req` describes on a partition this broker leads: its offset once
    /// the in-sync replicas have it. Refused when this broker does not lead the partition,
    /// and by the partition's producer state for a stale producer or coordinator epoch.
    pub async fn write_marker_here(&self, req: &pb::WriteTxnMarkerRequest) -> Result<i64, Error> {
        let epoch = i16::try_from(req.producer_epoch).map_err(|_| {
            Error::invalid(format!(
                "producer epoch {} of a transaction marker is not an int16",
                req.producer_epoch
            ))
        })?;
        if req.producer_id < 0 {
            return Err(Error::invalid(format!(
                "producer id {} of a transaction marker is negative",
                req.producer_id
            )));
        }
        let kind = if req.commit { MarkerKind::Commit } else { MarkerKind::Abort };
        let marker = Marker { kind, coordinator_epoch: req.coordinator_epoch };
        let partition = self.partition(&req.topic, req.partition)?;
        let ack = partition.append_marker((req.producer_id, epoch), marker, req.tv2, Acks::All);
        Ok(ack.await?.await?.base_offset)
    }
}
