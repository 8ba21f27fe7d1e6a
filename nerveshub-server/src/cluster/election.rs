//! One orchestrator per deployment across the cluster: PostgreSQL advisory locks.
//!
//! A node leads a deployment while it holds the session-level advisory lock
//! `(DEPLOYMENTS, deployment id)` on its one dedicated election connection (never a pooled
//! one: a session lock lives exactly as long as its connection). PostgreSQL releases every lock
//! of a connection that closes, so when a node dies another takes its deployments over on its
//! next try (the supervisor retries every few seconds).
//!
//! The other half of "never two at once" is on this side: a node that loses its connection
//! has lost every lead, and must stop its workers before it could matter. Each worker asks
//! [`Election::leads`] before each run, which proves the connection alive (`SELECT 1` with a
//! short timeout); a failed check drops the connection and every lead with it, and the next
//! try reconnects. What remains is the time one run takes after its check: a run started
//! just before the database dropped the connection may overlap the new leader's first run.
//! The database's own constraints (one update in flight per device) keep that harmless.
//!
//! One more key, [`SINGLETONS`], elects the node that runs cluster-wide chores (the sweep of
//! silent updates). On SQLite there is one node: it leads everything.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::Connection as _;

use crate::db::advisory::{self, PgConnection};
use crate::error::ServerError;

/// The advisory-lock namespace of deployment orchestrators ("NH" and 1).
const DEPLOYMENTS: i32 = 0x4E48_0001;

/// The advisory-lock namespace of cluster-wide singletons ("NH" and 2).
const SINGLETONS: i32 = 0x4E48_0002;

/// The singleton key of the silent-update sweep.
const SWEEP_KEY: i32 = 1;

/// How long a lock query or the liveness check may take before the connection counts as
/// lost: a run must not start on a connection that may already be gone.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long (re)connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Something a node can lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// A deployment's orchestrator.
    Deployment(i64),
    /// The sweep of silent updates (`fleet::lifecycle::sweep`).
    Sweep,
}

impl Key {
    /// The two-key advisory lock. Deployment ids past `i32` wrap: two deployments may then
    /// share a lock, so one node leads both — never two nodes one.
    fn lock(self) -> (i32, i32) {
        match self {
            // Wrapping is the point (see above), not a lossy accident.
            Key::Deployment(id) => (DEPLOYMENTS, id as i32),
            Key::Sweep => (SINGLETONS, SWEEP_KEY),
        }
    }
}

/// Which deployments (and singletons) this node leads.
#[derive(Debug)]
pub(crate) struct Election {
    /// What this node leads. On PostgreSQL a subset of the locks its connection holds: a key
    /// is added after its lock is taken and removed before it is released, so two nodes never
    /// both show one.
    led: Mutex<HashSet<Key>>,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    /// The only node (SQLite).
    SingleNode,
    /// Advisory locks on PostgreSQL.
    Postgres {
        url: String,
        /// `None` after the connection was lost, until the next try reconnects. The lock also
        /// orders lock queries with the loss of [`Election::led`].
        conn: tokio::sync::Mutex<Option<PgConnection>>,
    },
}

impl Election {
    /// The only node: it leads everything.
    pub(crate) fn single_node() -> Self {
        Election {
            led: Mutex::new(HashSet::new()),
            backend: Backend::SingleNode,
        }
    }

    /// Opens the dedicated connection the locks are held on.
    pub(crate) async fn connect(url: &str) -> Result<Self, ServerError> {
        let conn = open(url).await?;
        Ok(Election {
            led: Mutex::new(HashSet::new()),
            backend: Backend::Postgres {
                url: url.to_owned(),
                conn: tokio::sync::Mutex::new(Some(conn)),
            },
        })
    }

    fn led(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        // Each change is one insert, remove or clear: consistent after a panic elsewhere.
        self.led.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tries to lead deployment `id`'s orchestrator; true when this node leads it (now or
    /// already). Never waits for another node.
    pub(crate) async fn try_lead(&self, id: i64) -> bool {
        self.acquire(Key::Deployment(id)).await
    }

    /// Whether this node still leads deployment `id`, with its connection proven alive: ask
    /// before each orchestrator run, and stop when it says no.
    pub(crate) async fn leads(&self, id: i64) -> bool {
        self.confirm(Key::Deployment(id)).await
    }

    /// Gives deployment `id` up (its worker stopped), so another node may take it at once.
    pub(crate) async fn resign(&self, id: i64) {
        self.release(Key::Deployment(id)).await;
    }

    /// Tries to lead the sweep of silent updates (kept until this node stops or loses its
    /// connection); true when this node is the one to sweep now.
    pub(crate) async fn try_lead_sweep(&self) -> bool {
        self.acquire(Key::Sweep).await
    }

    /// Gives every lead up (the node is stopping).
    pub(crate) async fn resign_all(&self) {
        match &self.backend {
            Backend::SingleNode => self.led().clear(),
            Backend::Postgres { conn, .. } => {
                let mut conn = conn.lock().await;
                self.led().clear();
                if let Some(c) = conn.as_mut() {
                    let unlocked =
                        tokio::time::timeout(CHECK_TIMEOUT, advisory::unlock_all(c)).await;
                    if !matches!(unlocked, Ok(Ok(()))) {
                        // Closing the session releases its locks just as well.
                        tracing::warn!(
                            "releasing the orchestrator locks failed; closing the election connection"
                        );
                        *conn = None;
                    }
                }
            }
        }
    }

    /// The deployments this node leads, in id order.
    pub(crate) fn leading(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .led()
            .iter()
            .filter_map(|k| match k {
                Key::Deployment(id) => Some(*id),
                Key::Sweep => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn acquire(&self, key: Key) -> bool {
        if self.led().contains(&key) {
            // Already ours: advisory locks count re-entries, so it is not taken again.
            return self.confirm(key).await;
        }
        let (url, conn) = match &self.backend {
            Backend::SingleNode => {
                self.led().insert(key);
                return true;
            }
            Backend::Postgres { url, conn } => (url, conn),
        };
        let mut conn = conn.lock().await;
        if conn.is_none() {
            match open(url).await {
                Ok(c) => {
                    tracing::info!("orchestrator election connection reopened");
                    *conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "orchestrator election connection failed");
                    return false;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            return false;
        };
        let (namespace, k) = key.lock();
        match tokio::time::timeout(CHECK_TIMEOUT, advisory::try_lock(c, namespace, k)).await {
            Ok(Ok(true)) => {
                self.led().insert(key);
                tracing::debug!(?key, "leading");
                true
            }
            Ok(Ok(false)) => false,
            failed => {
                self.lose(&mut conn, &failed);
                false
            }
        }
    }

    async fn confirm(&self, key: Key) -> bool {
        let conn = match &self.backend {
            Backend::SingleNode => return self.led().contains(&key),
            Backend::Postgres { conn, .. } => conn,
        };
        let mut conn = conn.lock().await;
        let Some(c) = conn.as_mut() else {
            return false;
        };
        match tokio::time::timeout(CHECK_TIMEOUT, advisory::ping(c)).await {
            Ok(Ok(())) => self.led().contains(&key),
            failed => {
                self.lose(&mut conn, &failed);
                false
            }
        }
    }

    async fn release(&self, key: Key) {
        if !self.led().remove(&key) {
            return;
        }
        let conn = match &self.backend {
            Backend::SingleNode => return,
            Backend::Postgres { conn, .. } => conn,
        };
        let mut conn = conn.lock().await;
        let Some(c) = conn.as_mut() else {
            // Lost with its connection already.
            return;
        };
        let (namespace, k) = key.lock();
        match tokio::time::timeout(CHECK_TIMEOUT, advisory::unlock(c, namespace, k)).await {
            Ok(Ok(_)) => tracing::debug!(?key, "resigned"),
            failed => self.lose(&mut conn, &failed),
        }
    }

    /// The connection failed (or did not answer in time): every lead is gone with it. Called
    /// with the connection's lock held, so no lock query sees the half-lost state.
    fn lose<T: std::fmt::Debug>(&self, conn: &mut Option<PgConnection>, why: &T) {
        *conn = None;
        let lost = std::mem::take(&mut *self.led());
        tracing::warn!(
            leads = lost.len(),
            error = ?why,
            "orchestrator election connection lost; every lead given up until it reconnects"
        );
    }
}

/// Opens the dedicated connection, within [`CONNECT_TIMEOUT`].
async fn open(url: &str) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url))
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the orchestrator election connection did not open in time",
            )))
        })
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    //! Elections on PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` is set (advisory locks need
    //! no tables: the test database itself serves, with deployment ids no server uses there).

    use super::*;

    fn pg_url() -> Option<String> {
        nerveshub_test_support::postgres_admin_url()
    }

    /// Ids unlikely to meet another test's: this process's id in the high bits.
    fn ids(n: i64) -> Vec<i64> {
        let base = (i64::from(std::process::id()) << 8) | 0x4000_0000;
        (0..n).map(|i| base + i).collect()
    }

    #[tokio::test]
    async fn a_single_node_leads_everything() {
        let e = Election::single_node();
        assert!(e.try_lead(3).await);
        assert!(e.try_lead(1).await);
        assert!(e.try_lead(3).await);
        assert!(e.leads(3).await);
        assert!(e.try_lead_sweep().await);
        assert_eq!(e.leading(), vec![1, 3]);
        e.resign(3).await;
        assert!(!e.leads(3).await);
        e.resign_all().await;
        assert!(e.leading().is_empty());
    }

    #[test]
    fn large_deployment_ids_wrap_into_the_namespace() {
        assert_eq!(Key::Deployment(7).lock(), (DEPLOYMENTS, 7));
        assert_eq!(Key::Deployment((1 << 32) + 7).lock(), (DEPLOYMENTS, 7));
        assert_ne!(Key::Sweep.lock().0, DEPLOYMENTS);
    }

    #[tokio::test]
    async fn one_node_leads_a_deployment_until_it_resigns_or_dies() {
        let Some(url) = pg_url() else { return };
        let ids = ids(3);
        let (d1, d2, d3) = (ids[0], ids[1], ids[2]);
        let a = Election::connect(&url).await.unwrap();
        let b = Election::connect(&url).await.unwrap();
        assert!(a.try_lead(d1).await);
        assert!(a.try_lead(d1).await, "leading again is still leading");
        assert!(!b.try_lead(d1).await);
        assert!(b.try_lead(d2).await);
        assert!(!a.try_lead(d2).await);
        assert!(a.leads(d1).await && !a.leads(d2).await);
        // Resigning hands over at once; a lock taken twice by one node is released once.
        a.resign(d1).await;
        assert!(!a.leads(d1).await);
        assert!(b.try_lead(d1).await);
        assert_eq!(b.leading(), vec![d1, d2]);
        // Only one node sweeps.
        assert!(a.try_lead_sweep().await);
        assert!(a.try_lead_sweep().await);
        assert!(!b.try_lead_sweep().await);
        // A dead node's connection closes: its leads are free once the server has seen the
        // close (dropping a connection does not wait for that).
        drop(b);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(a.try_lead(d1).await && a.try_lead(d2).await) {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped node's leads were never freed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        a.resign_all().await;
        assert!(a.leading().is_empty());
        let c = Election::connect(&url).await.unwrap();
        assert!(c.try_lead(d1).await && c.try_lead(d3).await && c.try_lead_sweep().await);
        c.resign_all().await;
    }

    #[tokio::test]
    async fn a_lost_connection_loses_every_lead_and_reconnects() {
        let Some(url) = pg_url() else { return };
        let ids = ids(6);
        let (d1, d2) = (ids[4], ids[5]);
        let a = Election::connect(&url).await.unwrap();
        let b = Election::connect(&url).await.unwrap();
        assert!(a.try_lead(d1).await && a.try_lead(d2).await);
        // The database ends a's session (a restart, an administrator, a cut connection).
        let pid = {
            let Backend::Postgres { conn, .. } = &a.backend else {
                unreachable!("connected on PostgreSQL")
            };
            let mut conn = conn.lock().await;
            advisory::backend_pid(conn.as_mut().unwrap()).await.unwrap()
        };
        let mut admin = PgConnection::connect(&url).await.unwrap();
        assert!(advisory::terminate(&mut admin, pid).await.unwrap());
        // The other node may take over at once; a's next check stops its workers.
        let mut took = false;
        for _ in 0..50 {
            if b.try_lead(d1).await {
                took = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(took, "the terminated session's lock was released");
        assert!(!a.leads(d2).await, "a knows it lost everything");
        assert!(a.leading().is_empty());
        // The next try reconnects: a leads what is free again, not what b holds.
        assert!(a.try_lead(d2).await);
        assert!(!a.try_lead(d1).await);
        a.resign_all().await;
        b.resign_all().await;
        let _ = admin.close().await;
    }
}
