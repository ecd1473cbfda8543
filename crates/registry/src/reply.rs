//! Answers as Confluent's registry writes them: JSON with its content type, errors as
//! `{"error_code": N, "message": "..."}` with the HTTP status the code implies.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use shale_broker::api::{RegistryError, RegistryFailure};
use shale_core::error::{Error, ErrorKind};

/// Marks an answer of a broker that is not the one to answer: the forwarding layer sends
/// the request to the writer instead (`forward`).
pub(crate) const NOT_HERE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-shale-not-here");

/// The registry's content type (clients accept it, and plain JSON).
pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A JSON answer.
pub(crate) fn json(body: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// A raw text answer (a schema's text, as `/schema` endpoints return it).
pub(crate) fn raw(text: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// An error answer: `code` (Confluent's) and its message.
pub(crate) fn error(code: u32, message: impl Into<String>) -> Response {
    let status = match code {
        c if c >= 10_000 => c / 100,
        c => c,
    };
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error_code": code, "message": message.into() });
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// A refused or failed operation.
pub(crate) fn failure(f: RegistryFailure) -> Response {
    match f {
        RegistryFailure::Refused(e) => refused(&e),
        RegistryFailure::Failed(e) => failed(&e),
    }
}

/// A registry rule's refusal.
pub(crate) fn refused(e: &RegistryError) -> Response {
    error(e.code(), e.to_string())
}

/// The broker's failure: authentication and authorization as Confluent's security plugin
/// answers them, the rest as store errors (retriable ones as timeouts, 50002).
pub(crate) fn failed(e: &Error) -> Response {
    match e.kind {
        ErrorKind::Unauthenticated => error(40101, e.message.clone()),
        ErrorKind::PermissionDenied => error(40301, e.message.clone()),
        // Marked: the forwarding layer sends the request to the writer instead.
        ErrorKind::NotLeader => {
            let mut r = error(50004, format!("Leader not known. {}", e.message));
            r.headers_mut().insert(NOT_HERE, axum::http::HeaderValue::from_static("1"));
            r
        }
        ErrorKind::Unavailable => error(50002, e.message.clone()),
        ErrorKind::Invalid => error(42201, e.message.clone()),
        _ => error(50001, format!("Error in the backend data store - {}", e.message)),
    }
}
