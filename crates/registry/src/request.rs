//! What the routes read of a request: who sends it (HTTP basic with a user's password,
//! or a bearer token, as the other listeners take them), its JSON body (bounded; each
//! field checked, the error naming it) and its query flags.

#![allow(
    clippy::result_large_err,
    reason = "an error here is the HTTP answer itself, built once and returned at once"
)]

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine;
use serde_json::Value;

use shale_broker::api::{Identity, RegistryError};
use shale_schema::SchemaType;
use shale_schema::registry::records::{Reference, decode_references};

use crate::Registry;
use crate::reply::{error, failed, refused};

/// The caller's identity from `Authorization`: none (anonymous, when the broker allows
/// it), `Basic` (a user and password, checked as SASL/PLAIN checks them) or `Bearer`.
pub(crate) async fn identity(st: &Registry, headers: &HeaderMap) -> Result<Identity, Response> {
    let value = match headers.get(header::AUTHORIZATION) {
        None if st.api.auth_required() => {
            return Err(error(
                40101,
                "authentication required: send HTTP basic credentials or a bearer token",
            ));
        }
        None => return Ok(Identity::anonymous()),
        Some(v) => v.to_str().map_err(|_| error(40101, "the Authorization header is not text"))?,
    };
    let who = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            st.api.authenticate(Some(token.trim()), None).await
        }
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    error(40101, "the basic credentials are not base64 of user:password")
                })?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                error(40101, "the basic credentials have no ':' between user and password")
            })?;
            st.api.password_identity("HTTP basic", user, password).await
        }
        _ => return Err(error(40101, "the Authorization header is neither Basic nor Bearer")),
    };
    who.map_err(|e| failed(&e))
}

/// Whether a query flag is on (`true`, any case).
pub(crate) fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A request's JSON body.
#[derive(Debug)]
pub(crate) struct Body(Value);

/// A request's bytes, at most `schema_registry.max_request_bytes` of them (else 42209).
pub(crate) async fn body_bytes(
    st: &Registry,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, Response> {
    let limit = st.max_request_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        error(
            42209,
            format!(
                "the request body is larger than schema_registry.max_request_bytes ({limit} bytes)"
            ),
        )
    })
}

/// Reads a body of at most `schema_registry.max_request_bytes` as JSON.
pub(crate) async fn read_body(st: &Registry, body: axum::body::Body) -> Result<Body, Response> {
    let bytes = body_bytes(st, body).await?;
    if bytes.is_empty() {
        return Ok(Body(Value::Object(Default::default())));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| error(42201, format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(error(42201, "the request body is not a JSON object"));
    }
    Ok(Body(value))
}

impl Body {
    /// An optional string field.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, Response> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(error(42201, format!("field {name} must be a string, not {other}"))),
        }
    }

    /// An optional boolean field.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, Response> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(error(42201, format!("field {name} must be a boolean, not {other}")))
            }
        }
    }

    /// An optional 32-bit integer field.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i32>, Response> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().and_then(|n| i32::try_from(n).ok()).map(Some).ok_or_else(|| {
                error(42201, format!("field {name} must be a 32-bit integer, not {v}"))
            }),
        }
    }

    /// The schema text (required).
    pub(crate) fn schema(&self) -> Result<String, Response> {
        self.string("schema")?
            .ok_or_else(|| refused(&RegistryError::InvalidSchema("Empty schema".into())))
    }

    /// The schema type (Avro when absent).
    pub(crate) fn schema_type(&self) -> Result<SchemaType, Response> {
        match self.string("schemaType")? {
            None => Ok(SchemaType::Avro),
            Some(t) => {
                let t: SchemaType =
                    t.parse().map_err(|e: shale_schema::InvalidSchema| error(42201, e.0))?;
                if !SchemaType::SUPPORTED.contains(&t) {
                    let served: Vec<&str> =
                        SchemaType::SUPPORTED.iter().map(|t| t.as_str()).collect();
                    return Err(error(
                        42201,
                        format!(
                            "Invalid schema type {t}: this registry serves {}",
                            served.join(", ")
                        ),
                    ));
                }
                Ok(t)
            }
        }
    }

    /// The references (none when absent).
    pub(crate) fn references(&self) -> Result<Vec<Reference>, Response> {
        decode_references(self.0.get("references"))
            .map_err(|e| error(42201, format!("invalid references: {e}")))
    }
}
