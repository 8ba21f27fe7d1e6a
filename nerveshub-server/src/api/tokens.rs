//! `/api/users/me/tokens`: the signed-in user's API tokens. `GET` lists them (never a hash or
//! the token text), `POST` issues one (its text shown once, as sign-in does), `DELETE
//! …/{id}` revokes one of the caller's own — the one in use included.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::MAX_NOTE_CHARS;
use super::{Api, Body, Endpoint, Success, check_text, created, data, no_content};
use crate::auth::{self, Caller};
use crate::db::{self, Actor, Audit, TokenRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get(
            "/users/me/tokens",
            "The signed-in user's API tokens, newest first (never the token text)",
        )
        .tag("users")
        .ok(Success::List("ApiToken")),
        list,
    )
    .route(
        Endpoint::post(
            "/users/me/tokens",
            "Issue a new API token for the signed-in user; its text is shown only in this answer",
        )
        .tag("users")
        .body("ApiTokenCreate")
        .ok(Success::Object(201, "NewApiToken")),
        create,
    )
    .route(
        Endpoint::delete(
            "/users/me/tokens/{id}",
            "Revoke one of the signed-in user's API tokens (the one in use too); another user's is 404",
        )
        .tag("users")
        .ok(Success::NoContent),
        revoke,
    )
}

fn token_json(row: &TokenRow, caller: &Caller) -> Value {
    json!({
        "id": row.id,
        "note": row.note,
        "inserted_at": iso8601_ms(row.inserted_at),
        "last_used": row.last_used.and_then(iso8601_ms),
        "current": caller.token_id == Some(row.id),
    })
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let rows = state.db.user_tokens(caller.user.id).await?;
    let tokens: Vec<Value> = rows.iter().map(|row| token_json(row, &caller)).collect();
    Ok(data(tokens).into_response())
}

#[derive(Deserialize)]
struct NewToken {
    #[serde(default)]
    note: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewToken>,
) -> Result<Response, ApiError> {
    let note = body.note.unwrap_or_default();
    check_text("note", &note, MAX_NOTE_CHARS)?;
    let token = auth::new_token()?;
    let mut tx = state.db.begin().await?;
    let row = db::insert_token(&mut tx, caller.user.id, &token.hash, &note).await?;
    let id = row.id.to_string();
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(caller.user.id),
            resource_type: "user_token",
            resource_id: &id,
            action: "create",
            description: format!("{} created API token {id}", caller.user.email),
        },
    )
    .await?;
    tx.commit().await?;
    let mut answer = token_json(&row, &caller);
    answer["token"] = json!(token.text);
    Ok(created(answer))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Not a number: no token of anyone's has that id.
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound("token"))?;
    let mut tx = state.db.begin().await?;
    if !db::delete_token(&mut tx, caller.user.id, id).await? {
        return Err(ApiError::NotFound("token"));
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(caller.user.id),
            resource_type: "user_token",
            resource_id: &id.to_string(),
            action: "revoke",
            description: format!("{} revoked API token {id}", caller.user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}

/// The schemas of these endpoints, for the OpenAPI document.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    let properties = json!({
        "id": {"type": "integer"},
        "note": {"type": "string"},
        "inserted_at": time,
        "last_used": nullable_time,
        "current": {"type": "boolean", "description": "the token this request was made with"},
    });
    let mut new_properties = properties.clone();
    new_properties["token"] = json!({"type": "string",
        "description": "`nhu_…`; shown only in this answer"});
    vec![
        (
            "ApiToken",
            json!({"type": "object", "required": ["id", "note", "inserted_at", "last_used", "current"],
                   "properties": properties}),
        ),
        (
            "NewApiToken",
            json!({"type": "object", "required": ["id", "note", "inserted_at", "token"],
                   "properties": new_properties}),
        ),
        (
            "ApiTokenCreate",
            json!({"type": "object", "properties": {
                "note": {"type": "string", "maxLength": MAX_NOTE_CHARS}}}),
        ),
    ]
}
