//! The device side of the server: the WebSocket endpoint nerves_hub_link connects to, how a
//! connecting device is authenticated, its `device` channel, and the registry through which
//! the rest of the server pushes to connected devices.
//!
//! - [`socket`]: `/socket/websocket` and `/device-socket/websocket` (`vsn=2.0.0` JSON,
//!   `3.0.0` MessagePack), the upgrade, and the loop that drives one socket's
//!   [`ServerSession`](nerveshub_proto::ServerSession).
//! - [`auth`]: client certificates (known, or chaining to a registered Device CA, with JITP)
//!   and NH1 shared-secret headers (product keys register devices, device keys must match).
//! - [`channel`]: the `device` channel — join metadata, public-key pushes, and recording what
//!   the device pushes (never replied to).
//! - [`poll`]: devices that poll over HTTP instead (`POST /device/api/v1/poll`, the v1-era
//!   `GET /device/update`), recorded like joins, offered updates by the orchestrator.
//! - [`registry`]: connected devices and their command queues.
//! - [`trust`]: the device endpoint's certificate trust, loaded from the database and kept
//!   current by [`TrustChange`]s.
//! - `nh1_keys`: NH1 key derivations cached per product key and second.

pub(crate) mod auth;
pub(crate) mod channel;
mod nh1_keys;
pub(crate) mod poll;
pub(crate) mod presence;
pub(crate) mod registry;
pub(crate) mod socket;
pub(crate) mod trust;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use nerveshub_pki::SharedTrustStore;
use tokio::sync::watch;

use nerveshub_proto::DeviceServerEvent;

use crate::cluster::Cluster;
use crate::cluster::bus::Bus;
use crate::db::Db;
use crate::error::ServerError;
use crate::state::AppState;

pub(crate) use registry::{DeviceRegistry, Offline};
pub(crate) use trust::{TrustChange, TrustTx};

/// How often stale connections are swept.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// A device shown connected but not heard from for this long is marked disconnected (its
/// node stopped without closing it). Connected devices are written "last seen" at least every
/// [`channel::LAST_SEEN_INTERVAL`], and heartbeat every 30 s.
const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// The device endpoint's shared parts: the connected-device registry and the certificate
/// trust snapshot. Cheap to clone; lives in [`AppState`].
#[derive(Debug, Clone)]
pub(crate) struct DeviceHub {
    /// The devices connected to this node.
    pub(crate) registry: DeviceRegistry,
    trust: trust::Trust,
    /// When each polling device last polled on this node.
    pub(crate) polls: Arc<poll::PollLimiter>,
    /// NH1 derivations shared by devices connecting in the same second.
    pub(crate) nh1_keys: nh1_keys::Nh1Keys,
    /// Disconnections and "last seen" times waiting to be written in batches.
    pub(crate) presence: presence::Presence,
    /// The other nodes, for devices connected there and trust changes made here; `None` on a
    /// single node.
    bus: Option<Bus>,
}

impl DeviceHub {
    /// Loads the trust store (registered CAs, known device certificates) from `db`; devices
    /// connected to other nodes are reached through `cluster`'s bus.
    /// Certificate signatures are checked with `provider`'s algorithms.
    pub(crate) async fn load(
        db: &Db,
        cluster: &Cluster,
        provider: &std::sync::Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, ServerError> {
        Ok(DeviceHub {
            bus: cluster.bus().cloned(),
            registry: DeviceRegistry::new(),
            trust: trust::Trust::load(db, provider).await?,
            polls: Arc::default(),
            nh1_keys: nh1_keys::Nh1Keys::default(),
            // Device work waits for device connections only (the API keeps its own pool).
            presence: presence::Presence::new(db.for_devices()),
        })
    }

    /// The trust cell the TLS client-certificate verifier reads.
    pub(crate) fn trust_store(&self) -> SharedTrustStore {
        self.trust.store()
    }

    /// A write transaction for changes to Device CAs, device certificates or devices: what
    /// it records with [`TrustTx::changes`] is applied when, and only when, it commits. The
    /// one way to change trust, so no write path can commit without applying its change.
    pub(crate) async fn begin_trust_change(&self, db: &Db) -> Result<TrustTx, sqlx::Error> {
        Ok(TrustTx::new(db.begin().await?, self.clone()))
    }

    /// Applies a committed change (from [`TrustTx::commit`] only), so the TLS layer sees it
    /// at once. It costs about one hash-map update and reads no database. Other nodes get
    /// the change too (a broadcast, applied there within a second).
    fn apply_committed(&self, change: TrustChange) {
        if let Some(bus) = &self.bus {
            bus.broadcast_trust(change.clone());
        }
        self.trust.apply(change);
    }

    /// Applies a trust change another node made (and already sent everywhere).
    pub(crate) fn apply_trust_from_peer(&self, change: TrustChange) {
        self.trust.apply(change);
    }

    /// Pushes `event` to the device, on this node or through the node holding its socket;
    /// `Err(Offline)` when no socket took it.
    pub(crate) async fn push(
        &self,
        device_id: i64,
        event: DeviceServerEvent,
    ) -> Result<(), Offline> {
        if self.registry.is_connected(device_id) {
            return self.registry.push(device_id, event).await;
        }
        match &self.bus {
            Some(bus) => match bus.remote_node(device_id).await {
                Some(node) => bus.push(&node, device_id, &event).await,
                None => Err(Offline::Offline),
            },
            None => Err(Offline::Offline),
        }
    }

    /// Asks the device's socket, here or on another node, to close (it reconnects by
    /// itself); `Err(Offline)` when it has none.
    pub(crate) async fn disconnect(
        &self,
        device_id: i64,
        reason: &'static str,
    ) -> Result<(), Offline> {
        if self.registry.is_connected(device_id) {
            return self.registry.disconnect(device_id, reason).await;
        }
        match &self.bus {
            Some(bus) => match bus.remote_node(device_id).await {
                Some(node) => bus.disconnect(&node, device_id, reason).await,
                None => Err(Offline::Offline),
            },
            None => Err(Offline::Offline),
        }
    }

    /// Whether a push may reach the device: it has a socket here, or `connected_node` (its
    /// `devices.connected_node`, as just read) is another node. Reads nothing.
    pub(crate) fn reachable(&self, device_id: i64, connected_node: Option<&str>) -> bool {
        self.registry.is_connected(device_id)
            || self
                .bus
                .as_ref()
                .zip(connected_node)
                .is_some_and(|(bus, node)| bus.is_other(node))
    }

    /// [`reachable`](Self::reachable), reading the device's node when it has no socket here.
    pub(crate) async fn reachable_now(&self, device_id: i64) -> bool {
        if self.registry.is_connected(device_id) {
            return true;
        }
        match &self.bus {
            Some(bus) => bus.remote_node(device_id).await.is_some(),
            None => false,
        }
    }

    /// The device just joined here with `established_at`, and `previous_node` held its socket
    /// before: that node closes its socket if it joined earlier (fire and forget).
    pub(crate) fn joined_elsewhere_before(
        &self,
        device_id: i64,
        previous_node: Option<&str>,
        established_at: i64,
    ) {
        if let (Some(bus), Some(node)) = (&self.bus, previous_node)
            && bus.is_other(node)
        {
            bus.replaced(node, device_id, established_at);
        }
    }

    /// Whether other nodes may hold this device's sockets (a bus exists).
    pub(crate) fn clustered(&self) -> bool {
        self.bus.is_some()
    }

    /// Reads the whole trust store from the database again, for when changes may have been
    /// missed: the cluster bus lost its connection (changes applied while it reads are
    /// kept). Every write on this node applies its own change through [`TrustTx`].
    pub(crate) async fn reload_trust(&self, db: &Db) {
        self.trust.reload(db).await;
    }

    /// How many full reloads ran since start (the initial load not counted).
    pub(crate) fn trust_reloads(&self) -> u64 {
        self.trust.reloads()
    }

    /// Closes every device socket at the pace of `pacing`, then writes their
    /// disconnections (and what else the presence writer holds); `grace` bounds each wait
    /// after the last batch.
    pub(crate) async fn shutdown(&self, pacing: crate::cluster::DrainPacing, grace: Duration) {
        self.registry.drain(pacing, grace).await;
        self.presence
            .drain(tokio::time::Instant::now() + grace)
            .await;
    }
}

/// The device endpoint's WebSocket and polling routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/socket/websocket", get(socket::websocket))
        .route("/device-socket/websocket", get(socket::websocket))
        .merge(poll::routes())
}

/// Sweeps stale connections every minute until `stop` (on the API pool: `state` is the
/// server's). The trust store is not reloaded here: every change reaches it through
/// [`TrustTx`], and a full read of every certificate per minute would grow with the fleet.
pub(crate) async fn maintenance(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        match state.db.sweep_stale_connections(STALE_AFTER).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(devices = n, "marked stale device connections disconnected"),
            Err(e) => tracing::warn!(error = %e, "sweeping stale device connections failed"),
        }
    }
}
