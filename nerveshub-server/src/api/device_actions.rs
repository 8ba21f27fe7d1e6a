//! Actions on a connected device: `POST /api/orgs/{org}/products/{product}/devices/{identifier}/`
//! `reboot`, `reconnect`, `identify` and `upgrade`. Each answers 202 once the device's socket
//! took the message, and 409 `{"errors":{"detail":"device is offline"}}` when the device has
//! no socket (or has not joined `device`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nerveshub_proto::{DeviceServerEvent, FirmwareMetadata, UpdatePayload};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Body, Endpoint, Success};
use crate::auth::{Caller, Role};
use crate::db::FirmwareRow;
use crate::db::device_session::{self as q, SessionDevice};
use crate::db::{self, Actor, Audit};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::DEFAULT_URL_TTL;

const OFFLINE: &str = "device is offline";

pub(super) fn routes(api: Api) -> Api {
    let action = |path: &'static str, summary: &'static str| {
        Endpoint::post(path, summary)
            .tag("device actions")
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
    .route(
        action(
            "/orgs/{org}/products/{product}/devices/{identifier}/upgrade",
            "Push a firmware of the product to a connected device now",
        )
        .body("DeviceUpgrade"),
        upgrade,
    )
}

/// The schemas of this module, for the OpenAPI document.
pub(crate) fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![(
        "DeviceUpgrade",
        json!({
            "type": "object", "required": ["uuid"],
            "properties": {"uuid": {"type": "string", "description": "the firmware's UUID (meta-uuid)"}}
        }),
    )]
}

type DevicePath = Path<(String, String, String)>;

/// The device named in the path, for a caller with the manage role.
async fn find_device(
    state: &AppState,
    caller: &Caller,
    (org, product, identifier): &(String, String, String),
) -> Result<SessionDevice, ApiError> {
    let membership = caller.in_org(state, org, Role::Manage).await?;
    let product = super::products::find(state, membership.org.id, product).await?;
    state
        .db
        .session_device_in_product(product.org_id, &product.name, identifier)
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

#[derive(Deserialize)]
struct UpgradeFields {
    uuid: String,
}

/// The `update` push for a firmware, as NervesHub serializes it: the signed download URL,
/// the target's metadata, and the size and SHA-256 checksums of the file downloaded.
fn update_event(firmware: &FirmwareRow, url: String) -> DeviceServerEvent {
    let text = |s: &str| Some(s.to_owned());
    DeviceServerEvent::Update(Box::new(UpdatePayload {
        update_available: true,
        firmware_url: url,
        firmware_meta: FirmwareMetadata {
            uuid: text(&firmware.uuid),
            product: text(&firmware.product),
            version: text(&firmware.version),
            platform: text(&firmware.platform),
            architecture: text(&firmware.architecture),
            author: text(&firmware.author),
            description: text(&firmware.description),
            vcs_identifier: text(&firmware.vcs_identifier),
            misc: text(&firmware.misc),
            ..Default::default()
        },
        size: Some(firmware.size),
        checksum: Some(firmware.checksum.clone()),
        partials_checksums: Some(firmware.partials_checksums.clone()),
        deployment_id: None,
        extra: Default::default(),
    }))
}

async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): DevicePath,
    Body(fields): Body<UpgradeFields>,
) -> Result<Response, ApiError> {
    let device = find_device(&state, &caller, &path).await?;
    let firmware = state
        .db
        .firmware_by_uuid(device.product_id, fields.uuid.trim())
        .await?
        .ok_or(ApiError::NotFound("firmware"))?;
    if !state.devices.registry.is_connected(device.id) {
        return Err(ApiError::Conflict(OFFLINE.into()));
    }
    let url = state
        .storage
        .download_url(&firmware, DEFAULT_URL_TTL)
        .await
        .map_err(|e| ApiError::Internal(format!("firmware URL: {e}")))?;
    // The update is recorded before the push, so the device's first status finds it; if the
    // device went away in between, the record is removed again.
    let mut tx = state.db.begin().await?;
    let update_id = q::insert_device_update(&mut tx, device.id, firmware.id).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(device.org_id),
            actor: Actor::User(caller.user.id),
            resource_type: "device",
            resource_id: &device.identifier,
            action: "upgrade",
            description: format!(
                "{} pushed firmware {} (version {}) to device {}",
                caller.user.email, firmware.uuid, firmware.version, device.identifier
            ),
        },
    )
    .await?;
    tx.commit().await?;
    if state
        .devices
        .registry
        .push(device.id, update_event(&firmware, url))
        .await
        .is_err()
    {
        let mut tx = state.db.begin().await?;
        q::delete_device_update(&mut tx, update_id).await?;
        db::audit(
            &mut tx,
            Audit {
                org_id: Some(device.org_id),
                actor: Actor::User(caller.user.id),
                resource_type: "device",
                resource_id: &device.identifier,
                action: "upgrade_undelivered",
                description: format!(
                    "firmware {} did not reach device {}: it went offline",
                    firmware.uuid, device.identifier
                ),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(ApiError::Conflict(OFFLINE.into()));
    }
    tracing::info!(device = %device.identifier, firmware = %firmware.uuid, version = %firmware.version, by = %caller.user.email, "update pushed");
    Ok(accepted())
}
