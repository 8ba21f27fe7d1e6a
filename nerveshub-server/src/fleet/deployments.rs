//! Creating and changing deployments, manual membership, the penalty box, and a deployment's
//! status. Every change is audited in its own transaction and wakes the orchestrator.

use serde::Deserialize;
use serde_json::Value;

use super::lifecycle::User;
use super::rules::{Conditions, DeviceFacts, GroupFacts};
use super::{FleetError, version};
use crate::db::deployments::{self as dq, DeploymentSettings};
use crate::db::device_updates as upd;
use crate::db::{self, Actor, Audit, DeploymentRow, DeviceRow, ProductRow, now_ms};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 100;
const MAX_TAGS: usize = 100;
const MAX_TAG_CHARS: usize = 100;
const MAX_NOTES_CHARS: usize = 10_000;
/// A firmware UUID is 36 characters; anything longer names no firmware.
pub(crate) const MAX_FIRMWARE_CHARS: usize = 64;
/// An Elixir version requirement (`conditions.version`) or a SemVer threshold.
pub(crate) const MAX_VERSION_CHARS: usize = 1000;
/// Tags given as one comma-separated string, before the split.
pub(crate) const MAX_TAGS_TEXT_CHARS: usize = MAX_TAGS * (MAX_TAG_CHARS + 1);
/// Platform and architecture names, as firmware metadata carries them.
pub(crate) const MAX_PLATFORM_CHARS: usize = 255;
/// A device identifier.
pub(crate) const MAX_IDENTIFIER_CHARS: usize = 255;
/// The most devices one bulk assignment names.
pub(crate) const MAX_ASSIGN: usize = 1000;

/// The fields of a create or update body (NervesHub's names). Absent fields keep their value
/// (or default on create).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeploymentFields {
    pub(crate) name: Option<String>,
    /// A firmware uuid of the product: on create the first release, on update a new one.
    pub(crate) firmware: Option<String>,
    pub(crate) conditions: Option<ConditionsInput>,
    pub(crate) is_active: Option<bool>,
    /// `"on"` / `"off"`, another spelling of `is_active`.
    pub(crate) state: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) architecture: Option<String>,
    pub(crate) concurrent_updates: Option<i64>,
    pub(crate) device_failure_threshold: Option<i64>,
    pub(crate) device_failure_rate_seconds: Option<i64>,
    pub(crate) device_failure_rate_amount: Option<i64>,
    pub(crate) penalty_timeout_minutes: Option<i64>,
    pub(crate) queue_management: Option<String>,
    pub(crate) priority_queue_enabled: Option<bool>,
    pub(crate) priority_queue_concurrent_updates: Option<i64>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub(crate) priority_queue_firmware_version_threshold: Option<Option<String>>,
    pub(crate) release_tags: Option<Vec<String>>,
    pub(crate) lock_device_membership: Option<bool>,
    pub(crate) notes: Option<String>,
    pub(crate) require_validated: Option<bool>,
    pub(crate) health_timeout_minutes: Option<i64>,
    /// Percent; `null` turns the halt off.
    #[serde(default, deserialize_with = "present")]
    pub(crate) halt_failure_rate: Option<Option<i64>>,
    pub(crate) halt_window: Option<i64>,
    /// Accepted for NervesHub compatibility; delta updates are not made yet.
    pub(crate) delta_updatable: Option<bool>,
}

/// `conditions` as sent: `tags` may be a list or a comma-separated string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConditionsInput {
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) tags: Value,
    #[serde(default)]
    pub(crate) tag_operator: Option<String>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

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

fn check_name(name: &str) -> Result<(), FleetError> {
    if name.is_empty() {
        return Err(FleetError::invalid("name", "can't be blank"));
    }
    if name.chars().count() > MAX_NAME_CHARS
        || name.trim() != name
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(FleetError::invalid(
            "name",
            "1 to 100 characters, no '/', control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// `value` has at most `max` characters.
fn at_most(field: &'static str, value: &str, max: usize) -> Result<(), FleetError> {
    if value.chars().count() > max {
        return Err(FleetError::invalid(
            field,
            format!("should be at most {max} character(s)"),
        ));
    }
    Ok(())
}

/// Bounds every string of a body before it is parsed further, looked up or compared (names,
/// tags and notes have their own checks in [`apply`]).
fn check_lengths(fields: &DeploymentFields) -> Result<(), FleetError> {
    let optional = [
        ("firmware", fields.firmware.as_deref(), MAX_FIRMWARE_CHARS),
        ("state", fields.state.as_deref(), 3),
        ("platform", fields.platform.as_deref(), MAX_PLATFORM_CHARS),
        (
            "architecture",
            fields.architecture.as_deref(),
            MAX_PLATFORM_CHARS,
        ),
        ("queue_management", fields.queue_management.as_deref(), 4),
        (
            "priority_queue_firmware_version_threshold",
            fields
                .priority_queue_firmware_version_threshold
                .as_ref()
                .and_then(|v| v.as_deref()),
            MAX_VERSION_CHARS,
        ),
    ];
    for (field, value, max) in optional {
        if let Some(value) = value {
            at_most(field, value.trim(), max)?;
        }
    }
    if let Some(c) = &fields.conditions {
        at_most(
            "conditions",
            c.version.as_deref().unwrap_or(""),
            MAX_VERSION_CHARS,
        )?;
        at_most("conditions", c.tag_operator.as_deref().unwrap_or(""), 3)?;
        if let Value::String(text) = &c.tags {
            at_most("conditions", text, MAX_TAGS_TEXT_CHARS)?;
        }
    }
    Ok(())
}

fn check_tags(field: &'static str, tags: &[String]) -> Result<(), FleetError> {
    if tags.len() > MAX_TAGS {
        return Err(FleetError::invalid(
            field,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for tag in tags {
        if tag.is_empty()
            || tag.chars().count() > MAX_TAG_CHARS
            || tag
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | ','))
        {
            return Err(FleetError::invalid(
                field,
                "each tag has 1 to 100 characters, no spaces, quotes, backslashes or commas",
            ));
        }
    }
    Ok(())
}

fn parse_conditions(input: &ConditionsInput) -> Result<Conditions, FleetError> {
    let version_text = input.version.clone().unwrap_or_default().trim().to_owned();
    if !version_text.is_empty() {
        version::Requirement::parse(&version_text)
            .map_err(|e| FleetError::invalid("conditions", e.to_string()))?;
    }
    let tags: Vec<String> = match &input.tags {
        Value::Null => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| FleetError::invalid("conditions", "tags must be strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(FleetError::invalid("conditions", "tags must be a list")),
    };
    check_tags("conditions", &tags)?;
    let tag_operator = match input.tag_operator.as_deref().map(str::trim) {
        None | Some("") | Some("and") => super::rules::TagOperator::And,
        Some("or") => super::rules::TagOperator::Or,
        Some(_) => {
            return Err(FleetError::invalid(
                "conditions",
                "tag_operator must be \"and\" or \"or\"",
            ));
        }
    };
    Ok(Conditions {
        version: version_text,
        tags,
        tag_operator,
    })
}

fn in_range(field: &'static str, value: i64, min: i64, max: i64) -> Result<i64, FleetError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FleetError::invalid(
            field,
            format!("must be from {min} to {max}"),
        ))
    }
}

/// The settings after applying `fields` to `base`; whether they switch the deployment on.
fn apply(
    mut s: DeploymentSettings,
    fields: &DeploymentFields,
) -> Result<(DeploymentSettings, bool), FleetError> {
    if let Some(name) = &fields.name {
        check_name(name)?;
        s.name = name.clone();
    }
    let active = match (fields.is_active, fields.state.as_deref()) {
        (Some(a), _) => Some(a),
        (None, Some("on")) => Some(true),
        (None, Some("off")) => Some(false),
        (None, Some(_)) => return Err(FleetError::invalid("state", "must be \"on\" or \"off\"")),
        (None, None) => None,
    };
    if let Some(a) = active {
        s.is_active = a;
    }
    if let Some(c) = &fields.conditions {
        s.conditions = serde_json::to_string(&parse_conditions(c)?)
            .map_err(|e| FleetError::invalid("conditions", e.to_string()))?;
    }
    if let Some(v) = fields.concurrent_updates {
        s.concurrent_updates = in_range("concurrent_updates", v, 1, 100_000)?;
    }
    if let Some(v) = fields.device_failure_threshold {
        s.device_failure_threshold = in_range("device_failure_threshold", v, 1, 1000)?;
    }
    if let Some(v) = fields.device_failure_rate_seconds {
        s.device_failure_rate_seconds = in_range("device_failure_rate_seconds", v, 60, 31_536_000)?;
    }
    if let Some(v) = fields.device_failure_rate_amount {
        s.device_failure_rate_amount = in_range("device_failure_rate_amount", v, 1, 1000)?;
    }
    if let Some(v) = fields.penalty_timeout_minutes {
        s.penalty_timeout_minutes = in_range("penalty_timeout_minutes", v, 60, 525_600)?;
    }
    if let Some(q) = &fields.queue_management {
        let q = q.trim().to_ascii_uppercase();
        if q != "FIFO" && q != "LIFO" {
            return Err(FleetError::invalid(
                "queue_management",
                "must be FIFO or LIFO",
            ));
        }
        s.queue_management = q;
    }
    if let Some(v) = fields.priority_queue_enabled {
        s.priority_queue_enabled = v;
    }
    if let Some(v) = fields.priority_queue_concurrent_updates {
        s.priority_queue_concurrent_updates =
            in_range("priority_queue_concurrent_updates", v, 1, 100_000)?;
    }
    if let Some(v) = &fields.priority_queue_firmware_version_threshold {
        let v = v.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if let Some(text) = v
            && version::parse_version(text).is_none()
        {
            return Err(FleetError::invalid(
                "priority_queue_firmware_version_threshold",
                "must be a SemVer version",
            ));
        }
        s.priority_queue_firmware_version_threshold = v.map(str::to_owned);
    }
    if let Some(tags) = &fields.release_tags {
        check_tags("release_tags", tags)?;
        s.release_tags = Value::from(tags.clone()).to_string();
    }
    if let Some(v) = fields.lock_device_membership {
        s.lock_device_membership = v;
    }
    if let Some(notes) = &fields.notes {
        if notes.chars().count() > MAX_NOTES_CHARS {
            return Err(FleetError::invalid(
                "notes",
                format!("should be at most {MAX_NOTES_CHARS} character(s)"),
            ));
        }
        s.notes = notes.clone();
    }
    if let Some(v) = fields.require_validated {
        s.require_validated = v;
    }
    if let Some(v) = fields.health_timeout_minutes {
        s.health_timeout_minutes = in_range("health_timeout_minutes", v, 1, 1440)?;
    }
    if let Some(v) = fields.halt_failure_rate {
        s.halt_failure_rate = match v {
            Some(p) => Some(in_range("halt_failure_rate", p, 1, 100)?),
            None => None,
        };
    }
    if let Some(v) = fields.halt_window {
        s.halt_window = in_range("halt_window", v, 1, 1000)?;
    }
    if fields.delta_updatable == Some(true) {
        return Err(FleetError::invalid(
            "delta_updatable",
            "delta updates are not supported by this server",
        ));
    }
    Ok((s, active == Some(true)))
}

fn defaults(name: String) -> DeploymentSettings {
    DeploymentSettings {
        name,
        is_active: false,
        conditions: serde_json::to_string(&Conditions::default()).unwrap_or_default(),
        concurrent_updates: 10,
        queue_management: "FIFO".into(),
        priority_queue_enabled: false,
        priority_queue_concurrent_updates: 5,
        priority_queue_firmware_version_threshold: None,
        release_tags: "[]".into(),
        lock_device_membership: false,
        device_failure_threshold: 3,
        device_failure_rate_seconds: 180,
        device_failure_rate_amount: 5,
        penalty_timeout_minutes: 1440,
        require_validated: false,
        health_timeout_minutes: 15,
        halt_failure_rate: None,
        halt_window: 20,
        notes: String::new(),
    }
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
    let id = match dq::insert_deployment(
        &mut tx,
        product.org_id,
        product.id,
        &firmware.platform,
        &firmware.architecture,
        &settings,
    )
    .await
    {
        Ok(id) => id,
        Err(e) if db::is_unique_violation(&e) => {
            return Err(FleetError::invalid("name", "has already been taken"));
        }
        Err(e) => return Err(e.into()),
    };
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
    match dq::update_deployment(&mut tx, d.id, &settings, activates).await {
        Ok(()) => {}
        Err(e) if db::is_unique_violation(&e) => {
            return Err(FleetError::invalid("name", "has already been taken"));
        }
        Err(e) => return Err(e.into()),
    }
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
        tags: device.tag_list(),
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

/// Counts each device of the deployment in exactly one state, first match wins: up to date
/// (runs the release), in flight, failed (its last update of this deployment failed or was
/// ignored), penalty box, updates disabled, offline, pending (connected and waiting for a slot).
pub(crate) async fn status(
    state: &AppState,
    d: &DeploymentRow,
) -> Result<DeploymentStatus, FleetError> {
    let now = now_ms();
    let members = state.db.deployment_members(d.id).await?;
    let mut counts = StatusCounts::default();
    let mut in_flight = Vec::new();
    for m in &members {
        counts.total += 1;
        let bucket = if m.firmware_uuid.as_deref() == Some(d.firmware_uuid.as_str())
            && m.in_flight.is_none()
        {
            &mut counts.up_to_date
        } else if let Some(status) = &m.in_flight {
            in_flight.push((
                m.identifier.clone(),
                status.clone(),
                m.in_flight_progress.unwrap_or(0),
            ));
            &mut counts.in_flight
        } else if matches!(m.last_outcome.as_deref(), Some("failed" | "ignored")) {
            &mut counts.failed
        } else if m.updates_blocked_until.is_some_and(|t| t > now) {
            &mut counts.penalty_box
        } else if m.updates_enabled == 0 {
            &mut counts.updates_disabled
        } else if m.connection_status != "connected" {
            &mut counts.offline
        } else {
            &mut counts.pending
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
