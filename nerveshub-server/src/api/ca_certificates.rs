//! `/api/orgs/{org}/ca_certificates`: Device CAs, registered with proof of possession of the
//! CA's key, optionally with a just-in-time provisioning profile.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nerveshub_pki::{CaRegistration, Error as PkiError, ProofPlacement, VERIFY_URI_PREFIX};
use serde::Deserialize;
use serde_json::{Value, json};

use super::certificates::{cert_time, decode_certificate};
use super::devices::{audit_change, parse_tags};
use super::{Api, Body, Endpoint, Success, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, CaCertificateRow, JitpFields, OnUnique};
use crate::device::TrustChange;
use crate::error::ApiError;
use crate::state::AppState;

/// At most this many `urn:nerveshub:verify:` URIs of a verification certificate are tried.
const MAX_PROOF_URIS: usize = 8;
const MAX_DESCRIPTION_CHARS: usize = 1000;

pub(super) fn routes(api: Api) -> Api {
    const CAS: &str = "/orgs/{org}/ca_certificates";
    const CA: &str = "/orgs/{org}/ca_certificates/{serial}";
    api.route(
        Endpoint::get(
            "/orgs/{org}/ca_certificates/verification_token",
            "A single-use token (valid 1 hour) to put in a verification certificate as SAN URI urn:nerveshub:verify:<token>",
        )
        .tag("ca certificates")
        .role(Role::Manage)
        .ok(Success::Object(200, "VerificationToken")),
        verification_token,
    )
    .route(
        Endpoint::get(CAS, "The org's Device CAs")
            .tag("ca certificates")
            .role(Role::View)
            .ok(Success::List("CaCertificate")),
        list,
    )
    .route(
        Endpoint::post(
            CAS,
            "Register a Device CA, proving possession of its key with a verification certificate",
        )
        .tag("ca certificates")
        .role(Role::Manage)
        .body("CaCertificateCreate")
        .ok(Success::Object(201, "CaCertificate")),
        create,
    )
    .route(
        Endpoint::get(CA, "One Device CA, by decimal serial")
            .tag("ca certificates")
            .role(Role::View)
            .ok(Success::Object(200, "CaCertificate")),
        show,
    )
    .route(
        Endpoint::delete(CA, "Unregister a Device CA")
            .tag("ca certificates")
            .role(Role::Manage)
            .ok(Success::NoContent),
        remove,
    )
}

fn ca_json(ca: &CaCertificateRow) -> Value {
    let jitp = match (&ca.jitp_product_id, &ca.jitp_product_name) {
        (Some(_), Some(product_name)) => json!({
            "product_name": product_name,
            "tags": ca.jitp_tag_list(),
            "description": ca.jitp_description.clone().unwrap_or_default(),
        }),
        _ => Value::Null,
    };
    json!({
        "serial": ca.serial,
        "subject": ca.subject(),
        "not_before": cert_time(ca.not_before),
        "not_after": cert_time(ca.not_after),
        "description": ca.description,
        "jitp": jitp,
    })
}

async fn verification_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("random", e))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let mut tx = state.db.begin().await?;
    db::insert_verification_token(&mut tx, membership.org.id, &token, state.clock.now_ms()).await?;
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("ca_verification_token", ""),
        "create",
        format!(
            "{} asked for a CA verification token for {org}",
            caller.user.email
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(data(json!({ "verification_token": token })).into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let cas = state.db.ca_certificates(membership.org.id).await?;
    Ok(data(cas.iter().map(ca_json).collect::<Vec<_>>()).into_response())
}

#[derive(Debug, Deserialize)]
struct Jitp {
    product_name: String,
    #[serde(default)]
    tags: Value,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CaCreate {
    cert: String,
    #[serde(default)]
    verification_cert: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    jitp: Option<Jitp>,
}

/// The answer for a registration nerveshub-pki refused.
fn refusal(e: &PkiError) -> ApiError {
    match e {
        PkiError::NotCa => ApiError::invalid(
            "cert",
            "is not a CA certificate (basicConstraints CA:TRUE is missing)",
        ),
        PkiError::MissingKeyCertSign => {
            ApiError::invalid("cert", "keyUsage does not allow keyCertSign")
        }
        PkiError::Expired { .. } => ApiError::invalid("cert", "has expired"),
        PkiError::NotYetValid { .. } => ApiError::invalid("cert", "is not valid yet"),
        PkiError::ProofNotSignedByCa => {
            ApiError::invalid("verification_cert", "is not signed by the CA's key")
        }
        PkiError::ProofTokenMismatch => ApiError::invalid(
            "verification_cert",
            "does not carry the verification token as SAN URI urn:nerveshub:verify:<token>",
        ),
        PkiError::UnsupportedAlgorithm => ApiError::invalid(
            "verification_cert",
            "uses a signature algorithm or key type that is not supported",
        ),
        other => ApiError::invalid("cert", format!("cannot be registered: {other}")),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CaCreate>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let org_id = membership.org.id;
    let ca = decode_certificate("cert", &body.cert)?;
    let proof = match body.verification_cert.as_deref() {
        Some(text) if !text.trim().is_empty() => decode_certificate("verification_cert", text)?,
        _ => {
            return Err(ApiError::invalid(
                "verification_cert",
                "can't be blank: a certificate signed by the CA's key with SAN URI urn:nerveshub:verify:<token> proves the key is yours",
            ));
        }
    };
    let description = body.description.unwrap_or_default();
    super::check_text("description", &description, MAX_DESCRIPTION_CHARS)?;
    let jitp = match &body.jitp {
        Some(jitp) => {
            let product = state
                .db
                .product(org_id, &jitp.product_name)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid("jitp", format!("product {} not found", jitp.product_name))
                })?;
            let tags = parse_tags("jitp", &jitp.tags)?;
            let description = jitp.description.clone().unwrap_or_default();
            super::check_text("jitp", &description, MAX_DESCRIPTION_CHARS)?;
            Some((product, tags, description))
        }
        None => None,
    };
    let candidates: Vec<&str> = proof
        .san_uris()
        .iter()
        .filter_map(|uri| uri.strip_prefix(VERIFY_URI_PREFIX))
        .filter(|token| !token.is_empty())
        .take(MAX_PROOF_URIS)
        .collect();
    if candidates.is_empty() {
        return Err(refusal(&PkiError::ProofTokenMismatch));
    }

    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    // The token must be one this org asked for, unused and under an hour old; it is used up
    // with the registration (a refused registration rolls back and keeps it).
    let mut token = None;
    for candidate in candidates {
        if db::take_verification_token(&mut tx, org_id, candidate, state.clock.now_ms()).await? {
            token = Some(candidate.to_owned());
            break;
        }
    }
    let Some(token) = token else {
        return Err(ApiError::invalid(
            "verification_cert",
            "carries no verification token of this org that is unused and less than an hour old",
        ));
    };
    let vetted = CaRegistration::new(ca.clone(), proof, token)
        .vet_with_provider(&state.config.crypto_provider, state.clock.now_unix())
        .map_err(|e| refusal(&e))?;
    if vetted.proof_placement() != ProofPlacement::SanUri {
        return Err(refusal(&PkiError::ProofTokenMismatch));
    }
    let jitp_fields = jitp
        .as_ref()
        .map(|(product, tags, description)| JitpFields {
            product_id: product.id,
            tags,
            description,
        });
    db::insert_ca_certificate(&mut tx, org_id, &ca, &description, jitp_fields.as_ref())
        .await
        .on_unique(|| ApiError::invalid("serial", "has already been taken"))?;
    tx.changes(TrustChange::ca_added(&ca));
    audit_change(
        &mut tx,
        org_id,
        &caller,
        ("ca_certificate", ca.serial()),
        "create",
        format!(
            "{} registered Device CA {} ({}){}",
            caller.user.email,
            ca.serial(),
            ca.subject(),
            match &jitp {
                Some((product, _, _)) => format!(" provisioning devices into {}", product.name),
                None => String::new(),
            }
        ),
    )
    .await?;
    // The device endpoint trusts what is stored now.
    tx.commit().await?;
    let stored = state
        .db
        .ca_certificate(org_id, ca.serial())
        .await?
        .ok_or_else(|| ApiError::bug("registered CA not found after commit"))?;
    Ok(created(ca_json(&stored)))
}

async fn find(state: &AppState, org_id: i64, serial: &str) -> Result<CaCertificateRow, ApiError> {
    state
        .db
        .ca_certificate(org_id, serial)
        .await?
        .ok_or(ApiError::NotFound("CA certificate"))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, serial)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let ca = find(&state, membership.org.id, &serial).await?;
    Ok(data(ca_json(&ca)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, serial)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let membership = caller.membership()?;
    let ca = find(&state, membership.org.id, &serial).await?;
    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    db::delete_ca_certificate(&mut tx, ca.id).await?;
    if let Some(change) = TrustChange::ca_removed(&ca.der) {
        tx.changes(change);
    }
    audit_change(
        &mut tx,
        membership.org.id,
        &caller,
        ("ca_certificate", &serial),
        "delete",
        format!("{} unregistered Device CA {serial}", caller.user.email),
    )
    .await?;
    // The device endpoint trusts what is stored now.
    tx.commit().await?;
    Ok(no_content())
}

/// The OpenAPI schemas of this module.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    let tags = json!({"type": "array", "maxItems": super::devices::MAX_TAGS,
        "items": {"type": "string", "maxLength": super::devices::MAX_TAG_CHARS}});
    let description = json!({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS});
    let jitp = json!({"type": "object", "required": ["product_name"], "properties": {
        "product_name": {"type": "string", "maxLength": 100,
            "description": "a product of the org (NervesHub takes a product id here)"},
        "tags": tags,
        "description": description,
    }});
    let cert_max = super::certificates::MAX_CERT_FIELD;
    vec![
        (
            "VerificationToken",
            json!({"type": "object", "required": ["verification_token"],
                "properties": {"verification_token": string}}),
        ),
        (
            "CaCertificate",
            json!({"type": "object",
            "required": ["serial", "subject", "not_before", "not_after", "description", "jitp"],
            "properties": {
                "serial": {"type": "string", "description": "decimal"},
                "subject": {"type": "string", "description": "the subject's distinguished name, RFC 4514 form (`CN=…,O=…`)"},
                "not_before": {"type": "string", "format": "date-time"},
                "not_after": {"type": "string", "format": "date-time"},
                "description": string,
                "jitp": {"allOf": [jitp.clone()], "nullable": true},
            }}),
        ),
        (
            "CaCertificateCreate",
            json!({"type": "object", "required": ["cert", "verification_cert"], "properties": {
                "cert": {"type": "string", "maxLength": cert_max,
                    "description": "base64 of the CA certificate's PEM"},
                "verification_cert": {"type": "string", "maxLength": cert_max,
                    "description": "base64 of the PEM of a certificate signed by the CA's key with SAN URI urn:nerveshub:verify:<token>"},
                "description": description,
                "jitp": jitp,
            }}),
        ),
    ]
}
