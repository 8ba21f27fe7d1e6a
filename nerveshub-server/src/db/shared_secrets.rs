//! Shared secrets for NH1 HMAC device authentication: product keys (`nhp_…`, which may
//! register new devices) and device keys (`nhd_…`). A key is never deleted, only deactivated.

use std::fmt;

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms, trusted};
use crate::error::ServerError;

/// A product or device shared secret. `Debug` leaves the secret out.
#[derive(Clone, FromRow)]
pub(crate) struct SharedSecretRow {
    pub(crate) id: i64,
    /// The product (`nhp_` keys) or device (`nhd_` keys) it belongs to.
    pub(crate) owner_id: i64,
    /// The access key the device sends in `x-nh-key`; unique.
    pub(crate) key: String,
    /// The PBKDF2 password the device signs with.
    pub(crate) secret: String,
    /// Unix ms; a deactivated key no longer authenticates anyone.
    pub(crate) deactivated_at: Option<i64>,
    pub(crate) inserted_at: i64,
}

impl fmt::Debug for SharedSecretRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecretRow")
            .field("id", &self.id)
            .field("owner_id", &self.owner_id)
            .field("key", &self.key)
            .field("deactivated_at", &self.deactivated_at)
            .finish_non_exhaustive()
    }
}

/// An active secret found by its access key, with the product, org and device it
/// authenticates for. `Debug` leaves the secret out.
#[derive(Clone, FromRow)]
pub(crate) struct SecretLookup {
    /// The product (product keys) or the device's product (device keys).
    pub(crate) product_id: i64,
    pub(crate) org_id: i64,
    /// The device of a device key; `None` for a product key.
    pub(crate) device_id: Option<i64>,
    pub(crate) secret: String,
}

impl fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretLookup")
            .field("product_id", &self.product_id)
            .field("org_id", &self.org_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Which table a secret lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretOwner {
    Product,
    Device,
}

impl SecretOwner {
    fn table(self) -> &'static str {
        match self {
            SecretOwner::Product => "product_shared_secrets",
            SecretOwner::Device => "device_shared_secrets",
        }
    }
    fn owner_column(self) -> &'static str {
        match self {
            SecretOwner::Product => "product_id",
            SecretOwner::Device => "device_id",
        }
    }
}

/// Stores a new shared secret of `owner_id`.
pub(crate) async fn insert_shared_secret(
    conn: &mut AnyConnection,
    owner: SecretOwner,
    owner_id: i64,
    key: &str,
    secret: &str,
) -> Result<SharedSecretRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(trusted(format!(
        "INSERT INTO {} ({}, key, secret, inserted_at) VALUES ($1, $2, $3, $4) RETURNING id",
        owner.table(),
        owner.owner_column()
    )))
    .bind(owner_id)
    .bind(key)
    .bind(secret)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(SharedSecretRow {
        id,
        owner_id,
        key: key.to_owned(),
        secret: secret.to_owned(),
        deactivated_at: None,
        inserted_at: now,
    })
}

/// Deactivates secret `id` now; a secret already deactivated keeps its first time.
pub(crate) async fn deactivate_shared_secret(
    conn: &mut AnyConnection,
    owner: SecretOwner,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(trusted(format!(
        "UPDATE {} SET deactivated_at = $1 WHERE id = $2 AND deactivated_at IS NULL",
        owner.table()
    )))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Db {
    /// An active (not deactivated) product shared secret by its key.
    pub(crate) async fn product_secret(
        &self,
        key: &str,
    ) -> Result<Option<SecretLookup>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.product_id, p.org_id, CAST(NULL AS BIGINT) AS device_id, s.secret
             FROM product_shared_secrets s JOIN products p ON p.id = s.product_id
             WHERE s.key = $1 AND s.deactivated_at IS NULL",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await
    }

    /// An active (not deactivated) device shared secret by its key.
    pub(crate) async fn device_secret(
        &self,
        key: &str,
    ) -> Result<Option<SecretLookup>, sqlx::Error> {
        sqlx::query_as(
            "SELECT d.product_id, d.org_id, d.id AS device_id, s.secret
             FROM device_shared_secrets s JOIN devices d ON d.id = s.device_id
             WHERE s.key = $1 AND s.deactivated_at IS NULL",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await
    }

    /// The shared secrets of a product or device, active and deactivated, oldest first.
    pub(crate) async fn shared_secrets(
        &self,
        owner: SecretOwner,
        owner_id: i64,
    ) -> Result<Vec<SharedSecretRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT id, {col} AS owner_id, key, secret, deactivated_at, inserted_at FROM {table}
             WHERE {col} = $1 ORDER BY id",
            table = owner.table(),
            col = owner.owner_column()
        )))
        .bind(owner_id)
        .fetch_all(self.pool())
        .await
    }

    /// One shared secret of a product or device by key, active or not.
    pub(crate) async fn shared_secret_of(
        &self,
        owner: SecretOwner,
        owner_id: i64,
        key: &str,
    ) -> Result<Option<SharedSecretRow>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT id, {col} AS owner_id, key, secret, deactivated_at, inserted_at FROM {table}
             WHERE {col} = $1 AND key = $2",
            table = owner.table(),
            col = owner.owner_column()
        )))
        .bind(owner_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await
    }
}

/// The file beside `firmware-url.key` holding the key shared secrets are encrypted with.
pub(crate) const SECRET_KEY_FILE: &str = "shared-secrets.key";
/// Marks an encrypted `secret` column: `enc1:` + base64(nonce ‖ ciphertext ‖ tag).
const SEALED_PREFIX: &str = "enc1:";
const NONCE_LEN: usize = 12;

/// Encrypts shared secrets at rest (AES-256-GCM, the row's access key as associated data),
/// so a copy of the database alone cannot sign NH1 tokens. The protocol needs the secret
/// itself to verify a device, so it cannot be hashed; the key lives in a 0600 file in the
/// data directory, apart from the database (which may be PostgreSQL on another host).
pub(crate) struct SecretCipher {
    key: aws_lc_rs::aead::LessSafeKey,
    /// Names the key without revealing it: every node of a cluster must hold the same one.
    fingerprint: Vec<u8>,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCipher").finish_non_exhaustive()
    }
}

/// A stored secret that does not decrypt with this server's key.
#[derive(Debug, thiserror::Error)]
#[error("a stored shared secret does not decrypt with {SECRET_KEY_FILE}")]
pub(crate) struct SecretUnreadable;

impl SecretCipher {
    /// Reads `<data-dir>/shared-secrets.key` (hex), or creates it with a fresh random key.
    pub(crate) fn load_or_create(data_dir: &std::path::Path) -> Result<Self, ServerError> {
        let path = data_dir.join(SECRET_KEY_FILE);
        let bytes = match std::fs::read_to_string(&path) {
            Ok(text) => decode_hex(text.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    ServerError::Config(format!(
                        "{} does not hold a 32-byte hex key (without it, stored shared secrets cannot be read)",
                        path.display()
                    ))
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| {
                    ServerError::Config(format!("no randomness for the shared-secret key: {e}"))
                })?;
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                crate::tls::write_file(&path, format!("{hex}\n").as_bytes(), true)?;
                key.to_vec()
            }
            Err(e) => return Err(ServerError::io(format!("reading {}", path.display()), e)),
        };
        Self::from_key(&bytes)
            .ok_or_else(|| ServerError::Config("the shared-secret key was refused".into()))
    }

    fn from_key(bytes: &[u8]) -> Option<Self> {
        let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, bytes).ok()?;
        Some(SecretCipher {
            key: aws_lc_rs::aead::LessSafeKey::new(key),
            fingerprint: crate::cluster::key_fingerprint(bytes),
        })
    }

    /// A digest of the key (an HMAC of a fixed text under it) that reveals nothing about it.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        self.fingerprint.clone()
    }

    /// The column text for `secret` of access key `key`.
    pub(crate) fn seal(&self, key: &str, secret: &str) -> Result<String, SecretUnreadable> {
        use aws_lc_rs::aead::{Aad, Nonce};
        use base64::Engine as _;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretUnreadable)?;
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretUnreadable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The secret from its column text; text written before encryption is returned as is.
    pub(crate) fn open(&self, key: &str, stored: &str) -> Result<String, SecretUnreadable> {
        use aws_lc_rs::aead::{Aad, Nonce};
        use base64::Engine as _;
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretUnreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretUnreadable);
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SecretUnreadable)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(key.as_bytes()), &mut sealed)
            .map_err(|_| SecretUnreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretUnreadable)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Encrypts every secret still stored in plaintext (written before encryption at rest);
/// returns how many rows were changed. Runs at start; each row is its own statement, and the
/// `WHERE secret = $old` makes a concurrent change win.
pub(crate) async fn seal_plaintext_secrets(
    db: &Db,
    cipher: &SecretCipher,
) -> Result<u64, ServerError> {
    let mut changed = 0;
    for owner in [SecretOwner::Product, SecretOwner::Device] {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(trusted(format!(
            "SELECT id, key, secret FROM {} WHERE secret NOT LIKE 'enc1:%'",
            owner.table()
        )))
        .fetch_all(db.pool())
        .await?;
        for (id, key, secret) in rows {
            let sealed = cipher
                .seal(&key, &secret)
                // tidy: text — `SecretUnreadable` has no source; its message is all it holds.
                .map_err(|e| ServerError::Config(e.to_string()))?;
            let done = sqlx::query(trusted(format!(
                "UPDATE {} SET secret = $1 WHERE id = $2 AND secret = $3",
                owner.table()
            )))
            .bind(sealed)
            .bind(id)
            .bind(secret)
            .execute(db.pool())
            .await?;
            changed += done.rows_affected();
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_under_their_key_and_access_key() {
        let cipher = SecretCipher::from_key(&[7u8; 32]).unwrap();
        let sealed = cipher.seal("nhp_abc", "the secret").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("the secret"));
        assert_eq!(cipher.open("nhp_abc", &sealed).unwrap(), "the secret");
        // Moved to another row: refused.
        assert!(cipher.open("nhp_other", &sealed).is_err());
        // Another server's key: refused.
        let other = SecretCipher::from_key(&[8u8; 32]).unwrap();
        assert!(other.open("nhp_abc", &sealed).is_err());
        // Tampered or truncated: refused, no panic.
        assert!(cipher.open("nhp_abc", "enc1:AAAA").is_err());
        assert!(cipher.open("nhp_abc", "enc1:!!").is_err());
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(
            cipher
                .open("nhp_abc", &String::from_utf8(flipped).unwrap())
                .is_err()
        );
        // Rows written before encryption still read.
        assert_eq!(cipher.open("nhp_abc", "plain").unwrap(), "plain");
    }
}
