//! Messages between nodes over PostgreSQL `LISTEN/NOTIFY`.
//!
//! Each node listens on its own channel (`nh_node_<node id>`) and on the broadcast channel
//! [`BROADCAST`]. A push or disconnect for a device whose socket lives on another node is a
//! request on that node's channel, answered by a [`Message::Reply`] on the sender's channel;
//! no answer within the local push timeout means the device is offline. Trust changes and
//! orchestrator wake-ups are broadcasts, never answered.
//!
//! NOTIFY delivers to the connections listening at that moment and keeps nothing: a node
//! whose listening connection drops misses what was sent meanwhile, so it reloads its trust
//! store after reconnecting (the other messages are requests, whose senders time out, and
//! wake-ups, which the orchestrators' backup tick covers).
//!
//! A payload longer than [`MAX_INLINE`](wire::MAX_INLINE) (NOTIFY refuses 8,000 bytes) is stored in
//! `cluster_messages` and sent as a reference, `@<row id>`; the receiver reads the row.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nerveshub_proto::DeviceServerEvent;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::db::Db;
use crate::device::TrustChange;
use crate::device::registry::{Offline, PUSH_TIMEOUT};
use crate::error::ServerError;
use crate::state::AppState;

mod wire;

use wire::{
    BusError, Envelope, Message, Received, WireEvent, decode, decode_stored, encode, reference,
};

/// The channel every node listens on.
pub(crate) const BROADCAST: &str = "nh_cluster";

/// Messages handled at once by a node (each push waits up to [`PUSH_TIMEOUT`] for a socket);
/// past it the listener waits, and PostgreSQL queues the rest.
const MAX_HANDLING: usize = 256;

/// Broadcasts waiting to be sent; past it a broadcast is dropped with a warning (trust changes
/// are reloaded every minute anyway, and orchestrators run on their backup tick).
const OUTBOX: usize = 1024;

/// A deployment's wake-ups are broadcast at most this often: a device node triggers its
/// deployment at every join, and a reconnect storm must not become a NOTIFY per join. One
/// wanted within the window is sent at its end, so the last change is never left to the
/// backup tick.
const WAKE_COALESCE: Duration = Duration::from_millis(250);

/// Past this many deployments, the wake-up times of those idle for a window are forgotten.
const WAKES_KEPT: usize = 4096;

/// How long to wait before listening again after the listening connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The channel of node `node_id`. Node ids are at most 48 bytes of `[A-Za-z0-9._-]`
/// (checked by `validate_node_id`), so the name stays under PostgreSQL's 63-byte limit;
/// `LISTEN` lower-cases unquoted names, so the listener quotes it and `pg_notify` is given it
/// as is.
pub(crate) fn node_channel(node_id: &str) -> String {
    format!("nh_node_{node_id}")
}

/// This node's end of the bus; cheap to clone.
#[derive(Clone)]
pub(crate) struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    url: String,
    db: Db,
    /// Opened by [`Bus::connect`], so notifications sent from then on are kept until
    /// [`listen`] takes it.
    listener: Mutex<Option<PgListener>>,
    /// Requests waiting for their reply.
    pending: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    next_request: AtomicU64,
    /// Fire-and-forget messages, sent in order by one task: `(channel, message)`.
    outbox: mpsc::Sender<(String, Message)>,
    /// When each deployment's last wake-up was sent, and whether one waits for the end of
    /// its window.
    wakes: Mutex<HashMap<i64, WakeState>>,
}

#[derive(Debug, Clone, Copy)]
struct WakeState {
    sent_at: Instant,
    trailing: bool,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: left out.
        f.debug_struct("Bus")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// Removes a request from the pending map when its wait ends, whichever way.
struct PendingGuard<'a> {
    bus: &'a Bus,
    request: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.bus.pending().remove(&self.request);
    }
}

impl Bus {
    /// Opens this node's listening connection on `url` (its channel and the broadcast
    /// channel), and the task that sends its broadcasts.
    pub(crate) async fn connect(url: &str, db: Db, node_id: &str) -> Result<Bus, ServerError> {
        let listener = subscribe(url, node_id)
            .await
            .map_err(|e| ServerError::Config(format!("listening for cluster messages: {e}")))?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        tokio::spawn(send_queued(db.clone(), node_id.to_owned(), queued));
        // Request ids start at a random point: a node restarted under the same id must not
        // take a reply meant for its predecessor.
        let mut seed = [0u8; 4];
        let start = match getrandom::fill(&mut seed) {
            Ok(()) => u64::from(u32::from_le_bytes(seed)) << 16,
            Err(_) => 1,
        };
        Ok(Bus {
            inner: Arc::new(Inner {
                node_id: node_id.to_owned(),
                url: url.to_owned(),
                db,
                listener: Mutex::new(Some(listener)),
                pending: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(start),
                outbox,
                wakes: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<bool>>> {
        // One insert or remove per change: consistent even after a panic elsewhere.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The node holding `device_id`'s socket when it is another node (`devices.connected_node`);
    /// `None` when no node, this one, or the database failed (logged).
    pub(crate) async fn remote_node(&self, device_id: i64) -> Option<String> {
        match self.inner.db.device_node(device_id).await {
            Ok(Some(node)) if node != self.inner.node_id => Some(node),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(device = device_id, error = %e, "reading the device's node failed");
                None
            }
        }
    }

    /// Whether `node` is another node than this one.
    pub(crate) fn is_other(&self, node: &str) -> bool {
        node != self.inner.node_id
    }

    /// Asks `node` to push `event` to `device_id`; `Err(Offline)` when it did not, or did not
    /// answer within the local push timeout.
    pub(crate) async fn push(
        &self,
        node: &str,
        device_id: i64,
        event: &DeviceServerEvent,
    ) -> Result<(), Offline> {
        let event = WireEvent::of(event);
        self.request(node, |request| Message::Push {
            request,
            device_id,
            event,
        })
        .await
    }

    /// Asks `node` to close `device_id`'s socket; `Err(Offline)` when it has none or did not
    /// answer.
    pub(crate) async fn disconnect(
        &self,
        node: &str,
        device_id: i64,
        reason: &str,
    ) -> Result<(), Offline> {
        self.request(node, |request| Message::Disconnect {
            request,
            device_id,
            reason: reason.to_owned(),
            established_before: None,
        })
        .await
    }

    /// Tells `node` that `device_id` joined here with `established_at`: its socket there, if it
    /// joined before, closes. Not answered.
    pub(crate) fn replaced(&self, node: &str, device_id: i64, established_at: i64) {
        self.queue(
            node_channel(node),
            Message::Disconnect {
                request: 0,
                device_id,
                reason: "replaced by a new connection".into(),
                established_before: Some(established_at),
            },
        );
    }

    /// Sends `change` (already applied here) to every other node.
    pub(crate) fn broadcast_trust(&self, change: TrustChange) {
        self.queue(BROADCAST.to_owned(), Message::Trust(change));
    }

    /// Asks every other node to wake deployment `deployment_id`'s orchestrator (at most once
    /// per [`WAKE_COALESCE`], the last one of a burst at the window's end).
    pub(crate) fn wake(&self, deployment_id: i64) {
        let now = Instant::now();
        let trailing_in = {
            let mut wakes = self.wakes();
            if wakes.len() > WAKES_KEPT {
                wakes.retain(|_, w| w.trailing || now.duration_since(w.sent_at) < WAKE_COALESCE);
            }
            match wakes.get_mut(&deployment_id) {
                Some(w) if now.duration_since(w.sent_at) < WAKE_COALESCE => {
                    if w.trailing {
                        // The one at the window's end covers this one.
                        return;
                    }
                    w.trailing = true;
                    Some(WAKE_COALESCE.saturating_sub(now.duration_since(w.sent_at)))
                }
                _ => {
                    wakes.insert(
                        deployment_id,
                        WakeState {
                            sent_at: now,
                            trailing: false,
                        },
                    );
                    None
                }
            }
        };
        let Some(delay) = trailing_in else {
            self.queue(BROADCAST.to_owned(), Message::Wake { deployment_id });
            return;
        };
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            bus.wakes().insert(
                deployment_id,
                WakeState {
                    sent_at: Instant::now(),
                    trailing: false,
                },
            );
            bus.queue(BROADCAST.to_owned(), Message::Wake { deployment_id });
        });
    }

    fn wakes(&self) -> std::sync::MutexGuard<'_, HashMap<i64, WakeState>> {
        // One insert or update per change: consistent even after a panic elsewhere.
        self.inner
            .wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self, channel: String, message: Message) {
        if let Err(e) = self.inner.outbox.try_send((channel, message)) {
            tracing::warn!(error = %e, "cluster message dropped: the outbox is full");
        }
    }

    async fn request(
        &self,
        node: &str,
        message: impl FnOnce(u64) -> Message,
    ) -> Result<(), Offline> {
        let request = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(request, tx);
        let _guard = PendingGuard { bus: self, request };
        let envelope = Envelope {
            from: self.inner.node_id.clone(),
            message: message(request),
        };
        if let Err(e) = send(&self.inner.db, &node_channel(node), &envelope).await {
            tracing::warn!(node, error = %e, "cluster request not sent");
            return Err(Offline::Offline);
        }
        match tokio::time::timeout(PUSH_TIMEOUT, rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err(Offline::Offline),
            Err(_) => {
                tracing::info!(node, request, "no reply from the node holding the device");
                Err(Offline::Offline)
            }
        }
    }

    /// Hands a reply to the request waiting for it (none when it timed out meanwhile).
    fn replied(&self, request: u64, delivered: bool) {
        let waiting = self.pending().remove(&request);
        if let Some(tx) = waiting {
            let _ = tx.send(delivered);
        }
    }

    fn take_listener(&self) -> Option<PgListener> {
        self.inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A listening connection on `node_id`'s channel and the broadcast channel.
async fn subscribe(url: &str, node_id: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener
        .listen_all([node_channel(node_id).as_str(), BROADCAST])
        .await?;
    Ok(listener)
}

/// Sends `envelope` on `channel`, by reference when it is too long for NOTIFY.
async fn send(db: &Db, channel: &str, envelope: &Envelope) -> Result<(), BusError> {
    let (text, inline) = encode(envelope)?;
    if inline {
        db.notify(channel, &text).await?;
    } else {
        let id = db.insert_cluster_message(&text).await?;
        db.notify(channel, &reference(id)).await?;
    }
    Ok(())
}

/// Sends the fire-and-forget messages in the order they were queued, until the bus is
/// dropped.
async fn send_queued(db: Db, node_id: String, mut queued: mpsc::Receiver<(String, Message)>) {
    while let Some((channel, message)) = queued.recv().await {
        let envelope = Envelope {
            from: node_id.clone(),
            message,
        };
        if let Err(e) = send(&db, &channel, &envelope).await {
            tracing::warn!(channel, error = %e, "cluster message not sent");
        }
    }
}

/// Receives this node's messages until `stop`: pushes and disconnects for its devices,
/// replies to its requests, other nodes' trust changes and wake-ups. Does nothing on a
/// single node (no bus).
pub(crate) async fn listen(state: AppState, mut stop: watch::Receiver<bool>) {
    let Some(bus) = state.cluster.bus().cloned() else {
        return;
    };
    let mut listener = match bus.take_listener() {
        Some(listener) => listener,
        None => match resubscribe(&bus, &mut stop).await {
            Some(listener) => listener,
            None => return,
        },
    };
    let handling = Arc::new(Semaphore::new(MAX_HANDLING));
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received,
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        };
        match received {
            Ok(Some(notification)) => {
                let Ok(permit) = handling.clone().acquire_owned().await else {
                    return;
                };
                let state = state.clone();
                let bus = bus.clone();
                let payload = notification.payload().to_owned();
                tokio::spawn(async move {
                    handle(&state, &bus, &payload).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                // sqlx reconnected at once (its eager reconnect); what was sent meanwhile is
                // lost.
                tracing::warn!("cluster listener reconnected: reloading the trust store");
                state.devices.reload_trust(&state.db).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener failed; listening again");
                drop(listener);
                listener = match resubscribe(&bus, &mut stop).await {
                    Some(listener) => listener,
                    None => return,
                };
                tracing::info!("cluster listener back: reloading the trust store");
                state.devices.reload_trust(&state.db).await;
            }
        }
    }
}

/// A new listening connection, retried every [`RECONNECT_PAUSE`]; `None` once `stop`.
async fn resubscribe(bus: &Bus, stop: &mut watch::Receiver<bool>) -> Option<PgListener> {
    loop {
        match subscribe(&bus.inner.url, &bus.inner.node_id).await {
            Ok(listener) => return Some(listener),
            Err(e) => tracing::warn!(error = %e, "listening for cluster messages failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => return None,
        }
    }
}

/// Acts on one received payload; a malformed one is logged and dropped.
async fn handle(state: &AppState, bus: &Bus, payload: &str) {
    let envelope = match read(&bus.inner.db, payload).await {
        Ok(Some(envelope)) => envelope,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cluster message dropped");
            return;
        }
    };
    if envelope.from == bus.inner.node_id {
        // Our own broadcast.
        return;
    }
    let from = envelope.from;
    match envelope.message {
        Message::Push {
            request,
            device_id,
            event,
        } => {
            let delivered = match event.to_event() {
                Ok(event) => state.devices.registry.push(device_id, event).await.is_ok(),
                Err(e) => {
                    tracing::warn!(node = %from, error = %e, "cluster push dropped");
                    false
                }
            };
            reply(bus, &from, request, delivered).await;
        }
        Message::Disconnect {
            device_id,
            established_before: Some(before),
            ..
        } => {
            state
                .devices
                .registry
                .replace_if_joined_before(device_id, before);
        }
        Message::Disconnect {
            request,
            device_id,
            reason,
            established_before: None,
        } => {
            let delivered = state
                .devices
                .registry
                .disconnect(device_id, known_reason(&reason))
                .await
                .is_ok();
            reply(bus, &from, request, delivered).await;
        }
        Message::Reply { request, delivered } => bus.replied(request, delivered),
        Message::Trust(change) => apply_trust(state, &from, change).await,
        Message::Wake { deployment_id } => {
            state.fleet.wake_local(deployment_id);
        }
    }
}

/// Applies a peer's trust change. Anyone who can connect to the database can send a NOTIFY
/// (PostgreSQL checks no privilege for it), so a change that widens trust — a CA or a device
/// certificate added — is applied only once its row is found committed; one that narrows it is
/// applied as it comes (the worst a forged one does is refuse a device until the next reload).
async fn apply_trust(state: &AppState, from: &str, change: TrustChange) {
    let committed = match &change {
        TrustChange::CaAdded { der } => state.db.ca_registered(der).await,
        TrustChange::CertificateAdded {
            fingerprint,
            public_key_fingerprint,
            identifier,
        } => {
            state
                .db
                .device_certificate_recorded(fingerprint, public_key_fingerprint, identifier)
                .await
        }
        TrustChange::CaRemoved { .. }
        | TrustChange::CertificateRemoved { .. }
        | TrustChange::DeviceRemoved { .. } => Ok(true),
    };
    match committed {
        Ok(true) => state.devices.apply_trust_from_peer(change),
        Ok(false) => {
            tracing::warn!(node = %from, "a trust change names no committed row: ignored");
        }
        Err(e) => {
            // The once-a-minute reload brings it in when the database answers again.
            tracing::warn!(node = %from, error = %e, "checking a trust change failed");
        }
    }
}

/// The envelope a payload holds, read from `cluster_messages` when it is a reference;
/// `None` when the referenced row is gone (older than its retention).
async fn read(db: &Db, payload: &str) -> Result<Option<Envelope>, BusError> {
    match decode(payload)? {
        Received::Inline(envelope) => Ok(Some(envelope)),
        Received::Stored(id) => match db.cluster_message(id).await? {
            Some(text) => decode_stored(&text).map(Some),
            None => {
                tracing::warn!(id, "stored cluster message is gone");
                Ok(None)
            }
        },
    }
}

async fn reply(bus: &Bus, to: &str, request: u64, delivered: bool) {
    let envelope = Envelope {
        from: bus.inner.node_id.clone(),
        message: Message::Reply { request, delivered },
    };
    if let Err(e) = send(&bus.inner.db, &node_channel(to), &envelope).await {
        tracing::warn!(node = %to, error = %e, "cluster reply not sent");
    }
}

/// The close reason a socket sends, from the reasons nodes send each other (a socket's close
/// reason is static text, and a peer's arbitrary string is not echoed to devices).
fn known_reason(reason: &str) -> &'static str {
    match reason {
        "reconnect requested" => "reconnect requested",
        "device deleted" => "device deleted",
        "replaced by a new connection" => "replaced by a new connection",
        _ => "disconnected by the server",
    }
}

/// Built without PostgreSQL (crate feature `postgres`) there are no nodes to talk to:
/// SQLite serves one node, so [`Bus::connect`] is never reached. The listener is then a type
/// with no values, which keeps the code above one version for both builds.
#[cfg(not(feature = "postgres"))]
enum PgListener {}

#[cfg(not(feature = "postgres"))]
impl PgListener {
    async fn connect(_url: &str) -> Result<PgListener, sqlx::Error> {
        Err(sqlx::Error::Configuration(
            "cluster messages need PostgreSQL: this server was built without the `postgres` feature"
                .into(),
        ))
    }

    async fn listen_all(&mut self, _channels: [&str; 2]) -> Result<(), sqlx::Error> {
        match *self {}
    }

    async fn try_recv(&mut self) -> Result<Option<NoNotification>, sqlx::Error> {
        match *self {}
    }
}

/// Dropped where the real listener is (closing its connection); never runs, as no value exists.
#[cfg(not(feature = "postgres"))]
impl Drop for PgListener {
    fn drop(&mut self) {
        match *self {}
    }
}

/// What [`PgListener::try_recv`] would return without PostgreSQL: nothing, ever.
#[cfg(not(feature = "postgres"))]
enum NoNotification {}

#[cfg(not(feature = "postgres"))]
impl NoNotification {
    fn payload(&self) -> &str {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::wire::MAX_INLINE;
    use super::*;

    fn envelope(message: Message) -> Envelope {
        Envelope {
            from: "node-a".into(),
            message,
        }
    }

    #[tokio::test]
    async fn long_messages_travel_through_the_database() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in crate::db::test_databases(dir.path(), "nhunit_bus_stored").await {
            // NOTIFY is PostgreSQL's: the SQLite database has no bus.
            let Some(pg) = pg else { continue };
            let url = pg.url();
            let bus = Bus::connect(&url, db.clone(), "n1").await.unwrap();
            let mut listener = bus.take_listener().unwrap();
            for size in [10, 2 * MAX_INLINE] {
                let sent = envelope(Message::Push {
                    request: 1,
                    device_id: 2,
                    event: WireEvent {
                        name: "big".into(),
                        payload: serde_json::json!({"blob": "x".repeat(size)}),
                    },
                });
                send(&db, &node_channel("n1"), &sent).await.unwrap();
                let got = tokio::time::timeout(Duration::from_secs(5), listener.try_recv())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                assert_eq!(got.payload().starts_with('@'), size > MAX_INLINE);
                assert_eq!(read(&db, got.payload()).await.unwrap(), Some(sent));
            }
            // A reference to a row that is gone reads as nothing.
            assert_eq!(read(&db, &reference(i64::MAX)).await.unwrap(), None);
            drop(listener);
            drop(bus);
            pg.drop_database().await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_wake_ups_is_two_notifications() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in crate::db::test_databases(dir.path(), "nhunit_bus_wakes").await {
            let Some(pg) = pg else { continue };
            let url = pg.url();
            let bus = Bus::connect(&url, db.clone(), "n1").await.unwrap();
            let mut other = subscribe(&url, "n2").await.unwrap();
            for _ in 0..100 {
                bus.wake(5);
            }
            bus.wake(6);
            let mut woken = Vec::new();
            while let Ok(got) = tokio::time::timeout(4 * WAKE_COALESCE, other.try_recv()).await {
                let envelope = read(&db, got.unwrap().unwrap().payload())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(envelope.from, "n1");
                if let Message::Wake { deployment_id } = envelope.message {
                    woken.push(deployment_id);
                }
            }
            woken.sort_unstable();
            // The first of the burst at once, the last at the window's end; another
            // deployment's own.
            assert_eq!(woken, [5, 5, 6]);
            drop((other, bus));
            pg.drop_database().await;
        }
    }

    #[test]
    fn unknown_disconnect_reasons_are_not_passed_on() {
        assert_eq!(known_reason("anything'"), "disconnected by the server");
    }
}
