//! Firmware rows: one per uploaded `.fw`, pointing at its object in storage.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// A stored firmware: the archive's metadata, its checksums and where its bytes are kept.
///
/// The device endpoint builds the `update` push from this: `firmware_meta` is
/// `{architecture, author, description, misc, platform, product, uuid, vcs_identifier,
/// version}`, and `size`, `checksum`, `partials_checksums` describe the file the device
/// downloads from [`crate::storage::Storage::download_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirmwareRow {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    /// The product's name (equal to the archive's `meta-product` when it was uploaded).
    pub(crate) product: String,
    /// The org signing key whose signature verified at upload.
    pub(crate) org_key_id: Option<i64>,
    /// That key's name.
    pub(crate) signing_key: Option<String>,
    /// `meta-uuid`, lower-case hyphenated as fwup prints it.
    pub(crate) uuid: String,
    /// `meta-version`, a SemVer version.
    pub(crate) version: String,
    pub(crate) platform: String,
    pub(crate) architecture: String,
    pub(crate) author: String,
    pub(crate) description: String,
    pub(crate) misc: String,
    pub(crate) vcs_identifier: String,
    /// The file's size in bytes.
    pub(crate) size: u64,
    /// Upper-case hex SHA-256 of the whole file.
    pub(crate) checksum: String,
    /// Upper-case hex SHA-256 of each consecutive 1 MiB piece of the file (the last may be
    /// shorter).
    pub(crate) partials_checksums: Vec<String>,
    /// The object's key in [`crate::storage::Storage`].
    pub(crate) storage_key: String,
    /// Upload time, Unix milliseconds.
    pub(crate) inserted_at: i64,
}

/// What the upload handler inserts.
#[derive(Debug, Clone)]
pub(crate) struct NewFirmware<'a> {
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) org_key_id: Option<i64>,
    pub(crate) uuid: &'a str,
    pub(crate) version: &'a str,
    pub(crate) platform: &'a str,
    pub(crate) architecture: &'a str,
    pub(crate) author: &'a str,
    pub(crate) description: &'a str,
    pub(crate) misc: &'a str,
    pub(crate) vcs_identifier: &'a str,
    pub(crate) size: u64,
    pub(crate) checksum: &'a str,
    pub(crate) partials_checksums: &'a [String],
    pub(crate) storage_key: &'a str,
}

/// The columns as stored: sizes as `i64`, partial checksums as JSON text.
#[derive(FromRow)]
struct StoredFirmware {
    id: i64,
    org_id: i64,
    product_id: i64,
    product: String,
    org_key_id: Option<i64>,
    signing_key: Option<String>,
    uuid: String,
    version: String,
    platform: String,
    architecture: String,
    author: String,
    description: String,
    misc: String,
    vcs_identifier: String,
    size: i64,
    checksum: String,
    partials_checksums: String,
    storage_key: String,
    inserted_at: i64,
}

impl From<StoredFirmware> for FirmwareRow {
    fn from(row: StoredFirmware) -> Self {
        FirmwareRow {
            id: row.id,
            org_id: row.org_id,
            product_id: row.product_id,
            product: row.product,
            org_key_id: row.org_key_id,
            signing_key: row.signing_key,
            uuid: row.uuid,
            version: row.version,
            platform: row.platform,
            architecture: row.architecture,
            author: row.author,
            description: row.description,
            misc: row.misc,
            vcs_identifier: row.vcs_identifier,
            // Written from a u64 below i64::MAX; a negative value cannot come from us.
            size: u64::try_from(row.size).unwrap_or(0),
            checksum: row.checksum,
            // Written by `insert_firmware` as a JSON array of strings.
            partials_checksums: serde_json::from_str(&row.partials_checksums).unwrap_or_default(),
            storage_key: row.storage_key,
            inserted_at: row.inserted_at,
        }
    }
}

/// `SELECT … FROM firmwares` joined with the product's name, then `$tail` (a literal: sqlx
/// takes only static SQL).
macro_rules! select_firmwares {
    ($tail:literal) => {
        concat!(
            "SELECT f.id, f.org_id, f.product_id, p.name AS product, f.org_key_id,
                k.name AS signing_key, f.uuid,
                f.version, f.platform, f.architecture, f.author, f.description, f.misc,
                f.vcs_identifier, f.size, f.checksum, f.partials_checksums, f.storage_key,
                f.inserted_at
            FROM firmwares f JOIN products p ON p.id = f.product_id
            LEFT JOIN org_keys k ON k.id = f.org_key_id ",
            $tail
        )
    };
}

/// Inserts a firmware row and answers its id and `inserted_at`; a second row with the same
/// uuid in the product is a unique violation.
pub(crate) async fn insert_firmware(
    conn: &mut AnyConnection,
    new: &NewFirmware<'_>,
) -> Result<(i64, i64), sqlx::Error> {
    let size = i64::try_from(new.size)
        .map_err(|_| sqlx::Error::Protocol("firmware size does not fit in i64".into()))?;
    let partials = serde_json::to_string(new.partials_checksums)
        .map_err(|e| sqlx::Error::Protocol(format!("encoding partial checksums: {e}")))?;
    let now = now_ms();
    let id = sqlx::query_scalar(
        "INSERT INTO firmwares (org_id, product_id, org_key_id, uuid, version, platform,
             architecture, author, description, misc, vcs_identifier, size, checksum,
             partials_checksums, storage_key, inserted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         RETURNING id",
    )
    .bind(new.org_id)
    .bind(new.product_id)
    .bind(new.org_key_id)
    .bind(new.uuid)
    .bind(new.version)
    .bind(new.platform)
    .bind(new.architecture)
    .bind(new.author)
    .bind(new.description)
    .bind(new.misc)
    .bind(new.vcs_identifier)
    .bind(size)
    .bind(new.checksum)
    .bind(partials)
    .bind(new.storage_key)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, now))
}

/// Whether a device update (pending or past) or a deployment release refers to the firmware.
pub(crate) async fn firmware_in_use(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM device_updates WHERE firmware_id = $1)
              + (SELECT COUNT(*) FROM deployment_releases WHERE firmware_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(count > 0)
}

pub(crate) async fn delete_firmware(conn: &mut AnyConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM firmwares WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Db {
    /// The product's firmware, oldest first.
    pub(crate) async fn firmwares(&self, product_id: i64) -> Result<Vec<FirmwareRow>, sqlx::Error> {
        let rows: Vec<StoredFirmware> =
            sqlx::query_as(select_firmwares!("WHERE f.product_id = $1 ORDER BY f.id"))
                .bind(product_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(FirmwareRow::from).collect())
    }

    /// The firmware with `uuid` (`meta-uuid`) in the product, if any. This is how a device's
    /// reported `nerves_fw_uuid` and an API path's `{uuid}` are resolved.
    pub(crate) async fn firmware_by_uuid(
        &self,
        product_id: i64,
        uuid: &str,
    ) -> Result<Option<FirmwareRow>, sqlx::Error> {
        let row: Option<StoredFirmware> =
            sqlx::query_as(select_firmwares!("WHERE f.product_id = $1 AND f.uuid = $2"))
                .bind(product_id)
                .bind(uuid)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(FirmwareRow::from))
    }

    /// The firmware with this row id (as `device_updates.firmware_id` refers to it), if any.
    pub(crate) async fn firmware_by_id(&self, id: i64) -> Result<Option<FirmwareRow>, sqlx::Error> {
        let row: Option<StoredFirmware> = sqlx::query_as(select_firmwares!("WHERE f.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(FirmwareRow::from))
    }
}
