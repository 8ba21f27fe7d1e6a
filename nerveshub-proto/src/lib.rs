//! The NervesHub wire protocol, sans-IO.
//!
//! NervesHub devices (nerves_hub_link 2.x) talk to the server over a WebSocket carrying
//! [Phoenix Channels](https://hexdocs.pm/phoenix/channels.html) messages. This crate is that
//! protocol with no I/O, no async runtime and no clock reads, in the style of quinn-proto:
//!
//! - **Frames**: [`Frame`] is `[join_ref, ref, topic, event, payload]`; [`Codec`] encodes and
//!   decodes it as V2 JSON text (`vsn=2.0.0`) or V3 MessagePack binary (`vsn=3.0.0`), with a
//!   bound on the frame size.
//! - **Messages**: typed payloads for the `device` topic ([`DeviceJoinParams`],
//!   [`DeviceServerEvent`], [`DeviceEvent`], [`StatusUpdate`], …), the `console` topic
//!   ([`ConsoleServerEvent`], [`ConsoleDeviceEvent`]) and the `extensions` topic
//!   ([`ExtensionsServerEvent`], [`ExtensionsDeviceEvent`]). Unknown events and keys are kept,
//!   not rejected.
//! - **Sessions**: [`ClientSession`] (joins, replies by ref, 30 s heartbeats, 5 s rejoins,
//!   1 s → 60 s reconnect backoff with jitter) and [`ServerSession`] (one socket's joins and
//!   refs; it never replies to a device's pushes on `device`). Both take time as a
//!   [`Duration`](std::time::Duration) since an origin their driver picks, and hand back
//!   frames to send, the next deadline and events.
//! - **NH1 shared-secret auth**: [`SharedSecretHeaders`] signs and verifies the `x-nh-*`
//!   upgrade headers, with the small Erlang term codec ([`Term`]) the token needs.
//!
//! # Example
//!
//! A device joins `device`, the server accepts, pushes an update, and the device reports
//! progress, all in memory:
//!
//! ```
//! use std::time::Duration;
//! use nerveshub_proto::{
//!     ChannelMessage, ClientConfig, ClientEvent, ClientSession, Codec, DeviceEvent,
//!     DeviceJoinParams, DeviceServerEvent, FirmwareMetadata, ServerConfig, ServerEvent,
//!     ServerSession, StatusUpdate, UpdatePayload, Vsn, DEVICE_TOPIC,
//! };
//!
//! let codec = Codec::new(Vsn::V2Json);
//! let mut now = Duration::ZERO;
//! let mut device = ClientSession::new(ClientConfig::default(), 42);
//! let mut server = ServerSession::new(ServerConfig::default(), now);
//!
//! // Carries frames from one side to the other through the V2 JSON codec.
//! fn pump(
//!     codec: &Codec,
//!     now: Duration,
//!     device: &mut ClientSession,
//!     server: &mut ServerSession,
//! ) -> Result<(), nerveshub_proto::Error> {
//!     while let Some(frame) = device.poll_transmit() {
//!         let wire = codec.encode(&frame)?;
//!         server.handle_frame(codec.decode(wire.as_bytes())?, now);
//!     }
//!     while let Some(frame) = server.poll_transmit() {
//!         let wire = codec.encode(&frame)?;
//!         device.handle_frame(codec.decode(wire.as_bytes())?, now);
//!     }
//!     Ok(())
//! }
//!
//! // The driver has opened the WebSocket.
//! let params = DeviceJoinParams {
//!     nerves_fw_uuid: Some("0a1b2c".into()),
//!     nerves_fw_product: Some("demo".into()),
//!     device_api_version: Some("2.3.0".into()),
//!     ..Default::default()
//! };
//! device.handle_connected(now);
//! device.join(DEVICE_TOPIC, params.to_payload());
//! pump(&codec, now, &mut device, &mut server)?;
//!
//! // The server's channel code accepts the join with `{}`.
//! let Some(ServerEvent::JoinRequest(req)) = server.poll_event() else { panic!() };
//! assert_eq!(DeviceJoinParams::from_payload(req.params.clone())?, params);
//! server.accept_join(&req, serde_json::json!({}))?;
//! pump(&codec, now, &mut device, &mut server)?;
//! assert!(matches!(device.poll_event(), Some(ClientEvent::Joined { .. })));
//!
//! // The server pushes an update.
//! let update = DeviceServerEvent::Update(Box::new(UpdatePayload {
//!     update_available: true,
//!     firmware_url: "https://example.com/f.fw".into(),
//!     firmware_meta: FirmwareMetadata::default(),
//!     size: Some(1024),
//!     checksum: None,
//!     partials_checksums: None,
//!     deployment_id: Some(1),
//!     extra: Default::default(),
//! }));
//! server.push(DEVICE_TOPIC, update.event(), update.to_payload())?;
//! pump(&codec, now, &mut device, &mut server)?;
//! let Some(ClientEvent::Message { event, payload, .. }) = device.poll_event() else { panic!() };
//! assert_eq!(DeviceServerEvent::from_parts(&event, payload)?, update);
//!
//! // The device reports; the server gets the push and must not reply to it.
//! let status = DeviceEvent::StatusUpdate(StatusUpdate::Received { extra: Default::default() });
//! device.push(DEVICE_TOPIC, status.event(), status.to_payload())?;
//! pump(&codec, now, &mut device, &mut server)?;
//! let Some(ServerEvent::Push(push)) = server.poll_event() else { panic!() };
//! assert_eq!(DeviceEvent::from_parts(&push.event, push.payload.clone())?, status);
//! assert!(server.reply(&push, &nerveshub_proto::Reply::ok(serde_json::json!({}))).is_err());
//!
//! // 30 s later the device sends a heartbeat, which the server answers.
//! now += Duration::from_secs(30);
//! assert_eq!(device.poll_timeout(), Some(now));
//! device.handle_timeout(now);
//! pump(&codec, now, &mut device, &mut server)?;
//! # Ok::<(), nerveshub_proto::Error>(())
//! ```
//!
//! # Crate features
//!
//! None: the crate is sans-IO and needs no crypto provider (NH1 tokens use RustCrypto's
//! HMAC and PBKDF2), so there is nothing to trim.
#![forbid(unsafe_code)]

mod client;
mod console;
mod error;
mod etf;
mod extensions;
mod frame;
mod messages;
mod msgpack;
mod nh1;
mod server;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{ChannelCloseReason, ClientConfig, ClientEvent, ClientSession, CloseReason};
pub use console::{
    CONSOLE_TOPIC, ConsoleData, ConsoleDeviceEvent, ConsoleJoinParams, ConsoleServerEvent,
    FileChunk, FileName, WindowSize,
};
pub use error::{Error, MsgPackError, Result};
pub use etf::Term;
pub use extensions::{
    EXTENSIONS_TOPIC, ExtensionSelection, ExtensionsDeviceEvent, ExtensionsJoinParams,
    ExtensionsServerEvent, detach_reply,
};
pub use frame::{
    Codec, DEFAULT_MAX_FRAME_LEN, Event, Frame, PHOENIX_TOPIC, Reply, ReplyStatus, Vsn, WireMessage,
};
pub use messages::{
    ArchivePayload, CONSOLE_VERSION, ChannelMessage, ConnectionTypes, DEVICE_API_VERSION,
    DEVICE_TOPIC, DeviceEvent, DeviceJoinParams, DeviceMeta, DeviceServerEvent, Extra,
    FirmwareMetadata, NetworkInterface, ON_CONNECT, Progress, PublicKeys, ScriptRequest,
    ScriptResult, StatusUpdate, UpdatePayload,
};
pub use nh1::{
    NH1_ALG, NH1_HEADER_NAMES, Nh1Alg, Nh1Digest, Nh1Policy, SharedSecretHeaders, VerifiedToken,
    nh1_derive_key, nh1_salt,
};
pub use server::{InboundPush, JoinRequest, ServerConfig, ServerEvent, ServerSession};
