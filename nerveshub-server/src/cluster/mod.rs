//! Many nodes on one PostgreSQL database. PostgreSQL is the coordination engine every
//! deployment already runs, so nodes need nothing else to work together:
//!
//! - [`nodes`]: each node's row in `nodes` is its lease (refreshed every
//!   [`LEASE_REFRESH`], expired after [`LEASE_TTL`]); when a node's lease expires, any other
//!   node marks the devices it held (`devices.connected_node`) disconnected. The checks a
//!   starting node makes (SQLite is one node; local storage is one node unless shared; every
//!   node shares one shared-secrets key) are here too.
//! - [`bus`]: messages between nodes by `LISTEN/NOTIFY` — a push or disconnect for a device
//!   held by another node, trust changes, orchestrator wake-ups.
//! - [`election`]: one orchestrator per deployment across the cluster, by PostgreSQL advisory
//!   locks held on a dedicated connection.
//!
//! On SQLite there is one node: no bus, and this node leads every deployment.

pub(crate) mod bus;
pub(crate) mod election;
mod nodes;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use nodes::{
    RunningHere, check_secrets_key, key_fingerprint, leave, run, shared_url_secret,
};

use crate::config::Config;
use crate::db::{Backend, Db};
use crate::error::ServerError;

/// How often a node refreshes its lease in `nodes`.
pub(crate) const LEASE_REFRESH: Duration = Duration::from_secs(10);

/// A node whose lease was not refreshed for this long is dead: its devices count as offline.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(30);

/// What a node does when several share one database ([`Config::node_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NodeRole {
    /// Everything: device sockets, downloads, the management API and the rollouts (the
    /// default, and the only role on SQLite).
    #[default]
    All,
    /// Device sockets, polling and firmware downloads; the API listener serves only
    /// `/health` and `/ready`.
    Device,
    /// The management API and the rollout orchestrators; no device listener.
    Api,
}

impl NodeRole {
    /// Whether this node holds device sockets and serves downloads.
    pub fn serves_devices(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Device)
    }

    /// Whether this node serves the management API and runs the rollout orchestrators.
    pub fn serves_api(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Api)
    }

    /// The name used in flags and in the `nodes` table.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::All => "all",
            NodeRole::Device => "device",
            NodeRole::Api => "api",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeRole {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(NodeRole::All),
            "device" => Ok(NodeRole::Device),
            "api" => Ok(NodeRole::Api),
            other => Err(ServerError::Config(format!(
                "node role {other:?}: expected all, device or api"
            ))),
        }
    }
}

/// How fast a stopping node closes its device sockets ([`Config::drain`]): `batch` sockets,
/// then a pause of `interval`, until none is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainPacing {
    /// Sockets closed at once (at least 1).
    pub batch: u32,
    /// The pause between two batches.
    pub interval: Duration,
}

impl DrainPacing {
    /// `batch` sockets every `interval`.
    pub fn new(batch: u32, interval: Duration) -> Self {
        DrainPacing {
            batch: batch.max(1),
            interval,
        }
    }
}

impl Default for DrainPacing {
    /// NervesHub's pace: 1000 sockets every 4 s.
    fn default() -> Self {
        DrainPacing::new(1000, Duration::from_secs(4))
    }
}

/// This node's place in the cluster; lives in [`AppState`](crate::state::AppState), cheap to
/// clone.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node_id: String,
    role: NodeRole,
    /// `None` on SQLite: there is no other node to talk to.
    bus: Option<bus::Bus>,
    election: election::Election,
}

impl Cluster {
    /// Registers this node in `nodes` after the start checks (see [`nodes::register`]), and
    /// on PostgreSQL opens the bus and the election connections.
    pub(crate) async fn join(
        db: &Db,
        config: &Config,
        storage_is_local: bool,
    ) -> Result<Cluster, ServerError> {
        let node_id = match &config.node_id {
            Some(id) => validate_node_id(id)?,
            None => default_node_id()?,
        };
        nodes::register(db, config, &node_id, storage_is_local).await?;
        let (bus, election) = match (db.backend(), &config.database_url) {
            (Backend::Postgres, Some(url)) => (
                Some(bus::Bus::connect(url, db.clone(), &node_id).await?),
                election::Election::connect(url).await?,
            ),
            _ => (None, election::Election::single_node()),
        };
        Ok(Cluster {
            inner: Arc::new(Inner {
                node_id,
                role: config.node_role,
                bus,
                election,
            }),
        })
    }

    /// This node's id (its row in `nodes`, the value of `devices.connected_node`).
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// What this node does.
    pub(crate) fn role(&self) -> NodeRole {
        self.inner.role
    }

    /// The messages between nodes; `None` on a single node (SQLite).
    pub(crate) fn bus(&self) -> Option<&bus::Bus> {
        self.inner.bus.as_ref()
    }

    /// Which deployments this node's orchestrators lead.
    pub(crate) fn election(&self) -> &election::Election {
        &self.inner.election
    }
}

/// Node ids end up in channel names and log lines: letters, digits, `-`, `_` and `.`, at
/// most 48 bytes.
fn validate_node_id(id: &str) -> Result<String, ServerError> {
    let ok = !id.is_empty()
        && id.len() <= 48
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ServerError::Config(format!(
            "node id {id:?}: use 1 to 48 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The hostname and a random suffix: unique even for two nodes on one machine, and a
/// restarted node is a new node (its predecessor's devices are swept by its lease).
fn default_node_id() -> Result<String, ServerError> {
    let uname = rustix::system::uname();
    let host: String = uname
        .nodename()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect();
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix)
        .map_err(|e| ServerError::Config(format!("no randomness for the node id: {e}")))?;
    let host = if host.is_empty() { "node".into() } else { host };
    validate_node_id(&format!("{host}-{}", crate::auth::hex_upper(&suffix)))
}

/// This machine's hostname as the `nodes` table shows it.
fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_say_what_they_serve() {
        for role in [NodeRole::All, NodeRole::Device, NodeRole::Api] {
            assert_eq!(role.as_str().parse::<NodeRole>().unwrap(), role);
        }
        assert!("both".parse::<NodeRole>().is_err());
        assert!(NodeRole::All.serves_api() && NodeRole::All.serves_devices());
        assert!(!NodeRole::Device.serves_api() && NodeRole::Device.serves_devices());
        assert!(NodeRole::Api.serves_api() && !NodeRole::Api.serves_devices());
    }

    #[test]
    fn node_ids_are_checked_and_made_unique() {
        assert!(validate_node_id("node-a.1_x").is_ok());
        for bad in ["", "a b", "x'; DROP", &"n".repeat(49)] {
            assert!(validate_node_id(bad).is_err(), "{bad:?}");
        }
        let (a, b) = (default_node_id().unwrap(), default_node_id().unwrap());
        assert_ne!(a, b);
        assert!(a.len() > "-00000000".len(), "{a}");
    }

    #[test]
    fn drain_batches_are_never_empty() {
        assert_eq!(DrainPacing::new(0, Duration::from_secs(1)).batch, 1);
        assert_eq!(DrainPacing::default().batch, 1000);
    }
}
