//! What every request handler can reach.

use std::sync::Arc;

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::db::{Db, SecretCipher};
use crate::device::DeviceHub;
use crate::fleet::Fleet;
use crate::storage::Storage;

/// Shared by the management API and the device endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The database: on the API pool, except in the device endpoint's state
    /// ([`AppState::for_device_endpoint`]), where it is on the device pool.
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
    /// Connected devices and the device endpoint's certificate trust.
    pub(crate) devices: DeviceHub,
    pub(crate) storage: Storage,
    /// Who to wake when a rollout has something to do.
    pub(crate) fleet: Fleet,
    /// Encrypts and decrypts shared secrets at rest.
    pub(crate) secrets: Arc<SecretCipher>,
    /// Sign-in rate limits.
    pub(crate) logins: Arc<crate::auth::LoginLimiter>,
    /// This node among the others sharing the database.
    pub(crate) cluster: Cluster,
    /// The time of day (`Config::clock`): the system clock, or a test's.
    pub(crate) clock: Clock,
}

impl AppState {
    /// The state the device endpoint's routes get: the same, with `db` on the device pool, so
    /// everything a device's request or socket does waits for device connections only.
    pub(crate) fn for_device_endpoint(&self) -> AppState {
        AppState {
            db: self.db.for_devices(),
            ..self.clone()
        }
    }
}
