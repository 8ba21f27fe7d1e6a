//! `/api/users/me/certificates`: the signed-in user's certificates. `POST` signs a CSR with
//! the server's user CA (the key never leaves the user's machine); `GET` lists them; `DELETE
//! …/{serial}` revokes one. On the HTTPS listener (`--api-tls`) a valid, unrevoked one signs
//! in as its user without a token.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, Body, Endpoint, Success, created, data, no_content};
use crate::auth::Caller;
use crate::db::{self, Actor, Audit, OnUnique, UserCertificateRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::iso8601_ms;
use crate::user_ca::UserCa;

/// A CSR is a few hundred bytes; anything much bigger is not one.
const MAX_CSR_LEN: usize = 16 * 1024;
const MAX_NOTE_CHARS: usize = 255;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get("/users/me/certificates", "The signed-in user's certificates")
            .tag("users")
            .ok(Success::List("UserCertificate")),
        list,
    )
    .route(
        Endpoint::post(
            "/users/me/certificates",
            "Sign a certificate signing request (PEM) with the server's user CA; on the HTTPS API listener the certificate signs in as this user",
        )
        .tag("users")
        .body("UserCertificateCreate")
        .ok(Success::Object(201, "NewUserCertificate")),
        create,
    )
    .route(
        Endpoint::delete(
            "/users/me/certificates/{serial}",
            "Revoke one of the signed-in user's certificates (decimal serial)",
        )
        .tag("users")
        .ok(Success::NoContent),
        revoke,
    )
}

fn certificate_json(row: &UserCertificateRow) -> Value {
    json!({
        "serial": row.serial,
        "note": row.note,
        "not_before": iso8601_ms(row.not_before),
        "not_after": iso8601_ms(row.not_after),
        "revoked_at": row.revoked_at.and_then(iso8601_ms),
        "inserted_at": iso8601_ms(row.inserted_at),
    })
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let rows = state.db.user_certificates(caller.user.id).await?;
    Ok(data(rows.iter().map(certificate_json).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
struct NewCertificate {
    csr: String,
    #[serde(default)]
    note: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewCertificate>,
) -> Result<Response, ApiError> {
    if body.csr.len() > MAX_CSR_LEN {
        return Err(ApiError::invalid(
            "csr",
            format!("is longer than {MAX_CSR_LEN} bytes"),
        ));
    }
    let note = body.note.unwrap_or_default();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::invalid(
            "note",
            format!("should be at most {MAX_NOTE_CHARS} character(s)"),
        ));
    }
    let ca = UserCa::load(&state.config.data_dir.join("tls"))
        .map_err(|e| ApiError::internal("user CA", e))?;
    let cert = ca
        .sign(body.csr.as_bytes(), &caller.user.email)
        .map_err(|e| {
            ApiError::invalid(
                "csr",
                format!("is not a valid certificate signing request ({e})"),
            )
        })?;
    let mut tx = state.db.begin().await?;
    db::insert_user_certificate(&mut tx, caller.user.id, &cert, &note)
        .await
        .on_unique(|| {
            ApiError::invalid("csr", "gave a certificate that already exists; try again")
        })?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(caller.user.id),
            resource_type: "user_certificate",
            resource_id: cert.serial(),
            action: "create",
            description: format!(
                "{} received user certificate {}",
                caller.user.email,
                cert.serial()
            ),
        },
    )
    .await?;
    tx.commit().await?;
    let ms = |t: nerveshub_pki::UnixTime| {
        i64::try_from(t.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
    };
    Ok(created(json!({
        "serial": cert.serial(),
        "certificate": cert.to_pem(),
        "note": note,
        "not_before": iso8601_ms(ms(cert.not_before())),
        "not_after": iso8601_ms(ms(cert.not_after())),
    })))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin().await?;
    if !db::revoke_user_certificate(&mut tx, caller.user.id, &serial).await? {
        return Err(ApiError::NotFound("user certificate"));
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(caller.user.id),
            resource_type: "user_certificate",
            resource_id: &serial,
            action: "revoke",
            description: format!("{} revoked user certificate {serial}", caller.user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}

/// The schemas of these endpoints, for the OpenAPI document.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    vec![
        (
            "UserCertificate",
            json!({"type": "object", "required": ["serial", "not_before", "not_after"], "properties": {
                "serial": string, "note": string, "not_before": time, "not_after": time,
                "revoked_at": time, "inserted_at": time}}),
        ),
        (
            "NewUserCertificate",
            json!({"type": "object", "required": ["serial", "certificate"], "properties": {
                "serial": string, "certificate": {"type": "string", "description": "PEM, signed by the user CA"},
                "note": string, "not_before": time, "not_after": time}}),
        ),
        (
            "UserCertificateCreate",
            json!({"type": "object", "required": ["csr"], "properties": {
                "csr": {"type": "string", "maxLength": MAX_CSR_LEN,
                    "description": "PEM certificate signing request"},
                "note": {"type": "string", "maxLength": MAX_NOTE_CHARS}}}),
        ),
    ]
}
