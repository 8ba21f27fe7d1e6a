//! What a deployment create or update body may say: its fields, the bounds and rules each
//! is checked against, and the settings they make (`apply`), before anything is stored.

use serde::Deserialize;
use serde_json::Value;

use super::rules::Conditions;
use super::{FleetError, version};
use crate::db::deployments::DeploymentSettings;

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
pub(super) fn at_most(field: &'static str, value: &str, max: usize) -> Result<(), FleetError> {
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
pub(super) fn check_lengths(fields: &DeploymentFields) -> Result<(), FleetError> {
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
            // tidy: text — the parser's message is the validation answer the caller reads.
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
pub(super) fn apply(
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
            // tidy: text — answered as a validation error of the field it came from.
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

pub(super) fn defaults(name: String) -> DeploymentSettings {
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
