//! What travels between nodes: the messages, their JSON form, and NOTIFY payloads that refer
//! to a stored message.

use nerveshub_proto::{ChannelMessage as _, DeviceServerEvent};
use serde::{Deserialize, Serialize};

use crate::device::TrustChange;

/// The longest payload sent inline; NOTIFY's limit is 8,000 bytes, channel name included.
pub(crate) const MAX_INLINE: usize = 7_900;

/// A received payload (or stored message) longer than this is dropped unread: nothing a node
/// sends comes near it.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A server → device event as it travels: its name and JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireEvent {
    /// The event name (`update`, `reboot`, …).
    pub(crate) name: String,
    /// Its payload.
    pub(crate) payload: serde_json::Value,
}

impl WireEvent {
    /// The event's wire form.
    pub(crate) fn of(event: &DeviceServerEvent) -> Self {
        WireEvent {
            name: event.event().to_owned(),
            payload: event.to_payload(),
        }
    }

    /// The event again; an error when the payload does not fit the event.
    pub(crate) fn to_event(&self) -> Result<DeviceServerEvent, BusError> {
        DeviceServerEvent::from_parts(&self.name, self.payload.clone())
            .map_err(|e| BusError::Malformed(format!("event {}: {e}", self.name)))
    }
}

/// What one node tells another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub(crate) enum Message {
    /// Push `event` to `device_id`'s socket, held by the receiver; answered by a `Reply`.
    Push {
        request: u64,
        device_id: i64,
        event: WireEvent,
    },
    /// Close `device_id`'s socket on the receiver. With `established_before`, only a socket
    /// whose join was recorded before it (a newer connection replaced it elsewhere) and no
    /// reply; without, any socket, answered by a `Reply`.
    Disconnect {
        request: u64,
        device_id: i64,
        reason: String,
        established_before: Option<i64>,
    },
    /// The answer to request `request`: whether a socket took it.
    Reply { request: u64, delivered: bool },
    /// A trust change committed by the sender (broadcast).
    Trust(TrustChange),
    /// Deployment `deployment_id` has something to do (broadcast).
    Wake { deployment_id: i64 },
}

/// A [`Message`] with its sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The sending node's id (where replies go; broadcasts from oneself are ignored).
    pub(crate) from: String,
    /// What it says.
    pub(crate) message: Message,
}

/// A NOTIFY payload, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Received {
    /// The message itself.
    Inline(Envelope),
    /// A reference to a row of `cluster_messages` holding it.
    Stored(i64),
}

/// Why a message could not be sent or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    /// The payload is not a message (logged and dropped).
    #[error("malformed cluster message: {0}")]
    Malformed(String),
    /// A message could not be written as JSON.
    #[error("encoding a cluster message: {0}")]
    Encode(#[source] serde_json::Error),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The message as JSON, and whether it fits a NOTIFY payload (else it is stored and sent
/// by reference: longer than [`MAX_INLINE`]).
pub(crate) fn encode(envelope: &Envelope) -> Result<(String, bool), BusError> {
    let text = serde_json::to_string(envelope).map_err(BusError::Encode)?;
    let inline = text.len() <= MAX_INLINE;
    Ok((text, inline))
}

/// The payload that refers to stored message `id`.
pub(crate) fn reference(id: i64) -> String {
    format!("@{id}")
}

/// Reads a NOTIFY payload: a message or a reference to a stored one.
pub(crate) fn decode(payload: &str) -> Result<Received, BusError> {
    if let Some(id) = payload.strip_prefix('@') {
        return id
            .parse::<i64>()
            .map(Received::Stored)
            .map_err(|_| BusError::Malformed(format!("bad reference {:?}", truncated(payload))));
    }
    decode_stored(payload).map(Received::Inline)
}

/// Reads a stored message (never another reference).
pub(crate) fn decode_stored(payload: &str) -> Result<Envelope, BusError> {
    if payload.len() > MAX_MESSAGE {
        return Err(BusError::Malformed(format!(
            "{} bytes, more than {MAX_MESSAGE}",
            payload.len()
        )));
    }
    serde_json::from_str(payload)
        .map_err(|e| BusError::Malformed(format!("{e} in {:?}", truncated(payload))))
}

/// At most 80 characters of `text`, for a log line.
fn truncated(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::super::node_channel;
    use super::*;

    fn envelope(message: Message) -> Envelope {
        Envelope {
            from: "node-a".into(),
            message,
        }
    }

    #[test]
    fn messages_round_trip() {
        let event = DeviceServerEvent::Reboot(Default::default());
        let messages = [
            Message::Push {
                request: 7,
                device_id: 42,
                event: WireEvent::of(&event),
            },
            Message::Disconnect {
                request: 8,
                device_id: 42,
                reason: "reconnect requested".into(),
                established_before: Some(1_700_000_000_000),
            },
            Message::Reply {
                request: 7,
                delivered: true,
            },
            Message::Trust(TrustChange::CaAdded {
                der: vec![0x30, 0x82, 0x01],
            }),
            Message::Trust(TrustChange::CertificateRemoved {
                fingerprint: "AB:CD".into(),
            }),
            Message::Wake { deployment_id: 3 },
        ];
        for message in messages {
            let sent = envelope(message);
            let (text, inline) = encode(&sent).unwrap();
            assert!(inline, "{text}");
            assert_eq!(decode(&text).unwrap(), Received::Inline(sent));
        }
        let Message::Push { event: wire, .. } = envelope(Message::Push {
            request: 1,
            device_id: 1,
            event: WireEvent::of(&event),
        })
        .message
        else {
            unreachable!("built as a push");
        };
        assert_eq!(wire.to_event().unwrap(), event);
    }

    #[test]
    fn long_messages_go_by_reference() {
        let event = DeviceServerEvent::Other {
            event: "big".into(),
            payload: serde_json::json!({"blob": "x".repeat(MAX_INLINE)}),
        };
        let sent = envelope(Message::Push {
            request: 1,
            device_id: 2,
            event: WireEvent::of(&event),
        });
        let (text, inline) = encode(&sent).unwrap();
        assert!(!inline);
        assert!(text.len() > MAX_INLINE);
        assert_eq!(decode(&reference(99)).unwrap(), Received::Stored(99));
        assert_eq!(decode_stored(&text).unwrap(), sent);
        // The NOTIFY payload limit with the longest channel name.
        assert!(MAX_INLINE + node_channel(&"n".repeat(48)).len() < 8000);
        assert!(node_channel(&"n".repeat(48)).len() <= 63);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "@",
            "@x1",
            "{",
            "not json",
            r#"{"from":"a"}"#,
            r#"{"from":"a","message":{"type":"launch","body":{}}}"#,
            r#"{"from":"a","message":{"type":"push","body":{"request":-1}}}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(decode_stored("@1").is_err());
        let huge = format!("\"{}\"", "y".repeat(MAX_MESSAGE));
        assert!(decode_stored(&huge).is_err());
        let wire = WireEvent {
            name: "update".into(),
            payload: serde_json::json!("not an update"),
        };
        assert!(wire.to_event().is_err());
    }
}
