//! The fleet domain layer: deployments and their membership rules, the update lifecycle of a
//! device, and the rollout orchestrator. The management API and the device channel call in
//! here; handlers only parse, authorize, call and map [`FleetError`] to HTTP.
//!
//! - [`version`]: Elixir `Version.match?` requirements (a deployment's `conditions.version`).
//! - [`rules`]: membership — which deployment a device belongs to (pure).
//! - [`deployments`]: creating and changing deployments, manual assignment, status.
//! - [`lifecycle`]: one device's update, from the push to the health-gated outcome: manual
//!   upgrades, status and progress, reconciliation at every join, penalties and the
//!   fleet-wide halt.
//! - [`orchestrator`]: one coalesced worker per active deployment, a supervisor that starts
//!   them, a backup tick and the sweeper of silent updates.
//!
//! Invariants:
//! - **Everything is in the database.** The in-memory part is only who to wake; a restarted
//!   server rebuilds it from `deployments.is_active`.
//! - **At most one update in flight per device** (`device_updates.finished_at IS NULL`, a
//!   unique partial index). The row is committed before the `update` push, so a crash between
//!   the two leaves a row the device never saw — which its next join (no
//!   `currently_downloading_uuid`) ends as `interrupted` — never a push without a row.
//! - **Success is health-gated**: only a join reporting the release's uuid (validated, when the
//!   deployment requires it) completes an update; a device back on other firmware after saying
//!   `completed`, or silent past the health timeout, has failed.

mod deployment_settings;
pub(crate) mod deployments;
pub(crate) mod lifecycle;
pub(crate) mod orchestrator;
pub(crate) mod rules;
pub(crate) mod version;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::cluster::bus::Bus;

/// What went wrong in a fleet operation, in the domain's terms (the API maps it to HTTP).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FleetError {
    /// A named thing does not exist (in the caller's product).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The device has no socket on any node.
    #[error("device is offline")]
    Offline,
    /// The firmware's download URL could not be made.
    #[error("firmware URL")]
    Storage(#[source] crate::storage::StorageError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl FleetError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        FleetError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// How often the orchestrators run and how long updates may stay silent. Defaults are
/// NervesHub's; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// At most one run per deployment this often (NervesHub: 3 s).
    pub(crate) coalesce: Duration,
    /// Every deployment runs at least this often, and silent updates are swept (120 s).
    pub(crate) backup_tick: Duration,
    /// An update not heard from for this long expires (30 min).
    pub(crate) in_flight_timeout: Duration,
}

/// Who to wake when something changes: one [`Notify`] per running orchestrator, and the
/// supervisor that starts missing ones. Cheap to clone; lives in the app state.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    inner: Arc<FleetInner>,
}

#[derive(Debug)]
struct FleetInner {
    timing: Timing,
    running: Mutex<HashMap<i64, Arc<Notify>>>,
    supervisor: Notify,
    /// Counts finished orchestrator runs: a polling device's request waits for the run its
    /// poll triggered.
    runs: watch::Sender<u64>,
    /// The other nodes, whose orchestrators a trigger wakes when this node runs none for the
    /// deployment; `None` on a single node.
    bus: Option<Bus>,
}

impl Fleet {
    /// Who to wake, with `bus` to reach the other nodes' orchestrators.
    pub(crate) fn new(timing: Timing, bus: Option<Bus>) -> Self {
        Fleet {
            inner: Arc::new(FleetInner {
                bus,
                timing,
                running: Mutex::new(HashMap::new()),
                supervisor: Notify::new(),
                runs: watch::channel(0).0,
            }),
        }
    }

    pub(crate) fn timing(&self) -> Timing {
        self.inner.timing
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Notify>>> {
        // One insert or remove per change: consistent even after a panic elsewhere.
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the count of finished orchestrator runs (of any deployment).
    pub(crate) fn runs(&self) -> watch::Receiver<u64> {
        self.inner.runs.subscribe()
    }

    fn run_finished(&self) {
        self.inner.runs.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Asks deployment `id`'s orchestrator to run soon (coalesced); starts it if it is not
    /// running (a deployment just created or activated). When it runs on no worker here, the
    /// other nodes are asked too (another node may lead it).
    pub(crate) fn trigger(&self, id: i64) {
        if !self.wake_local(id)
            && let Some(bus) = &self.inner.bus
        {
            bus.wake(id);
        }
    }

    /// Wakes deployment `id`'s worker on this node, or nudges the supervisor to start it;
    /// true when a worker was woken. Another node's wake-up lands here.
    pub(crate) fn wake_local(&self, id: i64) -> bool {
        let notify = self.running().get(&id).cloned();
        match notify {
            Some(n) => {
                n.notify_one();
                true
            }
            None => {
                self.inner.supervisor.notify_one();
                false
            }
        }
    }
}
