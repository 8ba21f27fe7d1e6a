//! Creating and changing deployments, manual membership, the penalty box, and a deployment's
//! status. Every change is audited in its own transaction and wakes the orchestrator.

use serde_json::Value;

use super::FleetError;
use super::lifecycle::User;
use super::rules::{Conditions, DeviceFacts, GroupFacts};
use crate::db::deployments::{self as dq, DeploymentSettings, MemberRow};
use crate::db::device_updates as upd;
use crate::db::{self, Actor, Audit, DeploymentRow, DeviceRow, OnUnique, ProductRow};
use crate::state::AppState;

pub(crate) use super::deployment_settings::{
    DeploymentFields, MAX_ASSIGN, MAX_FIRMWARE_CHARS, MAX_IDENTIFIER_CHARS, MAX_PLATFORM_CHARS,
    MAX_TAGS_TEXT_CHARS, MAX_VERSION_CHARS,
};
use super::deployment_settings::{apply, at_most, check_lengths, defaults};

/// Membership facts of a stored deployment.
pub(crate) fn group_facts(d: &DeploymentRow) -> GroupFacts {
    GroupFacts {
        id: d.id,
        product_id: d.product_id,
        platform: d.platform.clone(),
        architecture: d.architecture.clone(),
        is_active: d.is_active != 0,
        locked: d.lock_device_membership != 0,
        conditions: conditions_of(d),
        release_version: d.firmware_version.clone(),
    }
}

/// A deployment's stored conditions (an unreadable column, which only a corrupted row could
/// hold, reads as "no conditions").
pub(crate) fn conditions_of(d: &DeploymentRow) -> Conditions {
    serde_json::from_str(&d.conditions).unwrap_or_default()
}

fn deployment_audit<'a>(
    d_org: i64,
    user: User<'_>,
    name: &'a str,
    action: &'a str,
    description: String,
) -> Audit<'a> {
    Audit {
        org_id: Some(d_org),
        actor: Actor::User(user.id),
        resource_type: "deployment",
        resource_id: name,
        action,
        description,
    }
}

/// Creates a deployment with its first release (inactive unless asked otherwise).
pub(crate) async fn create(
    state: &AppState,
    user: User<'_>,
    product: &ProductRow,
    fields: &DeploymentFields,
) -> Result<DeploymentRow, FleetError> {
    check_lengths(fields)?;
    let name = fields
        .name
        .clone()
        .ok_or_else(|| FleetError::invalid("name", "can't be blank"))?;
    let uuid = fields
        .firmware
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| FleetError::invalid("firmware", "can't be blank"))?;
    let firmware = state
        .db
        .firmware_by_uuid(product.id, uuid)
        .await?
        .ok_or_else(|| FleetError::invalid("firmware", "does not exist in this product"))?;
    for (field, given, actual) in [
        ("platform", &fields.platform, &firmware.platform),
        ("architecture", &fields.architecture, &firmware.architecture),
    ] {
        if given.as_ref().is_some_and(|g| g != actual) {
            return Err(FleetError::invalid(
                field,
                format!("must be the firmware's ({actual})"),
            ));
        }
    }
    let (settings, _) = apply(defaults(name.clone()), fields)?;
    let mut tx = state.db.begin().await?;
    let id = dq::insert_deployment(
        &mut tx,
        product.org_id,
        product.id,
        &firmware.platform,
        &firmware.architecture,
        &settings,
    )
    .await
    .on_unique(|| FleetError::invalid("name", "has already been taken"))?;
    dq::insert_release(&mut tx, id, firmware.id, Some(user.id)).await?;
    db::audit(
        &mut tx,
        deployment_audit(
            product.org_id,
            user,
            &settings.name,
            "create",
            format!(
                "{} created deployment {} in product {} with firmware {} (version {}), {}",
                user.email,
                settings.name,
                product.name,
                firmware.uuid,
                firmware.version,
                if settings.is_active { "on" } else { "off" }
            ),
        ),
    )
    .await?;
    let row = dq::deployment_by_id_in(&mut tx, id)
        .await?
        .ok_or(FleetError::NotFound("deployment"))?;
    tx.commit().await?;
    state.fleet.trigger(id);
    Ok(row)
}

/// Changes a deployment: a `firmware` makes a new release, other fields change settings.
/// Switching it on lifts a halt.
pub(crate) async fn update(
    state: &AppState,
    user: User<'_>,
    d: &DeploymentRow,
    fields: &DeploymentFields,
) -> Result<DeploymentRow, FleetError> {
    check_lengths(fields)?;
    for (field, given, actual) in [
        ("platform", &fields.platform, &d.platform),
        ("architecture", &fields.architecture, &d.architecture),
    ] {
        if given.as_ref().is_some_and(|g| g != actual) {
            return Err(FleetError::invalid(field, "can't be changed"));
        }
    }
    let firmware = match fields
        .firmware
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        Some(uuid) => {
            let f = state
                .db
                .firmware_by_uuid(d.product_id, uuid)
                .await?
                .ok_or_else(|| FleetError::invalid("firmware", "does not exist in this product"))?;
            if f.platform != d.platform || f.architecture != d.architecture {
                return Err(FleetError::invalid(
                    "firmware",
                    format!(
                        "is for {}/{}, the deployment for {}/{}",
                        f.platform, f.architecture, d.platform, d.architecture
                    ),
                ));
            }
            Some(f)
        }
        None => None,
    };
    let (settings, activates) = apply(DeploymentSettings::of(d), fields)?;
    let mut tx = state.db.begin().await?;
    dq::update_deployment(&mut tx, d.id, &settings, activates)
        .await
        .on_unique(|| FleetError::invalid("name", "has already been taken"))?;
    let mut changes = Vec::new();
    if let Some(f) = &firmware {
        let number = dq::insert_release(&mut tx, d.id, f.id, Some(user.id)).await?;
        changes.push(format!(
            "release {number}: firmware {} (version {})",
            f.uuid, f.version
        ));
    }
    if settings.is_active != (d.is_active != 0) {
        changes.push(if settings.is_active {
            "switched on".to_owned()
        } else {
            "switched off".to_owned()
        });
    }
    if activates && d.halted_at.is_some() {
        changes.push("halt lifted".to_owned());
    }
    if changes.is_empty() {
        changes.push("settings changed".to_owned());
    }
    db::audit(
        &mut tx,
        deployment_audit(
            d.org_id,
            user,
            &settings.name,
            "update",
            format!(
                "{} updated deployment {}: {}",
                user.email,
                settings.name,
                changes.join("; ")
            ),
        ),
    )
    .await?;
    let row = dq::deployment_by_id_in(&mut tx, d.id)
        .await?
        .ok_or(FleetError::NotFound("deployment"))?;
    tx.commit().await?;
    state.fleet.trigger(d.id);
    Ok(row)
}

/// Deletes a deployment; its devices stay, without a deployment.
pub(crate) async fn delete(
    state: &AppState,
    user: User<'_>,
    d: &DeploymentRow,
) -> Result<(), FleetError> {
    let mut tx = state.db.begin().await?;
    dq::delete_deployment(&mut tx, d.id).await?;
    db::audit(
        &mut tx,
        deployment_audit(
            d.org_id,
            user,
            &d.name,
            "delete",
            format!("{} deleted deployment {}", user.email, d.name),
        ),
    )
    .await?;
    tx.commit().await?;
    state.fleet.trigger(d.id);
    Ok(())
}

fn device_facts(device: &DeviceRow) -> DeviceFacts {
    let meta = device.firmware_metadata_json();
    let get = |k: &str| {
        meta.as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    DeviceFacts {
        product_id: device.product_id,
        tags: device.tags.clone(),
        version: get("version"),
        platform: get("platform"),
        architecture: get("architecture"),
    }
}

/// Puts devices into a deployment by hand (all or none): each must be of the product and
/// platform/architecture (when it reported them).
pub(crate) async fn assign(
    state: &AppState,
    user: User<'_>,
    d: &DeploymentRow,
    identifiers: &[String],
) -> Result<Vec<DeviceRow>, FleetError> {
    if identifiers.is_empty() || identifiers.len() > MAX_ASSIGN {
        return Err(FleetError::invalid(
            "identifiers",
            format!("name 1 to {MAX_ASSIGN} devices"),
        ));
    }
    for identifier in identifiers {
        at_most("identifiers", identifier, MAX_IDENTIFIER_CHARS)?;
    }
    let group = group_facts(d);
    let mut devices = Vec::with_capacity(identifiers.len());
    for identifier in identifiers {
        let device = state
            .db
            .device(d.product_id, identifier)
            .await?
            .ok_or(FleetError::NotFound("device"))?;
        if !group.compatible(&device_facts(&device)) {
            return Err(FleetError::invalid(
                "identifiers",
                format!("device {identifier} runs firmware for another platform or architecture"),
            ));
        }
        devices.push(device);
    }
    let mut tx = state.db.begin().await?;
    for device in &devices {
        dq::set_device_deployment(&mut tx, device.id, Some(d.id)).await?;
        db::audit(
            &mut tx,
            Audit {
                org_id: Some(d.org_id),
                actor: Actor::User(user.id),
                resource_type: "device",
                resource_id: &device.identifier,
                action: "deployment_assigned",
                description: format!(
                    "{} put device {} into deployment {}",
                    user.email, device.identifier, d.name
                ),
            },
        )
        .await?;
    }
    tx.commit().await?;
    state.fleet.trigger(d.id);
    let mut updated = Vec::with_capacity(devices.len());
    for device in devices {
        if let Some(row) = state.db.device_by_id(device.id).await? {
            updated.push(row);
        }
    }
    Ok(updated)
}

/// Takes a device out of a deployment by hand.
pub(crate) async fn unassign(
    state: &AppState,
    user: User<'_>,
    d: &DeploymentRow,
    identifier: &str,
) -> Result<(), FleetError> {
    let device = state
        .db
        .device(d.product_id, identifier)
        .await?
        .filter(|dev| dev.deployment_id == Some(d.id))
        .ok_or(FleetError::NotFound("device"))?;
    let mut tx = state.db.begin().await?;
    dq::set_device_deployment(&mut tx, device.id, None).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(d.org_id),
            actor: Actor::User(user.id),
            resource_type: "device",
            resource_id: &device.identifier,
            action: "deployment_removed",
            description: format!(
                "{} took device {} out of deployment {}",
                user.email, device.identifier, d.name
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Clears a device's penalty box and attempts and turns its automatic updates back on
/// (NervesHub's "clear penalty box").
pub(crate) async fn clear_penalty(
    state: &AppState,
    user: User<'_>,
    device: &DeviceRow,
) -> Result<(), FleetError> {
    let mut tx = state.db.begin().await?;
    upd::set_blocked_until(&mut tx, device.id, None, true).await?;
    upd::set_updates_enabled(&mut tx, device.id, true).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(device.org_id),
            actor: Actor::User(user.id),
            resource_type: "device",
            resource_id: &device.identifier,
            action: "penalty_cleared",
            description: format!(
                "{} cleared the penalty box of device {}",
                user.email, device.identifier
            ),
        },
    )
    .await?;
    tx.commit().await?;
    if let Some(id) = device.deployment_id {
        state.fleet.trigger(id);
    }
    Ok(())
}

/// How a deployment's devices stand.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct StatusCounts {
    pub(crate) total: u64,
    pub(crate) up_to_date: u64,
    pub(crate) pending: u64,
    pub(crate) in_flight: u64,
    pub(crate) failed: u64,
    pub(crate) penalty_box: u64,
    pub(crate) offline: u64,
    pub(crate) updates_disabled: u64,
}

/// A deployment's status: device counts by state, and the devices whose failures count in
/// the halt window.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentStatus {
    pub(crate) counts: StatusCounts,
    /// (identifier, reason) of the failures in the halt window, newest first.
    pub(crate) failing_devices: Vec<(String, Option<String>)>,
    pub(crate) in_flight: Vec<(String, String, i64)>,
}

/// Where a device of a deployment stands in its rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MemberState {
    /// Runs the release, nothing in flight.
    UpToDate,
    /// An update is in flight.
    InFlight,
    /// Its last update of this deployment failed or was ignored.
    Failed,
    /// Updates blocked until a time still ahead.
    PenaltyBox,
    /// Its updates are switched off.
    UpdatesDisabled,
    /// Not connected.
    Offline,
    /// Connected, waiting for a slot.
    Pending,
}

impl MemberState {
    /// The state's name, as in the API and the status counts.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MemberState::UpToDate => "up_to_date",
            MemberState::InFlight => "in_flight",
            MemberState::Failed => "failed",
            MemberState::PenaltyBox => "penalty_box",
            MemberState::UpdatesDisabled => "updates_disabled",
            MemberState::Offline => "offline",
            MemberState::Pending => "pending",
        }
    }

    /// The state named `text` (as [`as_str`](Self::as_str) writes it).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            MemberState::UpToDate,
            MemberState::InFlight,
            MemberState::Failed,
            MemberState::PenaltyBox,
            MemberState::UpdatesDisabled,
            MemberState::Offline,
            MemberState::Pending,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The one state of device `m` of deployment `d` at `now`, first match wins: up to date
/// (runs the release), in flight, failed (its last update of this deployment failed or was
/// ignored), penalty box, updates disabled, offline, pending (connected and waiting for a
/// slot).
pub(crate) fn member_state(d: &DeploymentRow, m: &MemberRow, now: i64) -> MemberState {
    if m.firmware_uuid.as_deref() == Some(d.firmware_uuid.as_str()) && m.in_flight.is_none() {
        MemberState::UpToDate
    } else if m.in_flight.is_some() {
        MemberState::InFlight
    } else if matches!(m.last_outcome.as_deref(), Some("failed" | "ignored")) {
        MemberState::Failed
    } else if m.updates_blocked_until.is_some_and(|t| t > now) {
        MemberState::PenaltyBox
    } else if !m.updates_enabled {
        MemberState::UpdatesDisabled
    } else if m.connection_status != db::ConnectionStatus::Connected {
        MemberState::Offline
    } else {
        MemberState::Pending
    }
}

/// The devices of the deployment now, by identifier, each with its [`MemberState`].
pub(crate) async fn members(
    state: &AppState,
    d: &DeploymentRow,
) -> Result<Vec<(MemberRow, MemberState)>, FleetError> {
    let now = state.clock.now_ms();
    let members = state.db.deployment_members(d.id).await?;
    Ok(members
        .into_iter()
        .map(|m| {
            let s = member_state(d, &m, now);
            (m, s)
        })
        .collect())
}

/// Counts each device of the deployment in exactly one [`MemberState`].
pub(crate) async fn status(
    state: &AppState,
    d: &DeploymentRow,
) -> Result<DeploymentStatus, FleetError> {
    let mut counts = StatusCounts::default();
    let mut in_flight = Vec::new();
    for (m, member) in members(state, d).await? {
        counts.total += 1;
        let bucket = match member {
            MemberState::UpToDate => &mut counts.up_to_date,
            MemberState::InFlight => {
                in_flight.push((
                    m.identifier.clone(),
                    m.in_flight.clone().unwrap_or_default(),
                    m.in_flight_progress.unwrap_or(0),
                ));
                &mut counts.in_flight
            }
            MemberState::Failed => &mut counts.failed,
            MemberState::PenaltyBox => &mut counts.penalty_box,
            MemberState::UpdatesDisabled => &mut counts.updates_disabled,
            MemberState::Offline => &mut counts.offline,
            MemberState::Pending => &mut counts.pending,
        };
        *bucket += 1;
    }
    let window = d.halt_window.max(1);
    let failing_devices = state
        .db
        .recent_outcomes(d.id, d.firmware_id, d.halt_cleared_at.unwrap_or(0), window)
        .await?
        .into_iter()
        .filter(|o| o.status == "failed")
        .map(|o| (o.identifier, o.reason))
        .collect();
    Ok(DeploymentStatus {
        counts,
        failing_devices,
        in_flight,
    })
}
