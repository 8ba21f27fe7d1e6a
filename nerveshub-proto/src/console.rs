//! Typed messages of the `console` topic (remote IEx and file transfer).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::messages::{ChannelMessage, Extra, extra_from, from_payload, to_payload};

/// The `console` topic, joined by devices with remote IEx enabled.
pub const CONSOLE_TOPIC: &str = "console";

/// The params of a device's `phx_join` on `console`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsoleJoinParams {
    /// The console protocol version (`2.0.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_version: Option<String>,
    /// The client's API version (`2.3.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_api_version: Option<String>,
    /// Other keys (older links sent the full device params here), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Terminal data: `{"data": text}` (`dn` keystrokes, `up` output).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConsoleData {
    /// The text.
    pub data: String,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `window_size`: `{"height", "width"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WindowSize {
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `file-data/start` and `file-data/stop`: `{"filename"}`.
///
/// nerves_hub_link writes uploads to `<data_path>/<filename>` without checking the name; a
/// receiver must refuse names with path separators or `..`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileName {
    /// The file name.
    pub filename: String,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FileName {
    /// Whether the name is a plain file name that is safe to create inside a directory: not
    /// empty, not `.` or `..`, no `/`, `\` or NUL. nerves_hub_link writes uploads to
    /// `<data_path>/<filename>` without checking the name; receivers should check it.
    ///
    /// ```
    /// use nerveshub_proto::FileName;
    ///
    /// let name = |s: &str| FileName { filename: s.into(), extra: Default::default() };
    /// assert!(name("notes.txt").is_safe());
    /// assert!(!name("../etc/passwd").is_safe());
    /// ```
    pub fn is_safe(&self) -> bool {
        is_safe_file_name(&self.filename)
    }
}

fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// `file-data`: one chunk of a file, base64.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileChunk {
    /// The file name.
    pub filename: String,
    /// The chunk index (sent by devices; browsers' uploads may omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    /// The chunk's bytes, base64 (at most 1 KiB decoded from nerves_hub_link).
    pub data: String,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FileChunk {
    /// Whether [`filename`](Self::filename) is safe to create inside a directory (see
    /// [`FileName::is_safe`]).
    pub fn is_safe(&self) -> bool {
        is_safe_file_name(&self.filename)
    }
}

/// A server → device event on `console`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConsoleServerEvent {
    /// `dn`: keystrokes for IEx.
    Dn(ConsoleData),
    /// `window_size`: the terminal size.
    WindowSize(WindowSize),
    /// `restart` `{}`: restart IEx.
    Restart(Extra),
    /// `file-data/start`: an upload begins.
    FileDataStart(FileName),
    /// `file-data`: an upload chunk.
    FileData(FileChunk),
    /// `file-data/stop`: an upload ends.
    FileDataStop(FileName),
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ChannelMessage for ConsoleServerEvent {
    fn event(&self) -> &str {
        match self {
            Self::Dn(_) => "dn",
            Self::WindowSize(_) => "window_size",
            Self::Restart(_) => "restart",
            Self::FileDataStart(_) => "file-data/start",
            Self::FileData(_) => "file-data",
            Self::FileDataStop(_) => "file-data/stop",
            Self::Other { event, .. } => event,
        }
    }

    fn to_payload(&self) -> Value {
        match self {
            Self::Dn(d) => to_payload(d),
            Self::WindowSize(w) => to_payload(w),
            Self::Restart(e) => Value::Object(e.clone()),
            Self::FileDataStart(f) | Self::FileDataStop(f) => to_payload(f),
            Self::FileData(c) => to_payload(c),
            Self::Other { payload, .. } => payload.clone(),
        }
    }

    fn from_parts(event: &str, payload: Value) -> Result<Self> {
        Ok(match event {
            "dn" => Self::Dn(from_payload(event, payload)?),
            "window_size" => Self::WindowSize(from_payload(event, payload)?),
            "restart" => Self::Restart(extra_from(event, payload)?),
            "file-data/start" => Self::FileDataStart(from_payload(event, payload)?),
            "file-data" => Self::FileData(from_payload(event, payload)?),
            "file-data/stop" => Self::FileDataStop(from_payload(event, payload)?),
            _ => Self::Other {
                event: event.to_owned(),
                payload,
            },
        })
    }
}

/// A device → server event on `console`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConsoleDeviceEvent {
    /// `up`: terminal output.
    Up(ConsoleData),
    /// `file-data/start`: a download to the browser begins.
    FileDataStart(FileName),
    /// `file-data`: a download chunk.
    FileData(FileChunk),
    /// `file-data/stop`: a download ends.
    FileDataStop(FileName),
    /// Any other event, kept verbatim.
    Other {
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl ChannelMessage for ConsoleDeviceEvent {
    fn event(&self) -> &str {
        match self {
            Self::Up(_) => "up",
            Self::FileDataStart(_) => "file-data/start",
            Self::FileData(_) => "file-data",
            Self::FileDataStop(_) => "file-data/stop",
            Self::Other { event, .. } => event,
        }
    }

    fn to_payload(&self) -> Value {
        match self {
            Self::Up(d) => to_payload(d),
            Self::FileDataStart(f) | Self::FileDataStop(f) => to_payload(f),
            Self::FileData(c) => to_payload(c),
            Self::Other { payload, .. } => payload.clone(),
        }
    }

    fn from_parts(event: &str, payload: Value) -> Result<Self> {
        Ok(match event {
            "up" => Self::Up(from_payload(event, payload)?),
            "file-data/start" => Self::FileDataStart(from_payload(event, payload)?),
            "file-data" => Self::FileData(from_payload(event, payload)?),
            "file-data/stop" => Self::FileDataStop(from_payload(event, payload)?),
            _ => Self::Other {
                event: event.to_owned(),
                payload,
            },
        })
    }
}
