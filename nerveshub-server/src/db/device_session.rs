//! The queries of the device endpoint: who a connecting device is (certificates, Device CAs,
//! shared secrets, just-in-time registration), its connection and firmware metadata, the
//! events it pushes and the progress of its updates.

use nerveshub_pki::Certificate;
use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// The device a socket belongs to.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SessionDevice {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) identifier: String,
    pub(crate) firmware_metadata: Option<String>,
}

const DEVICE_COLUMNS: &str = "d.id, d.org_id, d.product_id, d.identifier, d.firmware_metadata";

/// A registered Device CA, as the device endpoint needs it.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SessionCa {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) jitp_product_id: Option<i64>,
    pub(crate) jitp_tags: Option<String>,
    pub(crate) jitp_description: Option<String>,
}

/// A shared secret found by its key. Its `Debug` leaves the secret out, so it cannot reach a log.
#[derive(Clone, FromRow)]
pub(crate) struct SecretRow {
    /// The product (product keys) or the device's product (device keys).
    pub(crate) product_id: i64,
    pub(crate) org_id: i64,
    /// The device of a device key; `None` for a product key.
    pub(crate) device_id: Option<i64>,
    pub(crate) secret: String,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("product_id", &self.product_id)
            .field("org_id", &self.org_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// What a socket's `device` join records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceJoin<'a> {
    pub(crate) firmware_metadata: &'a str,
    pub(crate) firmware_uuid: Option<&'a str>,
    pub(crate) connection_metadata: &'a str,
    /// The node holding the socket.
    pub(crate) node_id: &'a str,
    /// The peer's `ip:port`.
    pub(crate) remote_address: Option<&'a str>,
    /// `certificate` or `shared_secret`.
    pub(crate) auth: Option<&'a str>,
}

#[cfg(test)]
impl<'a> DeviceJoin<'a> {
    /// A join with empty metadata on `node_id`, for unit tests.
    pub(crate) fn bare(node_id: &'a str) -> Self {
        DeviceJoin {
            firmware_metadata: "{}",
            firmware_uuid: None,
            connection_metadata: "{}",
            node_id,
            remote_address: None,
            auth: None,
        }
    }
}

/// Upper-case hex, as fingerprints and key identifiers are stored.
pub(crate) fn hex(bytes: &[u8]) -> String {
    crate::auth::hex_upper(bytes)
}

fn unix_ms(t: nerveshub_pki::UnixTime) -> i64 {
    i64::try_from(t.as_secs().saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl Db {
    /// The device owning the certificate with this SHA-1 fingerprint.
    pub(crate) async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<SessionDevice>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM device_certificates c JOIN devices d ON d.id = c.device_id
             WHERE c.fingerprint = $1"
        )))
        .bind(fingerprint)
        .fetch_optional(self.pool())
        .await
    }

    /// Marks a device certificate used now.
    pub(crate) async fn touch_certificate_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE device_certificates SET last_used = $1 WHERE fingerprint = $2")
            .bind(now_ms())
            .bind(fingerprint)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The registered CA with exactly this certificate.
    pub(crate) async fn ca_by_der(&self, der: &[u8]) -> Result<Option<SessionCa>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, org_id, jitp_product_id, jitp_tags, jitp_description
             FROM ca_certificates WHERE der = $1 ORDER BY id LIMIT 1",
        )
        .bind(der.to_vec())
        .fetch_optional(self.pool())
        .await
    }

    /// The device with this identifier (identifiers are unique across the server).
    pub(crate) async fn session_device_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<SessionDevice>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.identifier = $1"
        )))
        .bind(identifier)
        .fetch_optional(self.pool())
        .await
    }

    /// The device `identifier` of product `product` in org `org_id`.
    pub(crate) async fn session_device_in_product(
        &self,
        org_id: i64,
        product: &str,
        identifier: &str,
    ) -> Result<Option<SessionDevice>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d JOIN products p ON p.id = d.product_id
             WHERE d.org_id = $1 AND p.name = $2 AND d.identifier = $3"
        )))
        .bind(org_id)
        .bind(product)
        .bind(identifier)
        .fetch_optional(self.pool())
        .await
    }

    /// An active (not deactivated) product shared secret by its key.
    pub(crate) async fn product_secret(&self, key: &str) -> Result<Option<SecretRow>, sqlx::Error> {
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
    pub(crate) async fn device_secret(&self, key: &str) -> Result<Option<SecretRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT d.product_id, d.org_id, d.id AS device_id, s.secret
             FROM device_shared_secrets s JOIN devices d ON d.id = s.device_id
             WHERE s.key = $1 AND s.deactivated_at IS NULL",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await
    }

    /// A device by id.
    pub(crate) async fn session_device(
        &self,
        id: i64,
    ) -> Result<Option<SessionDevice>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
    }

    /// The base64 Ed25519 firmware signing keys of an org.
    pub(crate) async fn org_key_values(&self, org_id: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT key FROM org_keys WHERE org_id = $1 ORDER BY id")
            .bind(org_id)
            .fetch_all(self.pool())
            .await
    }

    /// The device's connection after its `device` join: connected now, with the metadata it
    /// reported. Returns the `connection_established_at` written, which names this connection
    /// for its disconnection (see [`write_disconnects`](Self::write_disconnects)): it is
    /// strictly greater than the device's previous one, even for two joins in one millisecond.
    pub(crate) async fn record_device_join(
        &self,
        device_id: i64,
        join: &DeviceJoin<'_>,
    ) -> Result<i64, sqlx::Error> {
        let now = now_ms();
        let established: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET firmware_metadata = $1, firmware_uuid = $5, connection_metadata = $2,
                 connection_status = 'connected', connected_node = $6,
                 connection_remote_address = $7, connection_auth = $8,
                 connection_established_at = CASE WHEN connection_established_at >= $3
                     THEN connection_established_at + 1 ELSE $3 END,
                 connection_last_seen_at = $3, connection_disconnected_at = NULL,
                 first_seen_at = COALESCE(first_seen_at, $3), updated_at = $3
             WHERE id = $4
             RETURNING connection_established_at",
        )
        .bind(join.firmware_metadata)
        .bind(join.connection_metadata)
        .bind(now)
        .bind(device_id)
        .bind(join.firmware_uuid)
        .bind(join.node_id)
        .bind(join.remote_address)
        .bind(join.auth)
        .fetch_optional(self.pool())
        .await?;
        Ok(established.unwrap_or(now))
    }

    /// The connection metadata changed (network interface, validation…).
    pub(crate) async fn record_connection_metadata(
        &self,
        device_id: i64,
        connection_metadata: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE devices SET connection_metadata = $1 WHERE id = $2")
            .bind(connection_metadata)
            .bind(device_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Presence writer: the devices `ids` (connected) were heard from at `at`; a later "last
    /// seen" already written is kept. One statement; at most
    /// [`BATCH_ROWS`](crate::device::presence::BATCH_ROWS) ids.
    pub(crate) async fn write_last_seen(&self, at: i64, ids: &[i64]) -> Result<u64, sqlx::Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = placeholders(2, ids.len());
        let sql = format!(
            "UPDATE devices SET connection_last_seen_at = $1
             WHERE connection_status = 'connected' AND COALESCE(connection_last_seen_at, 0) < $1
               AND id IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
        for id in ids {
            query = query.bind(*id);
        }
        // Statements differ by their row count: not worth a place in the statement cache.
        let done = query.persistent(false).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// Presence writer: sockets closed. Each row is `(device id, up_to, at)`: the device's
    /// connection is marked disconnected at `at` if it was established at or before `up_to`
    /// (the closed socket's join, or its close when it never joined). A newer connection of
    /// the device (a fast reconnect) is left alone. One statement; at most
    /// [`BATCH_ROWS`](crate::device::presence::BATCH_ROWS) rows.
    pub(crate) async fn write_disconnects(
        &self,
        rows: &[(i64, i64, i64)],
    ) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        // A VALUES list joined by key (`UPDATE … FROM`, SQLite 3.33+ and PostgreSQL; both
        // name its columns column1…): one lookup per row, where CASE lists cost rows².
        let values = (0..rows.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE devices SET connection_status = 'disconnected', connected_node = NULL,
                 connection_disconnected_at = v.column3, connection_last_seen_at = v.column3
             FROM (VALUES {values}) AS v
             WHERE devices.id = v.column1 AND devices.connection_status = 'connected'
               AND COALESCE(devices.connection_established_at, 0) <= v.column2"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, up_to, at) in rows {
            query = query.bind(*id).bind(*up_to).bind(*at);
        }
        let done = query.persistent(false).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// Marks disconnected the devices still shown connected that were last heard from before
    /// `before_ms` (their node stopped without closing them).
    pub(crate) async fn sweep_stale_connections(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE devices SET connection_status = 'disconnected', connected_node = NULL,
                 connection_disconnected_at = $1
             WHERE connection_status = 'connected' AND connection_last_seen_at < $2",
        )
        .bind(now_ms())
        .bind(before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Appends an event the device pushed.
    pub(crate) async fn insert_device_event(
        &self,
        device_id: i64,
        event: &str,
        payload: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO device_events (device_id, event, payload, inserted_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(device_id)
        .bind(event)
        .bind(payload)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// `$first, $first+1, …`: `count` numbered placeholders.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates a device (just-in-time registration by a CA's JITP profile or a product key).
pub(crate) async fn insert_session_device(
    conn: &mut AnyConnection,
    org_id: i64,
    product_id: i64,
    identifier: &str,
    description: &str,
    tags_json: &str,
) -> Result<SessionDevice, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO devices (org_id, product_id, identifier, description, tags, inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(product_id)
    .bind(identifier)
    .bind(description)
    .bind(tags_json)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(SessionDevice {
        id,
        org_id,
        product_id,
        identifier: identifier.to_owned(),
        firmware_metadata: None,
    })
}

/// Stores a device certificate (first connection of a CA-signed device).
pub(crate) async fn insert_session_certificate(
    conn: &mut AnyConnection,
    device_id: i64,
    org_id: i64,
    cert: &Certificate,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO device_certificates (device_id, org_id, serial, aki, ski, not_before, not_after,
             der, fingerprint, public_key_fingerprint, last_used, inserted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(device_id)
    .bind(org_id)
    .bind(cert.serial())
    .bind(cert.aki().map(hex))
    .bind(cert.ski().map(hex))
    .bind(unix_ms(cert.not_before()))
    .bind(unix_ms(cert.not_after()))
    .bind(cert.der().as_ref().to_vec())
    .bind(cert.fingerprint())
    .bind(cert.public_key_fingerprint())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a CA used now.
pub(crate) async fn touch_ca(conn: &mut AnyConnection, ca_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ca_certificates SET last_used = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(ca_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
