//! `/api/orgs/{org}/products/{product}/devices/{identifier}/certificates`: the certificates a
//! device authenticates with.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nerveshub_pki::Certificate;
use serde::Deserialize;
use serde_json::{Value, json};

use super::devices::{audit_change, find};
use super::{Api, Body, Endpoint, Success, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, DeviceCertificateRow, OnUnique};
use crate::device::TrustChange;
use crate::error::ApiError;
use crate::state::AppState;

/// The longest certificate field accepted (base64 of PEM), far above any real certificate.
pub(super) const MAX_CERT_FIELD: usize = 64 * 1024;

pub(super) fn routes(api: Api) -> Api {
    const CERTS: &str = "/orgs/{org}/products/{product}/devices/{identifier}/certificates";
    const CERT: &str = "/orgs/{org}/products/{product}/devices/{identifier}/certificates/{serial}";
    api.route(
        Endpoint::get(CERTS, "The device's certificates")
            .tag("device certificates")
            .role(Role::View)
            .ok(Success::List("DeviceCertificate")),
        list,
    )
    .route(
        Endpoint::post(CERTS, "Add a certificate the device may authenticate with")
            .tag("device certificates")
            .role(Role::Manage)
            .body("DeviceCertificateCreate")
            .ok(Success::Object(201, "DeviceCertificate")),
        create,
    )
    .route(
        Endpoint::get(CERT, "One certificate of the device, by decimal serial")
            .tag("device certificates")
            .role(Role::View)
            .ok(Success::Object(200, "DeviceCertificate")),
        show,
    )
    .route(
        Endpoint::delete(CERT, "Remove a certificate from the device")
            .tag("device certificates")
            .role(Role::Manage)
            .ok(Success::NoContent),
        remove,
    )
}

/// Reads a certificate sent as base64 of its PEM (NervesHub's form). Raw PEM, base64 of DER
/// and base64 broken into lines are taken too.
pub(crate) fn decode_certificate(field: &str, text: &str) -> Result<Certificate, ApiError> {
    if text.len() > MAX_CERT_FIELD {
        return Err(ApiError::invalid(field, "is too long"));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(field, "can't be blank"));
    }
    let bytes = if text.starts_with("-----BEGIN") {
        text.as_bytes().to_vec()
    } else {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| ApiError::invalid(field, "is not base64 of a PEM certificate"))?
    };
    Certificate::parse(&bytes)
        .map_err(|e| ApiError::invalid(field, format!("is not a usable certificate: {e}")))
}

/// A certificate time (Unix ms) as ISO 8601.
pub(super) fn cert_time(ms: i64) -> Option<String> {
    crate::time::iso8601_ms(ms)
}

fn certificate_json(cert: &DeviceCertificateRow) -> Value {
    json!({
        "serial": cert.serial,
        "not_before": cert_time(cert.not_before),
        "not_after": cert_time(cert.not_after),
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (_, device) = find(&state, membership.org.id, &product, &identifier).await?;
    let certs = state.db.device_certificates(device.id).await?;
    Ok(data(certs.iter().map(certificate_json).collect::<Vec<_>>()).into_response())
}

#[derive(Debug, Deserialize)]
struct CertificateCreate {
    cert: String,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier)): Path<(String, String, String)>,
    Body(body): Body<CertificateCreate>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org_id = membership.org.id;
    let (product, device) = find(&state, org_id, &product, &identifier).await?;
    let cert = decode_certificate("cert", &body.cert)?;
    if state
        .db
        .device_certificate_by_fingerprint(cert.fingerprint())
        .await?
        .is_some()
    {
        return Err(ApiError::invalid("cert", "has already been taken"));
    }
    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    // A public key belongs to one device only: the device endpoint recognises a renewed
    // certificate by its key.
    if db::public_key_owner(&mut tx, cert.public_key_fingerprint(), device.id)
        .await?
        .is_some()
    {
        return Err(ApiError::invalid(
            "cert",
            "its public key already belongs to another device",
        ));
    }
    // A certificate issued by a CA another org registered cannot be given to this org's
    // device (a certificate of an unregistered issuer can: NervesHub allows it too).
    if let Some(aki) = cert.aki().map(crate::hex::upper) {
        let orgs = db::ca_orgs_with_ski(&mut tx, &aki).await?;
        if !orgs.is_empty() && !orgs.contains(&org_id) {
            return Err(ApiError::invalid(
                "cert",
                "is issued by a CA registered to another org",
            ));
        }
    }
    let id = db::insert_device_certificate(
        &mut tx,
        device.id,
        org_id,
        &cert,
        db::CertificateSource::Added,
    )
    .await
    .on_unique(|| ApiError::invalid("serial", "has already been taken"))?;
    tx.changes(TrustChange::certificate_added(&cert, &identifier));
    audit_change(
        &mut tx,
        org_id,
        &caller,
        ("device_certificate", cert.serial()),
        "create",
        format!(
            "{} added certificate {} (SHA-1 {}) to device {identifier} in product {}",
            caller.user.email,
            cert.serial(),
            cert.fingerprint(),
            product.name
        ),
    )
    .await?;
    // The device endpoint trusts what is stored now.
    tx.commit().await?;
    tracing::debug!(certificate = id, device = %identifier, "device certificate added");
    Ok(created(json!({
        "serial": cert.serial(),
        "not_before": cert_time(db::unix_ms(cert.not_before())),
        "not_after": cert_time(db::unix_ms(cert.not_after())),
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier, serial)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (_, device) = find(&state, membership.org.id, &product, &identifier).await?;
    let cert = state
        .db
        .device_certificate(device.id, &serial)
        .await?
        .ok_or(ApiError::NotFound("certificate"))?;
    Ok(data(certificate_json(&cert)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, product, identifier, serial)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let (product, device) = find(&state, membership.org.id, &product, &identifier).await?;
    let cert = state
        .db
        .device_certificate(device.id, &serial)
        .await?
        .ok_or(ApiError::NotFound("certificate"))?;
    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    db::delete_device_certificate(&mut tx, cert.id).await?;
    tx.changes(TrustChange::CertificateRemoved {
        fingerprint: cert.fingerprint.clone(),
    });
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("device_certificate", &serial),
        "delete",
        format!(
            "{} removed certificate {serial} (SHA-1 {}) from device {identifier} in product {}",
            caller.user.email, cert.fingerprint, product.name
        ),
    )
    .await?;
    // The device endpoint trusts what is stored now.
    tx.commit().await?;
    Ok(no_content())
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "DeviceCertificate",
            json!({"type": "object", "required": ["serial", "not_before", "not_after"],
            "properties": {
                "serial": {"type": "string", "description": "decimal"},
                "not_before": {"type": "string", "format": "date-time"},
                "not_after": {"type": "string", "format": "date-time"},
            }}),
        ),
        (
            "DeviceCertificateCreate",
            json!({"type": "object", "required": ["cert"], "properties": {
                "cert": {"type": "string", "maxLength": MAX_CERT_FIELD,
                    "description": "base64 of the certificate's PEM"},
            }}),
        ),
    ]
}
