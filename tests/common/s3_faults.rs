//! An HTTP proxy in front of a test S3 server that answers a share of requests itself with
//! the errors a struggling S3 sends: `503 Slow Down` and `500 Internal Error`, with S3's XML
//! error bodies. Everything else is forwarded unchanged (the `Host` header included, so
//! signatures still match) and the answers streamed back.
//!
//! Unlike the broker's fault wrapper, which fails requests inside the process, this makes the
//! real S3 client see real HTTP status codes, so the whole path is tested: the client's
//! classification of 5xx answers, Shale's retry layer, and what a caller does when retries
//! run out. It listens on 127.0.0.1 only and stops when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct Counters {
    /// Share of requests answered with an error, in millionths.
    rate_ppm: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    answered_500: AtomicU64,
    answered_503: AtomicU64,
}

/// A running proxy; see the module docs.
#[derive(Debug)]
pub(crate) struct S3FaultProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl S3FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream` (an
    /// `http://127.0.0.1:PORT` endpoint); it injects nothing until told to.
    pub(crate) async fn start(upstream: &str) -> S3FaultProxy {
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("upstream {upstream:?} is not http://IP:PORT"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let c = c.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let c = c.clone();
                        async move { Ok::<_, Infallible>(answer(req, upstream, &c).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        S3FaultProxy { addr, counters, task }
    }

    /// The proxy's URL, to give the broker as its S3 endpoint.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the share `rate` (0..=1) of requests with an error, alternating between 503
    /// and 500. The failed requests are spread evenly and deterministically (with 0.3, three
    /// of every ten, never two in a row), so a test that counts them does not depend on luck.
    pub(crate) fn set_error_rate(&self, rate: f64) {
        self.counters.rate_ppm.store((rate.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Release);
    }

    /// Requests seen, and how many were answered 500 and 503.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.requests.load(Ordering::Acquire),
            c.answered_500.load(Ordering::Acquire),
            c.answered_503.load(Ordering::Acquire),
        )
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(xml)).map_err(|never| match never {}).boxed())
        .unwrap()
}

async fn answer(req: Request<Incoming>, upstream: SocketAddr, c: &Counters) -> Response<Body> {
    let n = c.requests.fetch_add(1, Ordering::AcqRel);
    let rate = c.rate_ppm.load(Ordering::Acquire);
    // Request n fails when the running quota rate * n crosses an integer.
    if rate > 0 && (n + 1) * rate / 1_000_000 > n * rate / 1_000_000 {
        let failed = c.failed.fetch_add(1, Ordering::AcqRel);
        return if failed.is_multiple_of(2) {
            c.answered_503.fetch_add(1, Ordering::AcqRel);
            error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate.")
        } else {
            c.answered_500.fetch_add(1, Ordering::AcqRel);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            )
        };
    }
    match forward(req, upstream).await {
        Ok(resp) => resp.map(BodyExt::boxed),
        // The upstream is down or stopped: what a client sees from a dead endpoint.
        Err(e) => error(StatusCode::BAD_GATEWAY, "BadGateway", &e),
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: SocketAddr,
) -> Result<Response<Incoming>, String> {
    let stream = TcpStream::connect(upstream).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| e.to_string())
}
