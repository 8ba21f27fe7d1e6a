//! Actions on a connected device: `POST /api/orgs/{org}/products/{product}/devices/{identifier}/`
//! `reboot`, `reconnect`, `identify` and `upgrade`. Each answers 202 once the device's socket
//! took the message, and 409 `{"errors":{"detail":"device is offline"}}` when the device has
//! no socket (or has not joined `device`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nerveshub_proto::DeviceServerEvent;

use super::{Api, Endpoint, Success};
use crate::auth::{Caller, Role};
use crate::db::device_session::SessionDevice;
use crate::db::{self, Actor, Audit};
use crate::error::ApiError;
use crate::state::AppState;

const OFFLINE: &str = "device is offline";

pub(super) fn routes(api: Api) -> Api {
    let action = |path: &'static str, summary: &'static str| {
        Endpoint::post(path, summary)
            .tag("devices")
            .role(Role::Manage)
            .ok(Success::Accepted)
            .errors(&[409])
    };
    api.route(
        action(
            "/orgs/{org}/products/{product}/devices/{identifier}/reboot",
            "Ask a connected device to reboot",
        ),
        reboot,
    )
    .route(
        action(
            "/orgs/{org}/products/{product}/devices/{identifier}/reconnect",
            "Close a connected device's socket; it reconnects",
        ),
        reconnect,
    )
    .route(
        action(
            "/orgs/{org}/products/{product}/devices/{identifier}/identify",
            "Ask a connected device to identify itself (blink an LED)",
        ),
        identify,
    )
}

type DevicePath = Path<(String, String, String)>;

/// The device named in the path, for a caller with the manage role.
async fn find_device(
    state: &AppState,
    caller: &Caller,
    (org, product, identifier): &(String, String, String),
) -> Result<SessionDevice, ApiError> {
    let membership = caller.in_org(state, org, Role::Manage).await?;
    super::products::find(state, membership.org.id, product).await?;
    state
        .db
        .session_device_in_product(membership.org.id, product, identifier)
        .await?
        .ok_or(ApiError::NotFound("device"))
}

/// Writes the audit row of an action that reached the device.
async fn audit_action(
    state: &AppState,
    caller: &Caller,
    device: &SessionDevice,
    action: &str,
    description: String,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(device.org_id),
            actor: Actor::User(caller.user.id),
            resource_type: "device",
            resource_id: &device.identifier,
            action,
            description,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

async fn push_action(
    state: &AppState,
    caller: &Caller,
    path: &(String, String, String),
    event: DeviceServerEvent,
    action: &str,
    verb: &str,
) -> Result<Response, ApiError> {
    let device = find_device(state, caller, path).await?;
    state
        .devices
        .registry
        .push(device.id, event)
        .await
        .map_err(|_| ApiError::Conflict(OFFLINE.into()))?;
    audit_action(
        state,
        caller,
        &device,
        action,
        format!("{} {verb} device {}", caller.user.email, device.identifier),
    )
    .await?;
    Ok(accepted())
}

async fn reboot(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): DevicePath,
) -> Result<Response, ApiError> {
    let event = DeviceServerEvent::Reboot(Default::default());
    push_action(&state, &caller, &path, event, "reboot", "asked to reboot").await
}

async fn identify(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): DevicePath,
) -> Result<Response, ApiError> {
    let event = DeviceServerEvent::Identify(Default::default());
    push_action(
        &state,
        &caller,
        &path,
        event,
        "identify",
        "asked to identify",
    )
    .await
}

async fn reconnect(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): DevicePath,
) -> Result<Response, ApiError> {
    let device = find_device(&state, &caller, &path).await?;
    state
        .devices
        .registry
        .disconnect(device.id, "reconnect requested")
        .await
        .map_err(|_| ApiError::Conflict(OFFLINE.into()))?;
    audit_action(
        &state,
        &caller,
        &device,
        "reconnect",
        format!(
            "{} asked device {} to reconnect",
            caller.user.email, device.identifier
        ),
    )
    .await?;
    Ok(accepted())
}
