//! `/topics`: every topic the caller may describe, searched by name, from this broker's
//! metadata (no store round trip), [`Pager::SIZE`] to a page; and the form that creates one.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::{NewTopic, TopicsWanted};

use crate::Console;
use crate::pager::Pager;
use crate::session::Session;
use crate::view::{Chrome, Failure, Refusal, page_with, query_escape, refusal};

/// A topic's row.
#[derive(Debug)]
struct Row {
    name: String,
    href: String,
    partitions: u32,
    replication_factor: u32,
    cleanup_policy: &'static str,
    retention: String,
    tiered: bool,
    /// Partitions without a leader, and with fewer in-sync replicas than replicas.
    offline: usize,
    under_replicated: usize,
}

/// The create form as sent (kept when it is refused, to be corrected).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    partitions: String,
    #[serde(default)]
    replication_factor: String,
    #[serde(default)]
    cleanup_policy: String,
}

#[derive(Debug, Template)]
#[template(path = "topics.html")]
struct Topics {
    chrome: Chrome,
    q: String,
    /// Topics the caller may see, matching or not.
    total: usize,
    /// The page of the matching ones shown.
    pager: Pager,
    rows: Vec<Row>,
    form: CreateForm,
    /// Why the last create was refused.
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

/// `retention.ms` in words.
fn retention(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "forever".to_string(),
        ms if ms % 86_400_000 == 0 => format!("{} d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms => format!("{ms} ms"),
    }
}

fn render(
    st: &Console,
    session: &Session,
    search: Search,
    form: CreateForm,
    refused: Option<Refusal>,
) -> Result<Response, Failure> {
    let meta = st.api.metadata(&session.who, TopicsWanted::All)?;
    let Search { q, page } = search;
    let needle = q.trim().to_lowercase();
    let all: Vec<_> = meta.topics.iter().flatten().collect();
    let total = all.len();
    let matching: Vec<_> = all
        .into_iter()
        .filter(|(t, _)| needle.is_empty() || t.record.name.to_lowercase().contains(&needle))
        .collect();
    let href = |n: usize| match q.is_empty() {
        true => format!("/topics?page={n}"),
        false => format!("/topics?q={}&page={n}", query_escape(&q)),
    };
    let pager = Pager::new(&page, matching.len(), href)?;
    let rows = matching[pager.rows()]
        .iter()
        .map(|(t, states)| {
            let name = &t.record.name;
            let (offline, under_replicated) = crate::view::health(states.values());
            Row {
                name: name.clone(),
                href: format!("/topics/{}", query_escape(name)),
                partitions: t.record.partitions,
                replication_factor: t.record.replication_factor,
                cleanup_policy: t.config.cleanup_policy.as_str(),
                retention: retention(t.config.retention_ms),
                tiered: t.config.remote_storage_enable,
                offline,
                under_replicated,
            }
        })
        .collect();
    let (status, error) = refusal(refused);
    let chrome = session.chrome(st, "topics");
    Ok(page_with(status, &Topics { chrome, q, total, pager, rows, form, error }))
}

pub(crate) async fn show(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(s): Query<Search>,
) -> Result<Response, Failure> {
    render(&st, &session, s, CreateForm::default(), None)
}

/// A count from the form: empty means the broker's default (0).
fn count(value: &str, field: &str) -> Result<u32, String> {
    match value.trim() {
        "" => Ok(0),
        v => v.parse::<u32>().map_err(|_| format!("{field} {v:?} is not a whole number")),
    }
}

pub(crate) async fn create(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(form): Form<CreateForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    let asked = (|| {
        let mut configs = BTreeMap::new();
        match form.cleanup_policy.as_str() {
            "" => {}
            p @ ("delete" | "compact" | "compact,delete") => {
                configs.insert("cleanup.policy".to_string(), p.to_string());
            }
            other => return Err(format!("cleanup.policy {other:?} is none of delete, compact")),
        }
        Ok(NewTopic {
            name: form.name.trim().to_string(),
            partitions: count(&form.partitions, "partitions")?,
            replication_factor: count(&form.replication_factor, "replication factor")?,
            configs,
            validate_only: false,
        })
    })();
    let new = match asked {
        Ok(new) => new,
        Err(why) => {
            let refused = Some((StatusCode::BAD_REQUEST, why));
            return render(&st, &session, Search::default(), form, refused);
        }
    };
    match st.api.create_topic(&session.who, new).await {
        Ok(created) => {
            let to = format!("/topics/{}", query_escape(&created.record.name));
            Ok(Redirect::to(&to).into_response())
        }
        Err(e) => {
            let refused = Some((crate::view::status_of(&e), e.message));
            render(&st, &session, Search::default(), form, refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_and_counts_read_as_people_write_them() {
        assert_eq!(retention(-1), "forever");
        assert_eq!(retention(7 * 86_400_000), "7 d");
        assert_eq!(retention(3_600_000), "1 h");
        assert_eq!(retention(1500), "1500 ms");
        assert_eq!(count("", "partitions"), Ok(0));
        assert_eq!(count(" 12 ", "partitions"), Ok(12));
        assert_eq!(count("x", "partitions"), Err("partitions \"x\" is not a whole number".into()));
    }
}
