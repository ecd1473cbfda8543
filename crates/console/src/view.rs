//! What every page shares: the frame around it (navigation, who is signed in, the CSRF
//! token its forms carry), the error page, and how values are shown (bytes, times).
//! Templates are askama's, compiled into the binary and HTML-escaped by default.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use shale_core::error::{Error, ErrorKind};

/// The frame's part of every page.
#[derive(Debug)]
pub(crate) struct Chrome {
    /// The navigation entry of this page.
    pub(crate) active: &'static str,
    /// The principal, when signed in.
    pub(crate) user: Option<String>,
    /// What the page's forms carry.
    pub(crate) csrf: String,
    /// Changes are refused (`console.read_only`): forms are not shown.
    pub(crate) read_only: bool,
    /// The cluster's name, in the title.
    pub(crate) cluster: String,
}

/// Why a change was refused: the answer's status and the reason the page shows.
pub(crate) type Refusal = (StatusCode, String);

/// The status of a page showing `refused`, if anything was, and the reason to show.
pub(crate) fn refusal(refused: Option<Refusal>) -> (StatusCode, Option<String>) {
    refused.map_or((StatusCode::OK, None), |(status, why)| (status, Some(why)))
}

/// A page, rendered.
pub(crate) fn page(t: &impl Template) -> Response {
    page_with(StatusCode::OK, t)
}

/// A page, rendered, answered with `status` (a page saying why a change was refused).
pub(crate) fn page_with(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The page could not be rendered: {e}"),
        )
        .into_response(),
    }
}

/// An answer that is an error page: its status and what went wrong, in words.
#[derive(Debug, Template)]
#[template(path = "failure.html")]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    /// What went wrong, in words.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    fn title(&self) -> &'static str {
        match self.status {
            StatusCode::FORBIDDEN => "Refused",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Not accepted",
            StatusCode::UNAUTHORIZED => "Sign in",
            StatusCode::CONFLICT => "Conflict",
            s if s.is_server_error() => "The broker could not answer",
            _ => "Error",
        }
    }
}

/// The HTTP status of the broker's refusal or failure.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e.kind {
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid | ErrorKind::OutOfRange => StatusCode::BAD_REQUEST,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<Error> for Failure {
    /// The broker's refusal or failure, its message as the broker words it (an ACL's
    /// refusal names the operation and the resource).
    fn from(e: Error) -> Self {
        Failure::new(status_of(&e), e.message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.status;
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.message).into_response(),
        }
    }
}

/// `bytes` in the largest binary unit that keeps it at or above 1 (`1.5 MiB`).
pub(crate) fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// Milliseconds since the epoch as UTC (`2026-11-29T14:03:07Z`); `-` for none (≤ 0).
pub(crate) fn time_ms(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(at).to_string()
        }
        _ => "-".to_string(),
    }
}

/// What [`query_escape`] leaves as it is: the unreserved characters (RFC 3986).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `s` for a URL's query or path segment: unreserved characters kept, the rest
/// percent-encoded.
pub(crate) fn query_escape(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// `n` `thing`s, the noun plural unless there is one (`1 segment`, `3 segments`).
pub(crate) fn counted(n: impl Into<u64>, thing: &str) -> String {
    match n.into() {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// Of `states`, how many have no leader (offline), and how many are led with fewer
/// in-sync replicas than replicas (under-replicated).
pub(crate) fn health<'a>(
    states: impl IntoIterator<Item = &'a shale_broker::api::PartitionState>,
) -> (usize, usize) {
    states.into_iter().fold((0, 0), |(offline, under), s| match s.leader < 0 {
        true => (offline + 1, under),
        false => (offline, under + usize::from(s.isr.len() < s.replicas.len())),
    })
}

/// A list of broker ids, as pages show them (`1, 2, 3`; `-` when empty).
pub(crate) fn ids(ids: &[i32]) -> String {
    match ids {
        [] => "-".to_string(),
        ids => ids.iter().map(i32::to_string).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_in_words_people_read() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(time_ms(0), "-");
        assert_eq!(time_ms(1_796_652_187_000), "2026-12-07T14:03:07Z");
        assert_eq!(query_escape("/topics/a b?x=1"), "%2Ftopics%2Fa%20b%3Fx%3D1");
        assert_eq!(ids(&[1, 2]), "1, 2");
        assert_eq!(
            (counted(1u32, "segment"), counted(0u32, "segment")),
            ("1 segment".into(), "0 segments".into())
        );
    }
}
