//! Messages between nodes over PostgreSQL `LISTEN/NOTIFY`.

use crate::db::Db;
use crate::error::ServerError;

/// This node's end of the bus.
#[derive(Debug, Clone)]
pub(crate) struct Bus {
    node_id: String,
    db: Db,
}

impl Bus {
    /// Opens this node's listening connection on `url`.
    pub(crate) async fn connect(_url: &str, db: Db, node_id: &str) -> Result<Bus, ServerError> {
        Ok(Bus {
            node_id: node_id.to_owned(),
            db,
        })
    }
}
