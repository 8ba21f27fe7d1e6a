//! Shared secrets for NH1 HMAC device authentication (NervesHub offers these only in its UI):
//! `/api/orgs/{org}/products/{product}/shared_secrets` (`nhp_…` keys, which may register new
//! devices) and `…/devices/{identifier}/shared_secrets` (`nhd_…` keys). A secret is shown once,
//! when it is created; deleting a key deactivates it, and it stays listed.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::devices::{audit_change, find as find_device};
use super::{Api, Endpoint, Success, created, data, no_content, products};
use crate::auth::{Caller, Role};
use crate::db::{self, SecretOwner, SharedSecretRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;

const PRODUCT_KEY_PREFIX: &str = "nhp_";
const DEVICE_KEY_PREFIX: &str = "nhd_";

pub(super) fn routes(api: Api) -> Api {
    const PRODUCT: &str = "/orgs/{org}/products/{product}/shared_secrets";
    const DEVICE: &str = "/orgs/{org}/products/{product}/devices/{identifier}/shared_secrets";
    api.route(
        Endpoint::get(
            PRODUCT,
            "The product's shared-secret keys (secrets are not shown)",
        )
        .tag("shared secrets")
        .role(Role::View)
        .ok(Success::List("SharedSecret")),
        list_product,
    )
    .route(
        Endpoint::post(
            PRODUCT,
            "Create a product shared secret (nhp_ key); the secret is shown only in this answer",
        )
        .tag("shared secrets")
        .role(Role::Manage)
        .ok(Success::Object(201, "NewSharedSecret")),
        create_product,
    )
    .route(
        Endpoint::delete(
            "/orgs/{org}/products/{product}/shared_secrets/{key}",
            "Deactivate a product shared secret",
        )
        .tag("shared secrets")
        .role(Role::Manage)
        .ok(Success::NoContent),
        deactivate_product,
    )
    .route(
        Endpoint::get(
            DEVICE,
            "The device's shared-secret keys (secrets are not shown)",
        )
        .tag("shared secrets")
        .role(Role::View)
        .ok(Success::List("SharedSecret")),
        list_device,
    )
    .route(
        Endpoint::post(
            DEVICE,
            "Create a device shared secret (nhd_ key); the secret is shown only in this answer",
        )
        .tag("shared secrets")
        .role(Role::Manage)
        .ok(Success::Object(201, "NewSharedSecret")),
        create_device,
    )
    .route(
        Endpoint::delete(
            "/orgs/{org}/products/{product}/devices/{identifier}/shared_secrets/{key}",
            "Deactivate a device shared secret",
        )
        .tag("shared secrets")
        .role(Role::Manage)
        .ok(Success::NoContent),
        deactivate_device,
    )
}

/// 32 random bytes as base64 without padding (URL-safe alphabet, so keys fit in paths).
fn random_b64() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("random", e))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn secret_json(secret: &SharedSecretRow) -> Value {
    json!({
        "key": secret.key,
        "deactivated_at": secret.deactivated_at.and_then(iso8601_ms),
        "inserted_at": iso8601_ms(secret.inserted_at),
    })
}

fn new_secret_json(secret: &SharedSecretRow) -> Value {
    json!({
        "key": secret.key,
        "secret": secret.secret,
        "deactivated_at": Value::Null,
        "inserted_at": iso8601_ms(secret.inserted_at),
    })
}

/// Resolves the owner of the secrets at a path: the product, or the product's device.
async fn owner(
    state: &AppState,
    org_id: i64,
    product: &str,
    identifier: Option<&str>,
) -> Result<(SecretOwner, i64, String), ApiError> {
    match identifier {
        None => {
            let product = products::find(state, org_id, product).await?;
            Ok((
                SecretOwner::Product,
                product.id,
                format!("product {}", product.name),
            ))
        }
        Some(identifier) => {
            let (product, device) = find_device(state, org_id, product, identifier).await?;
            Ok((
                SecretOwner::Device,
                device.id,
                format!("device {identifier} in product {}", product.name),
            ))
        }
    }
}

async fn list(
    state: AppState,
    caller: Caller,
    product: String,
    identifier: Option<String>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (kind, owner_id, _) =
        owner(&state, membership.org.id, &product, identifier.as_deref()).await?;
    let secrets = state.db.shared_secrets(kind, owner_id).await?;
    Ok(data(secrets.iter().map(secret_json).collect::<Vec<_>>()).into_response())
}

async fn create(
    state: AppState,
    caller: Caller,
    product: String,
    identifier: Option<String>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (kind, owner_id, what) =
        owner(&state, membership.org.id, &product, identifier.as_deref()).await?;
    let prefix = match kind {
        SecretOwner::Product => PRODUCT_KEY_PREFIX,
        SecretOwner::Device => DEVICE_KEY_PREFIX,
    };
    let key = format!("{prefix}{}", random_b64()?);
    let secret = random_b64()?;
    // Only the encrypted form reaches the database; the answer shows the secret this once.
    let sealed = state
        .secrets
        .seal(&key, &secret)
        .map_err(|e| ApiError::internal("sealing the shared secret", e))?;
    let mut tx = state.db.begin().await?;
    let mut row = db::insert_shared_secret(&mut tx, kind, owner_id, &key, &sealed).await?;
    row.secret = secret;
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("shared_secret", &key),
        "create",
        format!(
            "{} created shared secret key {key} for {what}",
            caller.user.email
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(created(new_secret_json(&row)))
}

async fn deactivate(
    state: AppState,
    caller: Caller,
    (product, identifier, key): (String, Option<String>, String),
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (kind, owner_id, what) =
        owner(&state, membership.org.id, &product, identifier.as_deref()).await?;
    let secret = state
        .db
        .shared_secret_of(kind, owner_id, &key)
        .await?
        .ok_or(ApiError::NotFound("shared secret"))?;
    if secret.deactivated_at.is_some() {
        return Ok(no_content());
    }
    let mut tx = state.db.begin().await?;
    db::deactivate_shared_secret(&mut tx, kind, secret.id).await?;
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("shared_secret", &key),
        "deactivate",
        format!(
            "{} deactivated shared secret key {key} of {what}",
            caller.user.email
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}

async fn list_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    list(state, caller, product, None).await
}

async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    create(state, caller, product, None).await
}

async fn deactivate_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    deactivate(state, caller, (product, None, key)).await
}

async fn list_device(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    list(state, caller, product, Some(identifier)).await
}

async fn create_device(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    create(state, caller, product, Some(identifier)).await
}

async fn deactivate_device(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier, key)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    deactivate(state, caller, (product, Some(identifier), key)).await
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    vec![
        (
            "SharedSecret",
            json!({"type": "object", "required": ["key", "deactivated_at", "inserted_at"],
            "properties": {
                "key": {"type": "string", "description": "nhp_… (product) or nhd_… (device)"},
                "deactivated_at": nullable_time,
                "inserted_at": time,
            }}),
        ),
        (
            "NewSharedSecret",
            json!({"type": "object", "required": ["key", "secret", "deactivated_at", "inserted_at"],
            "properties": {
                "key": {"type": "string", "description": "nhp_… (product) or nhd_… (device): prefix + 32 random bytes, base64 (URL-safe) without padding"},
                "secret": {"type": "string", "description": "32 random bytes, base64 (URL-safe) without padding; shown only once"},
                "deactivated_at": nullable_time,
                "inserted_at": time,
            }}),
        ),
    ]
}
