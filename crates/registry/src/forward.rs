//! Requests this broker cannot answer — a change while another broker is the registry's
//! writer, or a read where this broker holds no replica of the registry's log — are sent
//! on to the writer's registry listener, as Confluent's followers forward to their
//! leader, and its answer (status, body, error codes) is passed back as it is: a client
//! given any broker's URL succeeds. A forwarded request is never forwarded again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use shale_broker::api::ServerTls;

use crate::Registry;
use crate::reply::{NOT_HERE, error};

/// Set on a forwarded request.
const FORWARDED: HeaderName = HeaderName::from_static("x-shale-forwarded");

/// Headers passed on to the writer.
const PASSED: [HeaderName; 3] = [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];

/// The HTTP client forwarding uses: plaintext, or HTTPS presenting this broker's
/// certificate and trusting the cluster's CA, rebuilt when the certificates rotate.
#[derive(Debug)]
pub(crate) struct Client {
    tls: Option<Arc<ServerTls>>,
    /// The client, and the TLS generation it was built under.
    current: std::sync::Mutex<Option<(u64, reqwest::Client)>>,
}

impl Client {
    pub(crate) fn new(tls: Option<Arc<ServerTls>>) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client { tls, current: std::sync::Mutex::new(None) }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The client to use now.
    fn get(&self) -> Result<reqwest::Client, String> {
        let generation = self.tls.as_ref().map_or(0, |t| t.generation());
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made_under, client)) = current.as_ref()
            && *made_under == generation
        {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(tls) = &self.tls {
            let config = tls.peer_https_config().map_err(|e| e.message)?;
            builder = builder.tls_backend_preconfigured(config);
        }
        let client = builder.build().map_err(|e| format!("cannot set up HTTP forwarding: {e}"))?;
        *current = Some((generation, client.clone()));
        Ok(client)
    }
}

/// The forwarding layer around every route.
pub(crate) async fn layer(State(st): State<Arc<Registry>>, req: Request, next: Next) -> Response {
    let forwarded = req.headers().contains_key(&FORWARDED);
    let (parts, body) = req.into_parts();
    let bytes = match crate::request::body_bytes(&st, body).await {
        Ok(bytes) => bytes,
        Err(too_large) => return too_large,
    };
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let mut response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    if response.headers_mut().remove(&NOT_HERE).is_none() || forwarded {
        return response;
    }
    let Some(writer) = st.api.registry_writer_address() else { return response };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let http = match st.http.get() {
        Ok(http) => http,
        Err(e) => return forward_failed(&writer, &e),
    };
    let mut out = http
        .request(method, format!("{}://{writer}{path}", st.http.scheme()))
        .header(FORWARDED, "1")
        .body(bytes);
    for name in PASSED {
        if let Some(v) = headers.get(&name) {
            out = out.header(name, v);
        }
    }
    match out.send().await {
        Ok(answer) => {
            let status = answer.status();
            let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
            match answer.bytes().await {
                Ok(body) => {
                    let mut r = (status, body).into_response();
                    if let Some(kind) = kind {
                        r.headers_mut().insert(header::CONTENT_TYPE, kind);
                    }
                    r
                }
                Err(e) => forward_failed(&writer, &e),
            }
        }
        Err(e) => forward_failed(&writer, &e),
    }
}

fn forward_failed(writer: &str, e: &dyn std::fmt::Display) -> Response {
    let mut r =
        error(50003, format!("Error while forwarding the request to the leader {writer}: {e}"));
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
