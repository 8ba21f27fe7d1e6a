//! Devices that poll instead of keeping a socket, on the same listener and with the same
//! authentication as the socket (certificate, NH1 headers, JITP, product keys):
//!
//! - `POST /device/api/v1/poll`: the join params as a JSON body; the answer is the channel's
//!   `update` payload (or `{"update_available": false}`) with `poll_interval_seconds` and
//!   the jitter to apply to it.
//! - `POST /device/api/v1/status` and `/progress`: what `status_update` and `fwup_progress`
//!   carry on the channel.
//! - `GET /device/update` and `GET /device/me`: the v1-era `nerves_hub_link_http` client,
//!   whose firmware metadata comes as one `X-NervesHubLinkHTTP-<key>` header per
//!   `nerves_fw_*` key and whose answers are wrapped in `{"data": …}`.
//!
//! A poll is recorded like a join (firmware metadata, the update lifecycle, membership) but
//! leaves the socket's connection state alone; the device counts as online for the
//! orchestrator for two poll intervals. An update the orchestrator offers a polling device is
//! a row without a push, answered by the next poll.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use nerveshub_proto::{ChannelMessage, DeviceEvent, DeviceServerEvent};
use serde_json::{Map, Value, json};

use super::auth::{self, Refusal};
use super::channel::{self, DeviceChannel, JoinOutcome};
use super::socket::{ERROR_REASON_HEADER, NO_CREDENTIALS_REASON, UNAVAILABLE_REASON, with_date};
use crate::db::DeviceRef;
use crate::db::device_updates::InFlight;
use crate::device_endpoint::PeerCertificates;
use crate::fleet::lifecycle;
use crate::observability::{self, RefusalReason};
use crate::state::AppState;
use crate::storage::DEFAULT_URL_TTL;

/// The jitter devices are told to apply to the interval, in percent either way, so a fleet
/// that booted together does not poll together.
pub(crate) const POLL_JITTER_PERCENT: u64 = 10;
/// A poll sooner than this share of the interval after the device's last one is refused
/// (429): the advised jitter, and as much again for slow networks and retries.
const MIN_GAP_PERCENT: u64 = 100 - 2 * POLL_JITTER_PERCENT;
/// How long a poll waits for the orchestrator run it triggered before answering.
const OFFER_WAIT: Duration = Duration::from_secs(2);
/// The rate limiter forgets devices beyond this many (the oldest first).
const MAX_TRACKED: usize = 100_000;
/// The largest poll or report body: join params and statuses are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;
/// `nerves_hub_link_http`'s header prefix (compared lower-case, as headers arrive).
const LEGACY_HEADER_PREFIX: &str = "x-nerveshublinkhttp-";

/// When each device last polled on this node: too-fast polling is refused without a write.
#[derive(Debug, Default)]
pub(crate) struct PollLimiter {
    last: Mutex<HashMap<i64, Instant>>,
}

impl PollLimiter {
    /// Records a poll of `device_id` now unless its previous one was less than `min_gap`
    /// ago; then the wait left.
    fn admit(&self, device_id: i64, min_gap: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last.get(&device_id) {
            let since = now.saturating_duration_since(*at);
            if since < min_gap {
                return Err(min_gap - since);
            }
        }
        if last.len() >= MAX_TRACKED {
            // Rarely reached; dropping the oldest only lets those devices poll once early.
            if let Some(oldest) = last.iter().min_by_key(|(_, at)| **at).map(|(id, _)| *id) {
                last.remove(&oldest);
            }
        }
        last.insert(device_id, now);
        Ok(())
    }

    /// Records a poll let through regardless (a device with an update in flight).
    fn record(&self, device_id: i64) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(device_id, Instant::now());
    }
}

/// An error answer (JSON, with `Date` like every device endpoint refusal).
fn error(status: StatusCode, detail: &str) -> Response {
    with_date((status, Json(json!({"errors": {"detail": detail}}))).into_response())
}

/// Authenticates as the socket does, with the same refusals; nothing is written for a
/// request that fails here.
async fn authenticate(
    state: &AppState,
    certs: Option<Extension<PeerCertificates>>,
    headers: &HeaderMap,
) -> Result<DeviceRef, Response> {
    let chain = certs.map(|Extension(c)| c.0).unwrap_or_default();
    match auth::authenticate(state, &chain, headers).await {
        Ok((device, _)) => Ok(device),
        Err(Refusal::NoCredentials) => {
            tracing::info!(reason = NO_CREDENTIALS_REASON, "device poll refused");
            observability::device_refused(RefusalReason::NoCredentials);
            let mut response = error(StatusCode::UNAUTHORIZED, "no credentials");
            response.headers_mut().insert(
                ERROR_REASON_HEADER,
                HeaderValue::from_static(NO_CREDENTIALS_REASON),
            );
            Err(response)
        }
        Err(Refusal::Invalid(why)) => {
            tracing::info!(reason = %why, "device poll refused");
            observability::device_refused(RefusalReason::Credentials);
            Err(error(StatusCode::UNAUTHORIZED, "unauthorized"))
        }
        Err(Refusal::Unavailable(e)) => Err(unavailable(&e)),
    }
}

fn unavailable(e: &sqlx::Error) -> Response {
    tracing::error!(error = %e, "device poll failed on the database");
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_REASON);
    response.headers_mut().insert(
        ERROR_REASON_HEADER,
        HeaderValue::from_static(UNAVAILABLE_REASON),
    );
    response
}

/// The device's poll interval: its product's, else the server's.
async fn interval_of(state: &AppState, device: &DeviceRef) -> Result<Duration, sqlx::Error> {
    let product = state.db.product_poll_interval(device.product_id).await?;
    Ok(product
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(state.config.device_poll_interval, Duration::from_secs)
        .max(Duration::from_secs(1)))
}

/// How long after a poll the device counts as online: two intervals, in ms.
fn online_ms(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(2)
}

/// What a poll answers: the update (as the channel's `update` payload) or none, and keys
/// the device asked for.
struct Answer {
    payload: Map<String, Value>,
    interval: Duration,
}

/// One poll of an authenticated device with its join params.
async fn poll_once(
    state: &AppState,
    device: DeviceRef,
    params: Value,
    host: Option<&str>,
) -> Result<Answer, Response> {
    let interval = interval_of(state, &device)
        .await
        .map_err(|e| unavailable(&e))?;
    let min_gap = interval * u32::try_from(MIN_GAP_PERCENT).unwrap_or(80) / 100;
    if let Err(wait) = state.devices.polls.admit(device.id, min_gap) {
        // A device with an update in flight polls again as soon as it rebooted into it.
        let in_flight = state
            .db
            .in_flight_update(device.id)
            .await
            .map_err(|e| unavailable(&e))?;
        if in_flight.is_none() {
            return Err(too_fast(wait, interval));
        }
        state.devices.polls.record(device.id);
    }
    // Subscribed before the poll triggers the orchestrator, so its run is not missed.
    let mut runs = state.fleet.runs();
    let device_id = device.id;
    let identifier = device.identifier.clone();
    let mut channel = DeviceChannel::polled(state.clone(), device, online_ms(interval));
    let pushes = match channel.join(params).await {
        Ok(JoinOutcome::Accepted(pushes)) => pushes,
        Ok(JoinOutcome::Refused) => {
            return Err(error(StatusCode::FORBIDDEN, "could not connect"));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    let update = wait_for_offer(state, device_id, &mut runs)
        .await
        .map_err(|e| unavailable(&e))?;
    let mut payload = match update {
        Some(update) => {
            let event = match state.db.firmware_by_id(update.firmware_id).await {
                Ok(Some(firmware)) => {
                    match state.storage.download_url(&firmware, DEFAULT_URL_TTL).await {
                        Ok(url) => Some(lifecycle::update_event(
                            &firmware,
                            state.storage.url_for_host(url, host),
                            update.deployment_id,
                        )),
                        Err(e) => {
                            tracing::warn!(device = %identifier, error = %e, "firmware URL failed");
                            None
                        }
                    }
                }
                Ok(None) => None,
                Err(e) => return Err(unavailable(&e)),
            };
            match event.map(|e| e.to_payload()) {
                Some(Value::Object(map)) => {
                    tracing::info!(device = %identifier, firmware = %update.firmware_uuid, "update handed to a polling device");
                    map
                }
                _ => no_update(),
            }
        }
        None => no_update(),
    };
    for push in pushes {
        if matches!(
            push,
            DeviceServerEvent::FwupPublicKeys(_) | DeviceServerEvent::ArchivePublicKeys(_)
        ) {
            payload.insert(push.event().to_owned(), push.to_payload());
        }
    }
    Ok(Answer { payload, interval })
}

fn no_update() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("update_available".into(), json!(false));
    map
}

fn too_fast(wait: Duration, interval: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = with_date(
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "errors": {"detail": "polling faster than the poll interval"},
                "poll_interval_seconds": interval.as_secs(),
            })),
        )
            .into_response(),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// The update a poll hands out: the one in flight (offered between polls, or being
/// downloaded) unless it already said it installed it. When the device's deployment has
/// another release for it, waits up to [`OFFER_WAIT`] for the orchestrator run its poll
/// triggered.
async fn wait_for_offer(
    state: &AppState,
    device_id: i64,
    runs: &mut tokio::sync::watch::Receiver<u64>,
) -> Result<Option<InFlight>, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + OFFER_WAIT;
    let mut worth_waiting = None;
    loop {
        if let Some(update) = state.db.in_flight_update(device_id).await? {
            if update.status == "completed" {
                return Ok(None);
            }
            return Ok(Some(update));
        }
        let worth = match worth_waiting {
            Some(worth) => worth,
            None => {
                let worth = release_pending(state, device_id).await?;
                worth_waiting = Some(worth);
                worth
            }
        };
        if !worth {
            return Ok(None);
        }
        match tokio::time::timeout_at(deadline, runs.changed()).await {
            Ok(Ok(())) => {}
            _ => return Ok(None),
        }
    }
}

/// Whether the device's deployment is rolling out a release the device does not run.
async fn release_pending(state: &AppState, device_id: i64) -> Result<bool, sqlx::Error> {
    let Some(device) = state.db.fleet_device(device_id).await? else {
        return Ok(false);
    };
    let Some(deployment_id) = device.deployment_id else {
        return Ok(false);
    };
    let Some(d) = state.db.deployment_by_id(deployment_id).await? else {
        return Ok(false);
    };
    let running = state.db.device_ref(device_id).await?.and_then(|s| {
        s.firmware_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| m.get("uuid").and_then(Value::as_str).map(str::to_owned))
    });
    Ok(d.is_active != 0
        && d.halted_at.is_none()
        && running.as_deref() != Some(d.firmware_uuid.as_str()))
}

fn host_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

/// The polling routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/device/api/v1/poll", post(poll))
        .route("/device/api/v1/status", post(status))
        .route("/device/api/v1/progress", post(progress))
        .route("/device/update", get(legacy_update))
        .route("/device/me", get(legacy_me))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A body over [`MAX_BODY`] (413) or unreadable: refused before anything else, even before
/// authentication (which may register a device).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Box<Response>> {
    body.map_err(|rejection| Box::new(error(rejection.status(), &rejection.body_text())))
}

/// Reads a JSON object body (`{}` when empty).
fn json_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) if !channel::has_nul(&value) => Ok(value),
        Ok(Value::Object(_)) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "the body holds a NUL character",
        ))),
        Ok(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "the body is not a JSON object",
        ))),
        Err(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
        ))),
    }
}

/// What the poll routes make of untrusted request bytes (for the `server_poll` fuzz target):
/// `data` is a header block (`name: value` lines) then, after a blank line, a body. The
/// legacy headers map only to `nerves_fw_*` keys, a body is refused or read as an object
/// without NUL, and either reads as join parameters without panicking.
pub(crate) fn fuzz_request(data: &[u8]) -> Result<(), String> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(&line[..colon]),
            axum::http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let params = legacy_params(&headers);
    for key in params.as_object().into_iter().flat_map(|m| m.keys()) {
        if !key.starts_with("nerves_fw_") && key != "currently_downloading_uuid" {
            return Err(format!("header mapping made the key {key:?}"));
        }
    }
    let _ = nerveshub_proto::DeviceJoinParams::from_payload(params);
    if let Ok(Value::Object(object)) = json_body(&Bytes::copy_from_slice(body)) {
        let value = Value::Object(object);
        if channel::has_nul(&value) {
            return Err("a body with NUL was accepted".into());
        }
        let _ = nerveshub_proto::DeviceJoinParams::from_payload(value);
    }
    Ok(())
}

/// The device and the JSON object body of a `POST`, in the order that writes nothing for a
/// refused request: the body's size first (413 before an authentication that may register a
/// device), then the device, then the body's JSON.
async fn authenticated_body(
    state: &AppState,
    certs: Option<Extension<PeerCertificates>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(DeviceRef, Value), Box<Response>> {
    let body = read_body(body)?;
    let device = authenticate(state, certs, headers)
        .await
        .map_err(Box::new)?;
    Ok((device, json_body(&body)?))
}

/// `POST /device/api/v1/poll`.
pub(crate) async fn poll(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (device, params) = match authenticated_body(&state, certs, &headers, body).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match poll_once(&state, device, params, host_of(&headers).as_deref()).await {
        Ok(Answer {
            mut payload,
            interval,
        }) => {
            payload.insert("poll_interval_seconds".into(), json!(interval.as_secs()));
            payload.insert(
                "poll_interval_jitter_percent".into(),
                json!(POLL_JITTER_PERCENT),
            );
            Json(Value::Object(payload)).into_response()
        }
        Err(response) => response,
    }
}

/// `POST /device/api/v1/status` (a `status_update`) and `/progress` (an `fwup_progress`).
async fn report(
    state: AppState,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    event: &'static str,
) -> Response {
    let (device, payload) = match authenticated_body(&state, certs, &headers, body).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if let Err(e) = DeviceEvent::from_parts(event, payload.clone()) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
    }
    let interval = match interval_of(&state, &device).await {
        Ok(interval) => interval,
        Err(e) => return unavailable(&e),
    };
    let mut channel = DeviceChannel::polled(state, device, online_ms(interval));
    channel.push(event, payload).await;
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /device/api/v1/status`.
pub(crate) async fn status(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    report(state, certs, headers, body, "status_update").await
}

/// `POST /device/api/v1/progress`.
pub(crate) async fn progress(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    report(state, certs, headers, body, "fwup_progress").await
}

/// The join params `nerves_hub_link_http` sends as headers: `X-NervesHubLinkHTTP-<key>` for
/// each `nerves_fw_<key>` (the prefix is stripped by the client; a full key is accepted too).
/// Other headers are ignored.
pub(crate) fn legacy_params(headers: &HeaderMap) -> Value {
    let mut params = Map::new();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(LEGACY_HEADER_PREFIX) else {
            continue;
        };
        let Ok(value) = value.to_str() else {
            continue;
        };
        if key.is_empty() || value.contains('\0') {
            continue;
        }
        let key = if key.starts_with("nerves_fw_") {
            key.to_owned()
        } else {
            format!("nerves_fw_{key}")
        };
        params.insert(key, Value::String(value.to_owned()));
    }
    params.insert("currently_downloading_uuid".into(), Value::Null);
    Value::Object(params)
}

/// `GET /device/update` (`nerves_hub_link_http`).
pub(crate) async fn legacy_update(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
) -> Response {
    let device = match authenticate(&state, certs, &headers).await {
        Ok(device) => device,
        Err(response) => return response,
    };
    let params = legacy_params(&headers);
    match poll_once(&state, device, params, host_of(&headers).as_deref()).await {
        Ok(Answer { payload, .. }) => {
            // The v1 answer: the update fields only (no deployment id or poll advice).
            let keep = [
                "update_available",
                "firmware_url",
                "firmware_meta",
                "size",
                "checksum",
                "partials_checksums",
            ];
            let data: Map<String, Value> = payload
                .into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect();
            Json(json!({"data": data})).into_response()
        }
        Err(response) => response,
    }
}

/// `GET /device/me` (`nerves_hub_link_http`): the device as it is stored; records nothing.
pub(crate) async fn legacy_me(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
) -> Response {
    let device = match authenticate(&state, certs, &headers).await {
        Ok(device) => device,
        Err(response) => return response,
    };
    let row = match state.db.device_by_id(device.id).await {
        Ok(Some(row)) => row,
        Ok(None) => return error(StatusCode::NOT_FOUND, "Not Found"),
        Err(e) => return unavailable(&e),
    };
    let firmware = row.firmware_metadata_json();
    let version = firmware
        .as_ref()
        .and_then(|f| f.get("version").cloned())
        .unwrap_or(Value::Null);
    let tags = row.tags.clone();
    Json(json!({"data": {
        "identifier": row.identifier,
        "description": row.description,
        "tags": tags,
        "version": version,
        "firmware_metadata": firmware,
        "last_communication": row.connection_last_seen_at,
    }}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_headers_become_join_params_and_others_are_ignored() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("X-NervesHubLinkHTTP-uuid", "u-1"),
            ("x-nerveshublinkhttp-nerves_fw_version", "1.2.3"),
            ("X-NervesHubLinkHTTP-platform", "rpi4"),
            ("X-NervesHubLinkHTTP-", "nameless"),
            ("X-Other", "ignored"),
            ("Content-Type", "application/json"),
        ] {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        assert_eq!(
            legacy_params(&headers),
            json!({
                "nerves_fw_uuid": "u-1",
                "nerves_fw_version": "1.2.3",
                "nerves_fw_platform": "rpi4",
                "currently_downloading_uuid": null,
            })
        );
    }

    #[test]
    fn the_limiter_refuses_a_device_inside_its_gap_only() {
        let limiter = PollLimiter::default();
        let gap = Duration::from_secs(60);
        assert!(limiter.admit(1, gap).is_ok());
        let wait = limiter.admit(1, gap).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= gap, "{wait:?}");
        // Another device, and a gap already over, are let through.
        assert!(limiter.admit(2, gap).is_ok());
        assert!(limiter.admit(1, Duration::ZERO).is_ok());
    }
}
