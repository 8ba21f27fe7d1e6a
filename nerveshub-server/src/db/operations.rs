//! Queries for running the server: readiness, scrape-time metrics, and the offline admin
//! commands of the binary.

use super::{Db, now_ms};

/// Every state a device update can be in, in the order `/metrics` lists them.
pub(crate) const UPDATE_STATUSES: [&str; 8] = [
    "requested",
    "received",
    "started",
    "updating",
    "completed",
    "failed",
    "ignored",
    "rescheduled",
];

impl Db {
    /// One round trip to the database.
    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// How many device updates are in each state.
    pub(crate) async fn update_counts_by_status(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT status, COUNT(*) FROM device_updates GROUP BY status")
            .fetch_all(self.pool())
            .await
    }
}

/// Replaces the password of the user `user_id` (its API tokens stay valid).
pub(crate) async fn set_user_password(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
