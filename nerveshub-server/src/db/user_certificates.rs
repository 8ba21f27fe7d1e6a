//! Certificates the user CA issued to users for the management API's HTTPS listener
//! ([`crate::user_ca`] signs them; these rows say whose they are and whether revoked).

use nerveshub_pki::Certificate;
use sqlx::{AnyConnection, FromRow};

use super::{Db, UserRow, now_ms, unix_ms};

/// A stored user certificate.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct UserCertificateRow {
    pub(crate) serial: String,
    pub(crate) note: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) inserted_at: i64,
}

/// Records a certificate issued to `user_id`; a serial or fingerprint already stored is a
/// unique violation.
pub(crate) async fn insert_user_certificate(
    conn: &mut AnyConnection,
    user_id: i64,
    cert: &Certificate,
    note: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_certificates (user_id, serial, fingerprint, note, not_before, not_after, inserted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(cert.serial())
    .bind(cert.sha256_fingerprint())
    .bind(note)
    .bind(unix_ms(cert.not_before()))
    .bind(unix_ms(cert.not_after()))
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes the user's certificate `serial`; false when the user has no such certificate.
pub(crate) async fn revoke_user_certificate(
    conn: &mut AnyConnection,
    user_id: i64,
    serial: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE user_certificates SET revoked_at = COALESCE(revoked_at, $1)
         WHERE user_id = $2 AND serial = $3",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(serial)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

impl Db {
    /// The user's certificates, newest first.
    pub(crate) async fn user_certificates(
        &self,
        user_id: i64,
    ) -> Result<Vec<UserCertificateRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT serial, note, not_before, not_after, revoked_at, inserted_at
             FROM user_certificates WHERE user_id = $1 ORDER BY inserted_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
    }

    /// The user whose certificate has this SHA-256 fingerprint, unless it was revoked or has
    /// expired.
    pub(crate) async fn user_by_certificate(
        &self,
        sha256_fingerprint: &str,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.password_hash, u.server_admin
             FROM user_certificates c JOIN users u ON u.id = c.user_id
             WHERE c.fingerprint = $1 AND c.revoked_at IS NULL AND c.not_after > $2",
        )
        .bind(sha256_fingerprint)
        .bind(self.now_ms())
        .fetch_optional(self.pool())
        .await
    }
}
