//! The tower layer that authenticates every gRPC request before a service sees it: reads
//! the bearer token and the TLS peer certificate, asks the broker ([`Api::authenticate`]),
//! holds the request for its principal's request-rate quota, and either
//! puts the caller's [`Identity`] into the request's extensions or answers
//! `UNAUTHENTICATED` itself. An async layer (not tonic's synchronous interceptor), so verification that
//! waits (fetching signing keys) can go here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use shale_broker::api::{Api, Identity, QuotaKind};

/// Paths open without credentials: the health service, for probes.
const OPEN_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Authenticates requests, then holds each for its principal's request-rate quota.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    api: Api,
}

impl AuthLayer {
    /// A layer over `api`.
    pub fn new(api: Api) -> AuthLayer {
        AuthLayer { api }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate { inner, api: self.api.clone() }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    api: Api,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<http::Request<B>> for Authenticate<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    RB: Default + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is not ready; the ready one serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let api = self.api.clone();
        Box::pin(async move {
            let identity = match credentials_of(&req) {
                Ok((bearer, chain)) => {
                    let leaf = chain.as_deref().and_then(|c| c.first()).map(|c| c.as_ref());
                    api.authenticate(bearer.as_deref(), leaf).await
                }
                Err(e) => Err(e),
            };
            let open = OPEN_PREFIXES.iter().any(|p| req.uri().path().starts_with(p));
            match identity {
                Ok(id) if open => {
                    req.extensions_mut().insert(id);
                }
                Ok(id) => {
                    if let Err(e) = api.throttle(&id, QuotaKind::Requests, 1).await {
                        return Ok(shale_proto::status::into_status(e).into_http());
                    }
                    req.extensions_mut().insert(id);
                }
                Err(_) if open => {
                    req.extensions_mut().insert(Identity::anonymous());
                }
                Err(e) => {
                    api.refused(req.uri().path(), &e);
                    return Ok(shale_proto::status::into_status(e).into_http());
                }
            }
            inner.call(req).await
        })
    }
}

/// The request's bearer token and its client certificate chain (leaf first), if any; the
/// chain is the connection's, shared, not copied per request.
type Credentials = (Option<String>, Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>>);

fn credentials_of<B>(req: &http::Request<B>) -> Result<Credentials, shale_core::error::Error> {
    let bearer = match req.headers().get(http::header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().ok();
            match v.and_then(|v| v.strip_prefix("Bearer ")) {
                Some(token) => Some(token.trim().to_string()),
                None => {
                    return Err(shale_broker::api::unauthenticated(
                        "the authorization header is not `Bearer <token>`",
                    ));
                }
            }
        }
    };
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs);
    Ok((bearer, certs))
}

/// The identity the layer put on a request (anonymous if the layer is not installed).
pub fn identity<T>(req: &tonic::Request<T>) -> Identity {
    req.extensions().get::<Identity>().cloned().unwrap_or_else(Identity::anonymous)
}
