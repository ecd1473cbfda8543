//! Signing in and out: a SCRAM user's password (checked as SASL/PLAIN checks it) or a
//! bearer token (as the other listeners take it), turned into a session.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use crate::Console;
use crate::session::Session;
use crate::view::page_with;

#[derive(Debug, Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    user: String,
    error: Option<String>,
    cluster: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path of this console, else the overview.
fn safe_next(next: &str) -> String {
    match next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        true => next.to_string(),
        false => "/".to_string(),
    }
}

pub(crate) async fn show(State(st): State<Arc<Console>>, Query(q): Query<Next>) -> Response {
    let cluster = st.api.cluster_name().to_string();
    page_of(&LoginPage { next: safe_next(&q.next), user: String::new(), error: None, cluster })
}

fn page_of(p: &LoginPage) -> Response {
    let status = if p.error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    page_with(status, p)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub(crate) async fn sign_in(State(st): State<Arc<Console>>, Form(f): Form<SignIn>) -> Response {
    let who = match (f.token.trim(), f.user.as_str()) {
        ("", "") => Err("Give a user and password, or a token.".to_string()),
        ("", user) => {
            st.api.password_identity("the console", user, &f.password).await.map_err(|e| e.message)
        }
        (token, _) => st.api.authenticate(Some(token), None).await.map_err(|e| e.message),
    };
    match who {
        Ok(who) => {
            let session = st.sessions.create(who, true);
            let cookie = st.sessions.set_cookie(&session);
            let to = safe_next(&f.next);
            ([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response()
        }
        Err(error) => page_of(&LoginPage {
            next: safe_next(&f.next),
            user: f.user,
            error: Some(error),
            cluster: st.api.cluster_name().to_string(),
        }),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(f): Form<SignOut>,
) -> Response {
    if let Err(refused) = session.check_csrf(&f.csrf) {
        return refused.into_response();
    }
    st.sessions.end(&session);
    let cookie = st.sessions.clear_cookie();
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_signing_in_only_this_consoles_paths_are_followed() {
        assert_eq!(safe_next("/topics?q=a"), "/topics?q=a");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
    }
}
