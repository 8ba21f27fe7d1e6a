//! Actions on a connected device: `POST /api/orgs/{org}/products/{product}/devices/{identifier}/`
//! `reboot`, `reconnect`, `identify` and `upgrade`. Each answers 202 once the device's socket
//! took the message, and 409 `{"errors":{"detail":"device is offline"}}` when the device has
//! no socket (or has not joined `device`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nerveshub_proto::DeviceServerEvent;
use serde::Deserialize;
use serde_json::json;

use super::{Api, Body, Endpoint, Success};
use crate::auth::{Caller, Role};
use crate::db::DeviceRef;
use crate::db::FirmwareRow;
use crate::db::{self, Actor, Audit};
use crate::error::ApiError;
use crate::fleet::{FleetError, lifecycle};
use crate::state::AppState;

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
        .body("DeviceUpgrade")
        .ok(Success::Object(202, "DeviceUpdateCreated"))
        .errors(&[409, 422]),
        upgrade,
    )
    .route(
        Endpoint::delete(
            "/orgs/{org}/products/{product}/devices/{identifier}/penalty",
            "Take a device out of the penalty box and turn its automatic updates back on",
        )
        .tag("device actions")
        .role(Role::Manage)
        .ok(Success::NoContent),
        clear_penalty,
    )
}

/// The schemas of this module, for the OpenAPI document.
pub(crate) fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "DeviceUpgrade",
            json!({
                "type": "object",
                "description": "one of uuid or version; automatic updates of the device are turned off",
                "properties": {
                    "uuid": {"type": "string", "maxLength": MAX_FIRMWARE_REF_CHARS,
                        "description": "the firmware's UUID (meta-uuid)"},
                    "version": {"type": "string", "maxLength": MAX_FIRMWARE_REF_CHARS,
                        "description": "the firmware's version, when exactly one firmware of the product has it"}
                }
            }),
        ),
        (
            "DeviceUpdateCreated",
            json!({"type": "object", "properties": {
                "id": {"type": "integer"},
                "firmware_uuid": {"type": "string"},
                "firmware_version": {"type": "string"},
                "status": {"type": "string", "enum": ["requested"]}}}),
        ),
    ]
}

type DevicePath = Path<(String, String, String)>;

/// The device named in the path (the route layer checked the caller's role).
async fn find_device(
    state: &AppState,
    caller: &Caller,
    (_, product, identifier): &(String, String, String),
) -> Result<DeviceRef, ApiError> {
    let membership = caller.membership()?;
    let product = super::products::find(state, membership.org.id, product).await?;
    state
        .db
        .device_ref_in_product(product.org_id, &product.name, identifier)
        .await?
        .ok_or(ApiError::NotFound("device"))
}

/// Writes the audit row of an action that reached the device.
async fn audit_action(
    state: &AppState,
    caller: &Caller,
    device: &DeviceRef,
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
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// The longest firmware uuid or version looked up.
const MAX_FIRMWARE_REF_CHARS: usize = 255;

/// `{"uuid": …}`, or `{"version": …}` when exactly one firmware of the product has it.
async fn upgrade_firmware(
    state: &AppState,
    product_id: i64,
    fields: &UpgradeFields,
) -> Result<FirmwareRow, ApiError> {
    for (field, value) in [("uuid", &fields.uuid), ("version", &fields.version)] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().count() > MAX_FIRMWARE_REF_CHARS)
        {
            return Err(ApiError::invalid(
                field,
                format!("should be at most {MAX_FIRMWARE_REF_CHARS} character(s)"),
            ));
        }
    }
    match (
        fields.uuid.as_deref().map(str::trim),
        fields.version.as_deref().map(str::trim),
    ) {
        (Some(uuid), _) if !uuid.is_empty() => state
            .db
            .firmware_by_uuid(product_id, uuid)
            .await?
            .ok_or(ApiError::NotFound("firmware")),
        (_, Some(version)) if !version.is_empty() => {
            let mut matching: Vec<FirmwareRow> = state
                .db
                .firmwares(product_id)
                .await?
                .into_iter()
                .filter(|f| f.version == version)
                .collect();
            match matching.len() {
                0 => Err(ApiError::NotFound("firmware")),
                1 => Ok(matching.remove(0)),
                n => Err(ApiError::invalid(
                    "version",
                    format!("{n} firmwares have version {version}; name one by uuid"),
                )),
            }
        }
        _ => Err(ApiError::invalid("uuid", "can't be blank")),
    }
}

async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): DevicePath,
    Body(fields): Body<UpgradeFields>,
) -> Result<Response, ApiError> {
    let device = find_device(&state, &caller, &path).await?;
    let firmware = upgrade_firmware(&state, device.product_id, &fields).await?;
    let created = lifecycle::manual_upgrade(
        &state,
        lifecycle::User {
            id: caller.user.id,
            email: &caller.user.email,
        },
        lifecycle::DeviceRef {
            id: device.id,
            org_id: device.org_id,
            identifier: &device.identifier,
        },
        &firmware,
    )
    .await
    .map_err(|e| match e {
        FleetError::Offline => ApiError::Conflict(OFFLINE.into()),
        other => other.into(),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        super::data(json!({
            "id": created.id,
            "firmware_uuid": created.firmware_uuid,
            "firmware_version": created.firmware_version,
            "status": created.status,
        })),
    )
        .into_response())
}

/// `DELETE …/devices/{identifier}/penalty`: out of the penalty box, automatic updates on.
async fn clear_penalty(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): DevicePath,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (_, device) =
        super::devices::find(&state, membership.org.id, &product, &identifier).await?;
    crate::fleet::deployments::clear_penalty(
        &state,
        lifecycle::User {
            id: caller.user.id,
            email: &caller.user.email,
        },
        &device,
    )
    .await?;
    Ok(super::no_content())
}
