//! The cluster's tables: `nodes` (each live node's lease), `devices.connected_node`,
//! `server_secrets` (what every node must share) and `cluster_messages` (node-to-node
//! messages too large for a NOTIFY payload).

use sqlx::FromRow;

use super::Db;

/// A node's row in `nodes`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct NodeRow {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) storage: String,
    pub(crate) started_at: i64,
    pub(crate) lease_until: i64,
}

impl Db {
    /// Writes this node's row (again, when a restarted node reuses its id).
    pub(crate) async fn upsert_node(&self, node: &NodeRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO nodes (id, role, host, pid, storage, started_at, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET role = $2, host = $3, pid = $4, storage = $5,
                 started_at = $6, lease_until = $7",
        )
        .bind(&node.id)
        .bind(&node.role)
        .bind(&node.host)
        .bind(node.pid)
        .bind(&node.storage)
        .bind(node.started_at)
        .bind(node.lease_until)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every node row, live or not, oldest first.
    pub(crate) async fn nodes(&self) -> Result<Vec<NodeRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM nodes ORDER BY started_at, id")
            .fetch_all(self.pool())
            .await
    }

    /// Extends this node's lease to `until`; false when its row is gone (another node took it
    /// for dead).
    pub(crate) async fn refresh_node_lease(
        &self,
        node_id: &str,
        until: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE nodes SET lease_until = $1 WHERE id = $2")
            .bind(until)
            .bind(node_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes the node `node_id` when its lease ended before `expired_before` (or
    /// unconditionally with `i64::MAX`), and marks the devices it held disconnected, in one
    /// transaction. Returns the devices marked, or `None` when the row was not removed
    /// (refreshed meanwhile, or another node removed it first).
    pub(crate) async fn remove_node(
        &self,
        node_id: &str,
        expired_before: i64,
    ) -> Result<Option<u64>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query("DELETE FROM nodes WHERE id = $1 AND lease_until < $2")
            .bind(node_id)
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Ok(None);
        }
        let devices = sqlx::query(
            "UPDATE devices SET connection_status = 'disconnected', connected_node = NULL,
                 connection_disconnected_at = $1
             WHERE connected_node = $2",
        )
        .bind(self.now_ms())
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(devices.rows_affected()))
    }

    /// Devices this node holds a socket of, written again (after another node took this one
    /// for dead and marked them disconnected). At most 1,000 ids.
    pub(crate) async fn reassert_connected(
        &self,
        node_id: &str,
        ids: &[i64],
    ) -> Result<u64, sqlx::Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = super::placeholders(2, ids.len());
        let sql = format!(
            "UPDATE devices SET connection_status = 'connected', connected_node = $1,
                 connection_disconnected_at = NULL
             WHERE id IN ({list})"
        );
        let mut query = sqlx::query(super::trusted(sql)).bind(node_id);
        for id in ids {
            query = query.bind(*id);
        }
        let done = query.persistent(false).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// The node that holds `device_id`'s socket, if any.
    pub(crate) async fn device_node(&self, device_id: i64) -> Result<Option<String>, sqlx::Error> {
        let node: Option<Option<String>> =
            sqlx::query_scalar("SELECT connected_node FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(node.flatten())
    }

    /// The shared secret `name`: `candidate` is stored if there is none yet (the first node
    /// to start makes it), and the stored value is returned either way.
    pub(crate) async fn shared_server_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, sqlx::Error> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(self.now_ms())
        .execute(self.pool())
        .await?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await
    }

    /// Sends `payload` to the nodes listening on `channel` (PostgreSQL only: `pg_notify`).
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores a node-to-node message too large for a NOTIFY payload; returns its id.
    pub(crate) async fn insert_cluster_message(&self, payload: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO cluster_messages (payload, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(payload)
        .bind(self.now_ms())
        .fetch_one(self.pool())
        .await
    }

    /// A stored node-to-node message.
    pub(crate) async fn cluster_message(&self, id: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT payload FROM cluster_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// Removes stored messages older than `before` (every recipient has read them by then).
    pub(crate) async fn delete_cluster_messages(&self, before: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM cluster_messages WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Whether a Device CA with this certificate is registered (a peer's trust change is
    /// checked against it before it widens trust).
    pub(crate) async fn ca_registered(&self, der: &[u8]) -> Result<bool, sqlx::Error> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM ca_certificates WHERE der = $1")
                .bind(der)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// Whether the device `identifier` has the certificate `fingerprint` with that public key.
    pub(crate) async fn device_certificate_recorded(
        &self,
        fingerprint: &str,
        public_key_fingerprint: &str,
        identifier: &str,
    ) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT c.id FROM device_certificates c JOIN devices d ON d.id = c.device_id
             WHERE c.fingerprint = $1 AND c.public_key_fingerprint = $2 AND d.identifier = $3",
        )
        .bind(fingerprint)
        .bind(public_key_fingerprint)
        .bind(identifier)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }
}
