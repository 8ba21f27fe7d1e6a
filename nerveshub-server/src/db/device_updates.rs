//! The updates pushed to a device and how each ended, and the per-device state the update
//! lifecycle keeps (penalty box, attempts, updates flag). An update is *in flight* while its
//! `finished_at` is NULL; a unique partial index allows one per device.

use sqlx::{AnyConnection, FromRow};

use super::{Db, Flag, now_ms};

/// One update of a device, with the firmware it was to.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeviceUpdateRow {
    pub(crate) id: i64,
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_version: String,
    /// requested | received | started | updating | completed | failed | ignored |
    /// rescheduled | interrupted | expired | undelivered | superseded
    pub(crate) status: String,
    pub(crate) progress: i64,
    pub(crate) reason: Option<String>,
    pub(crate) deployment: Option<String>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) inserted_at: i64,
    pub(crate) updated_at: i64,
}

/// The update a device has in flight.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct InFlight {
    pub(crate) id: i64,
    pub(crate) deployment_id: Option<i64>,
    pub(crate) status: String,
    pub(crate) progress: i64,
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_id: i64,
}

/// What the update lifecycle reads of a device.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct FleetDevice {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) identifier: String,
    /// In the order they were given.
    #[sqlx(skip)]
    pub(crate) tags: Vec<String>,
    pub(crate) deployment_id: Option<i64>,
}

const IN_FLIGHT_SELECT: &str = "SELECT u.id, u.deployment_id, u.status, u.progress, \
     f.uuid AS firmware_uuid, u.firmware_id FROM device_updates u JOIN firmwares f ON f.id = u.firmware_id \
     WHERE u.device_id = $1 AND u.finished_at IS NULL";

/// The device's update in flight, read in the caller's transaction.
pub(crate) async fn in_flight_update_in(
    conn: &mut AnyConnection,
    device_id: i64,
) -> Result<Option<InFlight>, sqlx::Error> {
    sqlx::query_as(IN_FLIGHT_SELECT)
        .bind(device_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Records a new update in flight (status `requested`) at `now` (the server's clock: the
/// in-flight timeout is measured from it); a unique violation when the device already has one.
pub(crate) async fn insert_update(
    conn: &mut AnyConnection,
    now: i64,
    device_id: i64,
    firmware_id: i64,
    deployment_id: Option<i64>,
    priority_queue: bool,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO device_updates (device_id, firmware_id, deployment_id, priority_queue, status,
             progress, inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, 'requested', 0, $5, $5) RETURNING id",
    )
    .bind(device_id)
    .bind(firmware_id)
    .bind(deployment_id)
    .bind(i64::from(priority_queue))
    .bind(now)
    .fetch_one(&mut *conn)
    .await
}

/// Ends an update in flight with `status` (and `progress` when given); false when it had
/// already ended.
pub(crate) async fn finish_update(
    conn: &mut AnyConnection,
    now: i64,
    id: i64,
    status: &str,
    progress: Option<i64>,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE device_updates SET status = $1, progress = COALESCE($2, progress),
             reason = COALESCE($3, reason), updated_at = $4, finished_at = $4
         WHERE id = $5 AND finished_at IS NULL",
    )
    .bind(status)
    .bind(progress)
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends whatever update the device has in flight, keeping its status (a manual upgrade
/// replaces it).
pub(crate) async fn supersede_updates(
    conn: &mut AnyConnection,
    now: i64,
    device_id: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE device_updates SET finished_at = $1 WHERE device_id = $2 AND finished_at IS NULL",
    )
    .bind(now)
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Sets the device's penalty box (`None` clears it); `reset_attempts` starts its attempt
/// count over.
pub(crate) async fn set_blocked_until(
    conn: &mut AnyConnection,
    device_id: i64,
    until: Option<i64>,
    reset_attempts: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET updates_blocked_until = $1,
             update_attempts = CASE WHEN $2 = 1 THEN '[]' ELSE update_attempts END
         WHERE id = $3",
    )
    .bind(until)
    .bind(i64::from(reset_attempts))
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Turns automatic updates on or off for a device.
pub(crate) async fn set_updates_enabled(
    conn: &mut AnyConnection,
    device_id: i64,
    enabled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE devices SET updates_enabled = $1, updated_at = $2 WHERE id = $3")
        .bind(Flag(enabled))
        .bind(now_ms())
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The fleet view of a device, read in the caller's transaction.
pub(crate) async fn fleet_device_in(
    conn: &mut AnyConnection,
    device_id: i64,
) -> Result<Option<FleetDevice>, sqlx::Error> {
    let device: Option<FleetDevice> = sqlx::query_as(
        "SELECT id, org_id, product_id, identifier, deployment_id FROM devices WHERE id = $1",
    )
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut device) = device else {
        return Ok(None);
    };
    device.tags = super::devices::tags_of(conn, &[device.id])
        .await?
        .remove(&device.id)
        .unwrap_or_default();
    Ok(Some(device))
}

impl Db {
    /// The device's updates, oldest first.
    pub(crate) async fn device_updates(
        &self,
        device_id: i64,
    ) -> Result<Vec<DeviceUpdateRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT u.id, f.uuid AS firmware_uuid, f.version AS firmware_version, u.status,
                    u.progress, u.reason, g.name AS deployment, u.finished_at, u.inserted_at,
                    u.updated_at
             FROM device_updates u JOIN firmwares f ON f.id = u.firmware_id
             LEFT JOIN deployments g ON g.id = u.deployment_id
             WHERE u.device_id = $1 ORDER BY u.id",
        )
        .bind(device_id)
        .fetch_all(self.pool())
        .await
    }

    /// The device's update in flight.
    pub(crate) async fn in_flight_update(
        &self,
        device_id: i64,
    ) -> Result<Option<InFlight>, sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        in_flight_update_in(&mut conn, device_id).await
    }

    /// Progress of an update in flight: its status and progress, and "heard from now" (which
    /// keeps it from expiring).
    pub(crate) async fn set_update_progress(
        &self,
        id: i64,
        status: &str,
        progress: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE device_updates SET status = $1, progress = $2, updated_at = $3
             WHERE id = $4 AND finished_at IS NULL",
        )
        .bind(status)
        .bind(progress)
        .bind(self.now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The device's attempt times (Unix ms) since its last success.
    pub(crate) async fn update_attempts(&self, device_id: i64) -> Result<Vec<i64>, sqlx::Error> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT update_attempts FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Replaces the device's attempt times.
    pub(crate) async fn set_update_attempts(
        &self,
        device_id: i64,
        attempts: &[i64],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE devices SET update_attempts = $1 WHERE id = $2")
            .bind(serde_json::Value::from(attempts.to_vec()).to_string())
            .bind(device_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The fleet view of a device.
    pub(crate) async fn fleet_device(
        &self,
        device_id: i64,
    ) -> Result<Option<FleetDevice>, sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        fleet_device_in(&mut conn, device_id).await
    }
}
