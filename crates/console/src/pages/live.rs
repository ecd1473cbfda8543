//! `/topics/{name}/live`: new records of a topic (one partition or all) pushed to the page
//! as they arrive (server-sent events, one per record, its row as JSON), from the end each
//! partition had when the page asked. The stream ends when the page goes away or the
//! broker closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;

use shale_broker::api::{DecodeRead, FetchShape, OffsetSpec, decode_read};

use crate::Console;
use crate::session::Session;
use crate::show::Format;
use crate::view::Failure;

/// How long a partition's read waits at its end before it looks again (and notices a page
/// that went away).
const WAIT_MS: u32 = 5_000;

#[derive(Debug, Deserialize)]
pub(crate) struct Live {
    /// A partition's index, or empty for all.
    #[serde(default)]
    partition: String,
    #[serde(default)]
    format: Format,
}

/// One event: the record's row, or why the partition's stream ended.
type Events = BoxStream<'static, Result<Event, Infallible>>;

pub(crate) async fn follow(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<Live>,
) -> Result<Response, Failure> {
    let count = super::partitions_of(&st, &session, &name)?;
    let wanted: Vec<u32> = match q.partition.trim() {
        "" => (0..count).collect(),
        p => vec![p.parse().map_err(|_| {
            Failure::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("partition {p:?} is not a number"),
            )
        })?],
    };
    let shape = FetchShape::new(&st.api, 1 << 20, WAIT_MS, false);
    let mut streams: Vec<Events> = Vec::new();
    for p in wanted {
        let end =
            st.api.list_offsets_anywhere(&session.who, (&name, p), OffsetSpec::Latest).await?;
        let chunks = st
            .api
            .fetch_stream_anywhere(&session.who, "ConsoleLive", (&name, p), end.offset, &shape)
            .await?;
        let (topic, format) = (name.clone(), q.format);
        let (api, who) = (st.api.clone(), session.who.clone());
        // Where the next chunk's records begin: records of its first batch before it are
        // the previous chunk's.
        let cursor = Arc::new(AtomicI64::new(end.offset));
        let events = chunks.then(move |chunk| {
            let (topic, cursor) = (topic.clone(), cursor.clone());
            let (api, who) = (api.clone(), who.clone());
            async move {
                let c = match chunk {
                    Ok(c) => c,
                    Err(e) => return vec![Ok(Event::default().event("failure").data(e.message))],
                };
                let from = cursor.swap(c.next_offset, Ordering::Relaxed);
                let read = DecodeRead {
                    batches: c.batches,
                    from,
                    next_offset: c.next_offset,
                    max_bytes: usize::MAX,
                    committed: None,
                };
                match decode_read(&topic, p, read).await {
                    Ok(parts) => parts
                        .into_iter()
                        .flat_map(|part| part.records)
                        .map(|r| {
                            let registered = |b: &[u8]| api.decode_registered(&who, b);
                            let row = super::messages::row(p, r, format, &registered);
                            let data = serde_json::to_string(&row).unwrap_or_default();
                            Ok(Event::default().event("record").data(data))
                        })
                        .collect(),
                    Err(e) => vec![Ok(Event::default().event("failure").data(e.message))],
                }
            }
        });
        streams.push(events.flat_map(stream::iter).boxed());
    }
    let mut closed = st.api.closed_signal();
    let closing = async move {
        let _ = closed.wait_for(|c| *c).await;
    };
    let events = stream::select_all(streams).take_until(closing);
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15));
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}
