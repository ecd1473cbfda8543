//! Schema ID validation of produced records (`confluent.key.schema.validation`,
//! `confluent.value.schema.validation`): a topic that asks for it accepts a batch only
//! when every record's key or value is in Confluent's wire format with the ID of a schema
//! registered under the topic's subject (`<topic>-key`, `<topic>-value`). Null keys and
//! values pass, as Confluent Server lets them (tombstones, unkeyed records). Checked
//! against this broker's copy of the registry; an ID it does not know sends it to catch up
//! with the log once before the batch is refused, so a schema registered a moment ago on
//! another broker is not refused for a lag.

use std::time::Duration;

use super::Registry;
use shale_core::error::Error;
use shale_core::record::{BatchHeader, Limits, RecordError, validate_batches_with};
use shale_schema::registry::Store;
use shale_schema::wire;

/// How long a check waits for this broker's copy to catch up with the log.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Which parts of a topic's records carry checked schema IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    /// Keys (`confluent.key.schema.validation`).
    pub key: bool,
    /// Values (`confluent.value.schema.validation`).
    pub value: bool,
}

/// A check's outcome, before it becomes the produce's error.
enum Refusal {
    /// Refused on what the record holds, whatever the registry knows.
    Record(RecordError),
    /// An ID this copy does not know under the subject: maybe not yet.
    Unknown(RecordError),
}

impl Registry {
    /// Validates `batches`, produced to `topic`, as the partition would (`limits`), and
    /// checks every record as `validated` asks: the batches' headers, or `INVALID_RECORD`
    /// naming the first refused record (its batch and its offset in it).
    pub async fn check_schema_ids(
        &self,
        topic: &str,
        validated: Validated,
        batches: &[u8],
        limits: &Limits,
    ) -> Result<Vec<BatchHeader>, Error> {
        self.started()?;
        let subjects = (format!("{topic}-key"), format!("{topic}-value"));
        let check = || self.read(|store| check_once(store, &subjects, validated, batches, limits));
        let e = match check() {
            Ok(headers) => return Ok(headers),
            Err(Refusal::Record(e)) => e,
            Err(Refusal::Unknown(_)) => {
                // Bounded: a copy that cannot catch up still decides on what it has.
                let end = self.host.leader_end().await.unwrap_or_else(|_| self.host.log_end());
                if let Err(e) = self.caught_up(end, CATCH_UP).await {
                    tracing::debug!(error = %e, "schema ID validation decides on a lagging copy");
                }
                match check() {
                    Ok(headers) => return Ok(headers),
                    Err(Refusal::Record(e) | Refusal::Unknown(e)) => e,
                }
            }
        };
        Err(refused(e))
    }
}

fn check_once(
    store: &Store,
    (key_subject, value_subject): &(String, String),
    validated: Validated,
    batches: &[u8],
    limits: &Limits,
) -> Result<Vec<BatchHeader>, Refusal> {
    let mut unknown = false;
    let mut check = |key: Option<&[u8]>, value: Option<&[u8]>| {
        let sides = [
            (validated.key, key, "key", key_subject),
            (validated.value, value, "value", value_subject),
        ];
        for (on, bytes, side, subject) in sides {
            let Some(bytes) = bytes.filter(|_| on) else { continue };
            let id = wire::schema_id(bytes).map_err(|e| format!("{side}: {e}"))?;
            if !store.registered_under(subject, id) {
                unknown = true;
                return Err(format!(
                    "{side}: schema ID {id} is not registered under subject {subject:?} \
                     (confluent.{side}.schema.validation=true)"
                ));
            }
        }
        Ok(())
    };
    match validate_batches_with(batches, limits, &mut check) {
        Ok(headers) => Ok(headers),
        Err(e) if unknown => Err(Refusal::Unknown(e)),
        Err(e) => Err(Refusal::Record(e)),
    }
}

/// The produce's error: `INVALID_RECORD` (an invalid batch), with the record's place.
fn refused(e: RecordError) -> Error {
    let place = match &e {
        RecordError::InBatch { index, error, .. } => match **error {
            RecordError::BadRecord { index: record, .. } => Some((*index, record)),
            _ => None,
        },
        _ => None,
    };
    let mut error = Error::from(e);
    if let Some((batch, record)) = place {
        error = error.with("batch_index", batch).with("record_index", record);
    }
    error
}
