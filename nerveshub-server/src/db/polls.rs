//! Devices that poll instead of keeping a socket: each poll's record, the product's poll
//! interval, and whether a polling device still counts as online.

use sqlx::AnyConnection;

use super::Db;

/// A poll of `device_id` at `now` with the metadata it reported, in the caller's transaction
/// (which also writes the audit row of a firmware change): like a join, but the socket's
/// connection state is left alone; the device counts as online until `online_until`.
pub(crate) async fn record_device_poll(
    conn: &mut AnyConnection,
    now: i64,
    device_id: i64,
    firmware_metadata: &str,
    firmware_uuid: Option<&str>,
    connection_metadata: &str,
    online_until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET firmware_metadata = $1, firmware_uuid = $2, connection_metadata = $3,
             last_poll_at = $4, poll_online_until = $5, connection_last_seen_at = $4,
             first_seen_at = COALESCE(first_seen_at, $4), updated_at = $4
         WHERE id = $6",
    )
    .bind(firmware_metadata)
    .bind(firmware_uuid)
    .bind(connection_metadata)
    .bind(now)
    .bind(online_until)
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Db {
    /// The poll interval a product set, in seconds (`None`: the server's default).
    pub(crate) async fn product_poll_interval(
        &self,
        product_id: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let interval: Option<Option<i64>> =
            sqlx::query_scalar("SELECT poll_interval_seconds FROM products WHERE id = $1")
                .bind(product_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(interval.flatten())
    }

    /// Whether the device polled recently enough that its next poll is still expected.
    pub(crate) async fn device_poll_expected(
        &self,
        device_id: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("SELECT poll_online_until FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(until.flatten().is_some_and(|until| until >= now))
    }
}
