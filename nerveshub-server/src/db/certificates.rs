//! Device certificates, registered Device CAs and CA verification tokens.

use nerveshub_pki::{Certificate, KnownCertificate, RegisteredCa, TrustStore, TrustStoreBuilder};
use sqlx::{AnyConnection, FromRow};

use super::{Db, DeviceRef, now_ms, trusted};
use crate::auth::hex_upper;

/// How long a CA verification token may be used after it was issued (NervesHub: 1 hour).
pub(crate) const VERIFICATION_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

const DEVICE_CERT_COLUMNS: &str = "c.id, c.device_id, c.serial, c.not_before, c.not_after, \
     c.fingerprint, c.public_key_fingerprint, d.identifier";

const DEVICE_CERT_FROM: &str = "FROM device_certificates c JOIN devices d ON d.id = c.device_id";

/// A stored device certificate, with its device's identifier.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeviceCertificateRow {
    pub(crate) id: i64,
    pub(crate) device_id: i64,
    /// Decimal, as NervesHub stores it.
    pub(crate) serial: String,
    /// Unix ms.
    pub(crate) not_before: i64,
    /// Unix ms.
    pub(crate) not_after: i64,
    /// SHA-1 over the DER, upper-case hex.
    pub(crate) fingerprint: String,
    /// SHA-1 over the SubjectPublicKeyInfo, upper-case hex.
    pub(crate) public_key_fingerprint: String,
    /// The owning device's identifier.
    pub(crate) identifier: String,
}

impl DeviceCertificateRow {
    /// The certificate as the trust store knows it.
    pub(crate) fn known(&self) -> KnownCertificate {
        KnownCertificate::new(
            &self.fingerprint,
            &self.public_key_fingerprint,
            &self.identifier,
        )
    }
}

/// Unix milliseconds of a certificate time.
pub(crate) fn unix_ms(time: nerveshub_pki::UnixTime) -> i64 {
    i64::try_from(time.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
}

/// How a certificate came to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateSource {
    /// Added through the API: not used yet.
    Added,
    /// Presented by its device on a connection (a CA-signed certificate's first use): used now.
    Presented,
}

/// Stores `cert` as a certificate of device `device_id` (of org `org_id`) and returns its id.
/// The fingerprint is unique server-wide and the serial unique per device: either repeated is
/// a unique violation.
pub(crate) async fn insert_device_certificate(
    conn: &mut AnyConnection,
    device_id: i64,
    org_id: i64,
    cert: &Certificate,
    source: CertificateSource,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let last_used = (source == CertificateSource::Presented).then_some(now);
    sqlx::query_scalar(
        "INSERT INTO device_certificates (device_id, org_id, serial, aki, ski, not_before, not_after,
             der, fingerprint, public_key_fingerprint, inserted_at, last_used)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(device_id)
    .bind(org_id)
    .bind(cert.serial())
    .bind(cert.aki().map(hex_upper))
    .bind(cert.ski().map(hex_upper))
    .bind(unix_ms(cert.not_before()))
    .bind(unix_ms(cert.not_after()))
    .bind(cert.der().to_vec())
    .bind(cert.fingerprint())
    .bind(cert.public_key_fingerprint())
    .bind(now)
    .bind(last_used)
    .fetch_one(&mut *conn)
    .await
}

/// Deletes one device certificate.
pub(crate) async fn delete_device_certificate(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM device_certificates WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes every certificate of device `device_id` (before the device itself, whose delete
/// would cascade to them) and returns their SHA-1 fingerprints, for the trust change.
pub(crate) async fn delete_device_certificates(
    conn: &mut AnyConnection,
    device_id: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("DELETE FROM device_certificates WHERE device_id = $1 RETURNING fingerprint")
        .bind(device_id)
        .fetch_all(&mut *conn)
        .await
}

/// The devices other than `device_id` that already have a certificate for this public key
/// (a public key belongs to one device only).
pub(crate) async fn public_key_owner(
    conn: &mut AnyConnection,
    public_key_fingerprint: &str,
    device_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(trusted(format!(
        "SELECT d.identifier {DEVICE_CERT_FROM}
         WHERE c.public_key_fingerprint = $1 AND c.device_id <> $2 LIMIT 1"
    )))
    .bind(public_key_fingerprint)
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await
}

/// The orgs of the registered CAs whose SKI is `ski` (upper-case hex).
pub(crate) async fn ca_orgs_with_ski(
    conn: &mut AnyConnection,
    ski: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM ca_certificates WHERE ski = $1")
        .bind(ski)
        .fetch_all(&mut *conn)
        .await
}

const CA_COLUMNS: &str = "c.id, c.org_id, c.serial, c.not_before, c.not_after, c.der, \
     c.description, c.jitp_product_id, p.name AS jitp_product_name, c.jitp_tags, \
     c.jitp_description";

const CA_FROM: &str = "FROM ca_certificates c LEFT JOIN products p ON p.id = c.jitp_product_id";

/// A registered Device CA.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct CaCertificateRow {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    /// Decimal; unique server-wide.
    pub(crate) serial: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) der: Vec<u8>,
    pub(crate) description: String,
    /// The JITP product, if the CA provisions unknown devices.
    pub(crate) jitp_product_id: Option<i64>,
    pub(crate) jitp_product_name: Option<String>,
    /// JSON array of strings.
    pub(crate) jitp_tags: Option<String>,
    pub(crate) jitp_description: Option<String>,
}

impl CaCertificateRow {
    /// The CA for a [`TrustStore`]. It passed [`nerveshub_pki::CaRegistration::vet`] when it
    /// was registered; this repeats the structural checks on the stored DER.
    pub(crate) fn registered(&self) -> Result<RegisteredCa, nerveshub_pki::Error> {
        RegisteredCa::new(Certificate::from_der(&self.der)?, true)
    }

    /// The certificate's subject in RFC 4514 form (empty if the stored DER no longer parses,
    /// which only a corrupted row could do).
    pub(crate) fn subject(&self) -> String {
        Certificate::from_der(&self.der)
            .map(|cert| cert.subject().to_owned())
            .unwrap_or_default()
    }

    /// The JITP profile's tags.
    pub(crate) fn jitp_tag_list(&self) -> Vec<String> {
        self.jitp_tags
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}

/// The just-in-time provisioning profile stored with a CA.
#[derive(Debug, Clone)]
pub(crate) struct JitpFields<'a> {
    pub(crate) product_id: i64,
    pub(crate) tags: &'a [String],
    pub(crate) description: &'a str,
}

/// How many certificates a device has, read inside the caller's transaction.
pub(crate) async fn device_certificate_count(
    conn: &mut AnyConnection,
    device_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM device_certificates WHERE device_id = $1")
        .bind(device_id)
        .fetch_one(&mut *conn)
        .await
}

/// The org of a product, read inside the caller's transaction.
pub(crate) async fn product_org(
    conn: &mut AnyConnection,
    product_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM products WHERE id = $1")
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Stores a vetted CA for `org_id` and returns its id; a serial already registered (by any
/// org) is a unique violation.
pub(crate) async fn insert_ca_certificate(
    conn: &mut AnyConnection,
    org_id: i64,
    cert: &Certificate,
    description: &str,
    jitp: Option<&JitpFields<'_>>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO ca_certificates (org_id, serial, aki, ski, not_before, not_after, der,
             description, jitp_product_id, jitp_tags, jitp_description, inserted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(org_id)
    .bind(cert.serial())
    .bind(cert.aki().map(hex_upper))
    .bind(cert.ski().map(hex_upper))
    .bind(unix_ms(cert.not_before()))
    .bind(unix_ms(cert.not_after()))
    .bind(cert.der().to_vec())
    .bind(description)
    .bind(jitp.map(|j| j.product_id))
    .bind(jitp.map(|j| serde_json::Value::from(j.tags.to_vec()).to_string()))
    .bind(jitp.map(|j| j.description.to_owned()))
    .bind(now_ms())
    .fetch_one(&mut *conn)
    .await
}

/// Deletes a registered CA. Device certificates it issued stay (NervesHub keeps them too);
/// devices that are not yet known can no longer join through it.
pub(crate) async fn delete_ca_certificate(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ca_certificates WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that CA `id` just vouched for a device (a certificate's first use).
pub(crate) async fn touch_ca_certificate(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ca_certificates SET last_used = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a token issued to `org_id` at `now` (Unix ms, by the server's clock), dropping the
/// org's expired ones.
pub(crate) async fn insert_verification_token(
    conn: &mut AnyConnection,
    org_id: i64,
    token: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ca_verification_tokens WHERE org_id = $1 AND inserted_at < $2")
        .bind(org_id)
        .bind(now - VERIFICATION_TOKEN_TTL_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ca_verification_tokens (org_id, token, inserted_at) VALUES ($1, $2, $3)",
    )
    .bind(org_id)
    .bind(token)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Uses up `token` if `org_id` was issued it less than an hour before `now` (Unix ms, by the
/// server's clock): deletes it and answers whether it was there. Inside the registration's
/// transaction, so a refused registration keeps the token, and two registrations cannot both
/// use it.
pub(crate) async fn take_verification_token(
    conn: &mut AnyConnection,
    org_id: i64,
    token: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM ca_verification_tokens WHERE org_id = $1 AND token = $2 AND inserted_at >= $3",
    )
    .bind(org_id)
    .bind(token)
    .bind(now - VERIFICATION_TOKEN_TTL_MS)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Db {
    /// The certificates of device `device_id`, by serial.
    pub(crate) async fn device_certificates(
        &self,
        device_id: i64,
    ) -> Result<Vec<DeviceCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_CERT_COLUMNS} {DEVICE_CERT_FROM} WHERE c.device_id = $1 ORDER BY c.id"
        )))
        .bind(device_id)
        .fetch_all(self.pool())
        .await
    }

    /// One certificate of device `device_id` by decimal serial.
    pub(crate) async fn device_certificate(
        &self,
        device_id: i64,
        serial: &str,
    ) -> Result<Option<DeviceCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_CERT_COLUMNS} {DEVICE_CERT_FROM} WHERE c.device_id = $1 AND c.serial = $2"
        )))
        .bind(device_id)
        .bind(serial)
        .fetch_optional(self.pool())
        .await
    }

    /// The stored device certificate whose SHA-1 fingerprint (upper-case hex, as
    /// [`Certificate::fingerprint`] gives it) is `fingerprint`, with its device's identifier:
    /// how a device presenting a known certificate is recognised, and what
    /// `POST …/devices/auth` answers.
    pub(crate) async fn device_certificate_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<DeviceCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_CERT_COLUMNS} {DEVICE_CERT_FROM} WHERE c.fingerprint = $1"
        )))
        .bind(fingerprint.to_ascii_uppercase())
        .fetch_optional(self.pool())
        .await
    }

    /// The device owning the certificate with this SHA-1 fingerprint (upper-case hex): who a
    /// device presenting a known certificate is.
    pub(crate) async fn device_by_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<Option<DeviceRef>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {} {DEVICE_CERT_FROM} WHERE c.fingerprint = $1",
            super::devices::DEVICE_REF_COLUMNS
        )))
        .bind(fingerprint)
        .fetch_optional(self.pool())
        .await
    }

    /// Records that the certificate with this SHA-1 fingerprint just authenticated its device.
    pub(crate) async fn touch_device_certificate(
        &self,
        fingerprint: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE device_certificates SET last_used = $1 WHERE fingerprint = $2")
            .bind(self.now_ms())
            .bind(fingerprint)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every stored device certificate on the server, for the known certificates of a
    /// [`TrustStore`] (see [`Db::trust_store`]).
    pub(crate) async fn device_certificates_all(
        &self,
    ) -> Result<Vec<DeviceCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_CERT_COLUMNS} {DEVICE_CERT_FROM} ORDER BY c.id"
        )))
        .fetch_all(self.pool())
        .await
    }

    /// The CAs registered by `org_id`, oldest first.
    pub(crate) async fn ca_certificates(
        &self,
        org_id: i64,
    ) -> Result<Vec<CaCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {CA_COLUMNS} {CA_FROM} WHERE c.org_id = $1 ORDER BY c.id"
        )))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
    }

    /// One CA of `org_id` by decimal serial.
    pub(crate) async fn ca_certificate(
        &self,
        org_id: i64,
        serial: &str,
    ) -> Result<Option<CaCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {CA_COLUMNS} {CA_FROM} WHERE c.org_id = $1 AND c.serial = $2"
        )))
        .bind(org_id)
        .bind(serial)
        .fetch_optional(self.pool())
        .await
    }

    /// Every registered CA on the server, oldest first: the CAs of a [`TrustStore`]
    /// (each through [`CaCertificateRow::registered`]). A row's `org_id` is the org of the
    /// devices it may introduce; its JITP fields say how to create unknown ones.
    pub(crate) async fn ca_certificates_all(&self) -> Result<Vec<CaCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {CA_COLUMNS} {CA_FROM} ORDER BY c.id"
        )))
        .fetch_all(self.pool())
        .await
    }

    /// The registered CA with exactly this certificate (the anchor of a device's chain).
    pub(crate) async fn ca_certificate_by_der(
        &self,
        der: &[u8],
    ) -> Result<Option<CaCertificateRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {CA_COLUMNS} {CA_FROM} WHERE c.der = $1 ORDER BY c.id LIMIT 1"
        )))
        .bind(der.to_vec())
        .fetch_optional(self.pool())
        .await
    }

    /// A [`TrustStore`] of everything stored now: every registered CA and every known device
    /// certificate. A stored CA that no longer passes the structural checks is left out (and
    /// logged) rather than failing the whole store.
    /// `builder` is an empty store's builder with the configured crypto provider
    /// ([`TrustStore::builder_with_provider`]).
    pub(crate) async fn trust_store(
        &self,
        mut builder: TrustStoreBuilder,
    ) -> Result<TrustStore, sqlx::Error> {
        let cas = self.ca_certificates_all().await?;
        let known = self.device_certificates_all().await?;
        for ca in &cas {
            match ca.registered() {
                Ok(registered) => builder = builder.ca(registered),
                Err(e) => {
                    tracing::warn!(serial = %ca.serial, error = %e, "stored Device CA is unusable")
                }
            }
        }
        Ok(builder
            .known_certificates(known.iter().map(DeviceCertificateRow::known))
            .build())
    }
}

#[cfg(test)]
mod tests {
    //! The device endpoint's lookups against a real database: SQLite always, PostgreSQL too
    //! when `NERVESHUB_TEST_DATABASE_URL` is set (in a database made for the test).
    use std::time::Duration;

    use nerveshub_pki::{CertOptions, DeviceAuth, DeviceCa, UnixTime};

    use super::*;
    use crate::db::{self, NewDevice, SecretOwner};

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn device_endpoint_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let year = 365 * 24 * 3600;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (from, until) = (at(now - 3600), at(now + year));
        let ca = DeviceCa::generate(&CertOptions::new("Lookup CA", from, until)).unwrap();
        let (cert, _) = ca
            .issue_device(&CertOptions::new("nerves-42", from, until))
            .unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_certs").await {
            let mut tx = db.begin().await.unwrap();
            let org = db::insert_org(&mut tx, "acme").await.unwrap();
            let product = db::insert_product(&mut tx, org.id, "hub").await.unwrap();
            let tags = vec!["eu".to_owned()];
            let device_id = db::insert_device(
                &mut tx,
                &NewDevice {
                    org_id: org.id,
                    product_id: product.id,
                    identifier: "nerves-42",
                    description: "",
                    tags: &tags,
                },
            )
            .await
            .unwrap();
            insert_device_certificate(&mut tx, device_id, org.id, &cert, CertificateSource::Added)
                .await
                .unwrap();
            let jitp = JitpFields {
                product_id: product.id,
                tags: &tags,
                description: "jit",
            };
            insert_ca_certificate(&mut tx, org.id, ca.certificate(), "CA", Some(&jitp))
                .await
                .unwrap();
            db::insert_shared_secret(&mut tx, SecretOwner::Product, product.id, "nhp_k", "s1")
                .await
                .unwrap();
            let dead =
                db::insert_shared_secret(&mut tx, SecretOwner::Product, product.id, "nhp_x", "s2")
                    .await
                    .unwrap();
            db::deactivate_shared_secret(&mut tx, SecretOwner::Product, dead.id)
                .await
                .unwrap();
            db::insert_shared_secret(&mut tx, SecretOwner::Device, device_id, "nhd_k", "s3")
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // By fingerprint (either case), with the device's identifier.
            let found = db
                .device_certificate_by_fingerprint(&cert.fingerprint().to_lowercase())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.identifier, "nerves-42");
            assert_eq!(found.serial, cert.serial());
            assert_eq!(found.device_id, device_id);
            let last_used = |table: &'static str| {
                let db = db.clone();
                async move {
                    let sql = format!("SELECT last_used FROM {table}");
                    let used: Option<i64> = sqlx::query_scalar(trusted(sql))
                        .fetch_one(db.pool())
                        .await
                        .unwrap();
                    used
                }
            };
            assert!(last_used("device_certificates").await.is_none());
            db.touch_device_certificate(cert.fingerprint())
                .await
                .unwrap();
            assert!(last_used("device_certificates").await.is_some());
            assert!(
                db.device_certificate_by_fingerprint("00")
                    .await
                    .unwrap()
                    .is_none()
            );
            let device = db
                .device_by_certificate(cert.fingerprint())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (device.id, device.org_id, device.product_id),
                (device_id, org.id, product.id)
            );

            // CAs: all of them, by SKI, with the JITP profile.
            let cas = db.ca_certificates_all().await.unwrap();
            assert_eq!(cas.len(), 1);
            assert_eq!(cas[0].jitp_product_name.as_deref(), Some("hub"));
            assert_eq!(cas[0].jitp_tag_list(), tags);
            cas[0].registered().unwrap();
            let by_der = db
                .ca_certificate_by_der(ca.certificate().der())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(by_der.id, cas[0].id);
            let mut conn = db.pool().acquire().await.unwrap();
            touch_ca_certificate(&mut conn, cas[0].id).await.unwrap();
            drop(conn);
            assert!(last_used("ca_certificates").await.is_some());

            // The trust store knows the certificate and trusts the CA.
            let store = db.trust_store(TrustStore::builder()).await.unwrap();
            let now = at(now);
            let known = store.verify_device(&[cert.der().clone()], now).unwrap();
            assert_eq!(known.auth(), DeviceAuth::KnownCertificate);
            assert_eq!(known.identifier(), "nerves-42");
            let (fresh, _) = ca
                .issue_device(&CertOptions::new("nerves-43", from, until))
                .unwrap();
            let new = store.verify_device(&[fresh.der().clone()], now).unwrap();
            assert_eq!(new.auth(), DeviceAuth::NewCertificate);

            // Shared secrets: active keys only.
            let product_secret = db.product_secret("nhp_k").await.unwrap().unwrap();
            assert_eq!(
                (product_secret.product_id, product_secret.org_id),
                (product.id, org.id)
            );
            assert_eq!(product_secret.secret, "s1");
            assert!(db.product_secret("nhp_x").await.unwrap().is_none());
            assert!(db.product_secret("nhd_k").await.unwrap().is_none());
            let device_secret = db.device_secret("nhd_k").await.unwrap().unwrap();
            assert_eq!(device_secret.device_id, Some(device_id));
            assert!(
                !format!("{device_secret:?}").contains("s3"),
                "Debug hides the secret"
            );

            db.close().await;
            db::drop_test_database(pg).await;
        }
    }
}
