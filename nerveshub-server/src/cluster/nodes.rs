//! Each node's lease in `nodes`, what a starting node checks, and the secrets every node
//! must share.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use tokio::sync::watch;

use super::{LEASE_REFRESH, LEASE_TTL, hostname};
use crate::config::Config;
use crate::db::cluster::NodeRow;
use crate::db::{Backend, Db, SecretCipher, now_ms};
use crate::error::ServerError;
use crate::state::AppState;
use crate::storage::signed_url::{self, UrlSecret};

/// The `server_secrets` row of the download URL signing key.
const URL_SECRET: &str = "firmware_url_key";

/// The `server_secrets` row that fingerprints the shared-secrets key.
const SECRETS_KEY_CHECK: &str = "shared_secrets_key_check";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The checks a starting node makes, then its row in `nodes`:
/// - the rows of dead nodes go first (expired leases; and at once, rows of this machine whose
///   process is gone, so a node restarted after a crash does not wait for the lease);
/// - SQLite is one node: another live node, or a role other than `all`, is refused;
/// - local storage is one node unless `StorageConfig::Local::shared` says every node sees the same
///   directory; every node must use the same storage.
pub(super) async fn register(
    db: &Db,
    config: &Config,
    node_id: &str,
    storage_is_local: bool,
) -> Result<(), ServerError> {
    // Leases are compared by every node's process: they follow the system clock, not a
    // test's `Config::clock`.
    let now = now_ms();
    let host = hostname();
    let pid = i64::from(std::process::id());
    let storage = config.storage.to_string();
    for node in db.nodes().await? {
        let this_machine_gone = node.host == host
            && if node.pid == pid {
                // This process: an earlier process with the same pid (a restarted container
                // is pid 1 again), or a server this process started before (tests start
                // several) that is gone, or — on SQLite, which serves one node — any.
                db.backend() == Backend::Sqlite || !running_here(&node.id)
            } else {
                !process_alive(node.pid)
            };
        let dead = node.lease_until < now || this_machine_gone || node.id == node_id;
        if dead && let Some(devices) = db.remove_node(&node.id, i64::MAX).await? {
            tracing::info!(node = %node.id, devices, "removed a stopped node's row");
        }
    }
    let others: Vec<NodeRow> = db
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.id != node_id)
        .collect();
    let describe =
        |n: &NodeRow| format!("{} (role {}, host {}, pid {})", n.id, n.role, n.host, n.pid);
    if db.backend() == Backend::Sqlite {
        if config.node_role != super::NodeRole::All {
            return Err(ServerError::Config(format!(
                "node role {} needs PostgreSQL: on SQLite the server is one node and serves everything (use --database-url postgres://… for several nodes)",
                config.node_role
            )));
        }
        if let Some(other) = others.first() {
            return Err(ServerError::Config(format!(
                "another node already runs on this SQLite database: {}; SQLite serves one node (use PostgreSQL for several)",
                describe(other)
            )));
        }
    }
    if let Some(other) = others.iter().find(|n| n.storage != storage) {
        return Err(ServerError::Config(format!(
            "node {} keeps firmware in {:?}, this node in {storage:?}: every node must use the same storage",
            describe(other),
            other.storage
        )));
    }
    if storage_is_local
        && !matches!(
            config.storage,
            crate::config::StorageConfig::Local { shared: true, .. }
        )
        && let Some(other) = others.first()
    {
        return Err(ServerError::Config(format!(
            "another node is running ({}) and firmware storage is local: a firmware uploaded to one node would be missing on the others. Use S3 storage (--storage s3://…) for several nodes, or --local-storage-shared if every node sees the same directory",
            describe(other)
        )));
    }
    db.upsert_node(&NodeRow {
        id: node_id.to_owned(),
        role: config.node_role.as_str().to_owned(),
        host,
        pid,
        storage,
        started_at: now,
        lease_until: now.saturating_add(ms(LEASE_TTL)),
    })
    .await?;
    tracing::info!(node = node_id, role = %config.node_role, "node registered");
    Ok(())
}

/// Marks a node as run by this process until dropped (with its `RunningServer`, whether
/// shut down or not): another server this process starts then knows whether the node's row
/// is alive.
#[derive(Debug)]
pub(crate) struct RunningHere(String);

impl RunningHere {
    pub(crate) fn mark(node_id: &str) -> RunningHere {
        running_here_set().insert(node_id.to_owned());
        RunningHere(node_id.to_owned())
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        running_here_set().remove(&self.0);
    }
}

/// The nodes this process runs (tests run several in one process).
fn running_here_set() -> std::sync::MutexGuard<'static, std::collections::HashSet<String>> {
    static NODES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::LazyLock::new(Default::default);
    // Consistent under a panic: each change is one insert or remove.
    NODES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn running_here(node_id: &str) -> bool {
    running_here_set().contains(node_id)
}

/// Whether a process `pid` runs on this machine.
fn process_alive(pid: i64) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists, owned by someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// The download URL signing key every node shares: made by the first node that starts (from
/// an older server's `firmware-url.key` when there is one, so URLs it handed out stay valid)
/// and read from the database by every other.
pub(crate) async fn shared_url_secret(db: &Db, config: &Config) -> Result<UrlSecret, ServerError> {
    let candidate = match signed_url::secret_from_data_dir(&config.data_dir)? {
        Some(secret) => secret,
        None => signed_url::random_secret()?,
    };
    let stored = db.shared_server_secret(URL_SECRET, &candidate).await?;
    UrlSecret::try_from(stored.as_slice()).map_err(|_| {
        ServerError::Config(format!(
            "the database's {URL_SECRET} is {} bytes, expected {}",
            stored.len(),
            signed_url::SECRET_LEN
        ))
    })
}

/// Checks that this node's shared-secrets key is the one the database's shared secrets are
/// sealed with (the first node to start records a fingerprint of its key): a node with
/// another key could neither open them nor seal new ones the others can open.
pub(crate) async fn check_secrets_key(db: &Db, cipher: &SecretCipher) -> Result<(), ServerError> {
    let fingerprint = cipher.fingerprint();
    let stored = db
        .shared_server_secret(SECRETS_KEY_CHECK, &fingerprint)
        .await?;
    if stored == fingerprint {
        Ok(())
    } else {
        Err(ServerError::Config(
            "this node's shared-secrets key (<data-dir>/shared-secrets.key) is not the one the database's shared secrets are sealed with: copy the file from a running node".into(),
        ))
    }
}

/// Refreshes this node's lease and removes expired nodes (marking their devices offline)
/// every [`LEASE_REFRESH`] until `stop`; then removes this node's row.
pub(crate) async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let node_id = state.cluster.node_id().to_owned();
    let mut tick = tokio::time::interval(LEASE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
        if let Err(e) = refresh(&state, &node_id).await {
            tracing::warn!(node = %node_id, error = %e, "refreshing the node lease failed");
        }
        if let Err(e) = sweep_expired(&state.db).await {
            tracing::warn!(error = %e, "removing expired nodes failed");
        }
        let before = now_ms().saturating_sub(ms(MESSAGE_TTL));
        if let Err(e) = state.db.delete_cluster_messages(before).await {
            tracing::warn!(error = %e, "removing old cluster messages failed");
        }
    }
}

/// Stored cluster messages are removed after this long (recipients read them at once).
const MESSAGE_TTL: Duration = Duration::from_secs(5 * 60);

async fn refresh(state: &AppState, node_id: &str) -> Result<(), ServerError> {
    let until = now_ms().saturating_add(ms(LEASE_TTL));
    if state.db.refresh_node_lease(node_id, until).await? {
        return Ok(());
    }
    // Another node took this one for dead (a pause longer than the lease: a frozen VM, a
    // lost network) and marked its devices disconnected: register again and say again which
    // devices are here.
    tracing::warn!(
        node = node_id,
        "this node's lease was taken for expired; registering again"
    );
    state
        .db
        .upsert_node(&NodeRow {
            id: node_id.to_owned(),
            role: state.cluster.role().as_str().to_owned(),
            host: hostname(),
            pid: i64::from(std::process::id()),
            storage: state.config.storage.to_string(),
            started_at: now_ms(),
            lease_until: until,
        })
        .await?;
    let ids = state.devices.registry.connected_ids();
    for chunk in ids.chunks(1000) {
        state.db.reassert_connected(node_id, chunk).await?;
    }
    Ok(())
}

/// Removes the nodes whose lease expired, marking their devices disconnected.
pub(crate) async fn sweep_expired(db: &Db) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for node in db.nodes().await? {
        if node.lease_until >= now {
            continue;
        }
        if let Some(devices) = db.remove_node(&node.id, now).await? {
            tracing::warn!(
                node = %node.id,
                devices,
                "node lease expired: its devices are marked disconnected"
            );
        }
    }
    Ok(())
}

/// Removes this node's row at a clean stop (its devices' disconnections are already written).
pub(crate) async fn leave(db: &Db, node_id: &str) {
    match db.remove_node(node_id, i64::MAX).await {
        Ok(Some(0) | None) => {}
        Ok(Some(n)) => {
            tracing::info!(
                node = node_id,
                devices = n,
                "devices still shown on this node marked disconnected"
            );
        }
        Err(e) => tracing::warn!(node = node_id, error = %e, "removing this node's row failed"),
    }
}

/// A digest of the shared-secrets key that reveals nothing about it.
pub(crate) fn key_fingerprint(key: &[u8]) -> Vec<u8> {
    // Invariant: HMAC accepts keys of any length.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"nerveshub shared-secrets key check v1");
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, NewDevice};

    fn node(id: &str, host: &str, pid: i64, lease_until: i64) -> NodeRow {
        NodeRow {
            id: id.into(),
            role: "all".into(),
            host: host.into(),
            pid,
            storage: "local".into(),
            started_at: 0,
            lease_until,
        }
    }

    async fn connected_device(db: &Db, identifier: &str, node_id: &str) -> i64 {
        let mut tx = db.begin().await.unwrap();
        let org = db::insert_org(&mut tx, identifier).await.unwrap();
        let product = db::insert_product(&mut tx, org.id, "hub").await.unwrap();
        let id = db::insert_device(
            &mut tx,
            &NewDevice {
                org_id: org.id,
                product_id: product.id,
                identifier,
                description: "",
                tags: &[],
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let join = crate::db::DeviceJoin::bare(node_id);
        crate::db::record_device_join(&mut conn, db.now_ms(), id, &join)
            .await
            .unwrap();
        id
    }

    async fn presence(db: &Db, id: i64) -> (String, Option<String>) {
        sqlx::query_as("SELECT connection_status, connected_node FROM devices WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap()
    }

    /// A pid no process has (pids stay below 2^22 on Linux).
    const DEAD_PID: i64 = i32::MAX as i64;

    #[tokio::test]
    async fn dead_nodes_are_removed_and_their_devices_go_offline() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_nodes_dead").await {
            let far = now_ms() + 3_600_000;
            // A crashed node of this machine (its process is gone), a node elsewhere whose
            // lease expired, and a live node elsewhere.
            db.upsert_node(&node("crashed", &hostname(), DEAD_PID, far))
                .await
                .unwrap();
            db.upsert_node(&node("expired", "elsewhere", 1, now_ms() - 1))
                .await
                .unwrap();
            db.upsert_node(&node("live", "elsewhere", 1, far))
                .await
                .unwrap();
            let on_crashed = connected_device(&db, "on-crashed", "crashed").await;
            let on_expired = connected_device(&db, "on-expired", "expired").await;
            let on_live = connected_device(&db, "on-live", "live").await;

            sweep_expired(&db).await.unwrap();
            assert_eq!(
                presence(&db, on_expired).await,
                ("disconnected".into(), None)
            );
            assert_eq!(
                presence(&db, on_crashed).await.0,
                "connected",
                "its lease still runs"
            );

            let mut config = Config::new(dir.path());
            config.storage = crate::config::StorageConfig::Local {
                dir: None,
                shared: true,
            };
            if pg.is_some() {
                register(&db, &config, "me", true).await.unwrap();
                let ids: Vec<String> = db
                    .nodes()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|n| n.id)
                    .collect();
                assert_eq!(ids, ["live", "me"]);
            } else {
                // SQLite serves one node: the live one is in the way.
                let refused = register(&db, &config, "me", true).await.unwrap_err();
                assert!(
                    refused
                        .to_string()
                        .contains("another node already runs on this SQLite database: live"),
                    "{refused}"
                );
            }
            assert_eq!(
                presence(&db, on_crashed).await,
                ("disconnected".into(), None)
            );
            assert_eq!(
                presence(&db, on_live).await,
                ("connected".into(), Some("live".into()))
            );
            db::drop_test_database(pg).await;
        }
    }

    #[tokio::test]
    async fn a_second_node_needs_postgresql_and_shared_storage() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_nodes_second").await {
            let mut config = Config::new(dir.path());
            if pg.is_none() {
                config.node_role = super::super::NodeRole::Device;
                let refused = register(&db, &config, "me", true).await.unwrap_err();
                assert!(
                    refused.to_string().contains("needs PostgreSQL"),
                    "{refused}"
                );
                config.node_role = super::super::NodeRole::All;
            }
            register(&db, &config, "first", true).await.unwrap();
            let _first = RunningHere::mark("first");
            // The same node id again (a restart) is no second node.
            register(&db, &config, "first", true).await.unwrap();
            if pg.is_some() {
                let refused = register(&db, &config, "second", true).await.unwrap_err();
                assert!(
                    refused.to_string().contains("firmware storage is local"),
                    "{refused}"
                );
                config.storage = "s3://bucket".parse().unwrap();
                let refused = register(&db, &config, "second", false).await.unwrap_err();
                assert!(refused.to_string().contains("same storage"), "{refused}");
                config.storage = crate::config::StorageConfig::Local {
                    dir: None,
                    shared: true,
                };
                register(&db, &config, "second", true).await.unwrap();
            } else {
                // Another process (here: on another machine) on the same SQLite database.
                let far = now_ms() + 3_600_000;
                db.upsert_node(&node("other", "elsewhere", 1, far))
                    .await
                    .unwrap();
                let refused = register(&db, &config, "second", true).await.unwrap_err();
                assert!(
                    refused.to_string().contains("SQLite serves one node"),
                    "{refused}"
                );
            }
            db::drop_test_database(pg).await;
        }
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_again_with_the_devices_still_here() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_nodes_lease").await {
            let config = Config::new(dir.path());
            register(&db, &config, "me", true).await.unwrap();
            assert!(db.refresh_node_lease("me", now_ms() + 1_000).await.unwrap());
            let id = connected_device(&db, "dev", "me").await;
            // Another node took this one for dead.
            assert_eq!(db.remove_node("me", i64::MAX).await.unwrap(), Some(1));
            assert!(!db.refresh_node_lease("me", now_ms() + 1_000).await.unwrap());
            assert_eq!(db.reassert_connected("me", &[id]).await.unwrap(), 1);
            assert_eq!(
                presence(&db, id).await,
                ("connected".into(), Some("me".into()))
            );
            db::drop_test_database(pg).await;
        }
    }

    #[tokio::test]
    async fn every_node_shares_the_url_secret_and_the_secrets_key() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in db::test_databases(dir.path(), "nhunit_nodes_secrets").await {
            let first_dir = tempfile::tempdir().unwrap();
            let other_dir = tempfile::tempdir().unwrap();
            let first = shared_url_secret(&db, &Config::new(first_dir.path()))
                .await
                .unwrap();
            let other = shared_url_secret(&db, &Config::new(other_dir.path()))
                .await
                .unwrap();
            assert_eq!(first, other, "the first node's secret is every node's");

            let key = SecretCipher::load_or_create(first_dir.path()).unwrap();
            check_secrets_key(&db, &key).await.unwrap();
            check_secrets_key(&db, &key).await.unwrap();
            let another = SecretCipher::load_or_create(other_dir.path()).unwrap();
            let refused = check_secrets_key(&db, &another).await.unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("copy the file from a running node"),
                "{refused}"
            );
            db::drop_test_database(pg).await;
        }
    }

    #[tokio::test]
    async fn an_older_servers_url_secret_file_seeds_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&Db::sqlite_url(dir.path()), db::PoolSizes::default())
            .await
            .unwrap();
        std::fs::write(dir.path().join("firmware-url.key"), "cd".repeat(32)).unwrap();
        let secret = shared_url_secret(&db, &Config::new(dir.path()))
            .await
            .unwrap();
        assert_eq!(secret, [0xcd; 32]);
    }
}
