//! The device WebSocket: `/socket/websocket` and `/device-socket/websocket`, each accepting
//! both kinds of device authentication as NervesHub's two mounts do, and the loop that drives
//! one socket's [`ServerSession`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use nerveshub_proto::{
    ChannelMessage, Codec, DEFAULT_MAX_FRAME_LEN, DEVICE_TOPIC, DeviceServerEvent, Frame,
    ServerConfig, ServerEvent, ServerSession, Vsn, WireMessage,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::auth::{self, AuthKind, Refusal};
use super::channel::{DeviceChannel, JoinOutcome};
use super::registry::DeviceCommand;
use crate::api::DeviceError;
use crate::db::DeviceRef;
use crate::device_endpoint::PeerCertificates;
use crate::observability::{self, RefusalReason};
use crate::state::AppState;

pub(crate) use crate::api::{
    ERROR_REASON_HEADER, NO_CREDENTIALS_REASON, UNAVAILABLE_REASON, with_date,
};

/// WebSocket read buffer, kept for the socket's life: small, as most device frames are a few
/// hundred bytes (a larger frame grows it). 8 KiB here was a fifth of an idle device's memory.
const READ_BUFFER: usize = 2 * 1024;
/// Commands (pushes) waiting for one socket.
const COMMAND_QUEUE: usize = 16;
/// How long the closing frame may take to send before the socket is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Joins and pushes on other topics than `device` that are accepted and then ignored: a
/// device with remote IEx joins `console`, and one told to join `extensions` joins it.
const QUIET_TOPICS: [&str; 2] = ["console", "extensions"];

/// `GET /socket/websocket` and `GET /device-socket/websocket`.
pub(crate) async fn websocket(
    State(state): State<AppState>,
    certs: Option<Extension<PeerCertificates>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return with_date(rejection.into_response()),
    };
    let vsn = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("vsn="));
    let Ok(vsn) = Vsn::from_query(vsn) else {
        return DeviceError::UnsupportedVsn.into_response();
    };
    let chain = certs.map(|Extension(c)| c.0).unwrap_or_default();
    let (device, kind) = match auth::authenticate(&state, &chain, &headers).await {
        Ok(found) => found,
        Err(Refusal::NoCredentials) => {
            tracing::info!(reason = NO_CREDENTIALS_REASON, "device connection refused");
            observability::device_refused(RefusalReason::NoCredentials);
            return DeviceError::NoCredentials.into_response();
        }
        Err(Refusal::Invalid(why)) => {
            tracing::info!(reason = %why, "device connection refused");
            observability::device_refused(RefusalReason::Credentials);
            return DeviceError::Unauthorized.into_response();
        }
        Err(Refusal::Unavailable(e)) => {
            // Logged with its cause by `observability`, as every server error is.
            observability::device_refused(RefusalReason::Unavailable);
            return DeviceError::Unavailable(e).into_response();
        }
    };
    // Firmware URLs handed to this socket use the address the device reached us on.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    tracing::info!(device = %device.identifier, auth = ?kind, vsn = vsn.as_str(), "device connected");
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(DEFAULT_MAX_FRAME_LEN)
        .max_frame_size(DEFAULT_MAX_FRAME_LEN)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "device WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            let connection = Connection {
                kind,
                peer: peer.map(|Extension(ConnectInfo(addr))| addr),
            };
            run(state, device, connection, Codec::new(vsn), host, socket)
        })
}

/// Why a socket loop ended.
#[derive(Debug)]
enum Ended {
    /// The device closed the socket or the connection dropped.
    ByDevice,
    /// We close it with this code and reason.
    Close(u16, &'static str),
}

/// How a socket reached us: the device's authentication and the peer's address.
#[derive(Debug, Clone, Copy)]
struct Connection {
    kind: AuthKind,
    peer: Option<SocketAddr>,
}

/// Drives one device socket until it closes.
async fn run(
    state: AppState,
    device: DeviceRef,
    connection: Connection,
    codec: Codec,
    host: Option<String>,
    mut socket: WebSocket,
) {
    let (tx, mut commands) = mpsc::channel(COMMAND_QUEUE);
    let registry = state.devices.registry.clone();
    let Some(registration) = registry.register(device.id, tx) else {
        let _ = socket
            .send(close_message(1012, "server shutting down"))
            .await;
        return;
    };
    let identifier = device.identifier.clone();
    let device_id = device.id;
    let mut stopping = registry.stopping();
    let origin = Instant::now();
    let mut session = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    let kind = connection.kind;
    let mut channel =
        DeviceChannel::new(state.clone(), device).with_connection(connection.peer, kind);
    let mut acks: Vec<oneshot::Sender<bool>> = Vec::new();

    let ended = 'socket: loop {
        // Let the channel act on what the session reported, then send what it queued.
        while let Some(event) = session.poll_event() {
            // Boxed: the channel's database work is a large future, and inlined it would size
            // every idle socket's task for it.
            if let Some(end) = Box::pin(handle_event(
                &mut session,
                &mut channel,
                &state,
                host.as_deref(),
                event,
            ))
            .await
            {
                break 'socket end;
            }
        }
        while let Some(frame) = session.poll_transmit() {
            if let Err(end) = send_frame(&mut socket, &codec, &frame).await {
                break 'socket end;
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(true);
        }
        let deadline = tokio::time::Instant::from_std(origin + session.poll_timeout());
        tokio::select! {
            received = socket.recv() => {
                let bytes = match received {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break Ended::ByDevice,
                    Some(Err(e)) => {
                        tracing::debug!(device = %identifier, error = %e, "device socket error");
                        break Ended::ByDevice;
                    }
                };
                observability::message_in();
                match codec.decode(&bytes) {
                    Ok(frame) => session.handle_frame(frame, origin.elapsed()),
                    Err(e) => tracing::debug!(device = %identifier, error = %e, "undecodable frame dropped"),
                }
                channel.heard_from();
            }
            command = commands.recv() => match command {
                Some(DeviceCommand::Push { event, ack }) => {
                    let event = for_host(&state, *event, host.as_deref());
                    if session.is_joined(DEVICE_TOPIC)
                        && session.push(DEVICE_TOPIC, event.event(), event.to_payload()).is_ok()
                    {
                        acks.push(ack);
                    } else {
                        let _ = ack.send(false);
                    }
                }
                Some(DeviceCommand::Disconnect(reason)) => break Ended::Close(1000, reason),
                Some(DeviceCommand::GoingAway) => break Ended::Close(1001, "server shutting down"),
                Some(DeviceCommand::Replaced { established_before }) => {
                    // Only an older join gives way: one recorded later is the newer connection.
                    if channel.joined_at().is_some_and(|at| at < established_before) {
                        break Ended::Close(1000, "replaced by a new connection");
                    }
                }
                None => break Ended::Close(1000, "replaced by a new connection"),
            },
            () = tokio::time::sleep_until(deadline) => session.handle_timeout(origin.elapsed()),
            () = stopped(&mut stopping) => break Ended::Close(1001, "server shutting down"),
        }
    };
    for ack in acks.drain(..) {
        let _ = ack.send(false);
    }
    if let Ended::Close(code, reason) = ended {
        // A peer that reads nothing must not keep the socket open.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close_message(code, reason))).await;
    }
    // The descriptor is released before anything else: during a reconnect storm the closed
    // sockets must not wait on the database while the new ones need descriptors.
    drop(socket);
    if registration.unregister() {
        // Only the device's current socket speaks for it. One that never joined ends the
        // connection an older (replaced) socket joined: any established until now; a newer
        // socket registers, so joins, only after this.
        let up_to = channel.joined_at().unwrap_or_else(crate::db::now_ms);
        state.devices.presence.disconnected(device_id, up_to);
    }
    tracing::info!(device = %identifier, auth = ?kind, why = ?ended, "device disconnected");
    drop(registration);
}

/// Resolves once the server is stopping.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn send_frame(socket: &mut WebSocket, codec: &Codec, frame: &Frame) -> Result<(), Ended> {
    let message = match codec.encode(frame) {
        Ok(WireMessage::Text(text)) => Message::Text(text.into()),
        Ok(WireMessage::Binary(bytes)) => Message::Binary(bytes.into()),
        Err(e) => {
            tracing::warn!(error = %e, event = frame.event.as_str(), "frame not sent");
            return Ok(());
        }
    };
    observability::message_out();
    socket.send(message).await.map_err(|_| Ended::ByDevice)
}

/// An `update` push with its firmware URL on the host the device connected to.
fn for_host(state: &AppState, event: DeviceServerEvent, host: Option<&str>) -> DeviceServerEvent {
    match event {
        DeviceServerEvent::Update(mut update) => {
            let url = std::mem::take(&mut update.firmware_url);
            update.firmware_url = state.storage.url_for_host(url, host);
            DeviceServerEvent::Update(update)
        }
        other => other,
    }
}

/// Acts on one session event; `Some` ends the socket.
async fn handle_event(
    session: &mut ServerSession,
    channel: &mut DeviceChannel,
    state: &AppState,
    host: Option<&str>,
    event: ServerEvent,
) -> Option<Ended> {
    match event {
        ServerEvent::JoinRequest(req) if req.topic == DEVICE_TOPIC => {
            match channel.join(req.params.clone()).await {
                Ok(JoinOutcome::Accepted(pushes)) => {
                    // The request came from this session a moment ago; it is still pending.
                    let _ = session.accept_join(&req, json!({}));
                    for push in pushes {
                        let push = for_host(state, push, host);
                        let _ = session.push(DEVICE_TOPIC, push.event(), push.to_payload());
                    }
                }
                Ok(JoinOutcome::Refused) => {
                    let _ = session.reject_join(&req, json!({"error": "could not connect"}));
                }
                Err(e) => {
                    tracing::error!(device = %channel.device().identifier, error = %e, "recording a device join failed");
                    let _ = session.reject_join(&req, json!({"error": "could not connect"}));
                }
            }
        }
        ServerEvent::JoinRequest(req) if QUIET_TOPICS.contains(&req.topic.as_str()) => {
            // No console or extensions are served yet: joined, so the device does not rejoin
            // every 5 s; `extensions` attaches nothing.
            let response = if req.topic == "extensions" {
                json!([])
            } else {
                json!({})
            };
            let _ = session.accept_join(&req, response);
        }
        ServerEvent::JoinRequest(req) => {
            let _ = session.reject_join(&req, json!({"reason": "unmatched topic"}));
        }
        ServerEvent::Push(push) if push.topic == DEVICE_TOPIC => {
            channel.push(&push.event, push.payload).await;
        }
        ServerEvent::Push(_) | ServerEvent::Left { .. } => {}
        ServerEvent::IdleTimeout => return Some(Ended::Close(1000, "idle timeout")),
        _ => {}
    }
    None
}
