//! `/api/orgs/{org}/audit_logs`: what changed in an org, who changed it and when (an addition;
//! NervesHub shows its audit log only in the web UI).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Endpoint, Success, data};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get(
            "/orgs/{org}/audit_logs",
            "The org's audit log, newest first",
        )
        .tag("audit log")
        .role(Role::View)
        .query(&[("limit", "how many entries, 1 to 1000 (default 100)")])
        .ok(Success::List("AuditLog")),
        list,
    )
}

pub(super) fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![(
        "AuditLog",
        json!({"type": "object", "properties": {
            "actor_type": {"type": "string", "enum": ["user", "device", "system"]},
            "actor": {"type": "string", "nullable": true},
            "resource_type": {"type": "string"}, "resource_id": {"type": "string"},
            "action": {"type": "string"}, "description": {"type": "string"},
            "inserted_at": {"type": "string", "format": "date-time"}}}),
    )]
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<Limit>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let rows = state.db.org_audit_log(membership.org.id, limit).await?;
    let rows: Vec<_> = rows
        .iter()
        .map(|row| {
            json!({
                "actor_type": row.actor_type,
                "actor": row.actor_id.map(|id| id.to_string()),
                "resource_type": row.resource_type,
                "resource_id": row.resource_id,
                "action": row.action,
                "description": row.description,
                "inserted_at": iso8601_ms(row.inserted_at),
            })
        })
        .collect();
    Ok(data(rows).into_response())
}
