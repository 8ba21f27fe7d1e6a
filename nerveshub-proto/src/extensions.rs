//! Typed messages of the `extensions` topic (health, geo, local_shell, network_identity, …).
//!
//! Negotiation: the server pushes `extensions:get` on `device`; the device joins `extensions`
//! with `{name: version}`; the join reply's response is the array of names to attach; the
//! device pushes `<name>:attached` (or `<name>:error {reason}`) for each. Extension messages
//! are `<name>:<event>` (e.g. `health:report`, `geo:location:update`). A push for an extension
//! the server does not allow is answered `{"status":"error","response":"detach"}` — the one
//! reply to a device push that nerves_hub_link acts on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::frame::Reply;
use crate::messages::{Extra, extra_from};

/// The `extensions` topic.
pub const EXTENSIONS_TOPIC: &str = "extensions";

/// The params of a device's `phx_join` on `extensions`: each extension name mapped to its
/// version, e.g. `{"health": "0.0.1", "geo": "0.0.1"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExtensionsJoinParams {
    /// Name → version (a string for every known client; other values are kept).
    pub versions: Extra,
}

impl ExtensionsJoinParams {
    /// Reads the params from a `phx_join` payload.
    pub fn from_payload(payload: Value) -> Result<Self> {
        Ok(ExtensionsJoinParams {
            versions: extra_from("phx_join", payload)?,
        })
    }

    /// The params as a `phx_join` payload.
    pub fn to_payload(&self) -> Value {
        Value::Object(self.versions.clone())
    }

    /// The join reply that attaches `names`.
    pub fn reply_attach(names: &[String]) -> Reply {
        Reply::ok(Value::Array(
            names.iter().cloned().map(Value::String).collect(),
        ))
    }

    /// The names to attach from an `ok` join reply's response (non-strings are skipped).
    pub fn names_from_reply(response: &Value) -> Vec<String> {
        response
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The reply that tells a device to detach the extension that pushed.
pub fn detach_reply() -> Reply {
    Reply::error(Value::String("detach".into()))
}

/// Which extensions an `attach`/`detach` names: `"all"`, a list, or one name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionSelection {
    /// `"all"`.
    All,
    /// A list of names (one name on the wire reads as a one-element list).
    Names(Vec<String>),
}

impl ExtensionSelection {
    fn from_payload(event: &str, payload: Value) -> Result<Self> {
        // Read by hand (a string or a list): the refusal is a deserializer error of our own.
        let bad = |r: &str| Error::InvalidPayload {
            event: event.to_owned(),
            source: serde::de::Error::custom(r),
        };
        match payload.get("extensions") {
            Some(Value::String(s)) if s == "all" => Ok(Self::All),
            Some(Value::String(s)) => Ok(Self::Names(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("extension name is not a string"))
                })
                .collect::<Result<_>>()
                .map(Self::Names),
            _ => Err(bad("missing extensions")),
        }
    }

    fn to_payload(&self) -> Value {
        let v = match self {
            Self::All => Value::String("all".into()),
            Self::Names(n) => Value::Array(n.iter().cloned().map(Value::String).collect()),
        };
        let mut m = Map::new();
        m.insert("extensions".into(), v);
        Value::Object(m)
    }
}

/// Splits `<name>:<event>` at the first colon.
fn split(event: &str) -> Option<(&str, &str)> {
    event
        .split_once(':')
        .filter(|(n, e)| !n.is_empty() && !e.is_empty())
}

/// A server → device event on `extensions`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExtensionsServerEvent {
    /// `attach`.
    Attach(ExtensionSelection),
    /// `detach`.
    Detach(ExtensionSelection),
    /// `<name>:<event>`, e.g. `health:check`, `geo:location:request`,
    /// `local_shell:shell_input`.
    Extension {
        /// The extension name.
        name: String,
        /// The event within the extension.
        event: String,
        /// The payload.
        payload: Value,
    },
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ExtensionsServerEvent {
    /// The event name on the wire, including `<name>:` for extension messages.
    pub fn event(&self) -> String {
        match self {
            Self::Attach(_) => "attach".to_owned(),
            Self::Detach(_) => "detach".to_owned(),
            Self::Extension { name, event, .. } => format!("{name}:{event}"),
            Self::Other { event, .. } => event.clone(),
        }
    }

    /// The payload.
    pub fn to_payload(&self) -> Value {
        match self {
            Self::Attach(s) | Self::Detach(s) => s.to_payload(),
            Self::Extension { payload, .. } | Self::Other { payload, .. } => payload.clone(),
        }
    }

    /// Reads an event from its wire name and payload.
    pub fn from_parts(event: &str, payload: Value) -> Result<Self> {
        Ok(match event {
            "attach" => Self::Attach(ExtensionSelection::from_payload(event, payload)?),
            "detach" => Self::Detach(ExtensionSelection::from_payload(event, payload)?),
            _ => match split(event) {
                Some((name, ev)) => Self::Extension {
                    name: name.to_owned(),
                    event: ev.to_owned(),
                    payload,
                },
                None => Self::Other {
                    event: event.to_owned(),
                    payload,
                },
            },
        })
    }
}

/// A device → server event on `extensions`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExtensionsDeviceEvent {
    /// `<name>:attached` `{}`.
    Attached {
        /// The extension name.
        name: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `<name>:detached` `{}`.
    Detached {
        /// The extension name.
        name: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `<name>:error` `{"reason": "start_failure" | "unknown_extension"}`.
    Error {
        /// The extension name.
        name: String,
        /// The reason.
        reason: String,
        /// Other keys, kept verbatim.
        extra: Extra,
    },
    /// `<name>:<event>`, e.g. `health:report`, `geo:location:update`, `logging:send`.
    Extension {
        /// The extension name.
        name: String,
        /// The event within the extension.
        event: String,
        /// The payload.
        payload: Value,
    },
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ExtensionsDeviceEvent {
    /// The event name on the wire.
    pub fn event(&self) -> String {
        match self {
            Self::Attached { name, .. } => format!("{name}:attached"),
            Self::Detached { name, .. } => format!("{name}:detached"),
            Self::Error { name, .. } => format!("{name}:error"),
            Self::Extension { name, event, .. } => format!("{name}:{event}"),
            Self::Other { event, .. } => event.clone(),
        }
    }

    /// The payload.
    pub fn to_payload(&self) -> Value {
        match self {
            Self::Attached { extra, .. } | Self::Detached { extra, .. } => {
                Value::Object(extra.clone())
            }
            Self::Error { reason, extra, .. } => {
                let mut m = extra.clone();
                m.insert("reason".into(), Value::String(reason.clone()));
                Value::Object(m)
            }
            Self::Extension { payload, .. } | Self::Other { payload, .. } => payload.clone(),
        }
    }

    /// Reads an event from its wire name and payload.
    pub fn from_parts(event: &str, payload: Value) -> Result<Self> {
        let Some((name, ev)) = split(event) else {
            return Ok(Self::Other {
                event: event.to_owned(),
                payload,
            });
        };
        let name = name.to_owned();
        Ok(match ev {
            "attached" => Self::Attached {
                name,
                extra: extra_from(event, payload)?,
            },
            "detached" => Self::Detached {
                name,
                extra: extra_from(event, payload)?,
            },
            "error" => {
                let mut extra = extra_from(event, payload)?;
                let reason = match extra.remove("reason") {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                Self::Error {
                    name,
                    reason,
                    extra,
                }
            }
            _ => Self::Extension {
                name,
                event: ev.to_owned(),
                payload,
            },
        })
    }

    /// The extension the event belongs to, if any.
    pub fn extension(&self) -> Option<&str> {
        match self {
            Self::Attached { name, .. }
            | Self::Detached { name, .. }
            | Self::Error { name, .. }
            | Self::Extension { name, .. } => Some(name),
            Self::Other { .. } => None,
        }
    }
}
