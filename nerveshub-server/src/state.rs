//! What every request handler can reach.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;

/// Shared by the management API and the device endpoint; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
}
