//! `/schemas`: the schema registry's subjects the caller may read, each with its latest
//! version, format, ID and compatibility level; `/schemas/{subject}`: its versions, and
//! one version's schema (references and text). Read from this broker's copy of the
//! registry, as the registry listener reads it; changes stay with registry clients.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use shale_broker::api::RegistryFailure;
use shale_schema::registry::VersionId;

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, page, query_escape, status_of};

/// The registry's refusal or failure, as a page says it.
fn failure(f: RegistryFailure) -> Failure {
    match f {
        RegistryFailure::Refused(e) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
        RegistryFailure::Failed(e) => Failure::new(status_of(&e), e.message),
    }
}

/// A subject's row.
#[derive(Debug)]
struct SubjectRow {
    name: String,
    href: String,
    latest: i32,
    kind: String,
    id: i32,
    level: String,
}

#[derive(Debug, Template)]
#[template(path = "schemas.html")]
struct SchemasPage {
    chrome: Chrome,
    rows: Vec<SubjectRow>,
    /// The registry's own compatibility level.
    level: String,
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    let who = &session.who;
    let level_of = |subject: Option<&str>| {
        st.api
            .registry_config(who, subject)
            .map(|(_, effective)| effective.level.map_or("-", |l| l.as_str()).to_string())
    };
    let level = level_of(None).map_err(failure)?;
    let mut rows = Vec::new();
    for subject in st.api.subjects(who, false).map_err(failure)? {
        let v = st.api.subject_version(who, &subject, VersionId::Latest, false).map_err(failure)?;
        rows.push(SubjectRow {
            href: format!("/schemas/{}", query_escape(&subject)),
            latest: v.version,
            kind: v.schema.schema_type.to_string(),
            id: v.schema.id,
            level: level_of(Some(&subject)).map_err(failure)?,
            name: subject,
        });
    }
    Ok(page(&SchemasPage { chrome: session.chrome(&st, "schemas"), rows, level }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Which {
    /// A version number; the latest when absent.
    #[serde(default)]
    version: Option<i32>,
}

#[derive(Debug, Template)]
#[template(path = "schema.html")]
struct SchemaPage {
    chrome: Chrome,
    subject: String,
    href: String,
    versions: Vec<i32>,
    version: i32,
    id: i32,
    kind: String,
    /// (name, subject, version, link) of each schema it refers to.
    references: Vec<(String, String, i32, String)>,
    text: String,
}

pub(crate) async fn show(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(subject): Path<String>,
    Query(which): Query<Which>,
) -> Result<Response, Failure> {
    let who = &session.who;
    let versions = st.api.subject_versions(who, &subject, false).map_err(failure)?;
    let id = which.version.map_or(VersionId::Latest, VersionId::Number);
    let v = st.api.subject_version(who, &subject, id, false).map_err(failure)?;
    // Avro and JSON Schema are JSON: shown indented; Protobuf as written.
    let text = serde_json::from_str::<serde_json::Value>(&v.schema.schema)
        .ok()
        .and_then(|j| serde_json::to_string_pretty(&j).ok())
        .unwrap_or_else(|| v.schema.schema.clone());
    Ok(page(&SchemaPage {
        chrome: session.chrome(&st, "schemas"),
        href: format!("/schemas/{}", query_escape(&subject)),
        subject,
        versions,
        version: v.version,
        id: v.schema.id,
        kind: v.schema.schema_type.to_string(),
        references: v
            .schema
            .references
            .iter()
            .map(|r| {
                let href = format!("/schemas/{}?version={}", query_escape(&r.subject), r.version);
                (r.name.clone(), r.subject.clone(), r.version, href)
            })
            .collect(),
        text,
    }))
}
