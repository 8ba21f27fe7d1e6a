//! `/api/orgs/{org}/audit_logs`: what changed in an org, who changed it and when (an addition;
//! NervesHub shows its audit log only in the web UI).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Endpoint, Success, data};
use crate::auth::{Caller, Role};
use crate::db::AuditFilter;
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
        .query(&[
            ("limit", "how many entries, 1 to 1000 (default 100)"),
            (
                "resource_type",
                "only entries about this kind of resource (`device`, `firmware`, `deployment`, `user_token`…; exact)",
            ),
            ("action", "only entries of this action (`create`, `update`, `delete`…; exact)"),
            (
                "before",
                "an entry's `id`: only entries older than it (the next page: the last `id` of the previous one)",
            ),
        ])
        .ok(Success::List("AuditLog"))
        .errors(&[400]),
        list,
    )
}

pub(super) fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![(
        "AuditLog",
        json!({"type": "object", "properties": {
            "id": {"type": "integer", "description": "increasing; pass as `before` to page"},
            "actor_type": {"type": "string", "enum": ["user", "device", "system"]},
            "actor": {"type": "string", "nullable": true},
            "resource_type": {"type": "string"}, "resource_id": {"type": "string"},
            "action": {"type": "string"}, "description": {"type": "string"},
            "inserted_at": {"type": "string", "format": "date-time"}}}),
    )]
}

/// The longest `resource_type` or `action` filter: longer than any the server writes.
const MAX_FILTER_CHARS: usize = 100;

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    resource_type: Option<String>,
    action: Option<String>,
    before: Option<String>,
}

/// An exact-match filter: absent or empty means none; otherwise 1 to 100 characters of
/// letters, digits, `_`, `-` and `.` (what resource types and actions are made of).
fn word_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_FILTER_CHARS
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1 to {MAX_FILTER_CHARS} letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(Some(value))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref().map(str::trim) {
        None | Some("") => 100,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            Ok(_) => return Err(ApiError::invalid("limit", "must be between 1 and 1000")),
            Err(_) => {
                return Err(ApiError::BadRequest(
                    "limit must be an integer from 1 to 1000".into(),
                ));
            }
        },
    };
    let before = match query.before.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(ApiError::BadRequest(
                    "before must be an audit-log entry id (a positive integer)".into(),
                ));
            }
        },
    };
    let filter = AuditFilter {
        resource_type: word_filter("resource_type", query.resource_type)?,
        action: word_filter("action", query.action)?,
        before,
    };
    let rows = state
        .db
        .org_audit_log(membership.org.id, &filter, limit)
        .await?;
    let rows: Vec<_> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.id,
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
