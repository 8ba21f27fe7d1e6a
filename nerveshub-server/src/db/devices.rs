//! Devices: identity (identifier unique server-wide), description, tags, firmware metadata
//! and connection state.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow};

use super::{ConnectionStatus, Db, Flag, now_ms, placeholders, trusted};

/// The columns of a [`DeviceRef`] (`d` is `devices`).
pub(super) const DEVICE_REF_COLUMNS: &str =
    "d.id, d.org_id, d.product_id, d.identifier, d.firmware_metadata";

/// A device as the device endpoint knows it: who it is and what it last reported. Read from
/// `devices` alone, for every connection and poll; [`DeviceRow`] is the whole record.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeviceRef {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) identifier: String,
    /// JSON object as the device reported it, `None` until its first connection.
    pub(crate) firmware_metadata: Option<String>,
}

/// The columns of a [`DeviceRow`], with the org and product names joined in (`d`, `o`, `p`).
const DEVICE_COLUMNS: &str = "d.id, d.org_id, d.product_id, d.identifier, d.description, \
     d.firmware_metadata, d.updates_enabled, d.connection_status, d.connection_last_seen_at, \
     o.name AS org_name, p.name AS product_name, \
     d.deployment_id, d.updates_blocked_until, g.name AS deployment_name, \
     g.is_active AS deployment_is_active, gf.uuid AS deployment_firmware_uuid, \
     gf.version AS deployment_firmware_version, d.poll_online_until, \
     d.connection_remote_address, d.connection_auth, fu.id AS in_flight_update_id";

const DEVICE_FROM: &str = "FROM devices d JOIN orgs o ON o.id = d.org_id \
     JOIN products p ON p.id = d.product_id \
     LEFT JOIN deployments g ON g.id = d.deployment_id \
     LEFT JOIN deployment_releases gr ON gr.deployment_id = g.id AND gr.number = \
         (SELECT MAX(x.number) FROM deployment_releases x WHERE x.deployment_id = g.id) \
     LEFT JOIN firmwares gf ON gf.id = gr.firmware_id \
     LEFT JOIN device_updates fu ON fu.device_id = d.id AND fu.finished_at IS NULL";

/// A device as stored, with the names of its org and product.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeviceRow {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    /// Unique across the server; the common name of the device's certificates.
    pub(crate) identifier: String,
    pub(crate) description: String,
    /// In the order they were given (`device_tags`, read after the row).
    #[sqlx(skip)]
    pub(crate) tags: Vec<String>,
    /// JSON object as the device reported it, `None` until its first connection.
    pub(crate) firmware_metadata: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub(crate) updates_enabled: bool,
    #[sqlx(try_from = "String")]
    pub(crate) connection_status: ConnectionStatus,
    /// Unix ms of the last message from the device.
    pub(crate) connection_last_seen_at: Option<i64>,
    pub(crate) org_name: String,
    pub(crate) product_name: String,
    pub(crate) deployment_id: Option<i64>,
    /// Unix ms until which the device is in the penalty box.
    pub(crate) updates_blocked_until: Option<i64>,
    pub(crate) deployment_name: Option<String>,
    pub(crate) deployment_is_active: Option<i64>,
    pub(crate) deployment_firmware_uuid: Option<String>,
    pub(crate) deployment_firmware_version: Option<String>,
    /// Until when a polling device counts as online (Unix ms).
    pub(crate) poll_online_until: Option<i64>,
    /// The peer (`ip:port`) of the device's current or last socket.
    pub(crate) connection_remote_address: Option<String>,
    /// How that socket authenticated: `certificate` or `shared_secret`.
    pub(crate) connection_auth: Option<String>,
    /// The update in flight to the device, if any (at most one: a unique index).
    pub(crate) in_flight_update_id: Option<i64>,
    /// When the row was read (Unix ms, by the server's clock): what [`DeviceRow::online`] and
    /// [`DeviceRow::in_penalty_box`] compare with.
    #[sqlx(skip)]
    pub(crate) read_at: i64,
}

impl DeviceRow {
    /// The firmware metadata document, if the device reported one.
    pub(crate) fn firmware_metadata_json(&self) -> Option<serde_json::Value> {
        self.firmware_metadata
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// Whether the device is connected now, or polling (its last poll within two poll
    /// intervals).
    pub(crate) fn online(&self) -> bool {
        self.connection_status == ConnectionStatus::Connected
            || self
                .poll_online_until
                .is_some_and(|until| until >= self.read_at)
    }

    /// Whether an update is in flight to the device.
    pub(crate) fn updating(&self) -> bool {
        self.in_flight_update_id.is_some()
    }

    /// Whether the device's updates are blocked now (the penalty box).
    pub(crate) fn in_penalty_box(&self) -> bool {
        self.updates_blocked_until.is_some_and(|t| t > self.read_at)
    }
}

/// The fields of a new device.
#[derive(Debug, Clone)]
pub(crate) struct NewDevice<'a> {
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) identifier: &'a str,
    pub(crate) description: &'a str,
    pub(crate) tags: &'a [String],
}

/// Inserts a device and returns its id. A duplicate identifier (anywhere on the server) is a
/// unique violation.
pub(crate) async fn insert_device(
    conn: &mut AnyConnection,
    new: &NewDevice<'_>,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let id = sqlx::query_scalar(
        "INSERT INTO devices (org_id, product_id, identifier, description, inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(new.org_id)
    .bind(new.product_id)
    .bind(new.identifier)
    .bind(new.description)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    write_tags(conn, id, new.tags).await?;
    Ok(id)
}

/// Replaces a device's tags with `tags`, in this order (distinct: the API drops repeats).
async fn write_tags(
    conn: &mut AnyConnection,
    device_id: i64,
    tags: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
    if tags.is_empty() {
        return Ok(());
    }
    let values = (0..tags.len())
        .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO device_tags (device_id, position, tag) VALUES {values}");
    let mut query = sqlx::query(trusted(sql)).bind(device_id);
    for (position, tag) in (0_i64..).zip(tags) {
        query = query.bind(position).bind(tag.as_str());
    }
    query.persistent(false).execute(&mut *conn).await?;
    Ok(())
}

/// The tags of the devices `ids`, each device's in order (a device without tags is absent).
pub(super) async fn tags_of(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<String>>, sqlx::Error> {
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    // Bounded statements: at most 1,000 ids each.
    for chunk in ids.chunks(1000) {
        let sql = format!(
            "SELECT device_id, tag FROM device_tags WHERE device_id IN ({})
             ORDER BY device_id, position",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(trusted(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for (device_id, tag) in query.persistent(false).fetch_all(&mut *conn).await? {
            tags.entry(device_id).or_default().push(tag);
        }
    }
    Ok(tags)
}

/// Fills in the rows' tags and the time they were read (`read_at`, Unix ms).
async fn with_tags(
    conn: &mut AnyConnection,
    mut rows: Vec<DeviceRow>,
    read_at: i64,
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = tags_of(conn, &ids).await?;
    for row in &mut rows {
        row.tags = tags.remove(&row.id).unwrap_or_default();
        row.read_at = read_at;
    }
    Ok(rows)
}

/// One device with its tags, read at `read_at`.
async fn one_with_tags(
    conn: &mut AnyConnection,
    row: Option<DeviceRow>,
    read_at: i64,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    match row {
        Some(row) => Ok(with_tags(conn, vec![row], read_at).await?.pop()),
        None => Ok(None),
    }
}

/// Sets a device's description, tags and updates flag.
pub(crate) async fn update_device(
    conn: &mut AnyConnection,
    id: i64,
    description: &str,
    tags: &[String],
    updates_enabled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET description = $1, updates_enabled = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(description)
    .bind(Flag(updates_enabled))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    write_tags(conn, id, tags).await
}

/// Deletes a device; its certificates, shared secrets, updates and events go with it.
pub(crate) async fn delete_device(conn: &mut AnyConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A device by id, read inside the caller's transaction.
pub(crate) async fn device_by_id_in(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    let row = sqlx::query_as(trusted(format!(
        "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    one_with_tags(conn, row, now_ms()).await
}

/// Which devices of a product a listing shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceFilter {
    /// Substring of the identifier, ignoring ASCII case.
    pub(crate) identifier: Option<String>,
    /// A tag the device carries (exact).
    pub(crate) tag: Option<String>,
    /// Connected now (`true`) or not (`false`).
    pub(crate) online: Option<bool>,
    /// A state the device is in.
    pub(crate) status: Option<DeviceStatus>,
}

/// A state a listing can ask for (`status=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    /// Connected, or polling within two poll intervals.
    Online,
    /// Neither.
    Offline,
    /// An update in flight.
    Updating,
    /// Updates blocked until a time still ahead.
    PenaltyBox,
}

impl Db {
    /// A device of `product_id` by identifier.
    pub(crate) async fn device(
        &self,
        product_id: i64,
        identifier: &str,
    ) -> Result<Option<DeviceRow>, sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        let row = sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.product_id = $1 AND d.identifier = $2"
        )))
        .bind(product_id)
        .bind(identifier)
        .fetch_optional(&mut *conn)
        .await?;
        one_with_tags(&mut conn, row, self.now_ms()).await
    }

    /// A device by identifier, whatever its org and product (identifiers are unique
    /// server-wide): for the device endpoint, where a certificate's common name or a shared
    /// secret's token names the device.
    pub(crate) async fn device_ref_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<DeviceRef>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_REF_COLUMNS} FROM devices d WHERE d.identifier = $1"
        )))
        .bind(identifier)
        .fetch_optional(self.pool())
        .await
    }

    /// A device by id, as the device endpoint knows it.
    pub(crate) async fn device_ref(&self, id: i64) -> Result<Option<DeviceRef>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_REF_COLUMNS} FROM devices d WHERE d.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
    }

    /// The device `identifier` of the product named `product` in org `org_id`.
    pub(crate) async fn device_ref_in_product(
        &self,
        org_id: i64,
        product: &str,
        identifier: &str,
    ) -> Result<Option<DeviceRef>, sqlx::Error> {
        sqlx::query_as(trusted(format!(
            "SELECT {DEVICE_REF_COLUMNS} FROM devices d JOIN products p ON p.id = d.product_id
             WHERE d.org_id = $1 AND p.name = $2 AND d.identifier = $3"
        )))
        .bind(org_id)
        .bind(product)
        .bind(identifier)
        .fetch_optional(self.pool())
        .await
    }

    /// A device by id (the `device_id` of a certificate or shared secret).
    pub(crate) async fn device_by_id(&self, id: i64) -> Result<Option<DeviceRow>, sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        let mut row = device_by_id_in(&mut conn, id).await?;
        if let Some(row) = &mut row {
            row.read_at = self.now_ms();
        }
        Ok(row)
    }

    /// One page (1-based) of `product_id`'s devices matching `filter`, by identifier, and how
    /// many match in all.
    pub(crate) async fn devices_page(
        &self,
        product_id: i64,
        filter: &DeviceFilter,
        page: i64,
        page_size: i64,
    ) -> Result<(Vec<DeviceRow>, i64), sqlx::Error> {
        let mut conditions = vec!["d.product_id = $1".to_owned()];
        let mut binds: Vec<String> = Vec::new();
        if let Some(identifier) = &filter.identifier {
            // A plain substring, the same on both engines: the input's wildcards escaped,
            // both sides lower-cased (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).
            binds.push(format!(
                "%{}%",
                like_escape(&identifier.to_ascii_lowercase())
            ));
            conditions.push(format!(
                "LOWER(d.identifier) LIKE ${} ESCAPE '\\'",
                binds.len() + 1
            ));
        }
        if let Some(tag) = &filter.tag {
            // Exactly this tag, case and all (`eu` is neither `europe` nor `EU`).
            binds.push(tag.clone());
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.tag = ${})",
                binds.len() + 1
            ));
        }
        // Numbers computed here, not input: safe to write into the SQL.
        let now = self.now_ms();
        let polling = format!("COALESCE(d.poll_online_until, 0) >= {now}");
        let online = format!("(d.connection_status = 'connected' OR {polling})");
        let offline = format!("d.connection_status <> 'connected' AND NOT ({polling})");
        match filter.online {
            Some(true) => conditions.push(online.clone()),
            Some(false) => conditions.push(offline.clone()),
            None => {}
        }
        match filter.status {
            Some(DeviceStatus::Online) => conditions.push(online),
            Some(DeviceStatus::Offline) => conditions.push(offline),
            Some(DeviceStatus::Updating) => conditions.push(
                "EXISTS (SELECT 1 FROM device_updates u WHERE u.device_id = d.id \
                 AND u.finished_at IS NULL)"
                    .to_owned(),
            ),
            Some(DeviceStatus::PenaltyBox) => {
                conditions.push(format!("d.updates_blocked_until > {now}"));
            }
            None => {}
        }
        let wheres = conditions.join(" AND ");

        // Every condition is on `d` (and its own tags): counted without the joins.
        let count_sql = format!("SELECT COUNT(*) FROM devices d WHERE {wheres}");
        let mut count = sqlx::query_scalar(trusted(count_sql)).bind(product_id);
        for value in &binds {
            count = count.bind(value.as_str());
        }
        let mut conn = self.pool().acquire().await?;
        let total: i64 = count.fetch_one(&mut *conn).await?;

        // The page's ids first, from the (product_id, identifier) index alone, then the
        // joins for those rows only: a deep page skips index entries, not joined rows.
        let n = binds.len();
        let rows_sql = format!(
            "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.id IN \
             (SELECT d.id FROM devices d WHERE {wheres} ORDER BY d.identifier LIMIT ${} OFFSET ${}) \
             ORDER BY d.identifier",
            n + 2,
            n + 3
        );
        let mut rows = sqlx::query_as(trusted(rows_sql)).bind(product_id);
        for value in &binds {
            rows = rows.bind(value.as_str());
        }
        let offset = page.saturating_sub(1).saturating_mul(page_size);
        let devices = rows
            .bind(page_size)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
        Ok((with_tags(&mut conn, devices, now).await?, total))
    }
}

/// `text` with LIKE's wildcards and the escape character (a backslash) escaped.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
