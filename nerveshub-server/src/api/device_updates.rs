//! `GET /api/orgs/{org}/products/{product}/devices/{identifier}/updates`: the firmware updates
//! pushed to a device (`upgrade`) and where each stands — requested, received, started,
//! updating, completed, failed (with the device's reason), ignored or rescheduled. An
//! addition; NervesHub shows this only in the web UI.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, Endpoint, Success, data, devices};
use crate::auth::{Caller, Role};
use crate::db::device_updates::DeviceUpdateRow;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get(
            "/orgs/{org}/products/{product}/devices/{identifier}/updates",
            "The updates pushed to a device and their status, oldest first",
        )
        .tag("device updates")
        .role(Role::View)
        .ok(Success::List("DeviceUpdateRecord")),
        list,
    )
}

/// The schemas of this module, for the OpenAPI document.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    vec![(
        // Not "DeviceUpdate": that name is the device PUT body (`devices.rs`).
        "DeviceUpdateRecord",
        json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "firmware_uuid": string, "firmware_version": string,
            "status": {"type": "string", "enum": ["requested", "received", "started", "updating",
                "completed", "failed", "ignored", "rescheduled", "interrupted", "expired",
                "undelivered"],
                "description": "`completed` while in flight: installed, waiting for the device to come back on it"},
            "progress": {"type": "integer"},
            "reason": {"type": "string", "nullable": true},
            "deployment": {"type": "string", "nullable": true,
                "description": "the deployment that sent it; null for a manual upgrade"},
            "in_flight": {"type": "boolean"},
            "inserted_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}}}),
    )]
}

fn update_json(row: &DeviceUpdateRow) -> Value {
    json!({
        "id": row.id,
        "firmware_uuid": row.firmware_uuid,
        "firmware_version": row.firmware_version,
        "status": row.status,
        "progress": row.progress,
        "reason": row.reason,
        "deployment": row.deployment,
        "in_flight": row.finished_at.is_none(),
        "inserted_at": iso8601_ms(row.inserted_at),
        "updated_at": iso8601_ms(row.updated_at),
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (_, device) = devices::find(&state, membership.org.id, &product, &identifier).await?;
    let rows = state.db.device_updates(device.id).await?;
    Ok(data(rows.iter().map(update_json).collect::<Vec<_>>()).into_response())
}
