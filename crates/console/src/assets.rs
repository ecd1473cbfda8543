//! The stylesheet and the script, embedded in the binary and served with a long cache
//! life under a name that changes with their contents.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
const CSS: &str = include_str!("../assets/console.css");
/// The script: progressive enhancement only (every page works without it).
const JS: &str = include_str!("../assets/console.js");

/// The stylesheet's URL.
pub(crate) const CSS_URL: &str = concat!("/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// The script's URL.
pub(crate) const JS_URL: &str = concat!("/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

/// `GET /assets/{name}`.
pub(crate) async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, format!("no asset {name:?}")).into_response(),
    };
    let cache = (header::CACHE_CONTROL, "public, max-age=3600");
    ([(header::CONTENT_TYPE, kind), cache], body).into_response()
}
