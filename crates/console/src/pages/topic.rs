//! `/topics/{name}`: a topic's partitions (leader, replicas, ISR, offsets, the local and
//! the bucket's ranges, upload lag, the cleaner), its configs with their source, and the
//! form that deletes it (the name typed again to confirm).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::Console;
use crate::pager::Pager;
use crate::session::Session;
use crate::view::{
    Chrome, Failure, Refusal, bytes, counted, ids, page_with, query_escape, refusal, status_of,
};

/// A partition's row; offsets are `-` where this broker hosts no replica.
#[derive(Debug)]
struct PartitionRow {
    partition: u32,
    leader: i32,
    epoch: i32,
    replicas: String,
    isr: String,
    hosted: bool,
    start: i64,
    end: i64,
    high_watermark: i64,
    local: String,
    local_start: i64,
    remote: String,
    upload_lag: String,
    cleaner: String,
}

/// A config's row.
#[derive(Debug)]
struct ConfigRow {
    name: String,
    value: String,
    source: &'static str,
}

impl ConfigRow {
    /// Whether the topic overrides it.
    fn overridden(&self) -> bool {
        self.source == "topic"
    }
}

#[derive(Debug, Template)]
#[template(path = "topic.html")]
struct TopicPage {
    chrome: Chrome,
    name: String,
    href: String,
    id: String,
    created: String,
    /// The page of partitions shown.
    partitions: Vec<PartitionRow>,
    pager: Pager,
    /// The partition count, for the form that adds more.
    count: usize,
    /// Partitions without a leader, and with fewer in-sync replicas than replicas, of all.
    offline: usize,
    under_replicated: usize,
    configs: Vec<ConfigRow>,
    /// Why the configs are not shown (DescribeConfigs refused), if they are not.
    configs_refused: Option<String>,
    /// Why the last delete was refused.
    error: Option<String>,
}

fn render(
    st: &Console,
    session: &Session,
    entry: shale_broker::api::TopicEntry,
    described: Vec<shale_broker::api::PartitionDescription>,
    page: &str,
    refused: Option<Refusal>,
) -> Result<Response, Failure> {
    let (status, error) = refusal(refused);
    let name = entry.record.name.clone();
    let href = format!("/topics/{}", query_escape(&name));
    let count = described.len();
    let (offline, under_replicated) = crate::view::health(described.iter().map(|p| &p.state));
    let pager = Pager::new(page, count, |n| format!("{href}?page={n}"))?;
    let rows = pager.rows();
    let partitions: Vec<PartitionRow> =
        described.into_iter().skip(rows.start).take(rows.len()).map(partition_row).collect();
    let (configs, configs_refused) = match st.api.topic_configs(&session.who, &name) {
        Ok(t) => {
            let rows = t.config.entries(&t.record.configs).into_iter();
            let rows = rows.map(|(name, value, source)| ConfigRow { name, value, source });
            (rows.collect(), None)
        }
        Err(e) => (Vec::new(), Some(e.message)),
    };
    Ok(page_with(
        status,
        &TopicPage {
            chrome: session.chrome(st, "topics"),
            href,
            name,
            id: entry.record.id.clone(),
            created: crate::view::time_ms(entry.record.created_ms),
            partitions,
            pager,
            count,
            offline,
            under_replicated,
            configs,
            configs_refused,
            error,
        },
    ))
}

fn partition_row(p: shale_broker::api::PartitionDescription) -> PartitionRow {
    let hosted = p.log_end_offset >= 0;
    let remote = match &p.remote {
        Some(r) if r.start_offset >= 0 => format!(
            "{} .. {} ({}, {})",
            r.start_offset,
            r.end_offset,
            counted(r.segments, "segment"),
            bytes(r.size_bytes)
        ),
        _ => "-".to_string(),
    };
    let upload_lag = match p.upload_lag {
        (0, _) => "-".to_string(),
        (segments, b) => format!("{}, {}", counted(segments, "segment"), bytes(b)),
    };
    let cleaner = match &p.cleaning {
        None => "-".to_string(),
        Some(c) => format!(
            "{:.0}% dirty, {} cleans{}",
            c.dirty.dirty_ratio * 100.0,
            c.cleans,
            if c.failures > 0 { format!(", {} failed", c.failures) } else { String::new() }
        ),
    };
    PartitionRow {
        partition: p.partition,
        leader: p.state.leader,
        epoch: p.state.leader_epoch,
        replicas: ids(&p.state.replicas),
        isr: ids(&p.state.isr),
        hosted,
        start: p.log_start_offset,
        end: p.log_end_offset,
        high_watermark: p.high_watermark,
        local: format!("{} in {}", bytes(p.size_bytes), counted(p.segments, "segment")),
        local_start: p.local_log_start_offset,
        remote,
        upload_lag,
        cleaner,
    }
}

pub(crate) async fn show(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Query(shown): Query<Shown>,
) -> Result<Response, Failure> {
    let (entry, described) = st.api.describe_topic(&session.who, &name).await?;
    render(&st, &session, entry, described, &shown.page, None)
}

/// Which page of the partitions is shown.
#[derive(Debug, Deserialize)]
pub(crate) struct Shown {
    #[serde(default)]
    page: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    csrf: String,
    /// The topic's name, typed again.
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn delete(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    if form.confirm != name {
        let why =
            format!("Type the topic's name, {name:?}, to delete it (got {:?}).", form.confirm);
        return refused(&st, &session, &name, (StatusCode::BAD_REQUEST, why)).await;
    }
    match st.api.delete_topic(&session.who, &name).await {
        Ok(()) => Ok(Redirect::to("/topics").into_response()),
        Err(e) => refused(&st, &session, &name, (status_of(&e), e.message)).await,
    }
}

/// The topic's page again, saying why a change was refused.
async fn refused(
    st: &Console,
    session: &Session,
    name: &str,
    why: Refusal,
) -> Result<Response, Failure> {
    let (entry, described) = st.api.describe_topic(&session.who, name).await?;
    render(st, session, entry, described, "", Some(why))
}

/// The topic's page after a change.
fn changed(name: &str) -> Response {
    Redirect::to(&format!("/topics/{}", query_escape(name))).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConfigForm {
    #[serde(default)]
    csrf: String,
    /// The config to set (with `value`) ...
    #[serde(default)]
    set: String,
    #[serde(default)]
    value: String,
    /// ... or the override to remove.
    #[serde(default)]
    remove: String,
}

/// Sets a config on the topic, or removes its override (back to the default).
pub(crate) async fn alter_config(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<ConfigForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
    match (form.set.trim(), form.remove.trim()) {
        ("", "") => {
            let why = "Choose a config to set, or an override to remove.".to_string();
            return refused(&st, &session, &name, (StatusCode::BAD_REQUEST, why)).await;
        }
        (key, "") => drop(set.insert(key.to_string(), form.value.trim().to_string())),
        (_, key) => delete.push(key.to_string()),
    }
    match st.api.alter_topic_config(&session.who, &name, &set, &delete, false).await {
        Ok(_) => Ok(changed(&name)),
        Err(e) => refused(&st, &session, &name, (status_of(&e), e.message)).await,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PartitionsForm {
    #[serde(default)]
    csrf: String,
    /// The topic's partitions after the change.
    #[serde(default)]
    partitions: String,
}

/// Grows the topic to more partitions.
pub(crate) async fn add_partitions(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<PartitionsForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    let Ok(count) = form.partitions.trim().parse::<u32>() else {
        let why = format!("partitions {:?} is not a whole number", form.partitions.trim());
        return refused(&st, &session, &name, (StatusCode::BAD_REQUEST, why)).await;
    };
    match st.api.create_partitions(&session.who, &name, count, false).await {
        Ok(_) => Ok(changed(&name)),
        Err(e) => refused(&st, &session, &name, (status_of(&e), e.message)).await,
    }
}
