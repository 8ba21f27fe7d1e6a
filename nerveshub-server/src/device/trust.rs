//! The device endpoint's trust snapshot (registered Device CAs and known device
//! certificates), built from the database and swapped whole when they change.

use std::sync::Arc;

use nerveshub_pki::{SharedTrustStore, TrustStore};
use tokio::sync::Mutex;

use crate::db::Db;

/// The shared snapshot and a lock that keeps reloads in order (a slow reload that read the
/// database earlier must not replace a newer snapshot).
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    store: SharedTrustStore,
    reloading: Arc<Mutex<()>>,
}

impl Trust {
    /// Loads the snapshot from the database.
    pub(crate) async fn load(db: &Db) -> Result<Self, sqlx::Error> {
        Ok(Trust {
            store: SharedTrustStore::new(build(db).await?),
            reloading: Arc::new(Mutex::new(())),
        })
    }

    /// The cell the TLS verifier and the socket handler read.
    pub(crate) fn store(&self) -> SharedTrustStore {
        self.store.clone()
    }

    /// Reads the database again and swaps the snapshot; on a database error the old snapshot
    /// stays and the error is logged.
    pub(crate) async fn reload(&self, db: &Db) {
        let _one_at_a_time = self.reloading.lock().await;
        match build(db).await {
            Ok(store) => {
                self.store.replace(store);
            }
            Err(e) => tracing::warn!(error = %e, "reloading the device trust store failed"),
        }
    }
}

/// A snapshot of what the database holds now (a stored CA that no longer passes the
/// structural checks is left out with a warning rather than failing the whole endpoint).
async fn build(db: &Db) -> Result<TrustStore, sqlx::Error> {
    db.trust_store().await
}
