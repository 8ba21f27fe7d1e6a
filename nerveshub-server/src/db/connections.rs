//! What the device endpoint records of a device's connections: joins (firmware and connection
//! metadata, the node holding the socket), the presence writer's "last seen" and
//! disconnections, the stale sweep, and the events a device pushes.

use super::{Db, now_ms, placeholders};

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

impl Db {
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
        let mut query = sqlx::query(super::trusted(sql)).bind(at);
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
        let mut query = sqlx::query(super::trusted(sql));
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
