//! `/api/orgs/{org}/products/{product}/deployments`: NervesHub's deployment groups — create,
//! list, show, update (`{"deployment": {…}}`; a `firmware` makes a new release), delete, their
//! releases, manual membership, and `…/status` (how the rollout stands). Handlers parse,
//! authorize, call [`crate::fleet`] and shape the answer.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, Body, Endpoint, Success, created, data, devices, no_content, products};
use crate::auth::{Caller, Role};
use crate::db::{DeploymentRow, ProductRow};
use crate::error::ApiError;
use crate::fleet::deployments::{self as fd, DeploymentFields, MemberState};
use crate::fleet::lifecycle::User;
use crate::fleet::{FleetError, rules};
use crate::state::AppState;
use crate::time::iso8601_ms;

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::NotFound(what) => ApiError::NotFound(what),
            FleetError::Invalid { field, message } => ApiError::invalid(field, message),
            FleetError::Offline => ApiError::Conflict("device is offline".into()),
            FleetError::Storage(e) => ApiError::internal("firmware URL", e),
            FleetError::Database(e) => e.into(),
        }
    }
}

const DEPLOYMENTS: &str = "/orgs/{org}/products/{product}/deployments";
const MEMBERS_QUERY: &[(&str, &str)] = &[
    ("page", "1-based page number; default 1"),
    ("page_size", "devices per page, 1 to 100; default 50"),
    (
        "state",
        "only devices in this rollout state: up_to_date, in_flight, failed, penalty_box, updates_disabled, offline, pending; anything else is 400",
    ),
];
const DEPLOYMENT: &str = "/orgs/{org}/products/{product}/deployments/{name}";

pub(super) fn routes(api: Api) -> Api {
    let ep = |e: Endpoint| e.tag("deployments");
    api.route(
        ep(Endpoint::get(DEPLOYMENTS, "The product's deployments"))
            .role(Role::View)
            .ok(Success::List("Deployment")),
        list,
    )
    .route(
        ep(Endpoint::post(
            DEPLOYMENTS,
            "Create a deployment (off until switched on) with its first release",
        ))
        .role(Role::Manage)
        .body("DeploymentCreate")
        .ok(Success::Object(201, "Deployment"))
        .errors(&[422]),
        create,
    )
    .route(
        ep(Endpoint::get(DEPLOYMENT, "One deployment"))
            .role(Role::View)
            .ok(Success::Object(200, "Deployment")),
        show,
    )
    .route(
        ep(Endpoint::put(
            DEPLOYMENT,
            "Change a deployment: a firmware makes a new release, other fields change settings; switching it on lifts a halt",
        ))
        .role(Role::Manage)
        .body("DeploymentUpdate")
        .ok(Success::Object(200, "Deployment"))
        .errors(&[422]),
        update,
    )
    .route(
        ep(Endpoint::delete(
            DEPLOYMENT,
            "Delete a deployment; its devices stay, without one",
        ))
        .role(Role::Manage)
        .ok(Success::NoContent),
        remove,
    )
    .route(
        ep(Endpoint::get(
            "/orgs/{org}/products/{product}/deployments/{name}/releases",
            "A deployment's releases, newest first",
        ))
        .role(Role::View)
        .ok(Success::List("DeploymentRelease")),
        releases,
    )
    .route(
        ep(Endpoint::get(
            "/orgs/{org}/products/{product}/deployments/{name}/status",
            "How the rollout stands: devices by state, the release's progress, halt and failing devices",
        ))
        .role(Role::View)
        .ok(Success::Object(200, "DeploymentStatus")),
        status,
    )
    .route(
        ep(Endpoint::get(
            "/orgs/{org}/products/{product}/deployments/{name}/devices",
            "The devices in the deployment now, by identifier, each with its rollout state, a page at a time",
        ))
        .role(Role::View)
        .query(MEMBERS_QUERY)
        .ok(Success::Page("DeploymentMember"))
        .errors(&[400, 422]),
        members,
    )
    .route(
        ep(Endpoint::post(
            "/orgs/{org}/products/{product}/deployments/{name}/devices",
            "Put devices into the deployment by hand (all or none)",
        ))
        .role(Role::Manage)
        .body("DeploymentAssign")
        .ok(Success::List("Device"))
        .errors(&[422]),
        assign,
    )
    .route(
        ep(Endpoint::delete(
            "/orgs/{org}/products/{product}/deployments/{name}/devices/{identifier}",
            "Take a device out of the deployment",
        ))
        .role(Role::Manage)
        .ok(Success::NoContent),
        unassign,
    )
}

fn user(caller: &Caller) -> User<'_> {
    User {
        id: caller.user.id,
        email: &caller.user.email,
    }
}

/// The deployment as NervesHub shows it, plus `status` and the halt fields.
fn deployment_json(d: &DeploymentRow, device_count: i64, releases_count: i64) -> Value {
    let conditions = fd::conditions_of(d);
    let release_tags: Vec<String> = serde_json::from_str(&d.release_tags).unwrap_or_default();
    let halted = d.halted_at.is_some();
    json!({
        "name": d.name,
        "is_active": d.is_active != 0,
        "state": if d.is_active != 0 { "on" } else { "off" },
        "status": if halted { "halted" } else { "ready" },
        "halted_at": d.halted_at.and_then(iso8601_ms),
        "halt_reason": d.halt_reason,
        "firmware_uuid": d.firmware_uuid,
        "platform": d.platform,
        "architecture": d.architecture,
        "current_release": {
            "number": d.release_number,
            "firmware": {
                "uuid": d.firmware_uuid,
                "version": d.firmware_version,
                "platform": d.firmware_platform,
                "architecture": d.firmware_architecture,
            },
            "inserted_at": iso8601_ms(d.release_inserted_at),
            "updated_at": iso8601_ms(d.release_inserted_at),
        },
        "archive_uuid": Value::Null,
        "conditions": {
            "version": conditions.version,
            "tags": conditions.tags,
            "tag_operator": match conditions.tag_operator {
                rules::TagOperator::And => "and",
                rules::TagOperator::Or => "or",
            },
        },
        "delta_updatable": false,
        "concurrent_updates": d.concurrent_updates,
        "queue_management": d.queue_management,
        "priority_queue_enabled": d.priority_queue_enabled != 0,
        "priority_queue_concurrent_updates": d.priority_queue_concurrent_updates,
        "priority_queue_firmware_version_threshold": d.priority_queue_firmware_version_threshold,
        "release_tags": release_tags,
        "lock_device_membership": d.lock_device_membership != 0,
        "device_failure_threshold": d.device_failure_threshold,
        "device_failure_rate_seconds": d.device_failure_rate_seconds,
        "device_failure_rate_amount": d.device_failure_rate_amount,
        "penalty_timeout_minutes": d.penalty_timeout_minutes,
        "require_validated": d.require_validated != 0,
        "health_timeout_minutes": d.health_timeout_minutes,
        "halt_failure_rate": d.halt_failure_rate,
        "halt_window": d.halt_window,
        "device_count": device_count,
        "releases_count": releases_count,
        "notes": d.notes,
        "inserted_at": iso8601_ms(d.inserted_at),
        "updated_at": iso8601_ms(d.updated_at),
    })
}

async fn full_json(state: &AppState, d: &DeploymentRow) -> Result<Value, ApiError> {
    let devices = state.db.deployment_device_count(d.id).await?;
    Ok(deployment_json(d, devices, d.release_number))
}

/// The product and its deployment `name` (the route layer checked the caller's role), or 404.
async fn find(
    state: &AppState,
    caller: &Caller,
    (product, name): (&str, &str),
) -> Result<(ProductRow, DeploymentRow), ApiError> {
    let membership = caller.membership()?;
    let product = products::find(state, membership.org.id, product).await?;
    let deployment = state
        .db
        .deployment(product.id, name)
        .await?
        .ok_or(ApiError::NotFound("deployment"))?;
    Ok((product, deployment))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    let mut out = Vec::new();
    for d in state.db.deployments(product.id).await? {
        out.push(full_json(&state, &d).await?);
    }
    Ok(data(out).into_response())
}

/// A create body: the fields at the top level, or inside `deployment` as updates send them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CreateBody {
    Wrapped { deployment: DeploymentFields },
    Flat(DeploymentFields),
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
    Body(body): Body<CreateBody>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let product = products::find(&state, membership.org.id, &product).await?;
    let fields = match body {
        CreateBody::Wrapped { deployment } => deployment,
        CreateBody::Flat(fields) => fields,
    };
    let d = fd::create(&state, user(&caller), &product, &fields).await?;
    Ok(created(full_json(&state, &d).await?))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    Ok(data(full_json(&state, &d).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    deployment: DeploymentFields,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
    Body(body): Body<UpdateBody>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    let d = fd::update(&state, user(&caller), &d, &body.deployment).await?;
    Ok(data(full_json(&state, &d).await?).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    fd::delete(&state, user(&caller), &d).await?;
    Ok(no_content())
}

async fn releases(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    let rows = state.db.releases(d.id).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "number": r.number,
                "firmware": {
                    "uuid": r.firmware_uuid,
                    "version": r.firmware_version,
                    "platform": r.platform,
                    "architecture": r.architecture,
                },
                "created_by": r.created_by,
                "inserted_at": iso8601_ms(r.inserted_at),
            })
        })
        .collect();
    Ok(data(out).into_response())
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    let s = fd::status(&state, &d).await?;
    let total = s.counts.total;
    let percent = (s.counts.up_to_date * 100)
        .checked_div(total)
        .unwrap_or(100);
    Ok(data(json!({
        "name": d.name,
        "is_active": d.is_active != 0,
        "status": if d.halted_at.is_some() { "halted" } else { "ready" },
        "halted_at": d.halted_at.and_then(iso8601_ms),
        "halt_reason": d.halt_reason,
        "release": {
            "number": d.release_number,
            "firmware_uuid": d.firmware_uuid,
            "firmware_version": d.firmware_version,
            "percent_complete": percent,
        },
        "devices": s.counts,
        "in_flight": s.in_flight.iter().map(|(identifier, status, progress)| json!({
            "identifier": identifier, "status": status, "progress": progress,
        })).collect::<Vec<_>>(),
        "failing_devices": s.failing_devices.iter().map(|(identifier, reason)| json!({
            "identifier": identifier, "reason": reason,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct MembersQuery {
    page: Option<String>,
    page_size: Option<String>,
    state: Option<String>,
}

/// `1..=max` from `text`, `default` when absent.
fn page_number(
    field: &str,
    text: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                field,
                format!("must be an integer from 1 to {max}"),
            )),
        },
    }
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
    query: Result<Query<MembersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = page_number("page", query.page.as_deref(), 1, u32::MAX as usize)?;
    let page_size = page_number("page_size", query.page_size.as_deref(), 50, 100)?;
    let wanted = match query.state.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(MemberState::parse(text).ok_or_else(|| {
            ApiError::BadRequest(
                "state must be one of up_to_date, in_flight, failed, penalty_box, updates_disabled, offline, pending".into(),
            )
        })?),
    };
    let members: Vec<_> = fd::members(&state, &d)
        .await?
        .into_iter()
        .filter(|(_, s)| wanted.is_none_or(|w| w == *s))
        .collect();
    let total = members.len();
    let rows: Vec<Value> = members
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(m, s)| {
            json!({
                "identifier": m.identifier,
                "state": s.as_str(),
                "firmware_uuid": m.firmware_uuid,
                "connection_status": m.connection_status.as_str(),
                "updates_enabled": m.updates_enabled,
                "updates_blocked_until": m.updates_blocked_until.and_then(iso8601_ms),
                "update": m.in_flight.as_ref().map(|status| json!({
                    "status": status, "progress": m.in_flight_progress.unwrap_or(0),
                })),
                "last_outcome": m.last_outcome,
            })
        })
        .collect();
    Ok(Json(json!({
        "data": rows,
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total_pages": total.div_ceil(page_size),
            "total_entries": total,
        }
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct AssignBody {
    identifiers: Vec<String>,
}

async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name)): Path<(String, String, String)>,
    Body(body): Body<AssignBody>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    let rows = fd::assign(&state, user(&caller), &d, &body.identifiers).await?;
    Ok(data(rows.iter().map(devices::device_json).collect::<Vec<_>>()).into_response())
}

async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, name, identifier)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, d) = find(&state, &caller, (&product, &name)).await?;
    fd::unassign(&state, user(&caller), &d, &identifier).await?;
    Ok(no_content())
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    let bounded = |max: usize| json!({"type": "string", "maxLength": max});
    let int = json!({"type": "integer"});
    let boolean = json!({"type": "boolean"});
    let tags = json!({"type": "array", "maxItems": 100,
        "items": {"type": "string", "minLength": 1, "maxLength": 100}});
    let conditions = json!({"type": "object", "properties": {
        "version": {"type": "string", "maxLength": fd::MAX_VERSION_CHARS,
            "description": "an Elixir version requirement (~>, ==, >=, and/or), empty for any"},
        "tags": {"oneOf": [tags, {"type": "string", "maxLength": fd::MAX_TAGS_TEXT_CHARS,
            "description": "comma-separated"}]},
        "tag_operator": {"type": "string", "enum": ["and", "or"]}}});
    let settings = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "firmware": {"type": "string", "maxLength": fd::MAX_FIRMWARE_CHARS,
            "description": "a firmware uuid of the product"},
        "conditions": conditions, "is_active": boolean,
        "state": {"type": "string", "enum": ["on", "off"]},
        "concurrent_updates": int, "queue_management": {"type": "string", "enum": ["FIFO", "LIFO"]},
        "priority_queue_enabled": boolean, "priority_queue_concurrent_updates": int,
        "priority_queue_firmware_version_threshold": {"type": "string", "nullable": true,
            "maxLength": fd::MAX_VERSION_CHARS},
        "release_tags": tags, "lock_device_membership": boolean,
        "device_failure_threshold": int, "device_failure_rate_seconds": int,
        "device_failure_rate_amount": int, "penalty_timeout_minutes": int,
        "require_validated": boolean, "health_timeout_minutes": int,
        "halt_failure_rate": {"type": "integer", "nullable": true, "description": "percent of halt_window; null: off"},
        "halt_window": int, "notes": bounded(10_000),
        "platform": bounded(fd::MAX_PLATFORM_CHARS),
        "architecture": bounded(fd::MAX_PLATFORM_CHARS),
    });
    let counts = json!({"type": "object", "properties": {
        "total": int, "up_to_date": int, "pending": int, "in_flight": int, "failed": int,
        "penalty_box": int, "offline": int, "updates_disabled": int}});
    vec![
        (
            "Deployment",
            json!({"type": "object", "properties": {
                "name": string, "is_active": boolean, "state": string,
                "status": {"type": "string", "enum": ["ready", "halted"]},
                "halted_at": {"type": "string", "format": "date-time", "nullable": true},
                "halt_reason": {"type": "string", "nullable": true},
                "firmware_uuid": string, "current_release": {"type": "object"},
                "conditions": conditions, "device_count": int, "releases_count": int,
                "concurrent_updates": int, "queue_management": string,
                "halt_failure_rate": {"type": "integer", "nullable": true}, "halt_window": int,
                "notes": string}}),
        ),
        (
            "DeploymentCreate",
            json!({"type": "object", "required": ["name", "firmware"], "properties": settings}),
        ),
        (
            "DeploymentUpdate",
            json!({"type": "object", "required": ["deployment"], "properties": {
                "deployment": {"type": "object", "properties": settings}}}),
        ),
        (
            "DeploymentRelease",
            json!({"type": "object", "properties": {
                "number": int, "firmware": {"type": "object"},
                "created_by": {"type": "string", "nullable": true},
                "inserted_at": {"type": "string", "format": "date-time"}}}),
        ),
        (
            "DeploymentStatus",
            json!({"type": "object", "properties": {
                "name": string, "is_active": boolean,
                "status": {"type": "string", "enum": ["ready", "halted"]},
                "halt_reason": {"type": "string", "nullable": true},
                "release": {"type": "object"}, "devices": counts,
                "in_flight": {"type": "array", "items": {"type": "object"}},
                "failing_devices": {"type": "array", "items": {"type": "object", "properties": {
                    "identifier": string, "reason": {"type": "string", "nullable": true}}}}}}),
        ),
        (
            "DeploymentMember",
            json!({"type": "object",
                "required": ["identifier", "state", "firmware_uuid", "connection_status",
                             "updates_enabled", "updates_blocked_until", "update", "last_outcome"],
                "properties": {
                "identifier": string,
                "state": {"type": "string", "enum": ["up_to_date", "in_flight", "failed",
                    "penalty_box", "updates_disabled", "offline", "pending"],
                    "description": "first match in this order; the same buckets as the status counts"},
                "firmware_uuid": {"type": "string", "nullable": true,
                    "description": "the firmware the device last reported"},
                "connection_status": string,
                "updates_enabled": boolean,
                "updates_blocked_until": {"type": "string", "format": "date-time", "nullable": true},
                "update": {"type": "object", "nullable": true, "description": "the update in flight",
                    "properties": {"status": string, "progress": int}},
                "last_outcome": {"type": "string", "nullable": true,
                    "description": "how the device's last finished update of this deployment ended (completed, failed, ignored…)"}}}),
        ),
        (
            "DeploymentAssign",
            json!({"type": "object", "required": ["identifiers"], "properties": {
                "identifiers": {"type": "array", "maxItems": fd::MAX_ASSIGN,
                    "items": bounded(fd::MAX_IDENTIFIER_CHARS)}}}),
        ),
    ]
}
