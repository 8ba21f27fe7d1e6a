//! One device's update, from the push to its health-gated outcome: manual upgrades, the
//! device's status and progress reports, reconciliation at every join (completion, the health
//! gate, membership), penalties and the fleet-wide halt.

use nerveshub_proto::{DeviceServerEvent, FirmwareMetadata, StatusUpdate, UpdatePayload};

use super::{FleetError, rules};
use crate::db::device_updates::{self as upd, InFlight};
use crate::db::{self, Actor, Audit, DeploymentRow, FirmwareRow, deployments as dq};
use crate::state::AppState;
use crate::storage::DEFAULT_URL_TTL;

/// Health timeout of manual updates (deployments carry their own).
const MANUAL_HEALTH_TIMEOUT_MINUTES: i64 = 15;

/// The `update` push for a firmware, as NervesHub serializes it: the signed download URL,
/// the target's metadata, and the size and SHA-256 checksums of the file downloaded.
pub(crate) fn update_event(
    firmware: &FirmwareRow,
    url: String,
    deployment_id: Option<i64>,
) -> DeviceServerEvent {
    let text = |s: &str| Some(s.to_owned());
    DeviceServerEvent::Update(Box::new(UpdatePayload {
        update_available: true,
        firmware_url: url,
        firmware_meta: FirmwareMetadata {
            uuid: text(&firmware.uuid),
            product: text(&firmware.product),
            version: text(&firmware.version),
            platform: text(&firmware.platform),
            architecture: text(&firmware.architecture),
            author: text(&firmware.author),
            description: text(&firmware.description),
            vcs_identifier: text(&firmware.vcs_identifier),
            misc: text(&firmware.misc),
            ..Default::default()
        },
        size: Some(firmware.size),
        checksum: Some(firmware.checksum.clone()),
        partials_checksums: Some(firmware.partials_checksums.clone()),
        deployment_id,
        extra: Default::default(),
    }))
}

/// The user asking for a change, for the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct User<'a> {
    pub(crate) id: i64,
    pub(crate) email: &'a str,
}

/// The device an operation is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceRef<'a> {
    pub(crate) id: i64,
    pub(crate) org_id: i64,
    pub(crate) identifier: &'a str,
}

/// An update just created.
#[derive(Debug, Clone)]
pub(crate) struct CreatedUpdate {
    pub(crate) id: i64,
    pub(crate) firmware_uuid: String,
    pub(crate) firmware_version: String,
    pub(crate) status: &'static str,
}

fn audit<'a>(
    org_id: i64,
    actor: Actor,
    identifier: &'a str,
    action: &'a str,
    description: String,
) -> Audit<'a> {
    Audit {
        org_id: Some(org_id),
        actor,
        resource_type: "device",
        resource_id: identifier,
        action,
        description,
    }
}

/// The audit row of a join or poll reporting other firmware than the device last ran,
/// written in the join's transaction.
pub(crate) fn firmware_changed<'a>(
    device: DeviceRef<'a>,
    uuid: &str,
    version: Option<&str>,
) -> Audit<'a> {
    audit(
        device.org_id,
        Actor::Device(device.id),
        device.identifier,
        "firmware_changed",
        format!(
            "device {} now runs firmware {uuid} (version {})",
            device.identifier,
            version.unwrap_or("unknown")
        ),
    )
}

/// A manual upgrade (`POST …/devices/:identifier/upgrade`): replaces whatever update the
/// device has in flight, turns its automatic updates off (as NervesHub does), records the
/// update and pushes it (a polling device's next poll hands it out). `Offline` when the
/// device has no socket on any node and does not poll.
pub(crate) async fn manual_upgrade(
    state: &AppState,
    user: User<'_>,
    device: DeviceRef<'_>,
    firmware: &FirmwareRow,
) -> Result<CreatedUpdate, FleetError> {
    let connected = state.devices.reachable_now(device.id).await;
    if !connected
        && !state
            .db
            .device_poll_expected(device.id, state.clock.now_ms())
            .await?
    {
        return Err(FleetError::Offline);
    }
    let url = state
        .storage
        .download_url(firmware, DEFAULT_URL_TTL)
        .await
        .map_err(FleetError::Storage)?;
    // Recorded before the push, so the device's first status finds it.
    let mut tx = state.db.begin().await?;
    upd::supersede_updates(&mut tx, state.clock.now_ms(), device.id).await?;
    let id = upd::insert_update(
        &mut tx,
        state.clock.now_ms(),
        device.id,
        firmware.id,
        None,
        false,
    )
    .await?;
    upd::set_updates_enabled(&mut tx, device.id, false).await?;
    db::audit(
        &mut tx,
        audit(
            device.org_id,
            Actor::User(user.id),
            device.identifier,
            "upgrade",
            format!(
                "{} pushed firmware {} (version {}) to device {}; automatic updates turned off",
                user.email, firmware.uuid, firmware.version, device.identifier
            ),
        ),
    )
    .await?;
    tx.commit().await?;
    if connected
        && state
            .devices
            .push(device.id, update_event(firmware, url, None))
            .await
            .is_err()
    {
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
        db::audit(
            &mut tx,
            audit(
                device.org_id,
                Actor::User(user.id),
                device.identifier,
                "upgrade_undelivered",
                format!(
                    "firmware {} did not reach device {}: it went offline",
                    firmware.uuid, device.identifier
                ),
            ),
        )
        .await?;
        tx.commit().await?;
        return Err(FleetError::Offline);
    }
    Ok(CreatedUpdate {
        id,
        firmware_uuid: firmware.uuid.clone(),
        firmware_version: firmware.version.clone(),
        status: "requested",
    })
}

/// What a device reported in its `device` join.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinReport {
    pub(crate) uuid: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) architecture: Option<String>,
    pub(crate) validated: Option<bool>,
    pub(crate) currently_downloading: Option<String>,
    /// A poll, not a socket join: an update not yet taken up is the poll's answer, not lost.
    pub(crate) polled: bool,
}

/// After a join was recorded: ends the update in flight as the report shows (the health
/// gate), re-checks membership, and wakes the deployment's orchestrator.
pub(crate) async fn on_join(
    state: &AppState,
    device_id: i64,
    report: &JoinReport,
) -> Result<(), sqlx::Error> {
    let Some(device) = state.db.fleet_device(device_id).await? else {
        return Ok(());
    };
    let dref = DeviceRef {
        id: device.id,
        org_id: device.org_id,
        identifier: &device.identifier,
    };
    if let Some(update) = state.db.in_flight_update(device.id).await? {
        reconcile(state, dref, &update, report).await?;
    }
    let deployment_id = membership(state, &device, report).await?;
    if let Some(id) = deployment_id {
        state.fleet.trigger(id);
    }
    Ok(())
}

/// The health gate, at a join, for the update in flight.
async fn reconcile(
    state: &AppState,
    device: DeviceRef<'_>,
    update: &InFlight,
    report: &JoinReport,
) -> Result<(), sqlx::Error> {
    let deployment = match update.deployment_id {
        Some(id) => state.db.deployment_by_id(id).await?,
        None => None,
    };
    if report.uuid.as_deref() == Some(update.firmware_uuid.as_str()) {
        let needs_validation = deployment
            .as_ref()
            .is_some_and(|d| d.require_validated != 0);
        if needs_validation && report.validated != Some(true) {
            // Running the release but not validated yet: the gate waits for
            // `firmware_validated` (or the health timeout).
            if update.status != "completed" {
                state
                    .db
                    .set_update_progress(update.id, "completed", 100)
                    .await?;
            }
            return Ok(());
        }
        return succeed(state, device, update).await;
    }
    if report.currently_downloading.as_deref() == Some(update.firmware_uuid.as_str()) {
        // Still at it (nerves_hub_link says so after a reconnect): keep the row, send nothing.
        return Ok(());
    }
    if report.polled && update.status == "requested" {
        // Offered between polls and not yet seen by the device: this poll delivers it.
        return Ok(());
    }
    if update.status == "completed" {
        let reason = format!(
            "the device said it installed {} but came back running {}",
            update.firmware_uuid,
            report.uuid.as_deref().unwrap_or("unknown firmware")
        );
        return fail(
            state,
            device,
            update,
            deployment.as_ref(),
            "failed",
            &reason,
        )
        .await;
    }
    // It reconnected without finishing and is not downloading: the update ends without blame
    // (NervesHub clears the in-flight row), and the orchestrator may send it again.
    let mut tx = state.db.begin().await?;
    upd::finish_update(
        &mut tx,
        state.clock.now_ms(),
        update.id,
        "interrupted",
        None,
        Some("the device reconnected without the update in progress"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The update reached its goal: completed, penalty and attempts cleared, audited.
async fn succeed(
    state: &AppState,
    device: DeviceRef<'_>,
    update: &InFlight,
) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    if upd::finish_update(
        &mut tx,
        state.clock.now_ms(),
        update.id,
        "completed",
        Some(100),
        None,
    )
    .await?
    {
        tracing::info!(device = %device.identifier, firmware = %update.firmware_uuid, "update completed: the device runs the release");
        upd::set_blocked_until(&mut tx, device.id, None, true).await?;
        db::audit(
            &mut tx,
            audit(
                device.org_id,
                Actor::Device(device.id),
                device.identifier,
                "update_completed",
                format!(
                    "device {} came back running firmware {}: its update is complete",
                    device.identifier, update.firmware_uuid
                ),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    if let Some(id) = update.deployment_id {
        state.fleet.trigger(id);
    }
    Ok(())
}

/// The update failed (`failed`, `ignored`, health gate): ended with `status`; a deployment
/// update puts the device in the penalty box and may halt the deployment.
async fn fail(
    state: &AppState,
    device: DeviceRef<'_>,
    update: &InFlight,
    deployment: Option<&DeploymentRow>,
    status: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    if !upd::finish_update(
        &mut tx,
        state.clock.now_ms(),
        update.id,
        status,
        None,
        Some(reason),
    )
    .await?
    {
        return Ok(());
    }
    tracing::info!(device = %device.identifier, firmware = %update.firmware_uuid, status, reason, "update failed");
    if let Some(d) = deployment {
        let until = state
            .clock
            .now_ms()
            .saturating_add(d.penalty_timeout_minutes.saturating_mul(60_000));
        upd::set_blocked_until(&mut tx, device.id, Some(until), false).await?;
    }
    db::audit(
        &mut tx,
        audit(
            device.org_id,
            Actor::Device(device.id),
            device.identifier,
            "update_failed",
            format!(
                "the update of device {} to firmware {} ended {status}: {reason}{}",
                device.identifier,
                update.firmware_uuid,
                if deployment.is_some() {
                    "; device put in the penalty box"
                } else {
                    ""
                }
            ),
        ),
    )
    .await?;
    tx.commit().await?;
    if let Some(d) = deployment {
        check_halt(state, d).await?;
        state.fleet.trigger(d.id);
    }
    Ok(())
}

/// Halts the deployment when the failures among the last `halt_window` finished updates of
/// its current release (since a user last lifted a halt) reach `halt_failure_rate` percent
/// of the window. Early failures count against the whole window, so one failed device
/// among the first few does not halt a rollout.
pub(crate) async fn check_halt(state: &AppState, d: &DeploymentRow) -> Result<(), sqlx::Error> {
    let Some(rate) = d.halt_failure_rate else {
        return Ok(());
    };
    let window = d.halt_window.max(1);
    let since = d.halt_cleared_at.unwrap_or(0);
    let outcomes = state
        .db
        .recent_outcomes(d.id, d.firmware_id, since, window)
        .await?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.status == "failed")
        .map(|o| o.identifier.as_str())
        .collect();
    let failed_count = i64::try_from(failed.len()).unwrap_or(i64::MAX);
    if failed_count.saturating_mul(100) < rate.saturating_mul(window) {
        return Ok(());
    }
    let reason = format!(
        "{failed_count} of the last {window} updates failed (halt at {rate}%): {}",
        failed.join(", ")
    );
    let mut tx = state.db.begin().await?;
    if dq::halt_deployment(&mut tx, d.id, &reason).await? {
        db::audit(
            &mut tx,
            Audit {
                org_id: Some(d.org_id),
                actor: Actor::System,
                resource_type: "deployment",
                resource_id: &d.name,
                action: "halt",
                description: format!("deployment {} halted: {reason}", d.name),
            },
        )
        .await?;
        tracing::warn!(deployment = %d.name, %reason, "deployment halted");
    }
    tx.commit().await
}

/// Membership at a join: a member that no longer matches leaves (unless locked); a device
/// without a deployment joins the best matching active one. Returns the device's deployment.
async fn membership(
    state: &AppState,
    device: &upd::FleetDevice,
    report: &JoinReport,
) -> Result<Option<i64>, sqlx::Error> {
    let facts = rules::DeviceFacts {
        product_id: device.product_id,
        tags: device.tags.clone(),
        version: report.version.clone(),
        platform: report.platform.clone(),
        architecture: report.architecture.clone(),
    };
    if let Some(id) = device.deployment_id {
        match state.db.deployment_by_id(id).await? {
            Some(d) if super::deployments::group_facts(&d).keeps(&facts) => return Ok(Some(id)),
            Some(d) => {
                let mut tx = state.db.begin().await?;
                dq::set_device_deployment(&mut tx, device.id, None).await?;
                db::audit(
                    &mut tx,
                    audit(
                        device.org_id,
                        Actor::System,
                        &device.identifier,
                        "deployment_removed",
                        format!(
                            "device {} left deployment {}: its firmware ({} {}/{}) no longer matches",
                            device.identifier,
                            d.name,
                            facts.version.as_deref().unwrap_or("unknown version"),
                            facts.platform.as_deref().unwrap_or("?"),
                            facts.architecture.as_deref().unwrap_or("?"),
                        ),
                    ),
                )
                .await?;
                tx.commit().await?;
            }
            None => {}
        }
    }
    let candidates = state.db.active_deployments(device.product_id).await?;
    let groups: Vec<rules::GroupFacts> = candidates
        .iter()
        .map(super::deployments::group_facts)
        .collect();
    let Some(best) = rules::best_group(&groups, &facts) else {
        return Ok(None);
    };
    let name = candidates
        .iter()
        .find(|d| d.id == best.id)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let mut tx = state.db.begin().await?;
    dq::set_device_deployment(&mut tx, device.id, Some(best.id)).await?;
    db::audit(
        &mut tx,
        audit(
            device.org_id,
            Actor::System,
            &device.identifier,
            "deployment_assigned",
            format!(
                "device {} joined deployment {name} automatically ({} matching)",
                device.identifier,
                groups.iter().filter(|g| g.accepts(&facts)).count()
            ),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(best.id))
}

/// `fwup_progress` / `update_progress` reached the database (the channel throttles): the
/// update's status and progress, and the first report of an attempt counted.
pub(crate) async fn on_progress(
    state: &AppState,
    device_id: i64,
    completed: bool,
    value: i64,
) -> Result<(), sqlx::Error> {
    let Some(update) = state.db.in_flight_update(device_id).await? else {
        return Ok(());
    };
    if update.status == "requested" {
        count_attempt(state, device_id).await?;
    }
    let status = if completed { "completed" } else { "updating" };
    state
        .db
        .set_update_progress(update.id, status, value.clamp(0, 100))
        .await
}

/// A `status_update` from the device about its update in flight.
pub(crate) async fn on_status(
    state: &AppState,
    device: DeviceRef<'_>,
    status: &StatusUpdate,
) -> Result<(), sqlx::Error> {
    let Some(update) = state.db.in_flight_update(device.id).await? else {
        return Ok(());
    };
    if update.status == "requested" {
        count_attempt(state, device.id).await?;
    }
    let deployment = match update.deployment_id {
        Some(id) => state.db.deployment_by_id(id).await?,
        None => None,
    };
    match status {
        _ if status.is_failure() => {
            let reason = match status {
                StatusUpdate::Failed { reason, .. } => reason.clone(),
                other => other.status().to_owned(),
            };
            fail(
                state,
                device,
                &update,
                deployment.as_ref(),
                "failed",
                &reason,
            )
            .await
        }
        StatusUpdate::Ignored { reason, .. } => {
            fail(
                state,
                device,
                &update,
                deployment.as_ref(),
                "ignored",
                reason,
            )
            .await
        }
        StatusUpdate::Rescheduled {
            delay_for_minutes,
            reason,
            ..
        } => {
            let delay = status
                .delay()
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let text = match reason {
                Some(r) => format!("{r} (retry in {delay_for_minutes} min)"),
                None => format!("retry in {delay_for_minutes} min"),
            };
            let mut tx = state.db.begin().await?;
            upd::finish_update(
                &mut tx,
                state.clock.now_ms(),
                update.id,
                "rescheduled",
                None,
                Some(&text),
            )
            .await?;
            upd::set_blocked_until(
                &mut tx,
                device.id,
                Some(state.clock.now_ms().saturating_add(delay)),
                false,
            )
            .await?;
            tx.commit().await?;
            if let Some(id) = update.deployment_id {
                state.fleet.trigger(id);
            }
            Ok(())
        }
        StatusUpdate::Completed { .. } => {
            // Installed; the device reboots. Success is decided when it joins again.
            state
                .db
                .set_update_progress(update.id, "completed", 100)
                .await
        }
        StatusUpdate::Received { .. } | StatusUpdate::Started { .. } => {
            // A late `received` or `started` does not undo progress already reported.
            if matches!(update.status.as_str(), "updating" | "completed") {
                return Ok(());
            }
            state
                .db
                .set_update_progress(update.id, status.status(), update.progress)
                .await
        }
        _ => Ok(()),
    }
}

/// `firmware_validated`: an update waiting for validation succeeds.
pub(crate) async fn on_validated(
    state: &AppState,
    device: DeviceRef<'_>,
    running_uuid: Option<&str>,
) -> Result<(), sqlx::Error> {
    let Some(update) = state.db.in_flight_update(device.id).await? else {
        return Ok(());
    };
    if update.status == "completed" && running_uuid == Some(update.firmware_uuid.as_str()) {
        succeed(state, device, &update).await?;
    }
    Ok(())
}

/// Appends now to the device's attempts (the first report of an update).
async fn count_attempt(state: &AppState, device_id: i64) -> Result<(), sqlx::Error> {
    let mut attempts = state.db.update_attempts(device_id).await?;
    attempts.push(state.clock.now_ms());
    // Only recent attempts matter; a bounded list keeps the column small.
    let keep = attempts.len().saturating_sub(100);
    attempts.drain(..keep);
    state.db.set_update_attempts(device_id, &attempts).await
}

/// Ends silent updates: one the device said it installed but never came back from fails the
/// health gate after the deployment's health timeout; any other update not heard from for
/// the in-flight timeout expires.
pub(crate) async fn sweep(state: &AppState) -> Result<(), sqlx::Error> {
    let now = state.clock.now_ms();
    let silent_ms =
        i64::try_from(state.fleet.timing().in_flight_timeout.as_millis()).unwrap_or(i64::MAX);
    for row in state.db.in_flight_updates().await? {
        let age = now.saturating_sub(row.updated_at);
        if row.status == "completed" {
            let minutes = row
                .health_timeout_minutes
                .unwrap_or(MANUAL_HEALTH_TIMEOUT_MINUTES);
            let health_ms = minutes.saturating_mul(60_000).min(silent_ms);
            if age < health_ms {
                continue;
            }
            let Some(device) = state.db.fleet_device(row.device_id).await? else {
                continue;
            };
            let Some(update) = state.db.in_flight_update(row.device_id).await? else {
                continue;
            };
            let deployment = match row.deployment_id {
                Some(id) => state.db.deployment_by_id(id).await?,
                None => None,
            };
            let reason = format!(
                "the device did not come back healthy on firmware {} within {} min",
                update.firmware_uuid,
                health_ms / 60_000
            );
            fail(
                state,
                DeviceRef {
                    id: device.id,
                    org_id: device.org_id,
                    identifier: &device.identifier,
                },
                &update,
                deployment.as_ref(),
                "failed",
                &reason,
            )
            .await?;
        } else if age >= silent_ms {
            if row.status == "requested"
                && state.db.device_poll_expected(row.device_id, now).await?
            {
                // An offer waiting for a polling device's next poll (up to two intervals).
                continue;
            }
            let mut tx = state.db.begin().await?;
            let expired = upd::finish_update(
                &mut tx,
                state.clock.now_ms(),
                row.id,
                "expired",
                None,
                Some("no word from the device"),
            )
            .await?;
            tx.commit().await?;
            if expired {
                tracing::info!(update = row.id, "silent update expired");
                if let Some(id) = row.deployment_id {
                    state.fleet.trigger(id);
                }
            }
        }
    }
    Ok(())
}
