//! Deployments (NervesHub's deployment groups), their releases, device membership, and the
//! rows the rollout orchestrator reads and writes: in-flight updates, penalty boxes, attempts.

use sqlx::{AnyConnection, FromRow};

use super::{ConnectionStatus, Db, Flag, now_ms};

/// A deployment with its current (highest-numbered) release and that release's firmware.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct DeploymentRow {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) product_id: i64,
    pub(crate) name: String,
    pub(crate) platform: String,
    pub(crate) architecture: String,
    pub(crate) is_active: i64,
    /// JSON `{version, tags, tag_operator}`.
    pub(crate) conditions: String,
    pub(crate) concurrent_updates: i64,
    pub(crate) queue_management: String,
    pub(crate) priority_queue_enabled: i64,
    pub(crate) priority_queue_concurrent_updates: i64,
    pub(crate) priority_queue_firmware_version_threshold: Option<String>,
    /// JSON array of strings.
    pub(crate) release_tags: String,
    pub(crate) lock_device_membership: i64,
    pub(crate) device_failure_threshold: i64,
    pub(crate) device_failure_rate_seconds: i64,
    pub(crate) device_failure_rate_amount: i64,
    pub(crate) penalty_timeout_minutes: i64,
    pub(crate) require_validated: i64,
    pub(crate) health_timeout_minutes: i64,
    pub(crate) halt_failure_rate: Option<i64>,
    pub(crate) halt_window: i64,
    pub(crate) halted_at: Option<i64>,
    pub(crate) halt_reason: Option<String>,
    pub(crate) halt_cleared_at: Option<i64>,
    pub(crate) notes: String,
    pub(crate) inserted_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) release_number: i64,
    pub(crate) release_inserted_at: i64,
    pub(crate) firmware_id: i64,
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_version: String,
    pub(crate) firmware_platform: String,
    pub(crate) firmware_architecture: String,
}

const DEPLOYMENT_SELECT: &str = "SELECT g.id, g.org_id, g.product_id, g.name, g.platform, \
     g.architecture, g.is_active, g.conditions, g.concurrent_updates, g.queue_management, \
     g.priority_queue_enabled, g.priority_queue_concurrent_updates, \
     g.priority_queue_firmware_version_threshold, g.release_tags, g.lock_device_membership, \
     g.device_failure_threshold, g.device_failure_rate_seconds, g.device_failure_rate_amount, \
     g.penalty_timeout_minutes, g.require_validated, g.health_timeout_minutes, \
     g.halt_failure_rate, g.halt_window, g.halted_at, g.halt_reason, g.halt_cleared_at, g.notes, g.inserted_at, \
     g.updated_at, r.number AS release_number, r.inserted_at AS release_inserted_at, \
     f.id AS firmware_id, f.uuid AS firmware_uuid, f.version AS firmware_version, \
     f.platform AS firmware_platform, f.architecture AS firmware_architecture \
     FROM deployments g \
     JOIN deployment_releases r ON r.deployment_id = g.id AND r.number = \
         (SELECT MAX(r2.number) FROM deployment_releases r2 WHERE r2.deployment_id = g.id) \
     JOIN firmwares f ON f.id = r.firmware_id";

fn select(where_clause: &str) -> sqlx::AssertSqlSafe<String> {
    // Only this module's constant fragments; input is always bound.
    super::trusted(format!("{DEPLOYMENT_SELECT} {where_clause}"))
}

/// A release of a deployment.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct ReleaseRow {
    pub(crate) number: i64,
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_version: String,
    pub(crate) platform: String,
    pub(crate) architecture: String,
    pub(crate) created_by: Option<String>,
    pub(crate) inserted_at: i64,
}

/// The settings of a deployment, as written by create and update.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentSettings {
    pub(crate) name: String,
    pub(crate) is_active: bool,
    pub(crate) conditions: String,
    pub(crate) concurrent_updates: i64,
    pub(crate) queue_management: String,
    pub(crate) priority_queue_enabled: bool,
    pub(crate) priority_queue_concurrent_updates: i64,
    pub(crate) priority_queue_firmware_version_threshold: Option<String>,
    pub(crate) release_tags: String,
    pub(crate) lock_device_membership: bool,
    pub(crate) device_failure_threshold: i64,
    pub(crate) device_failure_rate_seconds: i64,
    pub(crate) device_failure_rate_amount: i64,
    pub(crate) penalty_timeout_minutes: i64,
    pub(crate) require_validated: bool,
    pub(crate) health_timeout_minutes: i64,
    pub(crate) halt_failure_rate: Option<i64>,
    pub(crate) halt_window: i64,
    pub(crate) notes: String,
}

impl DeploymentSettings {
    /// The settings of a stored deployment (the start of an update).
    pub(crate) fn of(row: &DeploymentRow) -> Self {
        DeploymentSettings {
            name: row.name.clone(),
            is_active: row.is_active != 0,
            conditions: row.conditions.clone(),
            concurrent_updates: row.concurrent_updates,
            queue_management: row.queue_management.clone(),
            priority_queue_enabled: row.priority_queue_enabled != 0,
            priority_queue_concurrent_updates: row.priority_queue_concurrent_updates,
            priority_queue_firmware_version_threshold: row
                .priority_queue_firmware_version_threshold
                .clone(),
            release_tags: row.release_tags.clone(),
            lock_device_membership: row.lock_device_membership != 0,
            device_failure_threshold: row.device_failure_threshold,
            device_failure_rate_seconds: row.device_failure_rate_seconds,
            device_failure_rate_amount: row.device_failure_rate_amount,
            penalty_timeout_minutes: row.penalty_timeout_minutes,
            require_validated: row.require_validated != 0,
            health_timeout_minutes: row.health_timeout_minutes,
            halt_failure_rate: row.halt_failure_rate,
            halt_window: row.halt_window,
            notes: row.notes.clone(),
        }
    }
}

/// Binds a deployment's settings as `$1`…`$19`, in the column order both the insert and the
/// update list them.
macro_rules! bind_settings {
    ($query:expr, $s:expr) => {
        $query
            .bind(&$s.name)
            .bind(i64::from($s.is_active))
            .bind(&$s.conditions)
            .bind($s.concurrent_updates)
            .bind(&$s.queue_management)
            .bind(i64::from($s.priority_queue_enabled))
            .bind($s.priority_queue_concurrent_updates)
            .bind($s.priority_queue_firmware_version_threshold.as_deref())
            .bind(&$s.release_tags)
            .bind(i64::from($s.lock_device_membership))
            .bind($s.device_failure_threshold)
            .bind($s.device_failure_rate_seconds)
            .bind($s.device_failure_rate_amount)
            .bind($s.penalty_timeout_minutes)
            .bind(i64::from($s.require_validated))
            .bind($s.health_timeout_minutes)
            .bind($s.halt_failure_rate)
            .bind($s.halt_window)
            .bind(&$s.notes)
    };
}

/// Inserts a deployment (its first release separately); returns its id.
pub(crate) async fn insert_deployment(
    conn: &mut AnyConnection,
    org_id: i64,
    product_id: i64,
    platform: &str,
    architecture: &str,
    s: &DeploymentSettings,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let query = sqlx::query_scalar(
        "INSERT INTO deployments (name, is_active, conditions, concurrent_updates,
             queue_management, priority_queue_enabled, priority_queue_concurrent_updates,
             priority_queue_firmware_version_threshold, release_tags, lock_device_membership,
             device_failure_threshold, device_failure_rate_seconds, device_failure_rate_amount,
             penalty_timeout_minutes, require_validated, health_timeout_minutes,
             halt_failure_rate, halt_window, notes,
             org_id, product_id, platform, architecture, inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23, $24, $24)
         RETURNING id",
    );
    bind_settings!(query, s)
        .bind(org_id)
        .bind(product_id)
        .bind(platform)
        .bind(architecture)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
}

/// Writes a deployment's settings. `clear_halt` lifts a halt (a user re-activated it).
pub(crate) async fn update_deployment(
    conn: &mut AnyConnection,
    id: i64,
    s: &DeploymentSettings,
    clear_halt: bool,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "UPDATE deployments SET name = $1, is_active = $2, conditions = $3,
             concurrent_updates = $4, queue_management = $5, priority_queue_enabled = $6,
             priority_queue_concurrent_updates = $7,
             priority_queue_firmware_version_threshold = $8, release_tags = $9,
             lock_device_membership = $10, device_failure_threshold = $11,
             device_failure_rate_seconds = $12, device_failure_rate_amount = $13,
             penalty_timeout_minutes = $14, require_validated = $15,
             health_timeout_minutes = $16, halt_failure_rate = $17, halt_window = $18,
             notes = $19, updated_at = $20,
             halt_cleared_at = CASE WHEN $21 = 1 AND halted_at IS NOT NULL THEN $20
                               ELSE halt_cleared_at END,
             halted_at = CASE WHEN $21 = 1 THEN NULL ELSE halted_at END,
             halt_reason = CASE WHEN $21 = 1 THEN NULL ELSE halt_reason END
         WHERE id = $22",
    );
    bind_settings!(query, s)
        .bind(now_ms())
        .bind(i64::from(clear_halt))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds release number `max + 1` of `firmware_id`; returns its number.
pub(crate) async fn insert_release(
    conn: &mut AnyConnection,
    deployment_id: i64,
    firmware_id: i64,
    created_by: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM deployment_releases WHERE deployment_id = $1",
    )
    .bind(deployment_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO deployment_releases (deployment_id, number, firmware_id, created_by_id, inserted_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(deployment_id)
    .bind(next)
    .bind(firmware_id)
    .bind(created_by)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(next)
}

/// Deletes a deployment: its releases go with it, its devices and updates keep their rows
/// without it.
pub(crate) async fn delete_deployment(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    // Updates in flight for it end now: no orchestrator will follow them up.
    sqlx::query(
        "UPDATE device_updates SET finished_at = $1, reason = COALESCE(reason, 'deployment deleted')
         WHERE deployment_id = $2 AND finished_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM deployments WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A deployment by id, read inside the caller's transaction.
pub(crate) async fn deployment_by_id_in(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<DeploymentRow>, sqlx::Error> {
    sqlx::query_as(select("WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// Sets (or clears) a device's deployment.
pub(crate) async fn set_device_deployment(
    conn: &mut AnyConnection,
    device_id: i64,
    deployment_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE devices SET deployment_id = $1, updated_at = $2 WHERE id = $3")
        .bind(deployment_id)
        .bind(now_ms())
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Halts a deployment (the fleet-wide failure rate was crossed); false if it already was.
pub(crate) async fn halt_deployment(
    conn: &mut AnyConnection,
    id: i64,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE deployments SET halted_at = $1, halt_reason = $2, updated_at = $1
         WHERE id = $3 AND halted_at IS NULL",
    )
    .bind(now_ms())
    .bind(reason)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A device as the orchestrator considers it.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct CandidateRow {
    pub(crate) id: i64,
    pub(crate) identifier: String,
    /// In the order they were given.
    #[sqlx(skip)]
    pub(crate) tags: Vec<String>,
    pub(crate) firmware_metadata: Option<String>,
    pub(crate) connection_metadata: Option<String>,
    pub(crate) update_attempts: String,
    /// Until when a polling device counts as online (Unix ms; `None`: it never polled).
    pub(crate) poll_online_until: Option<i64>,
    /// The node holding the device's socket, if any.
    pub(crate) connected_node: Option<String>,
}

/// How a deployment's devices stand, for its status.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct MemberRow {
    pub(crate) identifier: String,
    pub(crate) firmware_uuid: Option<String>,
    #[sqlx(try_from = "String")]
    pub(crate) connection_status: ConnectionStatus,
    pub(crate) updates_blocked_until: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub(crate) updates_enabled: bool,
    /// The status of the update in flight, if any.
    pub(crate) in_flight: Option<String>,
    pub(crate) in_flight_progress: Option<i64>,
    /// How the device's last finished update of this deployment ended.
    pub(crate) last_outcome: Option<String>,
}

/// A finished update of a deployment, newest first (for the halt window and the status).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OutcomeRow {
    pub(crate) identifier: String,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
}

/// An update in flight, for the sweeper.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct InFlightRow {
    pub(crate) id: i64,
    pub(crate) device_id: i64,
    pub(crate) deployment_id: Option<i64>,
    pub(crate) status: String,
    pub(crate) updated_at: i64,
    pub(crate) health_timeout_minutes: Option<i64>,
}

impl Db {
    /// The deployments of a product, by name.
    pub(crate) async fn deployments(
        &self,
        product_id: i64,
    ) -> Result<Vec<DeploymentRow>, sqlx::Error> {
        sqlx::query_as(select("WHERE g.product_id = $1 ORDER BY g.name"))
            .bind(product_id)
            .fetch_all(self.pool())
            .await
    }

    /// A deployment of a product by name.
    pub(crate) async fn deployment(
        &self,
        product_id: i64,
        name: &str,
    ) -> Result<Option<DeploymentRow>, sqlx::Error> {
        sqlx::query_as(select("WHERE g.product_id = $1 AND g.name = $2"))
            .bind(product_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await
    }

    /// A deployment by id.
    pub(crate) async fn deployment_by_id(
        &self,
        id: i64,
    ) -> Result<Option<DeploymentRow>, sqlx::Error> {
        sqlx::query_as(select("WHERE g.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// The ids of the active deployments (each gets an orchestrator).
    pub(crate) async fn active_deployment_ids(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM deployments WHERE is_active = 1 ORDER BY id")
            .fetch_all(self.pool())
            .await
    }

    /// The active deployments of a product (membership candidates).
    pub(crate) async fn active_deployments(
        &self,
        product_id: i64,
    ) -> Result<Vec<DeploymentRow>, sqlx::Error> {
        sqlx::query_as(select(
            "WHERE g.product_id = $1 AND g.is_active = 1 ORDER BY g.id",
        ))
        .bind(product_id)
        .fetch_all(self.pool())
        .await
    }

    /// A deployment's releases, newest first.
    pub(crate) async fn releases(
        &self,
        deployment_id: i64,
    ) -> Result<Vec<ReleaseRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT r.number, f.uuid AS firmware_uuid, f.version AS firmware_version, f.platform,
                    f.architecture, u.email AS created_by, r.inserted_at
             FROM deployment_releases r JOIN firmwares f ON f.id = r.firmware_id
             LEFT JOIN users u ON u.id = r.created_by_id
             WHERE r.deployment_id = $1 ORDER BY r.number DESC",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await
    }

    /// How many devices a deployment has.
    pub(crate) async fn deployment_device_count(
        &self,
        deployment_id: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE deployment_id = $1")
            .bind(deployment_id)
            .fetch_one(self.pool())
            .await
    }

    /// The updates in flight for a deployment, by queue: (normal, priority).
    pub(crate) async fn in_flight_counts(
        &self,
        deployment_id: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT priority_queue, COUNT(*) FROM device_updates
             WHERE deployment_id = $1 AND finished_at IS NULL GROUP BY priority_queue",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?;
        let count = |p: i64| rows.iter().find(|r| r.0 == p).map_or(0, |r| r.1);
        Ok((count(0), count(1)))
    }

    /// The deployment's online devices (connected, or polling within two poll intervals)
    /// that could be sent its release now: updates enabled, not in the penalty box, on other
    /// firmware, nothing in flight; in queue order (FIFO: connected longest first; LIFO: first
    /// seen most recently first).
    pub(crate) async fn update_candidates(
        &self,
        deployment_id: i64,
        release_uuid: &str,
        lifo: bool,
        now: i64,
    ) -> Result<Vec<CandidateRow>, sqlx::Error> {
        let order = if lifo {
            "d.first_seen_at DESC, d.id DESC"
        } else {
            "COALESCE(d.connection_established_at, d.last_poll_at) ASC, d.id ASC"
        };
        let mut conn = self.pool().acquire().await?;
        let mut candidates: Vec<CandidateRow> = sqlx::query_as(super::trusted(format!(
            "SELECT d.id, d.identifier, d.firmware_metadata, d.connection_metadata,
                    d.update_attempts, d.poll_online_until, d.connected_node
             FROM devices d
             WHERE d.deployment_id = $1 AND d.updates_enabled = 1
               AND (d.connection_status = 'connected' OR d.poll_online_until >= $2)
               AND (d.updates_blocked_until IS NULL OR d.updates_blocked_until <= $2)
               AND d.firmware_uuid IS NOT NULL AND d.firmware_uuid <> $3
               AND NOT EXISTS (SELECT 1 FROM device_updates u
                               WHERE u.device_id = d.id AND u.finished_at IS NULL)
             ORDER BY {order}"
        )))
        .bind(deployment_id)
        .bind(now)
        .bind(release_uuid)
        .fetch_all(&mut *conn)
        .await?;
        let ids: Vec<i64> = candidates.iter().map(|c| c.id).collect();
        let mut tags = super::devices::tags_of(&mut conn, &ids).await?;
        for candidate in &mut candidates {
            candidate.tags = tags.remove(&candidate.id).unwrap_or_default();
        }
        Ok(candidates)
    }

    /// Every device of a deployment with its update in flight, for the status.
    pub(crate) async fn deployment_members(
        &self,
        deployment_id: i64,
    ) -> Result<Vec<MemberRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT d.identifier, d.firmware_uuid, d.connection_status, d.updates_blocked_until,
                    d.updates_enabled, u.status AS in_flight, u.progress AS in_flight_progress,
                    (SELECT l.status FROM device_updates l
                     WHERE l.device_id = d.id AND l.deployment_id = $1
                       AND l.finished_at IS NOT NULL
                     ORDER BY l.id DESC LIMIT 1) AS last_outcome
             FROM devices d
             LEFT JOIN device_updates u ON u.device_id = d.id AND u.finished_at IS NULL
             WHERE d.deployment_id = $1 ORDER BY d.identifier",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await
    }

    /// The newest `limit` finished updates of a deployment's current release that count for
    /// its health (completed or failed) and ended after `since` (the last lifted halt),
    /// newest first.
    pub(crate) async fn recent_outcomes(
        &self,
        deployment_id: i64,
        firmware_id: i64,
        since: i64,
        limit: i64,
    ) -> Result<Vec<OutcomeRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT d.identifier, u.status, u.reason FROM device_updates u
             JOIN devices d ON d.id = u.device_id
             WHERE u.deployment_id = $1 AND u.firmware_id = $2 AND u.finished_at > $3
               AND u.status IN ('completed', 'failed')
             ORDER BY u.finished_at DESC, u.id DESC LIMIT $4",
        )
        .bind(deployment_id)
        .bind(firmware_id)
        .bind(since)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Every update in flight, with its deployment's health timeout.
    pub(crate) async fn in_flight_updates(&self) -> Result<Vec<InFlightRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT u.id, u.device_id, u.deployment_id, u.status, u.updated_at,
                    g.health_timeout_minutes
             FROM device_updates u LEFT JOIN deployments g ON g.id = u.deployment_id
             WHERE u.finished_at IS NULL ORDER BY u.id",
        )
        .fetch_all(self.pool())
        .await
    }
}
