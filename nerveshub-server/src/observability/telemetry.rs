//! Prometheus metrics: names, the one-line recording calls used across the server, and the
//! `/metrics` endpoint.
//!
//! Counters and histograms are recorded through the `metrics` facade into the process's
//! Prometheus recorder, installed when a server is started with a metrics listener (a
//! library must not take the global recorder from an application that has its own, so
//! without one these calls cost a check and record nothing). Gauges of state the server
//! already keeps are computed at scrape time from this server's own registry and database.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const TLS_HANDSHAKES: &str = "nerveshub_tls_handshakes_total";
const TLS_RESUMPTIONS: &str = "nerveshub_tls_resumptions_total";
const DEVICE_JOINS: &str = "nerveshub_device_joins_total";
const DEVICE_REFUSALS: &str = "nerveshub_device_refusals_total";
const DEVICE_MESSAGES: &str = "nerveshub_device_messages_total";
const DOWNLOAD_BYTES: &str = "nerveshub_firmware_download_bytes_total";
const ORCHESTRATOR_RUNS: &str = "nerveshub_orchestrator_runs_total";
const HTTP_DURATION: &str = "nerveshub_http_request_duration_seconds";

/// Latency buckets in seconds: API calls are milliseconds, firmware downloads minutes.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once. `None` when
/// another recorder was installed first (then `/metrics` shows the scrape-time gauges only).
pub(crate) fn install_recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &LATENCY_BUCKETS)
            {
                Ok(builder) => builder,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets refused");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed: /metrics shows only the server's gauges"
                );
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        TLS_HANDSHAKES,
        "TLS handshakes on the device endpoint, by result (ok, failed)"
    );
    metrics::describe_counter!(
        TLS_RESUMPTIONS,
        "Successful TLS handshakes that resumed an earlier session"
    );
    metrics::describe_counter!(DEVICE_JOINS, "Devices that joined the device channel");
    metrics::describe_counter!(
        DEVICE_REFUSALS,
        "Device connections refused, by reason (certificate, credentials, no_credentials, unavailable, saturated)"
    );
    metrics::describe_counter!(
        DEVICE_MESSAGES,
        "Phoenix channel frames on device sockets, by direction (in, out)"
    );
    metrics::describe_counter!(
        DOWNLOAD_BYTES,
        "Firmware bytes served by the device endpoint (local storage; S3 serves its own)"
    );
    metrics::describe_counter!(
        ORCHESTRATOR_RUNS,
        "Deployment orchestrator runs on this node, by result (ok, failed)"
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by listener, route pattern, method and status"
    );
}

/// Why a device connection was refused, as the `reason` label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefusalReason {
    /// The TLS handshake refused the client certificate (unknown CA, expired, bad signature).
    Certificate,
    /// The certificate or NH1 headers were presented but not accepted.
    Credentials,
    /// No certificate and no NH1 headers.
    NoCredentials,
    /// The database could not be asked.
    Unavailable,
    /// The node was saturated (its TLS handshake queue full) and closed the connection at once.
    Saturated,
}

impl RefusalReason {
    fn label(self) -> &'static str {
        match self {
            RefusalReason::Certificate => "certificate",
            RefusalReason::Credentials => "credentials",
            RefusalReason::NoCredentials => "no_credentials",
            RefusalReason::Unavailable => "unavailable",
            RefusalReason::Saturated => "saturated",
        }
    }
}

/// A TLS handshake on the device endpoint finished (`ok`) or failed.
pub(crate) fn tls_handshake(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!(TLS_HANDSHAKES, "result" => result).increment(1);
}

/// A TLS handshake resumed an earlier session (no key exchange, no certificate check).
pub(crate) fn tls_resumed() {
    metrics::counter!(TLS_RESUMPTIONS).increment(1);
}

/// A device joined `device`.
pub(crate) fn device_joined() {
    metrics::counter!(DEVICE_JOINS).increment(1);
}

/// A device connection was refused.
pub(crate) fn device_refused(reason: RefusalReason) {
    metrics::counter!(DEVICE_REFUSALS, "reason" => reason.label()).increment(1);
}

/// A frame arrived from a device.
pub(crate) fn message_in() {
    metrics::counter!(DEVICE_MESSAGES, "direction" => "in").increment(1);
}

/// A frame was sent to a device.
pub(crate) fn message_out() {
    metrics::counter!(DEVICE_MESSAGES, "direction" => "out").increment(1);
}

/// `bytes` of firmware are being served to a device.
pub(crate) fn download_bytes(bytes: u64) {
    metrics::counter!(DOWNLOAD_BYTES).increment(bytes);
}

/// A deployment's orchestrator ran once (`ok`) or failed.
pub(crate) fn orchestrator_run(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!(ORCHESTRATOR_RUNS, "result" => result).increment(1);
}

/// One HTTP request finished.
pub(super) fn http_request(
    listener: &'static str,
    route: String,
    method: String,
    status: u16,
    took: Duration,
) {
    metrics::histogram!(
        HTTP_DURATION,
        "listener" => listener,
        "route" => route,
        "method" => method,
        "status" => status.to_string(),
    )
    .record(took.as_secs_f64());
}

/// The metrics listener's one route, `/metrics`.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    let mut text = HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    gauges(&state, &mut text).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Appends the gauges read from this server's state.
async fn gauges(state: &AppState, out: &mut String) {
    let connected = state.devices.registry.connected_count();
    let _ = writeln!(
        out,
        "# HELP nerveshub_devices_connected Devices with an open socket on this server\n\
         # TYPE nerveshub_devices_connected gauge\n\
         nerveshub_devices_connected {connected}"
    );
    let leading = state.cluster.election().leading().len();
    let _ = writeln!(
        out,
        "# HELP nerveshub_orchestrators_leading Deployments whose rollout orchestrator this server leads\n\
         # TYPE nerveshub_orchestrators_leading gauge\n\
         nerveshub_orchestrators_leading {leading}"
    );
    let presence = &state.devices.presence;
    let _ = writeln!(
        out,
        "# HELP nerveshub_presence_pending Devices whose disconnection or last-seen time waits to be written\n\
         # TYPE nerveshub_presence_pending gauge\n\
         nerveshub_presence_pending {}\n\
         # HELP nerveshub_presence_write_failures_total Presence batch writes that failed (kept and retried)\n\
         # TYPE nerveshub_presence_write_failures_total counter\n\
         nerveshub_presence_write_failures_total {}",
        presence.pending_count(),
        presence.failed_writes()
    );

    match state.db.update_counts_by_status().await {
        Ok(counts) => {
            let _ = writeln!(
                out,
                "# HELP nerveshub_updates Device updates by state (the latest state of each)\n\
                 # TYPE nerveshub_updates gauge"
            );
            for status in crate::db::UPDATE_STATUSES {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "nerveshub_updates{{state=\"{status}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting updates failed"),
    }

    let _ = writeln!(
        out,
        "# HELP nerveshub_db_pool_connections Database pool connections by pool (api, device) and state\n\
         # TYPE nerveshub_db_pool_connections gauge"
    );
    // The API and the device endpoint have pools of their own (a storm must not starve the
    // API), so each is shown.
    let pools = [
        ("api", state.db.pool().clone()),
        ("device", state.db.for_devices().pool().clone()),
    ];
    for (name, pool) in &pools {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        let _ = writeln!(
            out,
            "nerveshub_db_pool_connections{{pool=\"{name}\",state=\"in_use\"}} {}\n\
             nerveshub_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {idle}",
            size - idle
        );
    }
    let _ = writeln!(
        out,
        "# HELP nerveshub_db_pool_max_connections Each database pool's limit\n\
         # TYPE nerveshub_db_pool_max_connections gauge"
    );
    for (name, pool) in &pools {
        let max = pool.options().get_max_connections();
        let _ = writeln!(
            out,
            "nerveshub_db_pool_max_connections{{pool=\"{name}\"}} {max}"
        );
    }
}
