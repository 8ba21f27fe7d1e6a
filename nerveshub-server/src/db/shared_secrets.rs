//! Shared secrets for NH1 HMAC device authentication: product keys (`nhp_…`, which may
//! register new devices) and device keys (`nhd_…`). A key is never deleted, only deactivated.

use std::fmt;

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

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

/// SQL assembled only from this module's constant fragments and numbered placeholders, never
/// from input (input is always bound).
fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}
