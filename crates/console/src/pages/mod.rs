//! The console's routes: a file per page, each a `GET` that renders it and the `POST`s
//! of its forms. Every change checks the session's CSRF token and `console.read_only`
//! before it reaches the broker, which authorizes and audits it.

mod acls;
mod groups;
mod live;
mod login;
mod messages;
mod overview;
mod quotas;
mod schemas;
mod topic;
mod topics;
mod transactions;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use shale_broker::api::TopicsWanted;

use crate::Console;
use crate::session::Session;
use crate::view::Failure;

pub(crate) fn router(state: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview::show))
        .route("/topics", get(topics::show).post(topics::create))
        .route("/topics/{name}", get(topic::show))
        .route("/topics/{name}/delete", post(topic::delete))
        .route("/topics/{name}/configs", post(topic::alter_config))
        .route("/topics/{name}/partitions", post(topic::add_partitions))
        .route("/topics/{name}/messages", get(messages::show_page).post(messages::produce))
        .route("/topics/{name}/live", get(live::follow))
        .route("/groups", get(groups::list))
        .route("/groups/{group}", get(groups::show))
        .route("/groups/{group}/lag", get(groups::lag))
        .route("/groups/{group}/reset", post(groups::reset))
        .route("/schemas", get(schemas::list))
        .route("/schemas/{subject}", get(schemas::show))
        .route("/transactions", get(transactions::list))
        .route("/transactions/{id}/abort", post(transactions::abort))
        .route("/acls", get(acls::list).post(acls::change))
        .route("/users", get(users::list).post(users::change))
        .route("/quotas", get(quotas::list).post(quotas::change))
        .route("/login", get(login::show).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/assets/{name}", get(crate::assets::asset))
        .fallback(|| async {
            Failure::new(StatusCode::NOT_FOUND, "There is no such page.").into_response()
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::session::layer))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// What a browser is told on every answer: only this origin's scripts, styles and forms;
/// never framed; no guessing of content types; no referrer sent elsewhere.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut answer = next.run(req).await;
    let h = answer.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    answer
}

/// The partition count of topic `name`, from this broker's metadata (Describe on it).
fn partitions_of(st: &Console, session: &Session, name: &str) -> Result<u32, Failure> {
    let meta = st.api.metadata(&session.who, TopicsWanted::Named(vec![name.to_string()]))?;
    match meta.topics.into_iter().next() {
        Some(Ok((topic, _))) => Ok(topic.record.partitions),
        Some(Err((_, e))) => Err(e.into()),
        None => Err(Failure::new(StatusCode::NOT_FOUND, format!("There is no topic {name:?}."))),
    }
}

/// A change may go to the broker: the console is not read-only, and the form is this
/// session's.
fn may_change(st: &Console, session: &Session, csrf: &str) -> Result<(), Failure> {
    if st.read_only {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "This console is read-only (console.read_only): it makes no changes.",
        ));
    }
    session.check_csrf(csrf)
}
