//! `/api/orgs/{org}/products/{product}/firmwares`: upload (see [`super::firmware_upload`]),
//! list, show, delete and download (302 to a signed URL).

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::handler::Handler as _;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, Endpoint, Success, data, firmware_upload, no_content, products};
use crate::auth::{Caller, Role};
use crate::db::{self, Actor, Audit, FirmwareRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::DEFAULT_URL_TTL;

const COLLECTION: &str = "/orgs/{org}/products/{product}/firmwares";
const ONE: &str = "/orgs/{org}/products/{product}/firmwares/{uuid}";
const DOWNLOAD: &str = "/orgs/{org}/products/{product}/firmwares/{uuid}/download";

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get(COLLECTION, "The product's firmware")
            .tag("firmware")
            .role(Role::View)
            .ok(Success::List("Firmware")),
        list,
    )
    .route(
        Endpoint::post(
            COLLECTION,
            "Upload a .fw signed with one of the org's keys (multipart field `firmware`)",
        )
        .tag("firmware")
        .role(Role::Manage)
        .multipart()
        .ok(Success::Object(201, "Firmware"))
        .errors(&[413]),
        // The size limit is the server's --max-firmware-size, enforced while the body streams
        // in (firmware_upload), not axum's 2 MB default.
        firmware_upload::upload.layer(DefaultBodyLimit::disable()),
    )
    .route(
        Endpoint::get(ONE, "One firmware")
            .tag("firmware")
            .role(Role::View)
            .ok(Success::Object(200, "Firmware")),
        show,
    )
    .route(
        Endpoint::delete(ONE, "Delete a firmware no device update refers to")
            .tag("firmware")
            .role(Role::Manage)
            .ok(Success::NoContent)
            .errors(&[409]),
        remove,
    )
    .route(
        Endpoint::get(
            DOWNLOAD,
            "Redirect to an expiring download URL of the firmware",
        )
        .tag("firmware")
        .role(Role::View)
        .ok(Success::Redirect),
        download,
    )
}

/// The API's view of a firmware.
pub(super) fn firmware_json(firmware: &FirmwareRow) -> Value {
    json!({
        "uuid": firmware.uuid,
        "product": firmware.product,
        "version": firmware.version,
        "platform": firmware.platform,
        "architecture": firmware.architecture,
        "author": firmware.author,
        "description": firmware.description,
        "vcs_identifier": firmware.vcs_identifier,
        "misc": firmware.misc,
        "size": firmware.size,
        "checksum": firmware.checksum,
        "partials_checksums": firmware.partials_checksums,
        "tool": "fwup",
        "signing_key": firmware.signing_key,
        "inserted_at": crate::time::iso8601_ms(firmware.inserted_at),
    })
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    vec![(
        "Firmware",
        json!({
            "type": "object",
            "required": ["uuid", "product", "version", "platform", "architecture", "size", "checksum"],
            "properties": {
                "uuid": {"type": "string", "description": "meta-uuid"},
                "product": string,
                "version": {"type": "string", "description": "SemVer"},
                "platform": string,
                "architecture": string,
                "author": string,
                "description": string,
                "vcs_identifier": string,
                "misc": string,
                "size": {"type": "integer", "description": "bytes"},
                "checksum": {"type": "string", "description": "upper-case hex SHA-256 of the file"},
                "partials_checksums": {"type": "array", "items": string,
                    "description": "upper-case hex SHA-256 of each 1 MiB piece"},
                "tool": {"type": "string", "enum": ["fwup"]},
                "signing_key": {"type": "string", "nullable": true,
                    "description": "the name of the org signing key whose signature verified the file at upload"},
                "inserted_at": {"type": "string", "format": "date-time"},
            }
        }),
    )]
}

/// The firmware `uuid` of the product in the path (the route layer checked the caller's role).
async fn find(
    state: &AppState,
    caller: &Caller,
    product: &str,
    uuid: &str,
) -> Result<(crate::db::Membership, FirmwareRow), ApiError> {
    let membership = caller.membership()?;
    let product = products::find(state, membership.org.id, product).await?;
    let firmware = state
        .db
        .firmware_by_uuid(product.id, uuid)
        .await?
        .ok_or(ApiError::NotFound("firmware"))?;
    Ok((membership, firmware))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    let firmwares = state.db.firmwares(product.id).await?;
    Ok(data(firmwares.iter().map(firmware_json).collect::<Vec<_>>()).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, uuid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, firmware) = find(&state, &caller, &product, &uuid).await?;
    Ok(data(firmware_json(&firmware)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, uuid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (membership, firmware) = find(&state, &caller, &product, &uuid).await?;
    let in_use = || {
        ApiError::Conflict(format!(
            "firmware {uuid} is referenced by device updates and cannot be deleted"
        ))
    };
    let mut tx = state.db.begin().await?;
    if db::firmware_in_use(&mut tx, firmware.id).await? {
        return Err(in_use());
    }
    if let Err(e) = db::delete_firmware(&mut tx, firmware.id).await {
        // A device update inserted since the check above.
        if db::is_foreign_key_violation(&e) {
            return Err(in_use());
        }
        return Err(e.into());
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "firmware",
            resource_id: &firmware.uuid,
            action: "delete",
            description: format!(
                "{} deleted firmware {} ({} {}) from {}",
                caller.user.email,
                firmware.uuid,
                firmware.product,
                firmware.version,
                membership.org.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    // The row is gone, so nothing refers to the object any more. Should removing it fail,
    // the object is only unreachable garbage; the deletion itself has happened.
    if let Err(e) = state.storage.delete(&firmware.storage_key).await {
        tracing::warn!(key = %firmware.storage_key, error = %e, "could not remove a deleted firmware's object");
    }
    Ok(no_content())
}

async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, uuid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, firmware) = find(&state, &caller, &product, &uuid).await?;
    let url = state
        .storage
        .download_url(&firmware, DEFAULT_URL_TTL)
        .await
        .map_err(|e| ApiError::internal("making a download URL", e))?;
    let location = HeaderValue::from_str(&url)
        .map_err(|_| ApiError::bug("a download URL is not a valid header value"))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}
