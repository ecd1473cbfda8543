//! `/quotas`: every principal's quotas (DescribeConfigs on the cluster), `*` the default
//! for principals without their own; a form that sets a principal's three limits (empty is
//! unlimited; all empty removes the quota) and a button that removes one (AlterConfigs on
//! the cluster), as `shale quota set` and `shale quota remove` do.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::QuotaLimits;

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, Refusal, bytes, page_with, refusal, status_of};

/// A principal's row: each limit in words, `unlimited` where none.
#[derive(Debug)]
struct QuotaRow {
    principal: String,
    produce: String,
    fetch: String,
    requests: String,
}

#[derive(Debug, Template)]
#[template(path = "quotas.html")]
struct QuotasPage {
    chrome: Chrome,
    rows: Vec<QuotaRow>,
    /// The form as sent, kept when refused.
    form: QuotaForm,
    error: Option<String>,
}

/// The form that sets (or, with `remove`, removes) a principal's quota.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QuotaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    produce: String,
    #[serde(default)]
    fetch: String,
    #[serde(default)]
    requests: String,
    /// `remove` to remove the principal's quota, else set it.
    #[serde(default)]
    action: String,
}

fn per_second(limit: Option<u64>, unit: fn(u64) -> String) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| format!("{}/s", unit(n)))
}

async fn render(
    st: &Console,
    session: &Session,
    form: QuotaForm,
    refused: Option<Refusal>,
) -> Result<Response, Failure> {
    let rows = st
        .api
        .describe_quotas(&session.who)
        .await?
        .into_iter()
        .map(|(principal, l)| QuotaRow {
            principal,
            produce: per_second(l.produce_bytes_per_sec, bytes),
            fetch: per_second(l.fetch_bytes_per_sec, bytes),
            requests: per_second(l.requests_per_sec, |n| format!("{n} requests")),
        })
        .collect();
    let (status, error) = refusal(refused);
    let chrome = session.chrome(st, "quotas");
    Ok(page_with(status, &QuotasPage { chrome, rows, form, error }))
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    render(&st, &session, QuotaForm::default(), None).await
}

/// A limit from the form: empty is none (unlimited); else a whole number per second.
fn limit(value: &str, field: &str) -> Result<Option<u64>, String> {
    match value.trim() {
        "" => Ok(None),
        v => v.parse::<u64>().map(Some).map_err(|_| {
            format!("{field} {v:?} is not a whole number per second (leave it empty for no limit)")
        }),
    }
}

fn limits(f: &QuotaForm) -> Result<QuotaLimits, String> {
    Ok(QuotaLimits {
        produce_bytes_per_sec: limit(&f.produce, "produce bytes")?,
        fetch_bytes_per_sec: limit(&f.fetch, "fetch bytes")?,
        requests_per_sec: limit(&f.requests, "requests")?,
    })
}

pub(crate) async fn change(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(mut f): Form<QuotaForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &f.csrf)?;
    f.principal = f.principal.trim().to_string();
    // All limits none removes the principal's quota (the broker's rule).
    let asked = match f.action == "remove" {
        true => Ok(QuotaLimits::default()),
        false => limits(&f),
    };
    let outcome = match asked {
        Err(why) => Err((StatusCode::BAD_REQUEST, why)),
        Ok(limits) => match st.api.alter_quota(&session.who, &f.principal, limits).await {
            Ok(()) => Ok(()),
            Err(e) => Err((status_of(&e), e.message)),
        },
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/quotas").into_response()),
        Err(refused) => render(&st, &session, f, Some(refused)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_or_none() {
        let f =
            QuotaForm { produce: " 1048576 ".into(), requests: "50".into(), ..Default::default() };
        let l = limits(&f).unwrap();
        assert_eq!(l.produce_bytes_per_sec, Some(1_048_576));
        assert_eq!((l.fetch_bytes_per_sec, l.requests_per_sec), (None, Some(50)));
        let bad = QuotaForm { fetch: "1 MiB".into(), ..Default::default() };
        assert!(limits(&bad).unwrap_err().starts_with("fetch bytes \"1 MiB\" is not a whole"));
        assert_eq!(per_second(Some(2048), bytes), "2.0 KiB/s");
        assert_eq!(per_second(None, bytes), "unlimited");
    }
}
