//! One orchestrator per deployment across the cluster: PostgreSQL advisory locks.

use crate::error::ServerError;

/// Which deployments this node leads.
#[derive(Debug)]
pub(crate) enum Election {
    /// The only node (SQLite): it leads everything.
    SingleNode,
    /// Advisory locks on PostgreSQL.
    Postgres { url: String },
}

impl Election {
    /// The only node.
    pub(crate) fn single_node() -> Self {
        Election::SingleNode
    }

    /// Opens the dedicated connection the locks are held on.
    pub(crate) async fn connect(url: &str) -> Result<Self, ServerError> {
        Ok(Election::Postgres {
            url: url.to_owned(),
        })
    }
}
