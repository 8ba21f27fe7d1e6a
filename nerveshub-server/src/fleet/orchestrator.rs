//! The rollout orchestrator (NervesHub §4.3–4.6): one worker per active deployment, runs
//! coalesced to at most one per [`Timing::coalesce`](super::Timing), woken by devices coming
//! online, membership and deployment changes, freed slots and a backup tick. A supervisor
//! starts the workers of active deployments (at start, when woken, on every tick) and sweeps
//! silent updates.
//!
//! With several nodes, a worker runs only where its deployment is led
//! ([`Election`](crate::cluster::election::Election): an advisory lock per deployment): the
//! supervisor starts workers only for the deployments it wins, retries the others every
//! [`LEAD_RETRY`] (a dead leader's locks are free at once, so takeover takes seconds), and a
//! worker checks its lead before each run and resigns it when it stops. The silent-update
//! sweep runs on the one node that leads it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{Fleet, lifecycle, version};
use crate::db::device_updates as upd;
use crate::db::{self, Actor, Audit, DeploymentRow, OnUnique, deployments::CandidateRow};
use crate::state::AppState;
use crate::storage::DEFAULT_URL_TTL;

/// How often a node tries again to lead the active deployments another node leads: the
/// longest a deployment stays without an orchestrator after its leader died.
const LEAD_RETRY: Duration = Duration::from_secs(2);

/// How long a stopping supervisor waits for its workers' current runs before it abandons
/// them (a crash does the same: every update row is committed before its push).
const WORKER_STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the supervisor until `stop`: starts an orchestrator per active deployment this node
/// leads and sweeps silent updates every backup tick (where it leads the sweep). On `stop`,
/// stops the workers and resigns every lead, so another node takes over at once.
pub(crate) async fn supervise(state: AppState, mut stop: watch::Receiver<bool>) {
    let fleet = state.fleet.clone();
    let mut tick = tokio::time::interval(fleet.timing().backup_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut workers = JoinSet::new();
    let mut sweep = true;
    loop {
        let unled = start_missing(&state, &stop, &mut workers).await;
        // One node sweeps: the one that leads the sweep.
        if sweep
            && state.cluster.election().try_lead_sweep().await
            && let Err(e) = lifecycle::sweep(&state).await
        {
            tracing::warn!(error = %e, "sweeping silent updates failed");
        }
        sweep = true;
        tokio::select! {
            _ = tick.tick() => {
                // The backup trigger of every running orchestrator.
                for notify in fleet.running().values() {
                    notify.notify_one();
                }
            }
            () = fleet.inner.supervisor.notified() => {}
            // A worker stopped (its deployment ended, or its lead was lost): start_missing
            // sees which.
            Some(_) = workers.join_next(), if !workers.is_empty() => sweep = false,
            () = tokio::time::sleep(LEAD_RETRY), if unled => sweep = false,
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    // The workers saw `stop` too: each ends after its current run and resigns its lead.
    let stopped = tokio::time::timeout(WORKER_STOP_GRACE, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(
            workers = workers.len(),
            "orchestrator runs still going at shutdown; abandoned"
        );
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    state.cluster.election().resign_all().await;
}

/// Starts a worker for each active deployment without one that this node can lead. True
/// when some active deployment is led elsewhere (to be tried again soon).
async fn start_missing(
    state: &AppState,
    stop: &watch::Receiver<bool>,
    workers: &mut JoinSet<()>,
) -> bool {
    let ids = match state.db.active_deployment_ids().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "listing active deployments failed");
            return false;
        }
    };
    let fleet = &state.fleet;
    let election = state.cluster.election();
    let mut unled = false;
    for id in ids {
        if fleet.running().contains_key(&id) {
            continue;
        }
        if !election.try_lead(id).await {
            unled = true;
            continue;
        }
        let notify = Arc::new(Notify::new());
        fleet.running().insert(id, notify.clone());
        // Runs once at start.
        notify.notify_one();
        workers.spawn(worker(state.clone(), id, notify, stop.clone()));
    }
    unled
}

/// One deployment's orchestrator: a run per wake-up, then a pause of `coalesce` during which
/// further wake-ups collapse into one (a `Notify` keeps a single permit). Each run first
/// checks that this node still leads the deployment; the worker resigns its lead as it ends.
async fn worker(state: AppState, id: i64, notify: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let fleet = state.fleet.clone();
    let election = state.cluster.election();
    tracing::debug!(deployment = id, "orchestrator started");
    loop {
        tokio::select! {
            () = notify.notified() => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
        if !election.leads(id).await {
            tracing::info!(deployment = id, "orchestrator lead lost; stopping");
            break;
        }
        let outcome = run(&state, id).await;
        fleet.run_finished();
        crate::observability::orchestrator_run(outcome.is_ok());
        match outcome {
            Ok(Run::Continue { again }) => {
                if again {
                    notify.notify_one();
                }
            }
            Ok(Run::Stop) => break,
            Err(e) => tracing::warn!(deployment = id, error = %e, "orchestrator run failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(fleet.timing().coalesce) => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    // Resigned before it leaves `running`, so the supervisor cannot start a second worker
    // on the lead this one is giving up; the supervisor hears this task end and starts
    // what is missing (a trigger that reached this worker meanwhile is not lost).
    election.resign(id).await;
    remove(&fleet, id, &notify);
    tracing::debug!(deployment = id, "orchestrator stopped");
}

fn remove(fleet: &Fleet, id: i64, notify: &Arc<Notify>) {
    let mut running = fleet.running();
    if running.get(&id).is_some_and(|n| Arc::ptr_eq(n, notify)) {
        running.remove(&id);
    }
}

/// What a run asks of its worker.
#[derive(Debug)]
enum Run {
    /// Keep running; `again` when candidates were skipped and another run may place them.
    Continue { again: bool },
    /// The deployment was deleted or switched off.
    Stop,
}

/// Which queue an update goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Normal,
    Priority,
}

/// One orchestrator run (§4.4).
async fn run(state: &AppState, id: i64) -> Result<Run, sqlx::Error> {
    let Some(d) = state.db.deployment_by_id(id).await? else {
        return Ok(Run::Stop);
    };
    if d.is_active == 0 {
        return Ok(Run::Stop);
    }
    if d.halted_at.is_some() {
        return Ok(Run::Continue { again: false });
    }
    let (normal_busy, priority_busy) = state.db.in_flight_counts(id).await?;
    let mut normal_slots = d.concurrent_updates.saturating_sub(normal_busy).max(0);
    let threshold = d
        .priority_queue_firmware_version_threshold
        .as_deref()
        .filter(|_| d.priority_queue_enabled != 0)
        .and_then(version::parse_version);
    let mut priority_slots = if threshold.is_some() {
        d.priority_queue_concurrent_updates
            .saturating_sub(priority_busy)
            .max(0)
    } else {
        0
    };
    if normal_slots == 0 && priority_slots == 0 {
        return Ok(Run::Continue { again: false });
    }
    let now = state.clock.now_ms();
    let lifo = d.queue_management == "LIFO";
    let candidates = state
        .db
        .update_candidates(id, &d.firmware_uuid, lifo, now)
        .await?;
    let release_tags: Vec<String> = serde_json::from_str(&d.release_tags).unwrap_or_default();
    let mut again = false;
    for candidate in candidates {
        if normal_slots == 0 && priority_slots == 0 {
            break;
        }
        if !eligible(&candidate, &release_tags) {
            continue;
        }
        let in_priority = threshold.as_ref().is_some_and(|t| {
            reported(&candidate, "version")
                .and_then(|v| version::parse_version(&v))
                .is_some_and(|v| version::precedence(&v, t).is_le())
        });
        let queue = if in_priority && priority_slots > 0 {
            Queue::Priority
        } else if normal_slots > 0 {
            Queue::Normal
        } else {
            continue;
        };
        if penalized(state, &d, &candidate, now).await? {
            again = true;
            continue;
        }
        if schedule(state, &d, &candidate, queue).await? {
            match queue {
                Queue::Normal => normal_slots -= 1,
                Queue::Priority => priority_slots -= 1,
            }
        }
    }
    Ok(Run::Continue { again })
}

/// A value of the firmware metadata the device reported.
fn reported(candidate: &CandidateRow, key: &str) -> Option<String> {
    let meta: Value = serde_json::from_str(candidate.firmware_metadata.as_deref()?).ok()?;
    meta.get(key)?.as_str().map(str::to_owned)
}

/// `release_tags` (the device carries all of them) and validation: a device that reported its
/// firmware as not validated would refuse the update (NervesHub PR #2369).
fn eligible(candidate: &CandidateRow, release_tags: &[String]) -> bool {
    if !release_tags.iter().all(|t| candidate.tags.contains(t)) {
        return false;
    }
    let validated = candidate
        .connection_metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .and_then(|m| m.get("firmware_validated").and_then(Value::as_bool));
    validated != Some(false)
}

/// The per-device failure threshold and rate (§4.5): when met, the device goes to the
/// penalty box (its attempts start over) instead of being sent the update.
async fn penalized(
    state: &AppState,
    d: &DeploymentRow,
    candidate: &CandidateRow,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let attempts: Vec<i64> = serde_json::from_str(&candidate.update_attempts).unwrap_or_default();
    let total = i64::try_from(attempts.len()).unwrap_or(i64::MAX);
    let since = now.saturating_sub(d.device_failure_rate_seconds.saturating_mul(1000));
    let recent = i64::try_from(attempts.iter().filter(|t| **t >= since).count()).unwrap_or(0);
    let threshold_met = total >= d.device_failure_threshold;
    let rate_met = recent >= d.device_failure_rate_amount;
    if !threshold_met && !rate_met {
        return Ok(false);
    }
    let until = now.saturating_add(d.penalty_timeout_minutes.saturating_mul(60_000));
    let mut tx = state.db.begin().await?;
    upd::set_blocked_until(&mut tx, candidate.id, Some(until), true).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(d.org_id),
            actor: Actor::System,
            resource_type: "device",
            resource_id: &candidate.identifier,
            action: "penalty_box",
            description: format!(
                "device {} put in the penalty box for {} min: {}",
                candidate.identifier,
                d.penalty_timeout_minutes,
                if threshold_met {
                    format!(
                        "{total} update attempts (threshold {})",
                        d.device_failure_threshold
                    )
                } else {
                    format!(
                        "{recent} attempts in {} s (limit {})",
                        d.device_failure_rate_seconds, d.device_failure_rate_amount
                    )
                }
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records the update and pushes it. A device that polls (and has no socket here) is sent
/// nothing: the row is its offer, which its next poll answers with. False when it was not
/// sent (another update got in first, or the device went away).
async fn schedule(
    state: &AppState,
    d: &DeploymentRow,
    candidate: &CandidateRow,
    queue: Queue,
) -> Result<bool, sqlx::Error> {
    let Some(firmware) = state.db.firmware_by_id(d.firmware_id).await? else {
        return Ok(false);
    };
    // A socket here, or on the node `connected_node` names (reached through the bus).
    let connected = state
        .devices
        .reachable(candidate.id, candidate.connected_node.as_deref());
    let polling = candidate
        .poll_online_until
        .is_some_and(|until| until >= state.clock.now_ms());
    if !connected && !polling {
        // Shown connected but held by no node (a stale row after a crash).
        return Ok(false);
    }
    let url = match state.storage.download_url(&firmware, DEFAULT_URL_TTL).await {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(deployment = %d.name, error = %e, "firmware URL failed");
            return Ok(false);
        }
    };
    // The row first: if the server dies before the push, the device's next join ends it.
    let mut tx = state.db.begin().await?;
    // Taken: the device has an update in flight after all (another run won).
    let Some(id) = upd::insert_update(
        &mut tx,
        state.clock.now_ms(),
        candidate.id,
        firmware.id,
        Some(d.id),
        queue == Queue::Priority,
    )
    .await
    .unique_as_none()?
    else {
        return Ok(false);
    };
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(d.org_id),
            actor: Actor::System,
            resource_type: "device",
            resource_id: &candidate.identifier,
            action: "update_scheduled",
            description: format!(
                "deployment {} sent firmware {} (version {}) to device {}{}",
                d.name,
                firmware.uuid,
                firmware.version,
                candidate.identifier,
                if queue == Queue::Priority {
                    " (priority queue)"
                } else {
                    ""
                }
            ),
        },
    )
    .await?;
    tx.commit().await?;
    if !connected {
        tracing::info!(device = %candidate.identifier, firmware = %firmware.uuid, version = %firmware.version, deployment = %d.name, "update offered to a polling device");
        return Ok(true);
    }
    let event = lifecycle::update_event(&firmware, url, Some(d.id));
    if state.devices.push(candidate.id, event).await.is_err() {
        let mut tx = state.db.begin().await?;
        upd::finish_update(
            &mut tx,
            state.clock.now_ms(),
            id,
            "undelivered",
            None,
            Some("the device went offline"),
        )
        .await?;
        tx.commit().await?;
        return Ok(false);
    }
    tracing::info!(device = %candidate.identifier, firmware = %firmware.uuid, version = %firmware.version, deployment = %d.name, "update pushed");
    Ok(true)
}
