//! `/topics/{name}/messages`: a topic's records, one partition or all, from an offset, a
//! time, the oldest or the newest, decoded as text, JSON or hex, filtered by key, header or
//! a substring; what is shown downloaded as JSON; and the form that produces a record.
//! Reads stream through the broker's fetch, a page's worth at a time: at most
//! `SCAN_BYTES` of batches per partition for one page, never a whole partition.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use futures::StreamExt;
use serde::Deserialize;

use shale_broker::api::{DecodeRead, FetchShape, Identity, OffsetSpec, Payload, decode_read};
use shale_core::error::Error;
use shale_core::record::{Compression, DecodedRecord, Header, Record};

use crate::Console;
use crate::session::Session;
use crate::show::{Format, show};
use crate::view::{Chrome, Failure, page_with, query_escape, time_ms};

/// Batch bytes one page reads of a partition at most, matching or not.
const SCAN_BYTES: usize = 16 << 20;
/// Records a page shows at most.
const MAX_LIMIT: usize = 500;

/// Where a page starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum From {
    /// The last `limit` records of each partition.
    #[default]
    Newest,
    /// The log start (in the bucket, for a tiered topic).
    Oldest,
    /// An offset.
    Offset,
    /// The first record at or after a time.
    Timestamp,
}

/// The page's query, as the form sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Browse {
    /// A partition's index, or empty for all.
    #[serde(default)]
    partition: String,
    #[serde(default)]
    from: From,
    #[serde(default)]
    offset: String,
    /// `YYYY-MM-DDTHH:MM[:SS]` (UTC) or milliseconds since the epoch.
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    format: Format,
    /// Keys containing this.
    #[serde(default)]
    key: String,
    /// A header's name, or `name=value`.
    #[serde(default)]
    header: String,
    /// Keys or values containing this.
    #[serde(default)]
    contains: String,
    /// `json`: the records shown, as a file.
    #[serde(default)]
    download: String,
    /// The offset a produce from this page got (`partition:offset`).
    #[serde(default)]
    produced: String,
}

/// A record's row.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Row {
    partition: u32,
    offset: i64,
    timestamp: String,
    key: String,
    headers: Vec<(String, String)>,
    value: String,
}

#[derive(Debug, Template)]
#[template(path = "messages.html")]
struct MessagesPage {
    chrome: Chrome,
    name: String,
    href: String,
    partitions: Vec<u32>,
    q: Browse,
    limit: usize,
    rows: Vec<Row>,
    /// Where the next page of a one-partition read starts.
    next: Option<String>,
    /// The same query, as a download.
    download: String,
    /// Why nothing could be read, if so.
    error: Option<String>,
}

impl MessagesPage {
    /// The time asked for as the form's time field holds it (`YYYY-MM-DDTHH:MM:SS`, UTC),
    /// whatever form it was given in; as given when it does not parse.
    fn timestamp_input(&self) -> String {
        match parse_time(&self.q.timestamp) {
            Ok(ms) => time_ms(ms).trim_end_matches('Z').to_string(),
            Err(_) => self.q.timestamp.clone(),
        }
    }

    /// Where the produce that led here put its record (`partition:offset`).
    fn produced(&self) -> Option<(u32, i64)> {
        let (p, o) = self.q.produced.split_once(':')?;
        Some((p.parse().ok()?, o.parse().ok()?))
    }
}

/// The filters of a page.
struct Filters {
    key: String,
    header: Option<(String, Option<String>)>,
    contains: String,
}

impl Filters {
    fn of(q: &Browse) -> Filters {
        let header = match q.header.trim() {
            "" => None,
            h => Some(match h.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (h.to_string(), None),
            }),
        };
        Filters { key: q.key.clone(), header, contains: q.contains.clone() }
    }

    fn pass(&self, r: &DecodedRecord) -> bool {
        let text = |b: &Option<bytes::Bytes>| {
            b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned()
        };
        if !self.key.is_empty() && !text(&r.key).contains(&self.key) {
            return false;
        }
        if let Some((name, value)) = &self.header {
            let found = r
                .headers
                .iter()
                .any(|h| h.key == *name && value.as_ref().is_none_or(|v| text(&h.value) == *v));
            if !found {
                return false;
            }
        }
        self.contains.is_empty()
            || text(&r.key).contains(&self.contains)
            || text(&r.value).contains(&self.contains)
    }
}

/// A time as the form gives it (UTC), or milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let full = match s.len() {
        16 => format!("{s}:00Z"),
        19 => format!("{s}Z"),
        _ => s.to_string(),
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        format!("timestamp {s:?} is neither YYYY-MM-DDTHH:MM[:SS] nor milliseconds")
    })?;
    let ms =
        at.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(ms.as_millis() as i64)
}

/// Reads `topic`-`partition` from `start` until `limit` records pass `filters`, the end,
/// or `SCAN_BYTES` read: the records, and where to continue.
async fn read(
    st: &Console,
    who: &Identity,
    (topic, partition): (&str, u32),
    start: i64,
    limit: usize,
    filters: &Filters,
) -> Result<(Vec<DecodedRecord>, i64), Error> {
    let shape = FetchShape::new(&st.api, 1 << 20, 0, true);
    let mut chunks = st
        .api
        .fetch_stream_anywhere(who, "ConsoleBrowse", (topic, partition), start, &shape)
        .await?;
    let (mut found, mut next, mut scanned) = (Vec::new(), start, 0);
    while let Some(chunk) = chunks.next().await {
        let c = chunk?;
        scanned += c.batches.len();
        let read = DecodeRead {
            batches: c.batches,
            from: next,
            next_offset: c.next_offset,
            max_bytes: usize::MAX,
            committed: None,
        };
        for r in decode_read(topic, partition, read).await?.into_iter().flat_map(|p| p.records) {
            if filters.pass(&r) {
                let offset = r.offset;
                found.push(r);
                if found.len() == limit {
                    return Ok((found, offset + 1));
                }
            }
        }
        next = c.next_offset;
        if scanned >= SCAN_BYTES || c.at_end {
            break;
        }
    }
    Ok((found, next))
}

/// Where `q` starts reading `partition` (`limit`: how many of the newest).
async fn start_of(
    st: &Console,
    who: &Identity,
    (topic, partition): (&str, u32),
    q: &Browse,
    limit: usize,
) -> Result<i64, String> {
    let listed = |spec| st.api.list_offsets_anywhere(who, (topic, partition), spec);
    let fail = |e: Error| e.message;
    match q.from {
        From::Oldest => Ok(listed(OffsetSpec::Earliest).await.map_err(fail)?.offset),
        From::Newest => {
            let end = listed(OffsetSpec::Latest).await.map_err(fail)?;
            Ok((end.offset - limit as i64).max(end.log_start_offset))
        }
        From::Offset => {
            let offset: i64 = q
                .offset
                .trim()
                .parse()
                .map_err(|_| format!("offset {:?} is not a whole number", q.offset.trim()))?;
            let end = listed(OffsetSpec::Latest).await.map_err(fail)?;
            Ok(offset.clamp(end.log_start_offset, end.offset))
        }
        From::Timestamp => {
            let at = parse_time(&q.timestamp)?;
            let found = listed(OffsetSpec::Timestamp(at)).await.map_err(fail)?;
            // No record at or after it: the end.
            Ok(if found.offset < 0 { found.high_watermark } else { found.offset })
        }
    }
}

pub(crate) fn row(
    partition: u32,
    r: DecodedRecord,
    format: Format,
    registered: crate::show::Registered<'_>,
) -> Row {
    Row {
        partition,
        offset: r.offset,
        timestamp: time_ms(r.timestamp_ms),
        key: show(r.key.as_deref(), format, registered),
        headers: r
            .headers
            .into_iter()
            .map(|h| (h.key, show(h.value.as_deref(), Format::Text, registered)))
            .collect(),
        value: show(r.value.as_deref(), format, registered),
    }
}

/// The query string of `q` (its `download` and `produced` left out), for links.
fn query_of(q: &Browse, limit: usize) -> String {
    let pairs = [
        ("partition", q.partition.clone()),
        ("from", format!("{:?}", q.from).to_lowercase()),
        ("offset", q.offset.clone()),
        ("timestamp", q.timestamp.clone()),
        ("limit", limit.to_string()),
        ("format", q.format.name().to_string()),
        ("key", q.key.clone()),
        ("header", q.header.clone()),
        ("contains", q.contains.clone()),
    ];
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) async fn show_page(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<Browse>,
) -> Result<Response, Failure> {
    let count = super::partitions_of(&st, &session, &name)?;
    let all: Vec<u32> = (0..count).collect();
    let limit = match q.limit.trim() {
        "" => 50,
        l => l.parse::<usize>().map_err(|_| {
            Failure::new(StatusCode::BAD_REQUEST, format!("limit {l:?} is not a whole number"))
        })?,
    }
    .clamp(1, MAX_LIMIT);
    let wanted: Vec<u32> = match q.partition.trim() {
        "" => all.clone(),
        p => match p.parse::<u32>() {
            Ok(p) if p < count => vec![p],
            _ => {
                let why = format!("partition {p:?} is not one of {name}'s 0..{}", all.len());
                return Err(Failure::new(StatusCode::BAD_REQUEST, why));
            }
        },
    };
    let filters = Filters::of(&q);
    let (mut found, mut next, mut error) = (Vec::new(), None, None);
    for &p in &wanted {
        let start = match start_of(&st, &session.who, (&name, p), &q, limit).await {
            Ok(s) => s,
            Err(why) => {
                error = Some(why);
                break;
            }
        };
        match read(&st, &session.who, (&name, p), start, limit, &filters).await {
            Ok((records, after)) => {
                found.extend(records.into_iter().map(|r| (p, r)));
                if wanted.len() == 1 {
                    next = Some(after);
                }
            }
            Err(e) => {
                error = Some(e.message);
                break;
            }
        }
    }
    // Across partitions: by time, the oldest `limit` (the newest, reading the newest).
    found.sort_by_key(|(p, r)| (r.timestamp_ms, *p, r.offset));
    if found.len() > limit {
        match q.from {
            From::Newest => drop(found.drain(..found.len() - limit)),
            _ => found.truncate(limit),
        }
    }
    let registered = |b: &[u8]| st.api.decode_registered(&session.who, b);
    let rows: Vec<Row> = found.into_iter().map(|(p, r)| row(p, r, q.format, &registered)).collect();
    let href = format!("/topics/{}/messages", query_escape(&name));
    let query = query_of(&q, limit);
    if q.download == "json" {
        let body = serde_json::to_string_pretty(&rows).unwrap_or_default();
        let file = format!("attachment; filename=\"{name}-messages.json\"");
        let kind = (header::CONTENT_TYPE, "application/json".to_string());
        return Ok(([kind, (header::CONTENT_DISPOSITION, file)], body).into_response());
    }
    let next = next.map(|n| {
        let q = Browse { from: From::Offset, offset: n.to_string(), ..q.clone() };
        format!("{href}?{}", query_of(&q, limit))
    });
    let download = format!("{href}?{query}&download=json");
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let chrome = session.chrome(&st, "topics");
    let answer = page_with(
        status,
        &MessagesPage {
            chrome,
            name,
            href,
            partitions: all,
            q,
            limit,
            rows,
            next,
            download,
            error,
        },
    );
    Ok(answer)
}

/// The produce form.
#[derive(Debug, Deserialize)]
pub(crate) struct ProduceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    partition: String,
    #[serde(default)]
    key: String,
    /// `name=value` a line.
    #[serde(default)]
    headers: String,
    #[serde(default)]
    value: String,
}

pub(crate) async fn produce(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<ProduceForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &f.csrf)?;
    let bad = |why: String| Failure::new(StatusCode::BAD_REQUEST, why);
    let partition: u32 = f
        .partition
        .trim()
        .parse()
        .map_err(|_| bad(format!("partition {:?} is not a whole number", f.partition)))?;
    let mut headers = Vec::new();
    for line in f.headers.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("header line {line:?} is not name=value")))?;
        headers.push(Header { key: k.trim().to_string(), value: Some(v.to_string().into()) });
    }
    let record = Record {
        key: (!f.key.is_empty()).then(|| f.key.clone().into()),
        value: Some(f.value.clone().into()),
        headers,
        timestamp_ms: st.api.now_ms(),
    };
    let payload = Payload::Records(vec![record], Compression::None);
    let admitted = st.api.admit_produce(&session.who, &name, &payload)?;
    if !admitted.wait().is_zero() {
        shale_core::clock::sleep(admitted.wait()).await;
    }
    let offset = st.api.produce_anywhere(admitted, partition, payload).await?;
    let to = format!(
        "/topics/{}/messages?partition={partition}&from=newest&produced={partition}:{offset}",
        query_escape(&name),
    );
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_taken_as_the_form_gives_them() {
        assert_eq!(parse_time("1796652187000"), Ok(1_796_652_187_000));
        assert_eq!(parse_time("2026-12-07T14:03"), Ok(1_796_652_180_000));
        assert_eq!(parse_time("2026-12-07T14:03:07"), Ok(1_796_652_187_000));
        assert!(parse_time("yesterday").unwrap_err().contains("\"yesterday\""));
    }

    #[test]
    fn filters_match_keys_headers_and_substrings() {
        let r = DecodedRecord {
            offset: 0,
            timestamp_ms: 0,
            key: Some("order-7".into()),
            value: Some("{\"total\": 12}".into()),
            headers: vec![Header { key: "source".into(), value: Some("web".into()) }],
        };
        let f = |key: &str, header: &str, contains: &str| {
            let q = Browse {
                key: key.into(),
                header: header.into(),
                contains: contains.into(),
                ..Default::default()
            };
            Filters::of(&q).pass(&r)
        };
        assert!(f("", "", ""));
        assert!(f("order", "source", "total"));
        assert!(f("", "source=web", ""));
        assert!(!f("", "source=app", ""));
        assert!(!f("", "trace", ""));
        assert!(!f("invoice", "", ""));
        assert!(f("", "", "order-7"), "a substring of the key counts");
    }
}
