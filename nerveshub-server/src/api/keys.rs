//! `/api/orgs/{org}/keys`: the Ed25519 public keys firmware must be signed with.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Body, Endpoint, Success, check_name, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, Actor, Audit, KeyRow, is_unique_violation};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get("/orgs/{org}/keys", "The org's firmware signing keys")
            .tag("signing keys")
            .role(Role::View)
            .ok(Success::List("Key")),
        list,
    )
    .route(
        Endpoint::post("/orgs/{org}/keys", "Register a firmware signing key")
            .tag("signing keys")
            .role(Role::Manage)
            .body("KeyCreate")
            .ok(Success::Object(201, "Key")),
        create,
    )
    .route(
        Endpoint::get("/orgs/{org}/keys/{name}", "One signing key")
            .tag("signing keys")
            .role(Role::View)
            .ok(Success::Object(200, "Key")),
        show,
    )
    .route(
        Endpoint::delete(
            "/orgs/{org}/keys/{name}",
            "Remove a signing key no firmware uses",
        )
        .tag("signing keys")
        .role(Role::Manage)
        .ok(Success::NoContent)
        .errors(&[409]),
        remove,
    )
}

fn key_json(key: &KeyRow) -> serde_json::Value {
    json!({"name": key.name, "key": key.key, "scheme": "ed25519",
           "inserted_at": crate::time::iso8601_ms(key.inserted_at)})
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let keys = state.db.keys(membership.org.id).await?;
    Ok(data(keys.iter().map(key_json).collect::<Vec<_>>()).into_response())
}

/// The longest `key` text read: base64 of 32 bytes is 44 characters; the rest is room for
/// the white space of a pasted `fwup-key.pub`.
pub(super) const MAX_KEY_TEXT_BYTES: usize = 256;

#[derive(Deserialize)]
struct NewKey {
    name: String,
    key: String,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewKey>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    check_name("name", &new.name)?;
    if new.key.len() > MAX_KEY_TEXT_BYTES {
        return Err(ApiError::invalid(
            "key",
            "is not a base64 Ed25519 public key (fwup-key.pub)",
        ));
    }
    // Accept the contents of a fwup-key.pub file: base64 of the 32-byte key, maybe with a
    // trailing newline. Store it normalised.
    let key = nerveshub_fwup::PublicKey::from_base64(new.key.trim())
        .map_err(|_| ApiError::invalid("key", "is not a base64 Ed25519 public key (fwup-key.pub)"))?
        .to_base64();
    let mut tx = state.db.begin().await?;
    let row =
        match db::insert_key(&mut tx, membership.org.id, &new.name, &key, caller.user.id).await {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => {
                // Give the connection back before asking the pool for another: holding one
                // while waiting for a second deadlocks a saturated pool.
                drop(tx);
                let taken = state.db.key(membership.org.id, &new.name).await?.is_some();
                let field = if taken { "name" } else { "key" };
                return Err(ApiError::invalid(field, "has already been taken"));
            }
            Err(e) => return Err(e.into()),
        };
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org_key",
            resource_id: &row.name,
            action: "create",
            description: format!(
                "{} added signing key {} to {org}",
                caller.user.email, row.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created(key_json(&row)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let key = state
        .db
        .key(membership.org.id, &name)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    Ok(data(key_json(&key)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org = &membership.org.name;
    let key = state
        .db
        .key(membership.org.id, &name)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    let mut tx = state.db.begin().await?;
    if let Err(e) = db::delete_key(&mut tx, key.id).await {
        if db::is_foreign_key_violation(&e) {
            return Err(ApiError::Conflict(format!(
                "key {name} signed firmware that is still stored; delete that firmware first"
            )));
        }
        return Err(e.into());
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(membership.org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org_key",
            resource_id: &key.name,
            action: "delete",
            description: format!(
                "{} removed signing key {} from {org}",
                caller.user.email, key.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}
