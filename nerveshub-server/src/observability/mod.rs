//! Running the server in production: the access log of both listeners, `GET /health` and
//! `GET /ready`, and Prometheus metrics.
//!
//! Counters and histograms go through the `metrics` facade (one-line calls from the code
//! that sees the event, see [`telemetry`]); values that the database or the device registry
//! already hold (connected devices, updates by state, pool use) are read when `/metrics` is
//! scraped instead of being mirrored, so they cannot drift.

mod access;
mod errors;
mod health;
mod telemetry;

pub(crate) use access::layer;
pub(crate) use errors::attach_cause;
pub(crate) use health::routes as health_routes;
pub(crate) use telemetry::{
    RefusalReason, device_joined, device_refused, download_bytes, install_recorder, message_in,
    message_out, metrics_router, orchestrator_run, tls_handshake, tls_resumed,
};
