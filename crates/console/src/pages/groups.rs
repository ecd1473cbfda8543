//! `/groups`: the consumer groups the caller may describe (Shale's, Kafka's classic and
//! consumer protocols, share groups), with state, members and lag; `/groups/{group}`: a
//! group's members, its lag per partition (followed over time while the page is open, from
//! `/groups/{group}/lag`), and resetting its offsets: previewed first, then applied, only
//! while it has no members (the broker refuses otherwise, as Kafka's tools require).

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::{GroupDescription, ListedState, ResetOffsets, ResetTo};

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, Refusal, page, page_with, query_escape, status_of};

/// Groups whose lag the list adds up at most (each is a describe).
const LAG_OF_AT_MOST: usize = 200;

/// A group's row.
#[derive(Debug)]
struct GroupRow {
    name: String,
    href: String,
    kind: &'static str,
    state: &'static str,
    members: u32,
    /// The sum of its partitions' lag, when described.
    lag: Option<i64>,
}

#[derive(Debug, Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    rows: Vec<GroupRow>,
}

fn kind(d: Option<shale_broker::api::GroupProtocol>) -> &'static str {
    d.map_or("offsets only", |p| p.as_str())
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    let mut listed = st.api.list_groups(&session.who).await?;
    listed.sort_by(|a, b| a.group.cmp(&b.group));
    let mut rows = Vec::with_capacity(listed.len());
    for (i, g) in listed.into_iter().enumerate() {
        let lag = match i < LAG_OF_AT_MOST {
            true => st.api.describe_group(&session.who, &g.group).await.ok().map(|d| total_lag(&d)),
            false => None,
        };
        rows.push(GroupRow {
            href: format!("/groups/{}", query_escape(&g.group)),
            kind: kind(g.protocol),
            state: g.state.as_str(),
            members: g.members,
            lag,
            name: g.group,
        });
    }
    Ok(page(&GroupsPage { chrome: session.chrome(&st, "groups"), rows }))
}

fn total_lag(d: &GroupDescription) -> i64 {
    d.partitions.iter().map(|p| p.lag.max(0)).sum()
}

/// A member's row.
#[derive(Debug)]
struct MemberRow {
    id: String,
    client: String,
    host: String,
    protocol: &'static str,
    assignment: String,
}

/// A partition's row.
#[derive(Debug, serde::Serialize)]
struct LagRow {
    topic: String,
    partition: u32,
    committed: i64,
    end: i64,
    lag: i64,
    owner: String,
}

/// The reset form as sent, and its preview.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    topic: String,
    /// `earliest`, `latest`, `timestamp` or `offset`.
    #[serde(default)]
    to: String,
    /// The time (ms, or `YYYY-MM-DDTHH:MM[:SS]` UTC) or the offset.
    #[serde(default)]
    value: String,
    /// `preview` or `apply`.
    #[serde(default)]
    action: String,
}

#[derive(Debug, Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    name: String,
    href: String,
    kind: &'static str,
    state: &'static str,
    empty: bool,
    epoch: i32,
    coordinator: String,
    members: Vec<MemberRow>,
    partitions: Vec<LagRow>,
    topics: Vec<String>,
    form: ResetForm,
    /// The offsets a reset would set (previewed) or set (applied).
    reset: NewOffsets,
    applied: bool,
    error: Option<String>,
}

fn lag_rows(d: &GroupDescription) -> Vec<LagRow> {
    d.partitions
        .iter()
        .map(|p| LagRow {
            topic: p.topic.clone(),
            partition: p.partition,
            committed: p.committed,
            end: p.log_end,
            lag: p.lag,
            owner: p.member_id.clone().unwrap_or_default(),
        })
        .collect()
}

/// Offsets a reset sets, as (topic, partition, offset).
type NewOffsets = Vec<(String, u32, i64)>;

/// What a reset came to: its offsets and whether they were applied (else previewed), or
/// the status and reason of its refusal.
type Outcome = Result<(NewOffsets, bool), Refusal>;

fn render(
    st: &Console,
    session: &Session,
    d: GroupDescription,
    form: ResetForm,
    outcome: Outcome,
) -> Response {
    let members = d
        .members
        .iter()
        .map(|m| MemberRow {
            id: m.member_id.clone(),
            client: m.client_id.clone(),
            host: m.client_host.clone(),
            protocol: m.protocol.as_str(),
            assignment: m
                .assignment
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let topics: BTreeSet<String> = d.partitions.iter().map(|p| p.topic.clone()).collect();
    let (status, reset, applied, error) = match outcome {
        Ok((reset, applied)) => (StatusCode::OK, reset, applied, None),
        Err((status, why)) => (status, Vec::new(), false, Some(why)),
    };
    page_with(
        status,
        &GroupPage {
            chrome: session.chrome(st, "groups"),
            href: format!("/groups/{}", query_escape(&d.group)),
            kind: d.protocol.as_str(),
            state: d.state.as_str(),
            empty: d.state == ListedState::Empty,
            epoch: d.group_epoch,
            coordinator: d.coordinator.map_or("none live".to_string(), |c| format!("broker {c}")),
            partitions: lag_rows(&d),
            members,
            topics: topics.into_iter().collect(),
            name: d.group,
            form,
            reset,
            applied,
            error,
        },
    )
}

pub(crate) async fn show(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    let d = st.api.describe_group(&session.who, &group).await?;
    Ok(render(&st, &session, d, ResetForm::default(), Ok((Vec::new(), false))))
}

/// `/groups/{group}/lag`: the lag per partition now, as JSON (the page's chart polls it).
pub(crate) async fn lag(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    let d = st.api.describe_group(&session.who, &group).await?;
    let body = serde_json::json!({
        "at_ms": st.api.now_ms(),
        "state": d.state.as_str(),
        "partitions": lag_rows(&d),
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

/// What the form asks the offsets be reset to.
fn reset_to(form: &ResetForm) -> Result<ResetTo, String> {
    match form.to.as_str() {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        "timestamp" => super::messages::parse_time(&form.value).map(ResetTo::Timestamp),
        "offset" => form
            .value
            .trim()
            .parse()
            .map(ResetTo::Offset)
            .map_err(|_| format!("offset {:?} is not a whole number", form.value.trim())),
        other => Err(format!("reset to {other:?}: none of earliest, latest, timestamp, offset")),
    }
}

pub(crate) async fn reset(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(group): Path<String>,
    Form(form): Form<ResetForm>,
) -> Result<Response, Failure> {
    let apply = form.action == "apply";
    // A preview changes nothing: it needs the session's form, not a writable console.
    match apply {
        true => super::may_change(&st, &session, &form.csrf)?,
        false => session.check_csrf(&form.csrf)?,
    }
    let outcome = match reset_to(&form) {
        Err(why) => Err((StatusCode::BAD_REQUEST, why)),
        Ok(to) => {
            let req = ResetOffsets {
                group: group.clone(),
                topic: form.topic.clone(),
                partitions: Vec::new(),
                to,
                dry_run: !apply,
            };
            match st.api.reset_offsets(&session.who, req).await {
                Ok(set) => {
                    let set = set.into_iter().map(|o| (o.topic, o.partition, o.offset)).collect();
                    Ok((set, apply))
                }
                Err(e) => Err((status_of(&e), e.message)),
            }
        }
    };
    let d = st.api.describe_group(&session.who, &group).await?;
    Ok(render(&st, &session, d, form, outcome))
}
