//! `/api/orgs/{org}/products/{product}/devices`: devices, and `devices/auth` (which device owns
//! a certificate).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::{Api, Body, Endpoint, Success, created, data, no_content, products};
use crate::auth::{Caller, Role};
use crate::db::{
    self, Actor, Audit, DeviceFilter, DeviceRow, DeviceStatus, NewDevice, OnUnique, ProductRow,
};
use crate::device::TrustChange;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;

/// Devices per page when the caller does not say.
const DEFAULT_PAGE_SIZE: i64 = 50;
/// The largest page a caller may ask for.
const MAX_PAGE_SIZE: i64 = 100;
const MAX_IDENTIFIER_CHARS: usize = 255;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub(super) const MAX_TAGS: usize = 100;
pub(super) const MAX_TAG_CHARS: usize = 100;
/// Tags given as one comma-separated string: the most tags of the most characters, each
/// with a comma and a space.
pub(super) const MAX_TAGS_TEXT: usize = MAX_TAGS * (MAX_TAG_CHARS + 2);

const LIST_QUERY: &[(&str, &str)] = &[
    (
        "page",
        "1-based page number (also `pagination[page]`); default 1",
    ),
    (
        "page_size",
        "devices per page, 1 to 100 (also `pagination[page_size]`); default 50",
    ),
    (
        "identifier",
        "only devices whose identifier contains this, ignoring case (also `filters[identifier]`)",
    ),
    ("tag", "only devices with this tag (also `filters[tag]`)"),
    (
        "online",
        "`true`: only online devices (connected, or polling within two poll intervals); `false`: only the others (also `filters[online]`)",
    ),
    (
        "status",
        "only devices in this state (also `filters[status]`): `online`, `offline` (as `online=true`/`false`), `updating` (an update in flight), `penalty_box` (updates blocked until a time still ahead); anything else is 400",
    ),
];

pub(super) fn routes(api: Api) -> Api {
    const DEVICES: &str = "/orgs/{org}/products/{product}/devices";
    const DEVICE: &str = "/orgs/{org}/products/{product}/devices/{identifier}";
    api.route(
        Endpoint::get(DEVICES, "The product's devices, a page at a time")
            .tag("devices")
            .role(Role::View)
            .query(LIST_QUERY)
            .ok(Success::Page("Device"))
            .errors(&[400, 422]),
        list,
    )
    .route(
        Endpoint::post(DEVICES, "Create a device (identifiers are unique on the server)")
            .tag("devices")
            .role(Role::Manage)
            .body("DeviceCreate")
            .ok(Success::Object(201, "Device")),
        create,
    )
    .route(
        Endpoint::post(
            "/orgs/{org}/products/{product}/devices/auth",
            "The product's device that owns a certificate; 403 {\"status\":\"Unauthorized\"} when none does",
        )
        .tag("devices")
        .role(Role::View)
        .body("DeviceAuth")
        .ok(Success::Object(200, "Device")),
        auth,
    )
    .route(
        Endpoint::get(DEVICE, "One device")
            .tag("devices")
            .role(Role::View)
            .ok(Success::Object(200, "Device")),
        show,
    )
    .route(
        Endpoint::put(DEVICE, "Change a device's description, tags or updates flag")
            .tag("devices")
            .role(Role::Manage)
            .body("DeviceUpdate")
            .ok(Success::Object(200, "Device")),
        update,
    )
    .route(
        Endpoint::delete(
            DEVICE,
            "Delete a device with its certificates and shared secrets",
        )
        .tag("devices")
        .role(Role::Manage)
        .ok(Success::NoContent),
        remove,
    )
}

/// A device as NervesHub shows it on the API.
pub(crate) fn device_json(device: &DeviceRow) -> Value {
    let firmware_metadata = device.firmware_metadata_json();
    let version = firmware_metadata
        .as_ref()
        .and_then(|meta| meta.get("version"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    json!({
        "identifier": device.identifier,
        "description": device.description,
        "tags": device.tags,
        "online": device.online(),
        "connection_status": device.connection_status.as_str(),
        "last_communication": device.connection_last_seen_at.and_then(iso8601_ms),
        "firmware_metadata": firmware_metadata,
        "version": version,
        "updates_enabled": device.updates_enabled,
        "updates_blocked_until": device.updates_blocked_until.and_then(iso8601_ms),
        "in_penalty_box": device.in_penalty_box(),
        "updating": device.updating(),
        "connection": {
            "remote_address": device.connection_remote_address,
            "auth": device.connection_auth,
        },
        "deployment_group": deployment_group(device),
        "org_name": device.org_name,
        "product_name": device.product_name,
    })
}

/// The device's deployment as NervesHub shows it (`deployment_group`), or `null`.
fn deployment_group(device: &DeviceRow) -> Value {
    match (&device.deployment_name, &device.deployment_firmware_uuid) {
        (Some(name), Some(uuid)) => json!({
            "name": name,
            "is_active": device.deployment_is_active == Some(1),
            "firmware_uuid": uuid,
            "firmware_version": device.deployment_firmware_version,
        }),
        _ => Value::Null,
    }
}

/// Writes the audit row of a change `caller` made in `org_id`.
pub(super) async fn audit_change(
    conn: &mut AnyConnection,
    org_id: i64,
    caller: &Caller,
    resource: (&str, &str),
    action: &str,
    description: String,
) -> Result<(), ApiError> {
    db::audit(
        conn,
        Audit {
            org_id: Some(org_id),
            actor: Actor::User(caller.user.id),
            resource_type: resource.0,
            resource_id: resource.1,
            action,
            description,
        },
    )
    .await?;
    Ok(())
}

/// The product `product` of the org the caller reached, and its device `identifier`, or 404.
pub(super) async fn find(
    state: &AppState,
    org_id: i64,
    product: &str,
    identifier: &str,
) -> Result<(ProductRow, DeviceRow), ApiError> {
    let product = products::find(state, org_id, product).await?;
    let device = state
        .db
        .device(product.id, identifier)
        .await?
        .ok_or(ApiError::NotFound("device"))?;
    Ok((product, device))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(alias = "pagination[page]")]
    page: Option<String>,
    #[serde(alias = "pagination[page_size]")]
    page_size: Option<String>,
    #[serde(alias = "filters[identifier]")]
    identifier: Option<String>,
    #[serde(alias = "filters[tag]")]
    tag: Option<String>,
    #[serde(alias = "filters[online]")]
    online: Option<String>,
    #[serde(alias = "filters[status]")]
    status: Option<String>,
}

fn parse_in_range(
    field: &str,
    text: Option<&str>,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.trim().parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            field,
            format!("must be an integer from 1 to {max}"),
        )),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = parse_in_range("page", query.page.as_deref(), 1, i64::from(u32::MAX))?;
    let page_size = parse_in_range(
        "page_size",
        query.page_size.as_deref(),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
    )?;
    let online = match query.online.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid("online", "must be true or false")),
    };
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("online") => Some(DeviceStatus::Online),
        Some("offline") => Some(DeviceStatus::Offline),
        Some("updating") => Some(DeviceStatus::Updating),
        Some("penalty_box") => Some(DeviceStatus::PenaltyBox),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "status must be one of online, offline, updating, penalty_box".into(),
            ));
        }
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let filter = DeviceFilter {
        identifier: non_empty(query.identifier),
        tag: non_empty(query.tag),
        online,
        status,
    };
    let (devices, total) = state
        .db
        .devices_page(product.id, &filter, page, page_size)
        .await?;
    let total_pages = (total + page_size - 1) / page_size;
    Ok(Json(json!({
        "data": devices.iter().map(device_json).collect::<Vec<_>>(),
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total_pages": total_pages,
            "total_entries": total,
        }
    }))
    .into_response())
}

/// Checks a device identifier: 1 to 255 characters, none of them white space, control
/// characters or the URL delimiters `/ ? # %` (it appears in paths and as a certificate
/// common name), and not `auth`.
fn check_identifier(identifier: &str) -> Result<(), ApiError> {
    if identifier.is_empty() {
        return Err(ApiError::invalid("identifier", "can't be blank"));
    }
    if identifier.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(ApiError::invalid(
            "identifier",
            format!("should be at most {MAX_IDENTIFIER_CHARS} character(s)"),
        ));
    }
    if identifier
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%' | '\\'))
    {
        return Err(ApiError::invalid(
            "identifier",
            "has invalid format (no spaces, control characters or / ? # % \\)",
        ));
    }
    if identifier == "." || identifier == ".." {
        return Err(ApiError::invalid("identifier", "can't be '.' or '..'"));
    }
    if identifier == "auth" {
        // `…/devices/auth` is the certificate lookup; a device of that name could not be
        // reached by its own path.
        return Err(ApiError::invalid("identifier", "is reserved"));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "description",
            format!("should be at most {MAX_DESCRIPTION_CHARS} character(s)"),
        ));
    }
    Ok(())
}

/// Reads tags given as a JSON array of strings or as one comma-separated string (as
/// NervesHub's forms take them), checks them (no spaces, no `"` `\` `,` or control
/// characters, at most 100 of at most 100 characters) and drops repeats.
pub(super) fn parse_tags(field: &str, value: &Value) -> Result<Vec<String>, ApiError> {
    let raw: Vec<String> = match value {
        Value::Null => Vec::new(),
        Value::String(text) if text.chars().count() > MAX_TAGS_TEXT => {
            return Err(ApiError::invalid(
                field,
                format!("should be at most {MAX_TAGS_TEXT} character(s)"),
            ));
        }
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid(field, "must be a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::invalid(field, "must be a list of strings")),
    };
    if raw.len() > MAX_TAGS {
        return Err(ApiError::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    let mut tags: Vec<String> = Vec::with_capacity(raw.len());
    for tag in raw {
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(ApiError::invalid(
                field,
                format!("each tag has 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
        if tag.chars().any(char::is_whitespace) {
            return Err(ApiError::invalid(field, "tags cannot contain spaces"));
        }
        if tag
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\\' | ','))
        {
            return Err(ApiError::invalid(
                field,
                "tags cannot contain control characters, quotes, backslashes or commas",
            ));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

#[derive(Debug, Deserialize)]
struct DeviceCreate {
    identifier: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Value,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
    Body(new): Body<DeviceCreate>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    check_identifier(&new.identifier)?;
    let description = new.description.unwrap_or_default();
    check_description(&description)?;
    let tags = parse_tags("tags", &new.tags)?;
    let mut tx = state.db.begin().await?;
    let new_device = NewDevice {
        org_id: membership.org.id,
        product_id: product.id,
        identifier: &new.identifier,
        description: &description,
        tags: &tags,
    };
    let id = db::insert_device(&mut tx, &new_device)
        .await
        .on_unique(|| ApiError::invalid("identifier", "has already been taken"))?;
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("device", &new.identifier),
        "create",
        format!(
            "{} created device {} in product {}",
            caller.user.email, new.identifier, product.name
        ),
    )
    .await?;
    let device = db::device_by_id_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::bug("device vanished inside its own transaction"))?;
    tx.commit().await?;
    Ok(created(device_json(&device)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (_, device) = find(&state, membership.org.id, &product, &identifier).await?;
    Ok(data(device_json(&device)).into_response())
}

#[derive(Debug, Deserialize)]
struct DeviceUpdate {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    updates_enabled: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
    Body(changes): Body<DeviceUpdate>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (product, device) = find(&state, membership.org.id, &product, &identifier).await?;
    let description = changes.description.unwrap_or(device.description.clone());
    check_description(&description)?;
    let tags = match &changes.tags {
        Some(value) => parse_tags("tags", value)?,
        None => device.tags.clone(),
    };
    let updates_enabled = changes.updates_enabled.unwrap_or(device.updates_enabled);
    let mut tx = state.db.begin().await?;
    db::update_device(&mut tx, device.id, &description, &tags, updates_enabled).await?;
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("device", &identifier),
        "update",
        format!(
            "{} updated device {identifier} in product {} (tags {:?}, updates {})",
            caller.user.email,
            product.name,
            tags,
            if updates_enabled {
                "enabled"
            } else {
                "disabled"
            }
        ),
    )
    .await?;
    let device = db::device_by_id_in(&mut tx, device.id)
        .await?
        .ok_or_else(|| ApiError::bug("device vanished inside its own transaction"))?;
    tx.commit().await?;
    // Turning updates on (or new tags) may make the device a rollout candidate.
    if let Some(id) = device.deployment_id {
        state.fleet.trigger(id);
    }
    Ok(data(device_json(&device)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (product, device) = find(&state, membership.org.id, &product, &identifier).await?;
    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    let fingerprints = db::delete_device_certificates(&mut tx, device.id).await?;
    db::delete_device(&mut tx, device.id).await?;
    tx.changes(TrustChange::DeviceRemoved {
        identifier: identifier.clone(),
        fingerprints,
    });
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("device", &identifier),
        "delete",
        format!(
            "{} deleted device {identifier} from product {}",
            caller.user.email, product.name
        ),
    )
    .await?;
    // The device endpoint trusts what is stored now, and a deleted device's socket closes.
    tx.commit().await?;
    let _ = state.devices.disconnect(device.id, "device deleted").await;
    Ok(no_content())
}

#[derive(Debug, Deserialize)]
struct DeviceAuth {
    certificate: String,
}

async fn auth(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
    Body(body): Body<DeviceAuth>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    let unauthorized = || {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"status": "Unauthorized"})),
        )
            .into_response()
    };
    // As NervesHub: anything but a certificate of one of this product's devices is refused
    // the same way, an unreadable certificate included.
    let Ok(cert) = super::certificates::decode_certificate("certificate", &body.certificate) else {
        return Ok(unauthorized());
    };
    let Some(stored) = state
        .db
        .device_certificate_by_fingerprint(cert.fingerprint())
        .await?
    else {
        return Ok(unauthorized());
    };
    match state.db.device_by_id(stored.device_id).await? {
        Some(device) if device.product_id == product.id => {
            Ok(data(device_json(&device)).into_response())
        }
        _ => Ok(unauthorized()),
    }
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": "string", "nullable": true});
    let tags = json!({"type": "array", "maxItems": MAX_TAGS,
        "items": {"type": "string", "maxLength": MAX_TAG_CHARS, "pattern": "^[^\\s\",\\\\]+$"}});
    let description = json!({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS});
    let tags_text = json!({"type": "string", "maxLength": MAX_TAGS_TEXT});
    vec![
        (
            "Device",
            json!({"type": "object",
            "required": ["identifier", "description", "tags", "online", "connection_status",
                         "last_communication", "firmware_metadata", "version",
                         "updates_enabled", "updates_blocked_until", "in_penalty_box",
                         "updating", "connection", "deployment_group",
                         "org_name", "product_name"],
            "properties": {
                "identifier": string,
                "description": string,
                "tags": tags,
                "online": {"type": "boolean"},
                "connection_status": {"type": "string",
                    "enum": ["not_seen", "connecting", "connected", "disconnected"]},
                "last_communication": {"type": "string", "format": "date-time", "nullable": true},
                "firmware_metadata": {"type": "object", "nullable": true},
                "version": nullable_string,
                "updates_enabled": {"type": "boolean"},
                "updates_blocked_until": {"type": "string", "format": "date-time", "nullable": true,
                    "description": "the end of the device's penalty box"},
                "in_penalty_box": {"type": "boolean",
                    "description": "updates_blocked_until is still ahead"},
                "updating": {"type": "boolean", "description": "an update is in flight"},
                "connection": {"type": "object", "required": ["remote_address", "auth"],
                    "description": "the device's current (or last) socket connection, as its join recorded it; nulls before the first (polls do not change it)",
                    "properties": {
                        "remote_address": {"type": "string", "nullable": true,
                            "description": "the peer's `ip:port` (`[v6]:port` for IPv6)"},
                        "auth": {"type": "string", "nullable": true,
                            "enum": ["certificate", "shared_secret"]}}},
                "deployment_group": {"type": "object", "nullable": true, "properties": {
                    "name": string, "is_active": {"type": "boolean"},
                    "firmware_uuid": string, "firmware_version": string}},
                "org_name": string,
                "product_name": string,
            }}),
        ),
        (
            "DeviceCreate",
            json!({"type": "object", "required": ["identifier"], "properties": {
                "identifier": {"type": "string", "maxLength": MAX_IDENTIFIER_CHARS,
                    "description": "unique on the server; no spaces or / ? # % \\"},
                "description": description,
                "tags": {"description": "a list of tags, or one comma-separated string",
                         "oneOf": [tags, tags_text]},
            }}),
        ),
        (
            "DeviceUpdate",
            json!({"type": "object", "properties": {
                "description": description,
                "tags": {"oneOf": [tags, tags_text]},
                "updates_enabled": {"type": "boolean"},
            }}),
        ),
        (
            "DeviceAuth",
            json!({"type": "object", "required": ["certificate"], "properties": {
                "certificate": {"type": "string", "maxLength": super::certificates::MAX_CERT_FIELD,
                    "description": "base64 of the certificate's PEM"},
            }}),
        ),
    ]
}
