//! Phoenix Channels frames: `[join_ref, ref, topic, event, payload]`, as V2 JSON text or
//! V3 MessagePack binary.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::msgpack;

/// The default bound on one encoded frame: 1 MiB. NervesHub's largest messages (health
/// reports, 1 KiB console file chunks, update pushes with per-MiB checksums) are far smaller.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// The topic Phoenix uses for socket-level messages (heartbeats).
pub const PHOENIX_TOPIC: &str = "phoenix";

/// The event of a frame. The six Phoenix control events have their own variants; everything
/// else (`update`, `status_update`, `health:report`, …) is [`Event::Custom`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// `phx_join`: a request to join a topic; the payload holds the join params.
    Join,
    /// `phx_reply`: the answer to a message with a ref; payload `{"status", "response"}`.
    Reply,
    /// `phx_leave`: a request to leave a topic.
    Leave,
    /// `phx_close`: the server closed the channel.
    Close,
    /// `phx_error`: the channel crashed on the server.
    Error,
    /// `heartbeat`: the socket keep-alive, on topic `phoenix`.
    Heartbeat,
    /// Any other event, kept verbatim.
    Custom(String),
}

impl Event {
    /// The event's name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Event::Join => "phx_join",
            Event::Reply => "phx_reply",
            Event::Leave => "phx_leave",
            Event::Close => "phx_close",
            Event::Error => "phx_error",
            Event::Heartbeat => "heartbeat",
            Event::Custom(s) => s,
        }
    }
}

impl From<&str> for Event {
    fn from(s: &str) -> Self {
        match s {
            "phx_join" => Event::Join,
            "phx_reply" => Event::Reply,
            "phx_leave" => Event::Leave,
            "phx_close" => Event::Close,
            "phx_error" => Event::Error,
            "heartbeat" => Event::Heartbeat,
            other => Event::Custom(other.to_owned()),
        }
    }
}

impl From<String> for Event {
    fn from(s: String) -> Self {
        match Event::from(s.as_str()) {
            Event::Custom(_) => Event::Custom(s),
            known => known,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of a `phx_reply`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyStatus {
    /// `"ok"`.
    Ok,
    /// `"error"`.
    Error,
    /// Any other status string, kept verbatim.
    Other(String),
}

impl ReplyStatus {
    /// The status string on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
            ReplyStatus::Other(s) => s,
        }
    }
}

impl From<&str> for ReplyStatus {
    fn from(s: &str) -> Self {
        match s {
            "ok" => ReplyStatus::Ok,
            "error" => ReplyStatus::Error,
            other => ReplyStatus::Other(other.to_owned()),
        }
    }
}

/// The payload of a `phx_reply`: `{"status": "ok"|"error", "response": …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Whether the request succeeded.
    pub status: ReplyStatus,
    /// The response value (`{}` for NervesHub's device join; an array of extension names for
    /// the `extensions` join; `"detach"` for a refused extension push).
    pub response: Value,
}

impl Reply {
    /// An `ok` reply with the given response.
    pub fn ok(response: Value) -> Self {
        Reply {
            status: ReplyStatus::Ok,
            response,
        }
    }

    /// An `error` reply with the given response.
    pub fn error(response: Value) -> Self {
        Reply {
            status: ReplyStatus::Error,
            response,
        }
    }

    /// Reads a reply from a `phx_reply` payload. A missing `response` reads as `{}`.
    pub fn from_payload(payload: &Value) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidPayload {
            event: "phx_reply".into(),
            source: serde::de::Error::custom(reason),
        };
        let obj = payload.as_object().ok_or_else(|| bad("not an object"))?;
        let status = obj
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing status"))?;
        let response = obj
            .get("response")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        Ok(Reply {
            status: ReplyStatus::from(status),
            response,
        })
    }

    /// The reply as a `phx_reply` payload.
    pub fn to_payload(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("response".into(), self.response.clone());
        obj.insert(
            "status".into(),
            Value::String(self.status.as_str().to_owned()),
        );
        Value::Object(obj)
    }
}

/// One Phoenix Channels message: `[join_ref, ref, topic, event, payload]`.
///
/// `join_ref` and `msg_ref` are strings or absent (`null`). Pushes from the server carry no
/// `ref`; older Slipstream clients send no `join_ref` after the join, which is accepted.
///
/// ```
/// use nerveshub_proto::{Event, Frame};
///
/// let f = Frame::from_json(br#"["1","2","device","status_update",{"status":"received"}]"#)?;
/// assert_eq!(f.join_ref.as_deref(), Some("1"));
/// assert_eq!(f.event, Event::Custom("status_update".into()));
/// assert_eq!(Frame::heartbeat("3").to_json(), r#"[null,"3","phoenix","heartbeat",{}]"#);
/// # Ok::<(), nerveshub_proto::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The ref of the `phx_join` that opened the channel this message belongs to.
    pub join_ref: Option<String>,
    /// The message's own ref, echoed by the reply to it.
    pub msg_ref: Option<String>,
    /// The topic, e.g. `device`, `console`, `extensions` or `phoenix`.
    pub topic: String,
    /// The event.
    pub event: Event,
    /// The payload; a JSON object for every NervesHub message.
    pub payload: Value,
}

impl Frame {
    /// A frame with every field given.
    pub fn new(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: impl Into<String>,
        event: impl Into<Event>,
        payload: Value,
    ) -> Self {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }

    /// A `phx_join` for `topic` whose ref is also its join ref.
    pub fn join(join_ref: impl Into<String>, topic: impl Into<String>, params: Value) -> Self {
        let r = join_ref.into();
        Frame::new(Some(r.clone()), Some(r), topic, Event::Join, params)
    }

    /// A heartbeat: `[null, ref, "phoenix", "heartbeat", {}]`.
    pub fn heartbeat(msg_ref: impl Into<String>) -> Self {
        Frame::new(
            None,
            Some(msg_ref.into()),
            PHOENIX_TOPIC,
            Event::Heartbeat,
            Value::Object(Map::new()),
        )
    }

    /// A `phx_reply` answering the message with the given refs.
    pub fn reply(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: impl Into<String>,
        reply: &Reply,
    ) -> Self {
        Frame::new(join_ref, msg_ref, topic, Event::Reply, reply.to_payload())
    }

    /// If this is a `phx_reply`, its decoded payload.
    pub fn as_reply(&self) -> Option<Result<Reply>> {
        (self.event == Event::Reply).then(|| Reply::from_payload(&self.payload))
    }

    /// The frame as the V2 JSON array.
    pub fn to_value(&self) -> Value {
        let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        Value::Array(vec![
            opt(&self.join_ref),
            opt(&self.msg_ref),
            Value::String(self.topic.clone()),
            Value::String(self.event.as_str().to_owned()),
            self.payload.clone(),
        ])
    }

    /// Reads a frame from the decoded 5-element array. Refs may be strings, integers (as the
    /// MessagePack serializer may send them; they are turned into strings) or `null`.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Array(items) = value else {
            return Err(Error::MalformedFrame("not an array"));
        };
        let Ok([join_ref, msg_ref, topic, event, payload]) = <[Value; 5]>::try_from(items) else {
            return Err(Error::MalformedFrame("not a 5-element array"));
        };
        let as_ref = |v: Value, what: &'static str| match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            _ => Err(Error::MalformedFrame(what)),
        };
        let join_ref = as_ref(join_ref, "join_ref is not a string, integer or null")?;
        let msg_ref = as_ref(msg_ref, "ref is not a string, integer or null")?;
        let Value::String(topic) = topic else {
            return Err(Error::MalformedFrame("topic is not a string"));
        };
        let Value::String(event) = event else {
            return Err(Error::MalformedFrame("event is not a string"));
        };
        Ok(Frame {
            join_ref,
            msg_ref,
            topic,
            event: Event::from(event),
            payload,
        })
    }

    /// Encodes the frame as V2 JSON text (no size check; see [`Codec`] for a bounded encoder).
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// Decodes V2 JSON text, bounded by [`DEFAULT_MAX_FRAME_LEN`].
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Codec::new(Vsn::V2Json).decode(bytes)
    }

    /// Encodes the frame as a V3 MessagePack array (no size check).
    pub fn to_msgpack(&self) -> Vec<u8> {
        msgpack::encode(&self.to_value())
    }

    /// Decodes V3 MessagePack, bounded by [`DEFAULT_MAX_FRAME_LEN`].
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self> {
        Codec::new(Vsn::V3MsgPack).decode(bytes)
    }
}

/// The serializer a socket uses, chosen by the `vsn` query parameter of the WebSocket URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Vsn {
    /// `vsn=2.0.0`: JSON arrays in WebSocket text frames (what nerves_hub_link uses).
    #[default]
    V2Json,
    /// `vsn=3.0.0`: MessagePack arrays in WebSocket binary frames.
    V3MsgPack,
}

impl Vsn {
    /// The `vsn` value a client puts in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Vsn::V2Json => "2.0.0",
            Vsn::V3MsgPack => "3.0.0",
        }
    }

    /// Chooses the serializer for a `vsn` query value as Phoenix does (`~> 2.0.0` is JSON,
    /// `~> 3.0.0` is MessagePack). A missing `vsn` means 1.0.0, which no NervesHub endpoint
    /// serves, so it is refused.
    pub fn from_query(vsn: Option<&str>) -> Result<Self> {
        let v = vsn.unwrap_or("1.0.0");
        let parts: Vec<&str> = v.split('.').collect();
        let numeric =
            |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
        match parts.as_slice() {
            [major, minor, patch] if numeric(major) && numeric(minor) && numeric(patch) => {
                match (major.parse::<u32>(), minor.parse::<u32>()) {
                    (Ok(2), Ok(0)) => Ok(Vsn::V2Json),
                    (Ok(3), Ok(0)) => Ok(Vsn::V3MsgPack),
                    _ => Err(Error::UnsupportedVsn(v.to_owned())),
                }
            }
            _ => Err(Error::UnsupportedVsn(v.to_owned())),
        }
    }
}

/// One encoded WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A text message (V2 JSON).
    Text(String),
    /// A binary message (V3 MessagePack).
    Binary(Vec<u8>),
}

impl WireMessage {
    /// The message's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            WireMessage::Text(s) => s.as_bytes(),
            WireMessage::Binary(b) => b,
        }
    }
}

/// Encodes and decodes frames for one serializer with a bound on the frame size.
///
/// ```
/// use nerveshub_proto::{Codec, Frame, Vsn, WireMessage};
///
/// // The serializer comes from the `vsn` query parameter of the WebSocket URL.
/// let codec = Codec::new(Vsn::from_query(Some("3.0.0"))?).with_max_frame_len(64 * 1024);
/// let wire = codec.encode(&Frame::heartbeat("1"))?;
/// assert!(matches!(wire, WireMessage::Binary(_)));
/// assert_eq!(codec.decode(wire.as_bytes())?, Frame::heartbeat("1"));
/// # Ok::<(), nerveshub_proto::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    vsn: Vsn,
    max_frame_len: usize,
}

impl Codec {
    /// A codec for `vsn` bounded by [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new(vsn: Vsn) -> Self {
        Codec {
            vsn,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// The same codec with another bound on the encoded frame size, in bytes.
    pub fn with_max_frame_len(mut self, max_frame_len: usize) -> Self {
        self.max_frame_len = max_frame_len;
        self
    }

    /// The serializer.
    pub fn vsn(&self) -> Vsn {
        self.vsn
    }

    /// The bound on the encoded frame size, in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Encodes a frame; refuses frames larger than the bound.
    pub fn encode(&self, frame: &Frame) -> Result<WireMessage> {
        let msg = match self.vsn {
            Vsn::V2Json => WireMessage::Text(frame.to_json()),
            Vsn::V3MsgPack => WireMessage::Binary(frame.to_msgpack()),
        };
        let len = msg.as_bytes().len();
        if len > self.max_frame_len {
            return Err(Error::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(msg)
    }

    /// Decodes one WebSocket message's bytes; refuses inputs larger than the bound before
    /// parsing them.
    pub fn decode(&self, bytes: &[u8]) -> Result<Frame> {
        if bytes.len() > self.max_frame_len {
            return Err(Error::FrameTooLarge {
                len: bytes.len(),
                max: self.max_frame_len,
            });
        }
        let value = match self.vsn {
            Vsn::V2Json => serde_json::from_slice::<Value>(bytes).map_err(Error::Json)?,
            Vsn::V3MsgPack => msgpack::decode(bytes)?,
        };
        Frame::from_value(value)
    }
}
