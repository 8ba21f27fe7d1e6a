//! Products and firmware signing keys.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

#[derive(Debug, Clone, FromRow)]
pub(crate) struct ProductRow {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) name: String,
    /// Seconds between polls asked of the product's polling devices; `None`: the server's.
    pub(crate) poll_interval_seconds: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct KeyRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) key: String,
    /// When the key was added (Unix ms).
    pub(crate) inserted_at: i64,
}

pub(crate) async fn insert_product(
    conn: &mut AnyConnection,
    org_id: i64,
    name: &str,
) -> Result<ProductRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO products (org_id, name, inserted_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ProductRow {
        id,
        org_id,
        name: name.to_owned(),
        poll_interval_seconds: None,
    })
}

/// Sets (or, with `None`, clears) the poll interval of a product's polling devices.
pub(crate) async fn set_product_poll_interval(
    conn: &mut AnyConnection,
    id: i64,
    seconds: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE products SET poll_interval_seconds = $1, updated_at = $2 WHERE id = $3")
        .bind(seconds)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn rename_product(
    conn: &mut AnyConnection,
    id: i64,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE products SET name = $1, updated_at = $2 WHERE id = $3")
        .bind(name)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes a product only if it has no devices and no firmware (so the schema's cascades
/// never remove a row the API acknowledged); returns whether it was deleted. Call it with the
/// product row locked ([`super::lock_row`]).
pub(crate) async fn delete_empty_product(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM products WHERE id = $1
         AND NOT EXISTS (SELECT 1 FROM devices WHERE product_id = $1)
         AND NOT EXISTS (SELECT 1 FROM firmwares WHERE product_id = $1)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether a product still has devices or firmware.
pub(crate) async fn product_in_use(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM devices WHERE product_id = $1) + (SELECT COUNT(*) FROM firmwares WHERE product_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(count > 0)
}

pub(crate) async fn insert_key(
    conn: &mut AnyConnection,
    org_id: i64,
    name: &str,
    key: &str,
    created_by: i64,
) -> Result<KeyRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO org_keys (org_id, name, key, created_by_id, inserted_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(key)
    .bind(created_by)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(KeyRow {
        id,
        name: name.to_owned(),
        key: key.to_owned(),
        inserted_at: now,
    })
}

pub(crate) async fn delete_key(conn: &mut AnyConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM org_keys WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Db {
    pub(crate) async fn products(&self, org_id: i64) -> Result<Vec<ProductRow>, sqlx::Error> {
        sqlx::query_as("SELECT id, org_id, name, poll_interval_seconds FROM products WHERE org_id = $1 ORDER BY name")
            .bind(org_id)
            .fetch_all(self.pool())
            .await
    }

    pub(crate) async fn product(
        &self,
        org_id: i64,
        name: &str,
    ) -> Result<Option<ProductRow>, sqlx::Error> {
        sqlx::query_as("SELECT id, org_id, name, poll_interval_seconds FROM products WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await
    }

    /// Every storage key a firmware row refers to (what the orphan sweep must keep).
    pub(crate) async fn firmware_storage_keys(
        &self,
    ) -> Result<std::collections::HashSet<String>, sqlx::Error> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT storage_key FROM firmwares")
            .fetch_all(self.pool())
            .await?;
        Ok(keys.into_iter().collect())
    }

    pub(crate) async fn keys(&self, org_id: i64) -> Result<Vec<KeyRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, key, inserted_at FROM org_keys WHERE org_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await
    }

    pub(crate) async fn key(&self, org_id: i64, name: &str) -> Result<Option<KeyRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, key, inserted_at FROM org_keys WHERE org_id = $1 AND name = $2",
        )
        .bind(org_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await
    }
}
