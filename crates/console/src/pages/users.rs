//! `/users`: the SCRAM users (Describe on the cluster) with the mechanisms and iterations
//! of their credentials; a form that sets a user's password (both SCRAM-SHA-256 and -512,
//! 8192 iterations, as `shale user set` does) and a button that removes a user's
//! credentials (Alter on the cluster). Passwords are never shown, nor sent back.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::{ScramChange, ScramMechanism};

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, Refusal, page_with, refusal, status_of};

/// PBKDF2 iterations of a password set here.
const ITERATIONS: u32 = 8192;

/// A user's row.
#[derive(Debug)]
struct UserRow {
    name: String,
    /// `SCRAM-SHA-512 (8192 iterations)`, ...
    credentials: String,
}

#[derive(Debug, Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    rows: Vec<UserRow>,
    /// The user typed in the form, kept when refused (never the password).
    user: String,
    error: Option<String>,
}

async fn render(
    st: &Console,
    session: &Session,
    user: String,
    refused: Option<Refusal>,
) -> Result<Response, Failure> {
    let rows = st
        .api
        .describe_scram(&session.who, None)
        .await?
        .into_iter()
        .map(|(name, creds)| UserRow {
            name,
            credentials: match creds {
                Ok(list) => list
                    .iter()
                    .map(|(m, i)| format!("{} ({i} iterations)", m.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => e.message,
            },
        })
        .collect();
    let (status, error) = refusal(refused);
    let chrome = session.chrome(st, "users");
    Ok(page_with(status, &UsersPage { chrome, rows, user, error }))
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, Failure> {
    render(&st, &session, String::new(), None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    /// `remove` to delete the user's credentials, else set the password.
    #[serde(default)]
    action: String,
}

pub(crate) async fn change(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(f): Form<UserForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &f.csrf)?;
    let user = f.user.trim().to_string();
    let bad = |why: String| Some((StatusCode::BAD_REQUEST, why));
    if user.is_empty() || user.contains([',', '=']) {
        let why = format!("user {user:?} is empty or holds ',' or '=' (SCRAM names cannot)");
        return render(&st, &session, user, bad(why)).await;
    }
    let remove = f.action == "remove";
    if !remove && f.password.is_empty() {
        return render(&st, &session, user, bad("give a password".to_string())).await;
    }
    let changes = ScramMechanism::ALL
        .iter()
        .map(|m| {
            let change = match remove {
                true => ScramChange::Delete,
                false => {
                    ScramChange::Password { password: f.password.clone(), iterations: ITERATIONS }
                }
            };
            (user.clone(), *m, change)
        })
        .collect();
    let outcome = st.api.alter_scram(&session.who, changes).await;
    // Removing: a mechanism the user never had is not a failure of the removal.
    let failed = match outcome {
        Err(e) => Some(e),
        Ok(each) => {
            let mut errors = each.into_iter().filter_map(Result::err);
            match remove {
                true => errors.find(|e| e.kind != shale_core::error::ErrorKind::NotFound),
                false => errors.next(),
            }
        }
    };
    match failed {
        None => Ok(Redirect::to("/users").into_response()),
        Some(e) => render(&st, &session, user, Some((status_of(&e), e.message))).await,
    }
}
