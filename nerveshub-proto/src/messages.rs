//! Typed messages of the `device` topic, in both directions.
//!
//! Every struct keeps the keys it does not know in an `extra` map and writes them back out, and
//! every event enum keeps unknown events in an `Other` variant, so newer peers keep working.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The `device` topic, joined by every device right after connecting.
pub const DEVICE_TOPIC: &str = "device";
/// The `device_api_version` nerves_hub_link 2.x sends.
pub const DEVICE_API_VERSION: &str = "2.3.0";
/// The `console_version` nerves_hub_link 2.x sends.
pub const CONSOLE_VERSION: &str = "2.0.0";
/// The value of `fwup_public_keys` / `archive_public_keys` in the join params that asks the
/// server to push the org's keys after the join.
pub const ON_CONNECT: &str = "on_connect";

/// Keys of a JSON object that a typed message does not know, kept verbatim.
pub type Extra = Map<String, Value>;

/// A message of one channel: an event name plus a payload, typed.
///
/// Implemented by the event enums of each topic and direction ([`DeviceServerEvent`],
/// [`DeviceEvent`], [`ConsoleServerEvent`](crate::ConsoleServerEvent), …).
pub trait ChannelMessage: Sized {
    /// The event name on the wire.
    fn event(&self) -> &str;
    /// The payload as a JSON value.
    fn to_payload(&self) -> Value;
    /// Reads a message from an event name and payload. Unknown events succeed (as the enum's
    /// `Other` variant); a known event with a payload of the wrong shape is an error.
    fn from_parts(event: &str, payload: Value) -> Result<Self>;
}

pub(crate) fn from_payload<T: DeserializeOwned>(event: &str, payload: Value) -> Result<T> {
    // A `null` payload (possible in MessagePack) reads as `{}`.
    let payload = if payload.is_null() {
        Value::Object(Map::new())
    } else {
        payload
    };
    serde_json::from_value(payload).map_err(|source| Error::InvalidPayload {
        event: event.to_owned(),
        source,
    })
}

pub(crate) fn to_payload<T: Serialize>(value: &T) -> Value {
    // Our message types always serialize to JSON objects; the fallback is never taken.
    serde_json::to_value(value).unwrap_or_else(|_| Value::Object(Map::new()))
}

pub(crate) fn extra_from(event: &str, payload: Value) -> Result<Extra> {
    from_payload(event, payload)
}

// ---- join ----------------------------------------------------------------------------------

/// The `meta` object of the device join params.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMeta {
    /// Whether the bootloader reverted to the previous firmware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_auto_revert_detected: Option<bool>,
    /// Whether the running firmware has been validated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_validated: Option<bool>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The params of a device's `phx_join` on `device`: the active slot's firmware environment
/// (`nerves_fw_*`, with the `a.`/`b.` prefix removed) plus fixed keys.
///
/// `None` fields are left out of the JSON, except `currently_downloading_uuid`, which
/// nerves_hub_link always sends (as `null` when idle). Other environment keys
/// (`nerves_fw_devpath`, `nerves_fw_validated`, ESP-IDF keys, …) live in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceJoinParams {
    /// Firmware UUID (its presence makes the server assume the fwup update tool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_uuid: Option<String>,
    /// Firmware product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_product: Option<String>,
    /// Firmware version (SemVer for deployment matching).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_version: Option<String>,
    /// Firmware platform, e.g. `rpi4`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_platform: Option<String>,
    /// Firmware architecture, e.g. `arm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_architecture: Option<String>,
    /// Firmware author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_author: Option<String>,
    /// Firmware description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_description: Option<String>,
    /// Firmware VCS identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_vcs_identifier: Option<String>,
    /// Firmware miscellaneous text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nerves_fw_misc: Option<String>,
    /// The trimmed output of `fwup --version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwup_version: Option<String>,
    /// The client's API version ([`DEVICE_API_VERSION`] for nerves_hub_link 2.x).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_api_version: Option<String>,
    /// The console protocol version ([`CONSOLE_VERSION`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_version: Option<String>,
    /// The UUID of a firmware being downloaded, or `None` (`null` on the wire) when idle.
    pub currently_downloading_uuid: Option<String>,
    /// Validation state of the running firmware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<DeviceMeta>,
    /// [`ON_CONNECT`] when the device has no firmware public keys and wants the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwup_public_keys: Option<String>,
    /// [`ON_CONNECT`] when the device has no archive public keys and wants the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_public_keys: Option<String>,
    /// An explicit update tool (`fwup`, `esp-idf`), sent by non-Nerves clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_tool: Option<String>,
    /// Every other key, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl DeviceJoinParams {
    /// Reads join params from a `phx_join` payload.
    pub fn from_payload(payload: Value) -> Result<Self> {
        from_payload("phx_join", payload)
    }

    /// The params as a `phx_join` payload.
    pub fn to_payload(&self) -> Value {
        to_payload(self)
    }

    /// The firmware metadata the params describe, as the server reads it (fwup tool).
    pub fn firmware_metadata(&self) -> FirmwareMetadata {
        FirmwareMetadata {
            uuid: self.nerves_fw_uuid.clone(),
            product: self.nerves_fw_product.clone(),
            version: self.nerves_fw_version.clone(),
            platform: self.nerves_fw_platform.clone(),
            architecture: self.nerves_fw_architecture.clone(),
            author: self.nerves_fw_author.clone(),
            description: self.nerves_fw_description.clone(),
            vcs_identifier: self.nerves_fw_vcs_identifier.clone(),
            misc: self.nerves_fw_misc.clone(),
            fwup_version: self.fwup_version.clone(),
            extra: Extra::new(),
        }
    }

    /// Whether the device asked for the org's firmware public keys after the join.
    pub fn wants_fwup_public_keys(&self) -> bool {
        self.fwup_public_keys.as_deref() == Some(ON_CONNECT)
    }

    /// Whether the device asked for the org's archive public keys after the join.
    pub fn wants_archive_public_keys(&self) -> bool {
        self.archive_public_keys.as_deref() == Some(ON_CONNECT)
    }
}

// ---- server → device ----------------------------------------------------------------------

/// Firmware metadata, as in an `update`'s `firmware_meta`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FirmwareMetadata {
    /// Firmware UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// VCS identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcs_identifier: Option<String>,
    /// Miscellaneous text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<String>,
    /// The fwup version that built the firmware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwup_version: Option<String>,
    /// Other keys (e.g. `id`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The payload of `update`: a firmware to install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdatePayload {
    /// Always `true` in NervesHub 2.x (nerves_hub_link ignores it).
    #[serde(default = "yes")]
    pub update_available: bool,
    /// Where to download the `.fw` (possibly a delta, possibly a firmware-proxy URL).
    pub firmware_url: String,
    /// The target firmware's metadata (also for deltas).
    pub firmware_meta: FirmwareMetadata,
    /// Size in bytes of the file to download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-256 of the file to download, upper-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// SHA-256 of each consecutive 1 MiB part of the file, upper-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partials_checksums: Option<Vec<String>>,
    /// The deployment group, or `None` (`null`) for a manual push.
    #[serde(default)]
    pub deployment_id: Option<i64>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

fn yes() -> bool {
    true
}

/// The payload of `archive`: an archive (a `.fw` of files) available for the device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchivePayload {
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Archive UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Upload time, ISO-8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<String>,
    /// Download URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The payload of `fwup_public_keys` / `archive_public_keys`: `{"keys": [...]}`, base64
/// Ed25519 public keys. nerves_hub_link keeps its list when this one is empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PublicKeys {
    /// The keys, base64.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The payload of a server's `scripts/run`: text to evaluate on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptRequest {
    /// The code.
    pub text: String,
    /// The ref the result must carry (`connecting_code` for the connecting code).
    #[serde(rename = "ref")]
    pub script_ref: String,
    /// Timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A server → device event on `device`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceServerEvent {
    /// `update`: install this firmware.
    Update(Box<UpdatePayload>),
    /// `reboot` `{}`: the device answers with `rebooting` and reboots.
    Reboot(Extra),
    /// `identify` `{}`: blink an LED or similar.
    Identify(Extra),
    /// `archive`: an archive is available.
    Archive(ArchivePayload),
    /// `fwup_public_keys`: the org's firmware signing keys.
    FwupPublicKeys(PublicKeys),
    /// `archive_public_keys`: the org's archive signing keys.
    ArchivePublicKeys(PublicKeys),
    /// `extensions:get` `{}`: the device should join `extensions`.
    ExtensionsGet(Extra),
    /// `scripts/run`: evaluate a script.
    ScriptsRun(ScriptRequest),
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ChannelMessage for DeviceServerEvent {
    fn event(&self) -> &str {
        match self {
            Self::Update(_) => "update",
            Self::Reboot(_) => "reboot",
            Self::Identify(_) => "identify",
            Self::Archive(_) => "archive",
            Self::FwupPublicKeys(_) => "fwup_public_keys",
            Self::ArchivePublicKeys(_) => "archive_public_keys",
            Self::ExtensionsGet(_) => "extensions:get",
            Self::ScriptsRun(_) => "scripts/run",
            Self::Other { event, .. } => event,
        }
    }

    fn to_payload(&self) -> Value {
        match self {
            Self::Update(p) => to_payload(p),
            Self::Reboot(e) | Self::Identify(e) | Self::ExtensionsGet(e) => {
                Value::Object(e.clone())
            }
            Self::Archive(p) => to_payload(p),
            Self::FwupPublicKeys(p) | Self::ArchivePublicKeys(p) => to_payload(p),
            Self::ScriptsRun(p) => to_payload(p),
            Self::Other { payload, .. } => payload.clone(),
        }
    }

    fn from_parts(event: &str, payload: Value) -> Result<Self> {
        Ok(match event {
            "update" => Self::Update(Box::new(from_payload(event, payload)?)),
            "reboot" => Self::Reboot(extra_from(event, payload)?),
            "identify" => Self::Identify(extra_from(event, payload)?),
            "archive" => Self::Archive(from_payload(event, payload)?),
            "fwup_public_keys" => Self::FwupPublicKeys(from_payload(event, payload)?),
            "archive_public_keys" => Self::ArchivePublicKeys(from_payload(event, payload)?),
            "extensions:get" => Self::ExtensionsGet(extra_from(event, payload)?),
            "scripts/run" => Self::ScriptsRun(from_payload(event, payload)?),
            _ => Self::Other {
                event: event.to_owned(),
                payload,
            },
        })
    }
}

// ---- device → server ----------------------------------------------------------------------

/// The payload of `fwup_progress` / `update_progress`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// `downloading` or `updating`; older links send no stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Percent, 0..=100 (a fractional value from another client is rounded).
    #[serde(deserialize_with = "percent")]
    pub value: u64,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f.round() as u64)
        })
        .ok_or_else(|| serde::de::Error::custom("value is not a non-negative number"))
}

impl Progress {
    /// A progress report for a stage.
    pub fn new(stage: &str, value: u64) -> Self {
        Progress {
            stage: Some(stage.to_owned()),
            value,
            extra: Extra::new(),
        }
    }

    /// The stage as NervesHub reads it: no stage and 100 means `completed`, no stage means
    /// `updating`.
    pub fn effective_stage(&self) -> &str {
        match (&self.stage, self.value) {
            (Some(s), _) => s,
            (None, 100) => "completed",
            (None, _) => "updating",
        }
    }
}

/// The payload of `status_update`, by `status`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StatusUpdate {
    /// `received`: an update message was accepted for consideration.
    Received {
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `started`: the downloader (re)connected.
    Started {
        /// The network interface the download uses (sent as `null` when unknown).
        downloader_network_interface: Option<String>,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `completed`: fwup finished successfully.
    Completed {
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `ignored`: the device declined the update.
    Ignored {
        /// Why (nerves_hub_link sends `""` when no reason is given).
        reason: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `rescheduled`: the device will take the update later.
    Rescheduled {
        /// How long to wait, in **minutes** (the `delay_for` key; nerves_hub_link sends
        /// minutes, rounded, minimum 5). See [`StatusUpdate::delay`].
        delay_for_minutes: u64,
        /// Why, if given.
        reason: Option<String>,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `failed`: the update failed.
    Failed {
        /// nerves_hub_link's text, e.g. `"Download failed : …"`.
        reason: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// Any other status, kept verbatim.
    Other {
        /// The status string.
        status: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
}

impl StatusUpdate {
    /// The `status` string.
    pub fn status(&self) -> &str {
        match self {
            Self::Received { .. } => "received",
            Self::Started { .. } => "started",
            Self::Completed { .. } => "completed",
            Self::Ignored { .. } => "ignored",
            Self::Rescheduled { .. } => "rescheduled",
            Self::Failed { .. } => "failed",
            Self::Other { status, .. } => status,
        }
    }

    /// For `rescheduled`, the delay `delay_for` minutes stand for.
    pub fn delay(&self) -> Option<Duration> {
        match self {
            Self::Rescheduled {
                delay_for_minutes, ..
            } => Some(Duration::from_secs(delay_for_minutes.saturating_mul(60))),
            _ => None,
        }
    }

    /// Whether NervesHub treats the status as a failure: `failed`, or any status containing
    /// `fwup error`.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed { .. }) || self.status().contains("fwup error")
    }

    /// Reads a `status_update` payload.
    pub fn from_payload(payload: Value) -> Result<Self> {
        let event = "status_update";
        let bad = |reason: &str| Error::InvalidPayload {
            event: event.into(),
            source: serde::de::Error::custom(reason),
        };
        let mut m: Extra = from_payload(event, payload)?;
        let status = match m.remove("status") {
            Some(Value::String(s)) => s,
            _ => return Err(bad("missing status")),
        };
        let opt_string = |m: &mut Extra, key: &str| match m.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(&format!("{key} is not a string"))),
        };
        Ok(match status.as_str() {
            "received" => Self::Received { extra: m },
            "started" => Self::Started {
                downloader_network_interface: opt_string(&mut m, "downloader_network_interface")?,
                extra: m,
            },
            "completed" => Self::Completed { extra: m },
            "ignored" => Self::Ignored {
                reason: opt_string(&mut m, "reason")?.unwrap_or_default(),
                extra: m,
            },
            "rescheduled" => {
                let delay_for_minutes = match m.remove("delay_for") {
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
                        .ok_or_else(|| bad("delay_for is not a non-negative number"))?,
                    _ => return Err(bad("missing delay_for")),
                };
                Self::Rescheduled {
                    delay_for_minutes,
                    reason: opt_string(&mut m, "reason")?,
                    extra: m,
                }
            }
            "failed" => Self::Failed {
                reason: opt_string(&mut m, "reason")?.unwrap_or_default(),
                extra: m,
            },
            _ => Self::Other { status, extra: m },
        })
    }

    /// The `status_update` payload.
    pub fn to_payload(&self) -> Value {
        let (extra, fields): (&Extra, Vec<(&str, Value)>) = match self {
            Self::Received { extra } | Self::Completed { extra } | Self::Other { extra, .. } => {
                (extra, vec![])
            }
            Self::Started {
                downloader_network_interface,
                extra,
            } => (
                extra,
                vec![(
                    "downloader_network_interface",
                    downloader_network_interface
                        .clone()
                        .map_or(Value::Null, Value::String),
                )],
            ),
            Self::Ignored { reason, extra } | Self::Failed { reason, extra } => {
                (extra, vec![("reason", Value::String(reason.clone()))])
            }
            Self::Rescheduled {
                delay_for_minutes,
                reason,
                extra,
            } => {
                let mut f = vec![("delay_for", Value::from(*delay_for_minutes))];
                if let Some(r) = reason {
                    f.push(("reason", Value::String(r.clone())));
                }
                (extra, f)
            }
        };
        let mut m = extra.clone();
        for (k, v) in fields {
            m.insert(k.to_owned(), v);
        }
        m.insert("status".into(), Value::String(self.status().to_owned()));
        Value::Object(m)
    }
}

/// The payload of `connection_types`: `{"values": [...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectionTypes {
    /// The connection types, e.g. `ethernet`, `wifi`.
    #[serde(default)]
    pub values: Vec<Value>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The payload of `report_network_interface`: `{"interface": "wlan0"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// The interface name.
    pub interface: String,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl NetworkInterface {
    /// The interface kind as NervesHub shows it: `wifi` (`wlan*`), `ethernet` (`eth*`, `en*`),
    /// `cellular` (`wwan*`) or `unknown`.
    pub fn kind(&self) -> &'static str {
        let i = self.interface.as_str();
        if i.starts_with("wlan") {
            "wifi"
        } else if i.starts_with("eth") || i.starts_with("en") {
            "ethernet"
        } else if i.starts_with("wwan") {
            "cellular"
        } else {
            "unknown"
        }
    }
}

/// The payload of a device's `scripts/run`: the result of a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptResult {
    /// The ref of the request.
    #[serde(rename = "ref")]
    pub script_ref: String,
    /// `completed` or `error`.
    pub result: String,
    /// The captured output.
    #[serde(default)]
    pub output: String,
    /// The inspected return value (`""` on error).
    #[serde(default, rename = "return")]
    pub return_value: Value,
    /// The error reason (e.g. `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A device → server event on `device`. None of these may be answered with a `phx_reply`:
/// nerves_hub_link crashes on replies to anything but its joins.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// `fwup_progress`.
    FwupProgress(Progress),
    /// `update_progress` (the tool-agnostic alias of `fwup_progress`).
    UpdateProgress(Progress),
    /// `status_update`.
    StatusUpdate(StatusUpdate),
    /// `firmware_validated` `{}`.
    FirmwareValidated(Extra),
    /// `rebooting` `{}`: the answer to `reboot`.
    Rebooting(Extra),
    /// `connection_types`.
    ConnectionTypes(ConnectionTypes),
    /// `report_network_interface`, pushed right after the join.
    ReportNetworkInterface(NetworkInterface),
    /// `scripts/run`: a script's result.
    ScriptResult(ScriptResult),
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ChannelMessage for DeviceEvent {
    fn event(&self) -> &str {
        match self {
            Self::FwupProgress(_) => "fwup_progress",
            Self::UpdateProgress(_) => "update_progress",
            Self::StatusUpdate(_) => "status_update",
            Self::FirmwareValidated(_) => "firmware_validated",
            Self::Rebooting(_) => "rebooting",
            Self::ConnectionTypes(_) => "connection_types",
            Self::ReportNetworkInterface(_) => "report_network_interface",
            Self::ScriptResult(_) => "scripts/run",
            Self::Other { event, .. } => event,
        }
    }

    fn to_payload(&self) -> Value {
        match self {
            Self::FwupProgress(p) | Self::UpdateProgress(p) => to_payload(p),
            Self::StatusUpdate(s) => s.to_payload(),
            Self::FirmwareValidated(e) | Self::Rebooting(e) => Value::Object(e.clone()),
            Self::ConnectionTypes(c) => to_payload(c),
            Self::ReportNetworkInterface(n) => to_payload(n),
            Self::ScriptResult(r) => to_payload(r),
            Self::Other { payload, .. } => payload.clone(),
        }
    }

    fn from_parts(event: &str, payload: Value) -> Result<Self> {
        Ok(match event {
            "fwup_progress" => Self::FwupProgress(from_payload(event, payload)?),
            "update_progress" => Self::UpdateProgress(from_payload(event, payload)?),
            "status_update" => Self::StatusUpdate(StatusUpdate::from_payload(payload)?),
            "firmware_validated" => Self::FirmwareValidated(extra_from(event, payload)?),
            "rebooting" => Self::Rebooting(extra_from(event, payload)?),
            "connection_types" => Self::ConnectionTypes(from_payload(event, payload)?),
            "report_network_interface" => {
                Self::ReportNetworkInterface(from_payload(event, payload)?)
            }
            "scripts/run" => Self::ScriptResult(from_payload(event, payload)?),
            _ => Self::Other {
                event: event.to_owned(),
                payload,
            },
        })
    }
}
