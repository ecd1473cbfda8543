//! The 1:1 mapping between [`Error`] kinds and gRPC status codes. The reason and details
//! travel as a `google.rpc.ErrorInfo` (domain `shale.dev`), so clients in any language can
//! act on them (e.g. the leader's address on `NOT_LEADER`).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use shale_core::error::{Error, ErrorKind, Reason};

/// ErrorInfo domain of every Shale status.
pub const DOMAIN: &str = "shale.dev";

/// The gRPC code of an error kind.
pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotLeader => Code::FailedPrecondition,
        ErrorKind::Fenced => Code::Aborted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::OutOfRange => Code::OutOfRange,
        ErrorKind::Data => Code::DataLoss,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
    }
}

/// The error kind of a gRPC code (codes Shale does not send map to the nearest kind).
pub fn kind_of(code: Code) -> ErrorKind {
    match code {
        Code::FailedPrecondition => ErrorKind::NotLeader,
        Code::Aborted => ErrorKind::Fenced,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorKind::Unavailable,
        Code::ResourceExhausted => ErrorKind::ResourceExhausted,
        Code::InvalidArgument => ErrorKind::Invalid,
        Code::NotFound => ErrorKind::NotFound,
        Code::AlreadyExists => ErrorKind::AlreadyExists,
        Code::OutOfRange => ErrorKind::OutOfRange,
        Code::DataLoss => ErrorKind::Data,
        Code::Unauthenticated => ErrorKind::Unauthenticated,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Internal,
    }
}

/// Builds the status for an error.
pub fn to_status(e: &Error) -> Status {
    let metadata: HashMap<String, String> =
        e.details.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut details = ErrorDetails::with_error_info(e.reason.as_str(), DOMAIN, metadata);
    // Standard clients read when to come back from RetryInfo.
    if let Some(ms) = e.details.get("retry_after_ms").and_then(|v| v.parse::<u64>().ok()) {
        details.set_retry_info(Some(std::time::Duration::from_millis(ms)));
    }
    Status::with_error_details(code_of(e.kind), e.message.clone(), details)
}

/// [`to_status`] by value, for `map_err`.
pub fn into_status(e: Error) -> Status {
    to_status(&e)
}

/// Reads an error back from a status (client side).
pub fn from_status(status: &Status) -> Error {
    let kind = kind_of(status.code());
    let details = status.get_error_details();
    let mut error = Error::new(kind, Reason::GrpcError, status.message().to_string());
    match details.error_info() {
        Some(info) if info.domain == DOMAIN => {
            error.reason = Reason::from_wire(&info.reason);
            for (k, v) in &info.metadata {
                error.details.insert(k.clone(), v.clone());
            }
        }
        // A status with a source was made here, by the transport (a reset or closed
        // connection surfaces as UNKNOWN "transport error"): the request may be retried.
        _ if std::error::Error::source(status).is_some()
            && matches!(status.code(), Code::Unknown | Code::Internal) =>
        {
            error.kind = ErrorKind::Unavailable;
            error.reason = Reason::TransportError;
        }
        _ => {
            error.reason = match status.code() {
                Code::Unavailable => Reason::Unavailable,
                Code::DeadlineExceeded => Reason::DeadlineExceeded,
                Code::Cancelled => Reason::Cancelled,
                _ => Reason::GrpcError,
            };
            if error.message.is_empty() {
                error.message = format!("grpc status {:?}", status.code());
            }
        }
    }
    // A transport failure says what the OS said ("tcp connect error: connection refused").
    if let Some(cause) = io_cause(status)
        && !error.message.to_lowercase().contains(&cause.to_lowercase())
    {
        error.message = format!("{}: {cause}", error.message);
    }
    error
}

/// The I/O error under a client-side transport failure, in words (`connection refused`).
fn io_cause(status: &Status) -> Option<String> {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                // TLS failures come as invalid data carrying rustls's words ("received
                // fatal alert: UnknownCA", "invalid peer certificate: ...").
                std::io::ErrorKind::InvalidData => tls_hint(&io.to_string()),
                std::io::ErrorKind::Other => io.to_string(),
                kind => kind.to_string(),
            });
        }
        source = e.source();
    }
    None
}

/// A TLS failure in words, with what to check when the broker refused our certificate.
fn tls_hint(what: &str) -> String {
    let refused_us = what.contains("alert") && !what.contains("invalid peer certificate");
    if what.contains("CertificateRequired") {
        format!("the broker requires a client certificate ({what}): pass --tls-cert and --tls-key")
    } else if refused_us {
        format!(
            "the broker refused the TLS handshake ({what}): check that the client certificate \
             (--tls-cert/--tls-key) is issued by a CA the broker trusts"
        )
    } else if what.contains("invalid peer certificate") {
        format!("TLS: {what}: check --tls-ca against the CA that issued the broker's certificate")
    } else {
        what.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_status() {
        let e =
            Error::new(ErrorKind::OutOfRange, Reason::OffsetOutOfRange, "offset 9 is out of range")
                .with("log_start_offset", 0)
                .with("high_watermark", 5);
        let back = from_status(&to_status(&e));
        assert_eq!(back, e);
    }

    #[test]
    fn a_refused_tls_handshake_says_what_to_check() {
        let said = tls_hint("received fatal alert: CertificateRequired");
        assert!(said.contains("requires a client certificate"), "{said}");
        let said = tls_hint("received fatal alert: UnknownCA");
        assert!(said.contains("issued by a CA the broker trusts"), "{said}");
        let said = tls_hint("invalid peer certificate: UnknownIssuer");
        assert!(said.contains("--tls-ca"), "{said}");
    }

    #[test]
    fn a_transport_failure_names_its_io_cause() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = std::io::Error::other(io);
        let status = Status::from_error(Box::new(wrapped));
        let e = from_status(&status);
        assert_eq!((e.kind, e.reason.as_ref()), (ErrorKind::Unavailable, "TRANSPORT_ERROR"));
        assert_eq!(e.message, "connection refused");
        let mut connect = Status::unavailable("tcp connect error");
        connect.set_source(std::sync::Arc::new(status));
        let e = from_status(&connect);
        assert_eq!(e.message, "tcp connect error: connection refused");
    }

    #[test]
    fn every_kind_has_its_own_code() {
        let kinds = [
            ErrorKind::NotLeader,
            ErrorKind::Fenced,
            ErrorKind::Unavailable,
            ErrorKind::Invalid,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::OutOfRange,
            ErrorKind::Data,
            ErrorKind::Internal,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::ResourceExhausted,
        ];
        for k in kinds {
            assert_eq!(kind_of(code_of(k)), k);
        }
    }

    /// The wire form of errors is a contract with clients in every language: the gRPC code,
    /// the message, and `google.rpc.ErrorInfo` (reason, domain, metadata) in the status
    /// details. Pinned byte for byte for one metadata entry (protobuf map order is not
    /// fixed for more), and field by field for more.
    #[test]
    fn the_wire_form_of_errors_is_pinned() {
        let e = Error::new(ErrorKind::NotFound, Reason::UnknownTopic, "unknown topic \"t\"")
            .with("topic", "t");
        let s = to_status(&e);
        assert_eq!((s.code(), s.message()), (Code::NotFound, "unknown topic \"t\""));
        let hex: String = s.details().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED_UNKNOWN_TOPIC);

        let e = crate::convert::error_to_proto(
            &Error::new(
                ErrorKind::OutOfRange,
                Reason::OffsetOutOfRange,
                "offset 9 is out of range",
            )
            .with("offset", 9)
            .with("log_start_offset", 0)
            .with("high_watermark", 5),
        );
        assert_eq!((e.code, e.reason.as_str()), (Code::OutOfRange as i32, "OFFSET_OUT_OF_RANGE"));
        let metadata: Vec<(&str, &str)> =
            e.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut metadata = metadata;
        metadata.sort();
        assert_eq!(
            metadata,
            vec![("high_watermark", "5"), ("log_start_offset", "0"), ("offset", "9")]
        );

        let s = to_status(&Error::new(ErrorKind::NotLeader, Reason::NotLeader, "not the leader"));
        let info = s.get_error_details().error_info().cloned().expect("ErrorInfo");
        assert_eq!(
            (s.code(), info.reason.as_str(), info.domain.as_str()),
            (Code::FailedPrecondition, "NOT_LEADER", DOMAIN)
        );
    }

    const PINNED_UNKNOWN_TOPIC: &str = "08051211756e6b6e6f776e20746f706963202274221a520a28747970652e676f6f676c65617069732e636f6d2f676f6f676c652e7270632e4572726f72496e666f12260a0d554e4b4e4f574e5f544f50494312097368616c652e6465761a0a0a05746f706963120174";
}
