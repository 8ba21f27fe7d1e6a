//! The access log and request-latency histogram of a listener.
//!
//! Each request gets an `x-request-id` (the caller's, when it sent one, else a new one) that
//! is logged with it and returned. Only the path is logged, never the query: signed firmware
//! URLs carry their signature there, and NH1 or token secrets must not reach the logs either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response};
use axum::middleware::{self, Next};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a per-process random prefix and a counter, short and unique enough to grep.
#[derive(Debug, Clone)]
struct Ids;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn process_prefix() -> u32 {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Without randomness the ids are still unique within the process.
        let _ = getrandom::fill(&mut bytes);
        u32::from_le_bytes(bytes)
    })
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let text = format!("{:08x}-{n:06x}", process_prefix());
        HeaderValue::from_str(&text).ok().map(RequestId::new)
    }
}

/// Adds the access log, request ids and the latency histogram to `router`, whose requests
/// are logged as coming through `listener` (`api`, `device` or `metrics`).
pub(crate) fn layer(router: Router, listener: &'static str) -> Router {
    router
        // Innermost: logs server errors with their cause (inside the request's span, so the
        // line carries the request id).
        .layer(middleware::from_fn(super::errors::log_server_errors))
        // Sees the matched route.
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            record_latency(listener, request, next)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &axum::http::Request<_>| {
                    let id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        listener,
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %id,
                    )
                })
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, _span: &Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = latency_ms(latency),
                        "request"
                    );
                })
                // Failures are the 5xx responses logged above; body errors are the client's.
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, Ids))
}

fn latency_ms(latency: Duration) -> f64 {
    (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// Times the request for `nerveshub_http_request_duration_seconds`, labelled with the route
/// pattern (never the concrete path, which would grow without bound).
async fn record_latency(
    listener: &'static str,
    request: Request,
    next: Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    super::telemetry::http_request(
        listener,
        route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
