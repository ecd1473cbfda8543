//! `/transactions`: the cluster's transactional ids the caller may describe — state,
//! producer id and epoch, the partitions and groups of the open transaction, how long it
//! has been open, the coordinating broker — and an operator's abort of an open one (Write
//! on its id; the coordinator aborts it as at its timeout, fencing its producer).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::TxnFilter;

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, page, query_escape, time_ms};

/// A transactional id's row.
#[derive(Debug)]
struct TxnRow {
    id: String,
    href: String,
    state: &'static str,
    producer: String,
    partitions: String,
    groups: String,
    started: String,
    /// Seconds open, for an open transaction.
    open_secs: Option<i64>,
    coordinator: String,
}

#[derive(Debug, Template)]
#[template(path = "transactions.html")]
struct TransactionsPage {
    chrome: Chrome,
    rows: Vec<TxnRow>,
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    let mut all = st.api.list_all_transactions(&session.who, &TxnFilter::default()).await?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let now = st.api.now_ms();
    let rows = all
        .into_iter()
        .map(|(id, r, coordinator)| TxnRow {
            href: format!("/transactions/{}/abort", query_escape(&id)),
            state: r.state.name(),
            producer: format!("{} (epoch {})", r.producer_id, r.producer_epoch),
            partitions: r
                .partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| format!("{t}-{p}")))
                .collect::<Vec<_>>()
                .join(", "),
            groups: r.groups.iter().cloned().collect::<Vec<_>>().join(", "),
            started: time_ms(r.started_ms),
            open_secs: (r.started_ms > 0).then(|| (now - r.started_ms).max(0) / 1000),
            coordinator: coordinator.map_or("-".to_string(), |c| c.to_string()),
            id,
        })
        .collect();
    Ok(page(&TransactionsPage { chrome: session.chrome(&st, "transactions"), rows }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct AbortForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn abort(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<AbortForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    st.api.abort_transaction(&session.who, &id).await?;
    Ok(Redirect::to("/transactions").into_response())
}
