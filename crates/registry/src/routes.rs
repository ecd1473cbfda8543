//! Confluent Schema Registry's REST API (7.x), route by route, over the broker's `api`:
//! each handler reads its path, query and body, asks `api`, and writes Confluent's
//! answer. What a route needs of a request is in `request`; how answers look, in `reply`.

#![allow(
    clippy::result_large_err,
    reason = "an error here is the HTTP answer itself, built once and returned at once"
)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use shale_broker::api::{Identity, SchemaText};
use shale_schema::registry::plan::Registration;
use shale_schema::registry::records::{Mode, Reference};
use shale_schema::registry::store::Stored;
use shale_schema::registry::{Config, SubjectVersion, VersionId, check_subject};
use shale_schema::{Level, SchemaType};

use crate::Registry;
use crate::reply::{error, failure, json, raw, refused};
use crate::request::{Body as JsonBody, flag, identity, read_body};

type Q = Query<HashMap<String, String>>;

/// Every route.
pub(crate) fn router(state: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { json(json!({})) }))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(version_text))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility_one))
        .route("/config", get(get_config).put(put_config).delete(delete_config))
        .route("/config/{subject}", get(get_config).put(put_config).delete(delete_config))
        .route("/mode", get(get_mode).put(put_mode))
        .route("/mode/{subject}", get(get_mode).put(put_mode).delete(delete_mode))
        .route("/contexts", get(|| async { json(json!(["."])) }))
        .fallback(|| async { error(404, "HTTP 404 Not Found") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::forward::layer))
        .with_state(state)
}

/// Who is calling, or the answer that refuses them.
macro_rules! who {
    ($state:expr, $headers:expr) => {
        match identity(&$state, &$headers).await {
            Ok(who) => who,
            Err(response) => return response,
        }
    };
}

/// The value of a fallible step, or its error answer.
macro_rules! ok {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

fn id_param(id: &str) -> Result<i32, Response> {
    id.parse::<i32>().map_err(|_| error(40403, format!("Schema {id} not found")))
}

fn version_param(v: &str) -> Result<VersionId, Response> {
    VersionId::parse(v).map_err(|e| refused(&e))
}

fn subject_param(s: &str) -> Result<(), Response> {
    check_subject(s).map_err(|e| refused(&e))
}

fn type_json(t: SchemaType, out: &mut serde_json::Map<String, Value>) {
    // Confluent leaves the type out for Avro.
    if t != SchemaType::Avro {
        out.insert("schemaType".into(), json!(t.as_str()));
    }
}

fn references_json(refs: &[Reference]) -> Value {
    Value::Array(
        refs.iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect(),
    )
}

/// `SchemaString`: a schema by ID, its text as `text` (the stored text, or another
/// `format` of it).
fn schema_string(s: &Stored, text: String) -> Value {
    let mut out = serde_json::Map::new();
    type_json(s.schema_type, &mut out);
    out.insert("schema".into(), json!(text));
    if !s.references.is_empty() {
        out.insert("references".into(), references_json(&s.references));
    }
    Value::Object(out)
}

/// `Schema`: a subject's version, with its stored text.
fn subject_version(v: &SubjectVersion) -> Value {
    subject_version_as(v, v.schema.schema.clone())
}

/// `Schema`: a subject's version, its text as `text`.
fn subject_version_as(v: &SubjectVersion, text: String) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), json!(v.subject));
    out.insert("version".into(), json!(v.version));
    out.insert("id".into(), json!(v.schema.id));
    type_json(v.schema.schema_type, &mut out);
    if !v.schema.references.is_empty() {
        out.insert("references".into(), references_json(&v.schema.references));
    }
    out.insert("schema".into(), json!(text));
    Value::Object(out)
}

/// A request's `format` parameter.
fn format(q: &HashMap<String, String>) -> Option<&str> {
    q.get("format").map(String::as_str)
}

async fn schema_types() -> Response {
    json(Value::Array(SchemaType::SUPPORTED.iter().map(|t| json!(t.as_str())).collect()))
}

async fn schema_by_id(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let id = ok!(id_param(&id));
    match st.api.schema_by_id(&who, id) {
        Ok(s) => {
            let text = match st.api.schema_text(&s, format(&q)) {
                Ok(text) => text,
                Err(e) => return failure(e),
            };
            let mut body = schema_string(&s, text);
            if flag(&q, "fetchMaxId") {
                let max = st.api.schema_max_id().unwrap_or(id);
                body["maxId"] = json!(max);
            }
            json(body)
        }
        Err(e) => failure(e),
    }
}

async fn schema_text_by_id(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = who!(st, headers);
    let id = ok!(id_param(&id));
    match st.api.schema_by_id(&who, id) {
        Ok(s) => raw(s.schema.clone()),
        Err(e) => failure(e),
    }
}

async fn id_subjects(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let id = ok!(id_param(&id));
    match st.api.schema_uses(&who, id, flag(&q, "deleted")) {
        Ok(uses) => {
            let mut subjects: Vec<String> = uses.into_iter().map(|(s, _)| s).collect();
            subjects.dedup();
            json(json!(subjects))
        }
        Err(e) => failure(e),
    }
}

async fn id_versions(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let id = ok!(id_param(&id));
    match st.api.schema_uses(&who, id, flag(&q, "deleted")) {
        Ok(uses) => json(Value::Array(
            uses.into_iter().map(|(s, v)| json!({"subject": s, "version": v})).collect(),
        )),
        Err(e) => failure(e),
    }
}

async fn subjects(State(st): State<Arc<Registry>>, headers: HeaderMap, Query(q): Q) -> Response {
    let who = who!(st, headers);
    let prefix = q.get("subjectPrefix").map(String::as_str).filter(|p| *p != ":*:").unwrap_or("");
    match st.api.subjects(&who, flag(&q, "deleted")) {
        Ok(all) => {
            json(json!(all.into_iter().filter(|s| s.starts_with(prefix)).collect::<Vec<_>>()))
        }
        Err(e) => failure(e),
    }
}

/// The schema a lookup, registration or check sends: normalized with `normalize=true`,
/// or when the subject's (else the global) `normalize` setting is on.
fn schema_text(
    st: &Registry,
    subject: &str,
    body: &JsonBody,
    q: &HashMap<String, String>,
) -> Result<SchemaText, Response> {
    let text = SchemaText {
        schema_type: body.schema_type()?,
        schema: body.schema()?,
        references: body.references()?,
    };
    let normalize = flag(q, "normalize") || st.api.registry_normalizes(subject).map_err(failure)?;
    match normalize {
        true => st.api.normalized_schema(&text).map_err(failure),
        false => Ok(text),
    }
}

async fn lookup(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Q,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    let body = ok!(read_body(&st, body).await);
    let text = ok!(schema_text(&st, &subject, &body, &q));
    match st.api.lookup_schema(&who, &subject, &text, flag(&q, "deleted")) {
        Ok(v) => json(subject_version(&v)),
        Err(shale_broker::api::RegistryFailure::Refused(e)) if e.code() == 40403 => {
            error(40403, "Schema not found")
        }
        Err(e) => failure(e),
    }
}

async fn delete_subject(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    match st.api.delete_subject(&who, &subject, flag(&q, "permanent")).await {
        Ok(versions) => json(json!(versions)),
        Err(e) => failure(e),
    }
}

async fn versions(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    match st.api.subject_versions(&who, &subject, flag(&q, "deleted")) {
        Ok(v) => json(json!(v)),
        Err(e) => failure(e),
    }
}

async fn register(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Q,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    ok!(subject_param(&subject));
    let body = ok!(read_body(&st, body).await);
    let text = ok!(schema_text(&st, &subject, &body, &q));
    let req = Registration {
        subject,
        schema_type: text.schema_type,
        schema: text.schema,
        references: text.references,
        id: ok!(body.int("id")).filter(|id| *id >= 0),
        version: ok!(body.int("version")),
    };
    match st.api.register_schema(&who, &req).await {
        Ok(id) => json(json!({ "id": id })),
        Err(e) => failure(e),
    }
}

async fn version(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let v = ok!(version_param(&version));
    match st.api.subject_version(&who, &subject, v, flag(&q, "deleted")) {
        Ok(v) => match st.api.schema_text(&v.schema, format(&q)) {
            Ok(text) => json(subject_version_as(&v, text)),
            Err(e) => failure(e),
        },
        Err(e) => failure(e),
    }
}

async fn version_text(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let v = ok!(version_param(&version));
    match st.api.subject_version(&who, &subject, v, flag(&q, "deleted")) {
        Ok(v) => raw(v.schema.schema.clone()),
        Err(e) => failure(e),
    }
}

async fn referenced_by(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    let who = who!(st, headers);
    let v = ok!(version_param(&version));
    match st.api.referenced_by(&who, &subject, v) {
        Ok(ids) => json(json!(ids)),
        Err(e) => failure(e),
    }
}

async fn delete_version(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let v = ok!(version_param(&version));
    match st.api.delete_schema_version(&who, &subject, v, flag(&q, "permanent")).await {
        Ok(deleted) => json(json!(deleted)),
        Err(e) => failure(e),
    }
}

async fn compatibility(
    st: &Registry,
    who: &Identity,
    subject: &str,
    version: Option<VersionId>,
    q: &HashMap<String, String>,
    body: Body,
) -> Response {
    let body = ok!(read_body(st, body).await);
    let verbose = flag(q, "verbose");
    let text = ok!(schema_text(st, subject, &body, q));
    match st.api.check_compatibility(who, subject, version, &text) {
        Ok(messages) if verbose => {
            json(json!({ "is_compatible": messages.is_empty(), "messages": messages }))
        }
        Ok(messages) => json(json!({ "is_compatible": messages.is_empty() })),
        // Verbose: an invalid schema is an incompatible one, its reason the message.
        Err(shale_broker::api::RegistryFailure::Refused(e)) if verbose && e.code() == 42201 => {
            json(json!({ "is_compatible": false, "messages": [e.to_string()] }))
        }
        Err(e) => failure(e),
    }
}

async fn compatibility_all(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
    Query(q): Q,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    compatibility(&st, &who, &subject, None, &q, body).await
}

async fn compatibility_one(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Q,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    let v = ok!(version_param(&version));
    compatibility(&st, &who, &subject, Some(v), &q, body).await
}

/// The subject of `/config/{subject}` or `/mode/{subject}`; none for the global one.
type Subject = Option<Path<String>>;

/// Settings as Confluent's `Config` shows them: the fields that are set.
fn config_json(config: Config) -> Response {
    settings_json(config, "compatibilityLevel")
}

/// The fields of `config` that are set, the level under `level_key`.
fn settings_json(config: Config, level_key: &str) -> Response {
    let mut out = serde_json::Map::new();
    if let Some(level) = config.level {
        out.insert(level_key.into(), json!(level.as_str()));
    }
    if let Some(normalize) = config.normalize {
        out.insert("normalize".into(), json!(normalize));
    }
    json(Value::Object(out))
}

/// `GET /config[/{subject}]`: the settings (a subject without any: 40408, unless
/// `defaultToGlobal`).
async fn get_config(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    subject: Subject,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let subject = subject.map(|Path(s)| s);
    let set = st.api.registry_config(&who, subject.as_deref());
    setting(subject, &q, set, config_json, (40408, "compatibility"))
}

/// The answer to `GET /config` or `GET /mode`: the value set for the subject (or the
/// global one, `subject` none), the one that applies with `defaultToGlobal`, else
/// `missing` (Confluent's code, and what is not configured).
fn setting<T>(
    subject: Option<String>,
    q: &HashMap<String, String>,
    set: Result<(Option<T>, T), shale_broker::api::RegistryFailure>,
    show: fn(T) -> Response,
    (code, what): (u32, &str),
) -> Response {
    match set {
        Ok((_, value)) if subject.is_none() || flag(q, "defaultToGlobal") => show(value),
        Ok((Some(value), _)) => show(value),
        Ok((None, _)) => error(
            code,
            format!(
                "Subject '{}' does not have subject-level {what} configured",
                subject.unwrap_or_default()
            ),
        ),
        Err(e) => failure(e),
    }
}

/// `PUT /config[/{subject}]` with `{"compatibility"?: ..., "normalize"?: ...}`: the
/// fields given change, the others stay; the settings then (Confluent's
/// `ConfigUpdateRequest`).
async fn put_config(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    subject: Subject,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    let body = ok!(read_body(&st, body).await);
    let normalize = ok!(body.bool("normalize"));
    let level = match ok!(body.string("compatibility")) {
        None if normalize.is_some() => None,
        name => Some(ok!(name
            .unwrap_or_default()
            .parse::<Level>()
            .map_err(|e| error(42203, e.to_string())))),
    };
    let subject = subject.map(|Path(s)| s);
    match st.api.set_registry_config(&who, subject.as_deref(), Config { level, normalize }).await {
        Ok(config) => settings_json(config, "compatibility"),
        Err(e) => failure(e),
    }
}

/// `DELETE /config[/{subject}]`: the settings it had.
async fn delete_config(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    subject: Subject,
) -> Response {
    let who = who!(st, headers);
    let subject = subject.map(|Path(s)| s);
    match st.api.delete_registry_config(&who, subject.as_deref()).await {
        Ok(config) => config_json(config),
        Err(e) => failure(e),
    }
}

fn mode_json(mode: Mode) -> Response {
    json(json!({ "mode": mode.as_str() }))
}

/// `GET /mode[/{subject}]`: the mode set (a subject without one: 40409, unless
/// `defaultToGlobal`).
async fn get_mode(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    subject: Subject,
    Query(q): Q,
) -> Response {
    let who = who!(st, headers);
    let subject = subject.map(|Path(s)| s);
    let set = st.api.registry_mode(&who, subject.as_deref());
    setting(subject, &q, set, mode_json, (40409, "mode"))
}

/// `PUT /mode[/{subject}]` with `{"mode": ...}` (`force`: into IMPORT with schemas).
async fn put_mode(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    subject: Subject,
    Query(q): Q,
    body: Body,
) -> Response {
    let who = who!(st, headers);
    let body = ok!(read_body(&st, body).await);
    let name = ok!(body.string("mode")).unwrap_or_default();
    let mode = ok!(name.parse::<Mode>().map_err(|()| {
        error(
            42204,
            "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT.",
        )
    }));
    let subject = subject.map(|Path(s)| s);
    match st.api.set_registry_mode(&who, subject.as_deref(), mode, flag(&q, "force")).await {
        Ok(()) => mode_json(mode),
        Err(e) => failure(e),
    }
}

/// `DELETE /mode/{subject}`: the mode it had.
async fn delete_mode(
    State(st): State<Arc<Registry>>,
    headers: HeaderMap,
    Path(subject): Path<String>,
) -> Response {
    let who = who!(st, headers);
    match st.api.delete_registry_mode(&who, &subject).await {
        Ok(mode) => mode_json(mode),
        Err(e) => failure(e),
    }
}
