//! Which devices are connected to this node, and a way for any part of the server to push to
//! one of them.
//!
//! Each device socket registers itself under its device id with a command channel. A second
//! connection of the same device replaces the first, which is told to close (NervesHub kicks
//! the older socket the same way). The registry also knows how many sockets are open, so a
//! shutdown can close them all — a batch at a time, so the fleet does not reconnect to the
//! other nodes at once — and wait for them to hand their disconnections over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nerveshub_proto::DeviceServerEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::DrainPacing;

/// How long a push waits for the device's socket to take it (a push through another node
/// waits as long for that node's answer).
pub(crate) const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Something a device's socket is asked to do.
#[derive(Debug)]
pub(crate) enum DeviceCommand {
    /// Push an event on `device`; `ack` says whether it was sent (false when the device has
    /// not joined `device`).
    Push {
        /// Boxed: each socket's command channel allocates room for 32 commands up front, and
        /// an unboxed event would make that ~7 KiB per connected device.
        event: Box<DeviceServerEvent>,
        ack: oneshot::Sender<bool>,
    },
    /// Close the socket (another connection of the device replaced it, or a user asked the
    /// device to reconnect). The device reconnects by itself.
    Disconnect(&'static str),
    /// Close the socket with "going away": this node is stopping (its turn in the paced
    /// drain). The device reconnects, through the load balancer, to another node.
    GoingAway,
    /// The device joined on another node with this `connection_established_at`: close the
    /// socket if its own join was recorded before (a socket that joined later is newer).
    Replaced { established_before: i64 },
}

/// Why a command did not reach a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Offline {
    #[error("device is offline")]
    Offline,
}

#[derive(Debug)]
struct Entry {
    conn_id: u64,
    tx: mpsc::Sender<DeviceCommand>,
}

#[derive(Debug)]
struct Inner {
    map: Mutex<HashMap<i64, Entry>>,
    next_conn: AtomicU64,
    /// Set when the drain starts: no new socket registers.
    draining: AtomicBool,
    /// Set when every socket left must close at once.
    stop: watch::Sender<bool>,
    open: watch::Sender<usize>,
}

/// The connected devices of this node; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRegistry {
    inner: Arc<Inner>,
}

impl Default for DeviceRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// A socket's place in the registry. Dropping it unregisters the socket (if it is still the
/// device's current one) and counts it closed.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: DeviceRegistry,
    device_id: i64,
    conn_id: u64,
}

impl Registration {
    /// Whether this socket is still its device's current connection.
    #[cfg(test)]
    fn is_current(&self) -> bool {
        self.registry
            .lock()
            .get(&self.device_id)
            .is_some_and(|e| e.conn_id == self.conn_id)
    }

    /// Unregisters now; returns whether this socket was the device's current connection.
    pub(crate) fn unregister(&self) -> bool {
        let mut map = self.registry.lock();
        if map
            .get(&self.device_id)
            .is_some_and(|e| e.conn_id == self.conn_id)
        {
            map.remove(&self.device_id);
            true
        } else {
            false
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.unregister();
        self.registry
            .inner
            .open
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl DeviceRegistry {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        DeviceRegistry {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                draining: AtomicBool::new(false),
                stop: watch::channel(false).0,
                open: watch::channel(0).0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // The map stays consistent under a panic (each change is one insert or remove).
        self.inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new socket of `device_id`; an older socket of the same device is told to
    /// close. `None` once the server is shutting down.
    pub(crate) fn register(
        &self,
        device_id: i64,
        tx: mpsc::Sender<DeviceCommand>,
    ) -> Option<Registration> {
        if self.inner.draining.load(Ordering::Acquire) || *self.inner.stop.borrow() {
            return None;
        }
        let conn_id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        self.inner.open.send_modify(|n| *n += 1);
        let previous = self.lock().insert(device_id, Entry { conn_id, tx });
        if let Some(previous) = previous {
            // A full queue means the old socket is stuck; it is dropped from the map anyway,
            // and its idle timeout ends it.
            let _ = previous
                .tx
                .try_send(DeviceCommand::Disconnect("replaced by a new connection"));
        }
        Some(Registration {
            registry: self.clone(),
            device_id,
            conn_id,
        })
    }

    /// How many devices have a socket on this node.
    pub(crate) fn connected_count(&self) -> usize {
        self.lock().len()
    }

    /// The devices with a socket on this node.
    pub(crate) fn connected_ids(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    /// Whether `device_id` has a socket on this node.
    pub(crate) fn is_connected(&self, device_id: i64) -> bool {
        self.lock().contains_key(&device_id)
    }

    fn sender(&self, device_id: i64) -> Result<mpsc::Sender<DeviceCommand>, Offline> {
        self.lock()
            .get(&device_id)
            .map(|e| e.tx.clone())
            .ok_or(Offline::Offline)
    }

    /// Pushes `event` to the device on `device`; `Err(Offline)` when it has no socket here or
    /// has not joined `device`.
    pub(crate) async fn push(
        &self,
        device_id: i64,
        event: DeviceServerEvent,
    ) -> Result<(), Offline> {
        let tx = self.sender(device_id)?;
        let (ack, acked) = oneshot::channel();
        let sent = async {
            tx.send(DeviceCommand::Push {
                event: Box::new(event),
                ack,
            })
            .await
            .map_err(|_| Offline::Offline)?;
            acked.await.map_err(|_| Offline::Offline)
        };
        match tokio::time::timeout(PUSH_TIMEOUT, sent).await {
            Ok(Ok(true)) => Ok(()),
            _ => Err(Offline::Offline),
        }
    }

    /// Asks the device's socket to close (the device reconnects by itself).
    pub(crate) async fn disconnect(
        &self,
        device_id: i64,
        reason: &'static str,
    ) -> Result<(), Offline> {
        let tx = self.sender(device_id)?;
        tx.send(DeviceCommand::Disconnect(reason))
            .await
            .map_err(|_| Offline::Offline)
    }

    /// The device joined on another node at `established_before`: its socket here closes if
    /// it joined earlier. Does not wait (a full queue means a stuck socket, which its idle
    /// timeout ends).
    pub(crate) fn replace_if_joined_before(&self, device_id: i64, established_before: i64) {
        if let Ok(tx) = self.sender(device_id) {
            let _ = tx.try_send(DeviceCommand::Replaced { established_before });
        }
    }

    /// A receiver that turns true when the server shuts down.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    /// Closes every socket, `pacing.batch` at a time with `pacing.interval` between batches
    /// (each sends a WebSocket close and hands its disconnection to the presence writer), then
    /// tells any left to close at once and waits up to `grace` for them. New sockets are
    /// refused from the start. With no sockets it returns at once.
    pub(crate) async fn drain(&self, pacing: DrainPacing, grace: Duration) {
        self.inner.draining.store(true, Ordering::Release);
        // Who is connected now: a socket registering concurrently is caught by the final
        // `stop`, like one whose command queue is full.
        let sockets: Vec<mpsc::Sender<DeviceCommand>> =
            self.lock().values().map(|e| e.tx.clone()).collect();
        let batch = usize::try_from(pacing.batch.max(1)).unwrap_or(usize::MAX);
        let total = sockets.len();
        if total > 0 {
            tracing::info!(sockets = total, batch, interval = ?pacing.interval, "closing device sockets");
        }
        let mut waves = sockets.chunks(batch).peekable();
        while let Some(wave) = waves.next() {
            for tx in wave {
                // A full queue means a stuck socket: the final `stop` ends it.
                let _ = tx.try_send(DeviceCommand::GoingAway);
            }
            if waves.peek().is_none() {
                break;
            }
            tokio::time::sleep(pacing.interval).await;
            tracing::info!(
                open = *self.inner.open.borrow(),
                "closing device sockets: sockets left"
            );
        }
        self.inner.stop.send_replace(true);
        let mut open = self.inner.open.subscribe();
        let closed = tokio::time::timeout(grace, open.wait_for(|n| *n == 0)).await;
        if closed.is_err() {
            tracing::warn!(
                open = *self.inner.open.borrow(),
                "device sockets still open after the shutdown grace period"
            );
        } else if total > 0 {
            tracing::info!(sockets = total, "device sockets closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_connection_replaces_the_first() {
        let registry = DeviceRegistry::new();
        let (tx1, mut rx1) = mpsc::channel(4);
        let first = registry.register(7, tx1).unwrap();
        assert!(first.is_current());
        let (tx2, _rx2) = mpsc::channel(4);
        let second = registry.register(7, tx2).unwrap();
        assert!(!first.is_current());
        assert!(second.is_current());
        assert!(matches!(
            rx1.recv().await,
            Some(DeviceCommand::Disconnect(_))
        ));
        // The old socket closing does not unregister the new one.
        assert!(!first.unregister());
        drop(first);
        assert!(registry.is_connected(7));
        drop(second);
        assert!(!registry.is_connected(7));
    }

    #[tokio::test]
    async fn pushes_are_acknowledged_or_offline() {
        let registry = DeviceRegistry::new();
        let event = DeviceServerEvent::Reboot(Default::default());
        assert_eq!(registry.push(1, event.clone()).await, Err(Offline::Offline));
        let (tx, mut rx) = mpsc::channel(4);
        let _reg = registry.register(1, tx).unwrap();
        let socket = tokio::spawn(async move {
            let mut answers = vec![true, false];
            while let Some(DeviceCommand::Push { ack, .. }) = rx.recv().await {
                let _ = ack.send(answers.remove(0));
                if answers.is_empty() {
                    break;
                }
            }
        });
        assert_eq!(registry.push(1, event.clone()).await, Ok(()));
        assert_eq!(registry.push(1, event).await, Err(Offline::Offline));
        socket.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_waits_for_open_sockets() {
        let registry = DeviceRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        let reg = registry.register(3, tx).unwrap();
        let mut stopping = registry.stopping();
        let socket = tokio::spawn(async move {
            let _ = stopping.wait_for(|s| *s).await;
            drop(reg);
        });
        registry
            .drain(DrainPacing::default(), Duration::from_secs(5))
            .await;
        socket.await.unwrap();
        let (tx, _rx) = mpsc::channel(4);
        assert!(registry.register(4, tx).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_closes_sockets_in_paced_batches() {
        let registry = DeviceRegistry::new();
        let start = tokio::time::Instant::now();
        let mut sockets = Vec::new();
        for id in 0..5 {
            let (tx, mut rx) = mpsc::channel(4);
            let reg = registry.register(id, tx).unwrap();
            sockets.push(tokio::spawn(async move {
                let command = rx.recv().await;
                assert!(matches!(command, Some(DeviceCommand::GoingAway)));
                let closed_after = start.elapsed();
                drop(reg);
                closed_after
            }));
        }
        let pacing = DrainPacing::new(2, Duration::from_millis(500));
        registry.drain(pacing, Duration::from_secs(5)).await;
        let mut times = Vec::new();
        for socket in sockets {
            times.push(socket.await.unwrap().as_millis());
        }
        times.sort_unstable();
        assert_eq!(times, vec![0, 0, 500, 500, 1000]);
        // Three waves, no pause after the last.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        let (tx, _rx) = mpsc::channel(4);
        assert!(
            registry.register(9, tx).is_none(),
            "no socket registers while draining"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_without_sockets_is_immediate() {
        let registry = DeviceRegistry::new();
        let start = tokio::time::Instant::now();
        registry
            .drain(
                DrainPacing::new(1, Duration::from_secs(4)),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
