//! Who a connecting device is: a client certificate (known, or chaining to a registered
//! Device CA, recorded on first use, with just-in-time provisioning), or NH1 shared-secret
//! headers (product keys register devices, device keys must name their own device).
//!
//! As NervesHub's `DeviceSocket.connect/3`: a certificate decides when one was presented;
//! otherwise the `x-nh-*` headers; otherwise the device gave no credentials.

use axum::http::HeaderMap;
use nerveshub_pki::{DeviceAuth, VerifiedDevice};
use nerveshub_proto::{Nh1Alg, Nh1Policy, SharedSecretHeaders};
use rustls_pki_types::CertificateDer;

use crate::db::{
    self, Actor, Audit, CaCertificateRow, CertificateSource, DeviceRef, NewDevice, OnUnique,
    SecretLookup, is_unique_violation,
};
use crate::device::TrustChange;
use crate::state::AppState;

/// The prefix of product shared-secret keys.
const PRODUCT_KEY_PREFIX: &str = "nhp_";
/// The longest identifier a product key may register.
const MAX_IDENTIFIER_LEN: usize = 255;

/// Why a device was not let in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Neither a certificate nor `x-nh-*` headers: 401 with `nh-connection-error-reason`.
    #[error("no credentials")]
    NoCredentials,
    /// The credentials were refused: a bare 401 (the detail is logged, never sent).
    #[error("{0}")]
    Invalid(String),
    /// The database failed: 503.
    #[error("database: {0}")]
    Unavailable(#[from] sqlx::Error),
}

fn invalid(why: impl std::fmt::Display) -> Refusal {
    Refusal::Invalid(why.to_string())
}

/// How the device authenticated, for logs and the device's connection record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    Certificate,
    SharedSecret,
}

impl AuthKind {
    /// As recorded with the connection and shown on the API (`connection.auth`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthKind::Certificate => "certificate",
            AuthKind::SharedSecret => "shared_secret",
        }
    }
}

/// Authenticates a connecting device from its TLS client certificates and upgrade headers.
pub(crate) async fn authenticate(
    state: &AppState,
    chain: &[CertificateDer<'static>],
    headers: &HeaderMap,
) -> Result<(DeviceRef, AuthKind), Refusal> {
    if !chain.is_empty() {
        return by_certificate(state, chain)
            .await
            .map(|d| (d, AuthKind::Certificate));
    }
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("x-nh-"))
    {
        return by_shared_secret(state, headers)
            .await
            .map(|d| (d, AuthKind::SharedSecret));
    }
    Err(Refusal::NoCredentials)
}

async fn by_certificate(
    state: &AppState,
    chain: &[CertificateDer<'static>],
) -> Result<DeviceRef, Refusal> {
    // The TLS verifier already accepted the chain against the same store; deciding again here
    // gives the identity (and catches a change in between).
    let verified = state
        .devices
        .trust_store()
        .verify_device(chain, state.clock.now_unix())
        .map_err(invalid)?;
    if verified.auth() == DeviceAuth::KnownCertificate {
        let device = state
            .db
            .device_by_certificate(verified.fingerprint())
            .await?
            .ok_or_else(|| invalid("the certificate is no longer stored"))?;
        state
            .db
            .touch_device_certificate(verified.fingerprint())
            .await?;
        return Ok(device);
    }
    let ca_cert = verified
        .ca()
        .ok_or_else(|| invalid("no registered CA anchors the chain"))?;
    // NervesHub's rule: the CA that signed the device's certificate must itself be registered
    // (the certificate's AKI names a registered CA's SKI). A chain through an intermediate
    // nobody registered is refused, so registering a root does not silently trust every
    // intermediate ever issued under it.
    let signed_directly = match verified.certificate().aki() {
        Some(aki) => ca_cert.ski() == Some(aki),
        // Without an AKI, only a chain of the certificate (and the CA itself) shows it.
        None => chain[1..]
            .iter()
            .all(|c| c.as_ref() == ca_cert.der().as_ref()),
    };
    if !signed_directly {
        return Err(invalid(
            "the certificate was signed by an intermediate that is not registered; register the CA that signs device certificates",
        ));
    }
    let ca = state
        .db
        .ca_certificate_by_der(ca_cert.der())
        .await?
        .ok_or_else(|| invalid("the CA is no longer registered"))?;
    // Two first connections of one device may race; the loser finds the winner's rows.
    for _ in 0..2 {
        match record_new_certificate(state, &verified, &ca).await {
            // Known from now on (the commit added one entry; nothing was read again).
            Ok(device) => return Ok(device),
            Err(Refusal::Unavailable(e)) if is_unique_violation(&e) => {
                if let Some(device) = state
                    .db
                    .device_by_certificate(verified.fingerprint())
                    .await?
                {
                    return Ok(device);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(invalid("the certificate could not be recorded"))
}

/// Stores a certificate seen for the first time, creating the device from the CA's JITP
/// profile when it does not exist.
async fn record_new_certificate(
    state: &AppState,
    verified: &VerifiedDevice,
    ca: &CaCertificateRow,
) -> Result<DeviceRef, Refusal> {
    let identifier = verified.identifier();
    let existing = state.db.device_ref_by_identifier(identifier).await?;
    // Every read from here on goes through `tx`: asking the pool for a second connection
    // while holding this one deadlocks once every pooled connection is held by a first-time
    // device doing the same (the server froze at 48 new JITP devices).
    let mut tx = state.devices.begin_trust_change(&state.db).await?;
    let device = match existing {
        Some(device) => {
            if device.org_id != ca.org_id {
                return Err(invalid(format!(
                    "device {identifier} belongs to another org than the CA"
                )));
            }
            if verified.auth() == DeviceAuth::NewCertificate
                && db::device_certificate_count(&mut tx, device.id).await? > 0
            {
                return Err(invalid(format!(
                    "device {identifier} already has a certificate with another public key"
                )));
            }
            device
        }
        None => {
            if verified.auth() == DeviceAuth::RenewedCertificate {
                return Err(invalid("the key's device no longer exists"));
            }
            let product_id = ca
                .jitp_product_id
                .ok_or_else(|| invalid(format!("device {identifier} is not registered")))?;
            if db::product_org(&mut tx, product_id).await? != Some(ca.org_id) {
                return Err(invalid("the CA's JITP product is not in its org"));
            }
            let tags = ca.jitp_tag_list();
            let device = insert_device(
                &mut tx,
                &NewDevice {
                    org_id: ca.org_id,
                    product_id,
                    identifier,
                    description: ca.jitp_description.as_deref().unwrap_or(""),
                    tags: &tags,
                },
            )
            .await?;
            db::audit(
                &mut tx,
                Audit {
                    org_id: Some(ca.org_id),
                    actor: Actor::System,
                    resource_type: "device",
                    resource_id: identifier,
                    action: "create",
                    description: format!(
                        "device {identifier} created on first connection by the JITP profile of CA {}",
                        verified.ca().map(|c| c.serial()).unwrap_or_default()
                    ),
                },
            )
            .await?;
            device
        }
    };
    db::insert_device_certificate(
        &mut tx,
        device.id,
        device.org_id,
        verified.certificate(),
        CertificateSource::Presented,
    )
    .await?;
    tx.changes(TrustChange::certificate_added(
        verified.certificate(),
        &device.identifier,
    ));
    db::touch_ca_certificate(&mut tx, ca.id).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(device.org_id),
            actor: Actor::Device(device.id),
            resource_type: "device_certificate",
            resource_id: verified.serial(),
            action: "create",
            description: format!(
                "device {identifier} presented certificate {} (fingerprint {}) for the first time",
                verified.serial(),
                verified.fingerprint()
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(device)
}

async fn by_shared_secret(state: &AppState, headers: &HeaderMap) -> Result<DeviceRef, Refusal> {
    let nh1 =
        SharedSecretHeaders::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
            .map_err(invalid)?;
    check_alg_floor(&nh1.alg)?;
    let secret = if nh1.key.starts_with(PRODUCT_KEY_PREFIX) {
        state.db.product_secret(&nh1.key).await?
    } else {
        state.db.device_secret(&nh1.key).await?
    }
    .ok_or_else(|| invalid("unknown or deactivated shared-secret key"))?;
    let plain = state
        .secrets
        .open(&nh1.key, &secret.secret)
        .map_err(invalid)?;
    let now_ms = u64::try_from(state.clock.now_ms()).unwrap_or(0);
    let derived = state
        .devices
        .nh1_keys
        .derive(&nh1, plain.as_bytes(), now_ms)
        .map_err(invalid)?;
    let token = nh1
        .verify_with_derived_key(&derived, now_ms, Nh1Policy::default())
        .map_err(invalid)?;
    let identifier = token.identifier;
    if let Some(device_id) = secret.device_id {
        let device = state
            .db
            .device_ref(device_id)
            .await?
            .ok_or_else(|| invalid("the key's device no longer exists"))?;
        if device.identifier != identifier {
            return Err(invalid(format!(
                "the device key belongs to {}, not {identifier}",
                device.identifier
            )));
        }
        return Ok(device);
    }
    // A product key: the device named in the token, created in the product if new.
    for _ in 0..2 {
        if let Some(device) = state.db.device_ref_by_identifier(&identifier).await? {
            if device.product_id != secret.product_id {
                return Err(invalid(format!(
                    "identifier {identifier} is already used in another product"
                )));
            }
            return Ok(device);
        }
        check_identifier(&identifier)?;
        // Taken: another connection registered it first; the next round finds it.
        if let Some(device) = register_by_product_key(state, &secret, &identifier)
            .await
            .unique_as_none()?
        {
            return Ok(device);
        }
    }
    Err(invalid("the device could not be registered"))
}

/// The weakest NH1 parameters accepted: nerves_hub_link's defaults (`NH1-HMAC-sha256-1000-32`).
/// A client may choose stronger ones; weaker ones make a captured token cheaper to attack.
const MIN_NH1_ITERATIONS: u32 = 1000;
const MIN_NH1_KEY_LEN: usize = 32;

fn check_alg_floor(alg: &str) -> Result<(), Refusal> {
    let alg = Nh1Alg::parse(alg).map_err(invalid)?;
    if alg.iterations < MIN_NH1_ITERATIONS || alg.key_len < MIN_NH1_KEY_LEN {
        return Err(invalid(format!(
            "NH1 parameters below the floor ({MIN_NH1_ITERATIONS} iterations, {MIN_NH1_KEY_LEN}-byte keys)"
        )));
    }
    Ok(())
}

fn check_identifier(identifier: &str) -> Result<(), Refusal> {
    if identifier == "."
        || identifier == ".."
        || identifier.trim().is_empty()
        || identifier.len() > MAX_IDENTIFIER_LEN
        || identifier.trim() != identifier
        || identifier.contains('/')
        || identifier.chars().any(char::is_control)
    {
        return Err(invalid("the token's identifier cannot name a device"));
    }
    Ok(())
}

async fn register_by_product_key(
    state: &AppState,
    secret: &SecretLookup,
    identifier: &str,
) -> Result<DeviceRef, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let device = insert_device(
        &mut tx,
        &NewDevice {
            org_id: secret.org_id,
            product_id: secret.product_id,
            identifier,
            description: "",
            tags: &[],
        },
    )
    .await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(secret.org_id),
            actor: Actor::System,
            resource_type: "device",
            resource_id: identifier,
            action: "create",
            description: format!(
                "device {identifier} registered on first connection with a product shared secret"
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(device)
}

/// Creates a device registered on its first connection (a CA's JITP profile or a product key).
async fn insert_device(
    conn: &mut sqlx::AnyConnection,
    new: &NewDevice<'_>,
) -> Result<DeviceRef, sqlx::Error> {
    let id = db::insert_device(conn, new).await?;
    Ok(DeviceRef {
        id,
        org_id: new.org_id,
        product_id: new.product_id,
        identifier: new.identifier.to_owned(),
        firmware_metadata: None,
    })
}
