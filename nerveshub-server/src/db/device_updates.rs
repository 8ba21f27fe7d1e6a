//! The updates pushed to a device and how each ended, for the management API (read only;
//! the device endpoint writes them).

use sqlx::FromRow;

use super::Db;

/// One update of a device, with the firmware it was to.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeviceUpdateRow {
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_version: String,
    /// requested | received | started | updating | completed | failed | ignored | rescheduled
    pub(crate) status: String,
    pub(crate) progress: i64,
    pub(crate) reason: Option<String>,
    pub(crate) inserted_at: i64,
    pub(crate) updated_at: i64,
}

impl Db {
    /// The device's updates, oldest first.
    pub(crate) async fn device_updates(
        &self,
        device_id: i64,
    ) -> Result<Vec<DeviceUpdateRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT f.uuid AS firmware_uuid, f.version AS firmware_version, u.status, u.progress,
                    u.reason, u.inserted_at, u.updated_at
             FROM device_updates u JOIN firmwares f ON f.id = u.firmware_id
             WHERE u.device_id = $1 ORDER BY u.id",
        )
        .bind(device_id)
        .fetch_all(self.pool())
        .await
    }
}
