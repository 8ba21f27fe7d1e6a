//! What the device endpoint records of a device's connections: joins (firmware and connection
//! metadata, the node holding the socket), the presence writer's "last seen" and
//! disconnections, the stale sweep, and the events a device pushes.

use sqlx::AnyConnection;

use super::{Db, placeholders};

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

/// The device's connection after its `device` join: connected now, with the metadata it
/// reported, at `now`, in the caller's transaction (which also writes the audit row of a
/// firmware change). Returns the `connection_established_at` written, which names this connection
/// for its disconnection (see [`Db::write_disconnects`]): it is
/// strictly greater than the device's previous one, even for two joins in one millisecond.
pub(crate) async fn record_device_join(
    conn: &mut AnyConnection,
    now: i64,
    device_id: i64,
    join: &DeviceJoin<'_>,
) -> Result<i64, sqlx::Error> {
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
    .fetch_optional(&mut *conn)
    .await?;
    Ok(established.unwrap_or(now))
}

impl Db {
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

    /// Marks disconnected the devices still shown connected that were last heard from more
    /// than `stale_after` ago by the server's clock (their node stopped without closing them).
    pub(crate) async fn sweep_stale_connections(
        &self,
        stale_after: std::time::Duration,
    ) -> Result<u64, sqlx::Error> {
        let now = self.now_ms();
        let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE devices SET connection_status = 'disconnected', connected_node = NULL,
                 connection_disconnected_at = $1
             WHERE connection_status = 'connected' AND connection_last_seen_at < $2",
        )
        .bind(now)
        .bind(now.saturating_sub(stale_ms))
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
        .bind(self.now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ManualClock;
    use crate::db::{self, NewDevice};

    /// A join is written in its caller's transaction: when the audit row beside it fails,
    /// the join is not recorded either; when both succeed they commit together.
    #[tokio::test]
    async fn a_join_and_its_audit_row_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_join_audit").await {
            let mut tx = db.begin().await.unwrap();
            let org = db::insert_org(&mut tx, "acme").await.unwrap();
            let product = db::insert_product(&mut tx, org.id, "hub").await.unwrap();
            let id = db::insert_device(
                &mut tx,
                &NewDevice {
                    org_id: org.id,
                    product_id: product.id,
                    identifier: "joiner-1",
                    description: "",
                    tags: &[],
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let audit = |org_id| db::Audit {
                org_id: Some(org_id),
                actor: db::Actor::Device(id),
                resource_type: "device",
                resource_id: "joiner-1",
                action: "firmware_changed",
                description: "device joiner-1 now runs other firmware".into(),
            };
            let status = |db: Db| async move {
                db.device_by_id(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .connection_status
            };

            // The audit row refers to an org that does not exist: the transaction fails and
            // the join it carried is gone with it.
            let mut tx = db.begin().await.unwrap();
            record_device_join(&mut tx, db.now_ms(), id, &DeviceJoin::bare("n"))
                .await
                .unwrap();
            assert!(db::audit(&mut tx, audit(org.id + 1_000)).await.is_err());
            drop(tx);
            assert_eq!(status(db.clone()).await, db::ConnectionStatus::NotSeen);

            let mut tx = db.begin().await.unwrap();
            record_device_join(&mut tx, db.now_ms(), id, &DeviceJoin::bare("n"))
                .await
                .unwrap();
            db::audit(&mut tx, audit(org.id)).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(status(db.clone()).await, db::ConnectionStatus::Connected);
            let log = db
                .org_audit_log(org.id, &db::AuditFilter::default(), 10)
                .await
                .unwrap();
            assert_eq!(log[0].action, "firmware_changed");
            db.close().await;
            db::drop_test_database(pg).await;
        }
    }

    /// The sweep marks a connection stale by the server's clock: not at 9 minutes of silence
    /// with a 10-minute limit, at 11 — no sleeping.
    #[tokio::test]
    async fn the_stale_sweep_follows_the_servers_clock() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_stale").await {
            let manual = ManualClock::new(SystemTime::now());
            let db = db.with_clock(manual.clock());
            let mut tx = db.begin().await.unwrap();
            let org = db::insert_org(&mut tx, "acme").await.unwrap();
            let product = db::insert_product(&mut tx, org.id, "hub").await.unwrap();
            let id = db::insert_device(
                &mut tx,
                &NewDevice {
                    org_id: org.id,
                    product_id: product.id,
                    identifier: "quiet-1",
                    description: "",
                    tags: &[],
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let mut conn = db.pool().acquire().await.unwrap();
            record_device_join(&mut conn, db.now_ms(), id, &DeviceJoin::bare("node-a"))
                .await
                .unwrap();
            drop(conn);
            let limit = Duration::from_secs(10 * 60);

            manual.advance(Duration::from_secs(9 * 60));
            assert_eq!(db.sweep_stale_connections(limit).await.unwrap(), 0);
            assert!(db.device_by_id(id).await.unwrap().unwrap().online());

            manual.advance(Duration::from_secs(2 * 60));
            assert_eq!(db.sweep_stale_connections(limit).await.unwrap(), 1);
            let device = db.device_by_id(id).await.unwrap().unwrap();
            assert_eq!(device.connection_status, db::ConnectionStatus::Disconnected);
            assert!(!device.online());
            db.close().await;
            db::drop_test_database(pg).await;
        }
    }
}
