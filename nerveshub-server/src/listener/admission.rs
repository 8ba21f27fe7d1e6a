//! Who gets in: open connections per listener and per source address, and the TLS
//! handshake gate that refuses new connections at once when the node is saturated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ListenerLimits;

/// Open connections per listener and per source address.
#[derive(Debug, Clone)]
pub(super) struct Admission {
    counts: Arc<Mutex<Counts>>,
    limits: ListenerLimits,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection counted against the caps until dropped.
#[derive(Debug)]
pub(super) struct Admitted {
    counts: Arc<Mutex<Counts>>,
    address: IpAddr,
}

impl Admission {
    pub(super) fn new(limits: ListenerLimits) -> Self {
        Admission {
            counts: Arc::default(),
            limits,
        }
    }

    pub(super) fn admit(&self, address: IpAddr) -> Option<Admitted> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        if counts.total >= self.limits.max_connections
            || from_address >= self.limits.max_per_address
        {
            return None;
        }
        counts.total += 1;
        counts.per_address.insert(address, from_address + 1);
        Some(Admitted {
            counts: self.counts.clone(),
            address,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

/// TLS handshakes run at most `concurrency` at a time, in arrival order; the rest wait. When
/// more than `max_waiting` wait, the node is saturated: new connections are closed at once,
/// so a device backs off and retries instead of waiting out its timeout while every
/// handshake in progress slows down (a handshake is the costliest step of a connection, and
/// thousands interleaved finish later than the same thousands taken in turn).
#[derive(Debug, Clone)]
pub(super) struct HandshakeGate {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// A connection counted as waiting for the gate until it enters or gives up.
#[derive(Debug)]
pub(super) struct Waiting {
    gate: HandshakeGate,
}

impl HandshakeGate {
    pub(super) fn new(concurrency: usize, max_waiting: usize) -> Self {
        HandshakeGate {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::default(),
            max_waiting,
        }
    }

    /// Joins the queue, or `None` when it is full.
    pub(super) fn queue(&self) -> Option<Waiting> {
        // Counted first and taken back by the guard's drop when refused: two connections
        // arriving together can never both squeeze past the limit.
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting { gate: self.clone() };
        (before < self.max_waiting).then_some(waiting)
    }

    /// Connections waiting for a handshake slot now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

impl Waiting {
    /// Waits for a handshake slot, held until the permit drops (`None` only if the gate
    /// were closed, which it never is).
    pub(super) async fn enter(self) -> Option<OwnedSemaphorePermit> {
        self.gate.permits.clone().acquire_owned().await.ok()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.gate.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn admission_caps_per_address_and_in_total() {
        let admission = Admission::new(ListenerLimits {
            max_connections: 3,
            max_per_address: 2,
            header_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            handshake_concurrency: 1,
            handshake_queue: 1,
            handshake_queue_timeout: Duration::from_secs(1),
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "per-address cap");
        let _third = admission.admit(b).unwrap();
        assert!(admission.admit(b).is_none(), "total cap");
        drop(first);
        assert!(
            admission.admit(a).is_some(),
            "a closed connection frees its place"
        );
    }

    #[tokio::test]
    async fn the_gate_takes_handshakes_in_turn_and_refuses_past_its_queue() {
        let gate = HandshakeGate::new(1, 2);
        let first = gate.queue().expect("room in the queue");
        let second = gate.queue().expect("room in the queue");
        assert!(gate.queue().is_none(), "a full queue refuses at once");
        assert_eq!(gate.waiting(), 2, "the refused one is not counted");

        let in_handshake = first.enter().await.expect("a free slot");
        assert_eq!(gate.waiting(), 1);
        let third = gate.queue().expect("the first one's place is free again");
        // One slot, held: the second waits.
        let mut second_entering = Box::pin(second.enter());
        assert!(
            futures_util::poll!(second_entering.as_mut()).is_pending(),
            "only one handshake at a time"
        );
        drop(in_handshake);
        let _second_in = second_entering.await.expect("the slot passed on");
        drop(third);
        assert_eq!(
            gate.waiting(),
            0,
            "a connection that gives up leaves the queue"
        );
    }
}
