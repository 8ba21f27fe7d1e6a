//! `/api/users`: sign-in (tokens), who am I, and server admins creating users.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Access, Api, Body, Endpoint, Success, check_text, created, data};
use crate::auth::{self, Caller};
use crate::db::{self, Actor, Audit, OnUnique};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::post(
            "/users/auth",
            "Sign in with email and password; returns a new API token",
        )
        .tag("users")
        .access(Access::Public)
        .body("Login")
        .ok(Success::Object(200, "UserToken")),
        sign_in,
    )
    .route(
        Endpoint::post(
            "/users/login",
            "Deprecated alias of /users/auth, as NervesHub",
        )
        .tag("users")
        .access(Access::Public)
        .body("Login")
        .ok(Success::Object(200, "UserToken")),
        sign_in,
    )
    .route(
        Endpoint::get("/users/me", "The signed-in user")
            .tag("users")
            .ok(Success::Object(200, "User")),
        me,
    )
    .route(
        Endpoint::post("/users", "Create a user (server admins only)")
            .tag("users")
            .access(Access::ServerAdmin)
            .body("UserCreate")
            .ok(Success::Object(201, "User")),
        create_user,
    )
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
    #[serde(default)]
    note: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(login): Body<Login>,
) -> Result<Response, ApiError> {
    let note = login.note.as_deref().unwrap_or("");
    check_text("note", note, MAX_NOTE_CHARS)?;
    let user =
        auth::check_password_sign_in(&state, peer.ip(), &login.email, &login.password).await?;
    let token = auth::new_token()?;
    let mut tx = state.db.begin().await?;
    db::insert_token(&mut tx, user.id, &token.hash, note).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(user.id),
            resource_type: "user_token",
            resource_id: &user.email,
            action: "create",
            description: format!("{} signed in and received an API token", user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(data(json!({"name": user.name, "email": user.email, "token": token.text})).into_response())
}

async fn me(caller: Caller) -> impl IntoResponse {
    data(json!({"name": caller.user.name, "email": caller.user.email}))
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

/// Minimum password length for accounts made through the API.
const MIN_PASSWORD_LEN: usize = 8;
/// Maximum password length in bytes: hashing is deliberately slow, and its cost grows with
/// the input.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest email address accepted (bytes).
pub(crate) const MAX_EMAIL_BYTES: usize = 160;
/// The longest user name.
pub(crate) const MAX_USER_NAME_CHARS: usize = 255;
/// The longest token note.
pub(crate) const MAX_NOTE_CHARS: usize = 255;

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewUser>,
) -> Result<Response, ApiError> {
    let email = new.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::invalid("email", "has invalid format"));
    }
    if new.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!("should be at least {MIN_PASSWORD_LEN} character(s)"),
        ));
    }
    if new.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("should be at most {MAX_PASSWORD_BYTES} byte(s)"),
        ));
    }
    let name = new
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    check_text("name", &name, MAX_USER_NAME_CHARS)?;
    if name.contains(['\n', '\r', '\t']) {
        return Err(ApiError::invalid("name", "must be one line"));
    }
    let hash = auth::hash_password(&new.password)?;
    let mut tx = state.db.begin().await?;
    let user = db::insert_user(&mut tx, &name, &email, &hash, false)
        .await
        .on_unique(|| ApiError::invalid("email", "has already been taken"))?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(caller.user.id),
            resource_type: "user",
            resource_id: &email,
            action: "create",
            description: format!("{} created user {email}", caller.user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created(json!({"name": user.name, "email": user.email})))
}

/// A plausible email: one `@` with text on both sides, no spaces, at most 160 characters.
pub(crate) fn valid_email(email: &str) -> bool {
    email.len() <= MAX_EMAIL_BYTES
        && !email.contains(char::is_whitespace)
        && !email.contains(char::is_control)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
}
