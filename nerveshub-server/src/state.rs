//! What every request handler can reach.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::device::DeviceHub;
use crate::fleet::Fleet;
use crate::storage::Storage;

/// Shared by the management API and the device endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
    /// Connected devices and the device endpoint's certificate trust.
    pub(crate) devices: DeviceHub,
    pub(crate) storage: Storage,
    /// Who to wake when a rollout has something to do.
    pub(crate) fleet: Fleet,
}
