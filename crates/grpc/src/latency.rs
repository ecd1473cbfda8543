//! The tower layer that times every gRPC call by method into the broker's request metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;

use shale_broker::api::RequestMetrics;

/// The tower layer that times every gRPC call by method.
#[derive(Debug, Clone)]
pub struct GrpcLatencyLayer {
    metrics: Arc<RequestMetrics>,
}

impl GrpcLatencyLayer {
    /// Times calls into `metrics.grpc_latency`.
    pub fn new(metrics: Arc<RequestMetrics>) -> GrpcLatencyLayer {
        GrpcLatencyLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for GrpcLatencyLayer {
    type Service = GrpcLatency<S>;

    fn layer(&self, inner: S) -> GrpcLatency<S> {
        GrpcLatency { inner, metrics: self.metrics.clone() }
    }
}

/// See [`GrpcLatencyLayer`].
#[derive(Debug, Clone)]
pub struct GrpcLatency<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<http::Request<B>> for GrpcLatency<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let start = shale_core::clock::monotonic_now();
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = fut.await;
            // Paths that name no method answer UNIMPLEMENTED (12); not labelling them keeps
            // the label set bounded whatever clients send.
            let unimplemented = result.as_ref().is_ok_and(|r| {
                r.headers().get("grpc-status").is_some_and(|s| s.as_bytes() == b"12")
            });
            if !unimplemented {
                let labels = vec![("method".to_string(), path)];
                metrics.grpc_latency.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
            }
            result
        })
    }
}
