//! One simulated device: connects as nerves_hub_link does (TLS, WebSocket upgrade, `device`
//! join with its parameters), heartbeats, takes updates, and reconnects with
//! nerves_hub_link's backoff — all through the sans-IO [`ClientSession`].
//!
//! Memory per device is what a fleet of 19,000 in one process can afford: the session, one
//! TLS stream with small WebSocket buffers, and a few strings. Certificates are issued at the
//! first connection, not up front.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use nerveshub_proto::{
    ChannelMessage as _, ClientConfig, ClientEvent, ClientSession, DEVICE_API_VERSION,
    DEVICE_TOPIC, DeviceServerEvent, Frame, UpdatePayload,
};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::identity::Credentials;
use crate::stats::{Failure, Stats};

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// What a device does with an `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum UpdateMode {
    /// Count it and carry on.
    Ignore,
    /// Report progress to 100 %, "reboot" and rejoin on the new firmware, without
    /// downloading.
    Report,
    /// Download the firmware, check its size and SHA-256, then as `report`.
    Download,
}

/// What every device shares: where the server is, how to authenticate, the run's signals.
pub(crate) struct Fleet {
    pub(crate) stats: Arc<Stats>,
    pub(crate) server: SocketAddr,
    pub(crate) server_name: ServerName<'static>,
    /// `wss://…/socket/websocket?vsn=2.0.0` (or the shared-secret path).
    pub(crate) url: String,
    pub(crate) credentials: Credentials,
    pub(crate) sources: Vec<IpAddr>,
    pub(crate) prefix: String,
    pub(crate) firmware: Firmware,
    pub(crate) heartbeat: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) updates: UpdateMode,
    pub(crate) http: reqwest::Client,
    /// Bumped to make every device drop its connection at once (a storm).
    pub(crate) storm: watch::Receiver<u64>,
    /// Set when the run ends: devices close their sockets and stop.
    pub(crate) stop: watch::Receiver<bool>,
}

/// The firmware a device reports in its join.
#[derive(Debug, Clone)]
pub(crate) struct Firmware {
    pub(crate) uuid: String,
    pub(crate) version: String,
    pub(crate) product: String,
    pub(crate) platform: String,
    pub(crate) architecture: String,
}

impl Firmware {
    fn join_params(&self) -> Value {
        json!({
            "nerves_fw_uuid": self.uuid,
            "nerves_fw_version": self.version,
            "nerves_fw_product": self.product,
            "nerves_fw_platform": self.platform,
            "nerves_fw_architecture": self.architecture,
            "nerves_fw_author": "nerveshub-loadgen",
            "fwup_version": "1.16.0",
            "device_api_version": DEVICE_API_VERSION,
            "currently_downloading_uuid": null,
            "meta": {"firmware_validated": true},
        })
    }
}

/// A device's view of the run's signals.
struct Signals {
    storm: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

/// How a connected stretch ended.
enum Ended {
    /// The server or the network closed it; reconnect with backoff.
    Closed,
    /// A storm: drop and reconnect with backoff.
    Storm,
    /// Rebooting onto this firmware: reconnect at once.
    Rebooted(Firmware),
    /// The run is over.
    Stop,
}

/// Runs device number `index` until the fleet stops.
pub(crate) async fn run(fleet: Arc<Fleet>, index: usize) {
    let identifier = format!("{}{index:06}", fleet.prefix);
    let source = fleet
        .sources
        .get(index % fleet.sources.len().max(1))
        .copied();
    let origin = Instant::now();
    let now = || origin.elapsed();
    let mut firmware = fleet.firmware.clone();
    // Set between an update's "reboot" and the join on the new firmware.
    let mut rebooting = false;
    let mut tls: Option<Arc<rustls::ClientConfig>> = None;
    let mut signals = Signals {
        storm: fleet.storm.clone(),
        stop: fleet.stop.clone(),
    };
    signals.storm.mark_unchanged();
    let mut session = new_session(&fleet, &firmware, index);
    loop {
        if *signals.stop.borrow() {
            return;
        }
        let started = Instant::now();
        let config = match &tls {
            Some(config) => config.clone(),
            None => match fleet.credentials.tls_for(&identifier) {
                Ok(config) => tls.insert(config).clone(),
                Err(e) => {
                    tracing::error!(device = %identifier, error = %e, "no TLS identity");
                    return;
                }
            },
        };
        let attempt = tokio::time::timeout(
            fleet.attempt_timeout,
            connect(&fleet, &identifier, source, config),
        );
        let ended = match attempt.await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(failure)) => Err(failure),
            Ok(Ok(socket)) => {
                session.handle_connected(now());
                let ended = connected(
                    &fleet,
                    socket,
                    &mut session,
                    started,
                    &origin,
                    &mut rebooting,
                    &mut signals,
                )
                .await;
                Ok(ended)
            }
        };
        match ended {
            Err(failure) => {
                fleet.stats.failed(&failure);
                session.handle_disconnected(now());
            }
            Ok(Ended::Stop) => return,
            Ok(Ended::Closed | Ended::Storm) => session.handle_disconnected(now()),
            Ok(Ended::Rebooted(next)) => {
                rebooting = true;
                firmware = next;
                session = new_session(&fleet, &firmware, index);
                continue;
            }
        }
        // nerves_hub_link's reconnect backoff, as the session schedules it.
        loop {
            let mut connect_now = false;
            while let Some(event) = session.poll_event() {
                connect_now |= matches!(event, ClientEvent::Connect);
            }
            if connect_now {
                break;
            }
            let Some(at) = session.poll_timeout() else {
                break;
            };
            tokio::select! {
                _ = tokio::time::sleep_until((origin + at).into()) => session.handle_timeout(now()),
                _ = signals.stop.changed() => return,
            }
        }
    }
}

fn new_session(fleet: &Fleet, firmware: &Firmware, index: usize) -> ClientSession {
    let mut config = ClientConfig::default();
    config.heartbeat_interval = fleet.heartbeat;
    let mut session = ClientSession::new(config, index as u64 ^ 0x9e37_79b9_7f4a_7c15);
    session.join(DEVICE_TOPIC, firmware.join_params());
    session
}

/// TCP (from the device's source address), TLS, and the WebSocket upgrade.
async fn connect(
    fleet: &Fleet,
    identifier: &str,
    source: Option<IpAddr>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Socket, Failure> {
    let socket = if fleet.server.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| Failure::Tcp(e.kind().to_string()))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| Failure::Tcp(format!("bind {source}: {}", e.kind())))?;
    }
    let tcp = socket
        .connect(fleet.server)
        .await
        .map_err(|e| Failure::Tcp(e.kind().to_string()))?;
    let _ = tcp.set_nodelay(true);
    let stream = TlsConnector::from(tls)
        .connect(fleet.server_name.clone(), tcp)
        .await
        .map_err(|e| Failure::Tls(tls_cause(&e)))?;
    if stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        fleet
            .stats
            .resumed_handshakes
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut request = fleet
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::WebSocket(e.to_string()))?;
    for (name, value) in fleet.credentials.headers(identifier) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            request.headers_mut().insert(name, value);
        }
    }
    // Small buffers: 19,000 devices × tungstenite's 128 KiB default would be 2.4 GB.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(Failure::Http(
            response.status().as_u16(),
            response
                .headers()
                .get("nh-connection-error-reason")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(e) => Err(Failure::WebSocket(e.to_string())),
    }
}

/// The TLS error without per-connection detail, so failures group by cause.
fn tls_cause(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.kind().to_string(),
    }
}

/// Drives a connected session until the connection ends.
async fn connected(
    fleet: &Fleet,
    mut socket: Socket,
    session: &mut ClientSession,
    started: Instant,
    origin: &Instant,
    rebooting: &mut bool,
    signals: &mut Signals,
) -> Ended {
    let now = || origin.elapsed();
    let mut joined = false;
    let ended = 'conn: loop {
        while let Some(frame) = session.poll_transmit() {
            if frame.topic == "phoenix" {
                fleet.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            if socket.send(Message::text(frame.to_json())).await.is_err() {
                break 'conn Ended::Closed;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Joined { topic, .. } if topic == DEVICE_TOPIC && !joined => {
                    joined = true;
                    fleet.stats.joined(started.elapsed());
                    if std::mem::take(rebooting) {
                        fleet.stats.updates_done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                ClientEvent::JoinRefused {
                    topic, response, ..
                } if topic == DEVICE_TOPIC => {
                    let reason = response
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason")
                        .to_owned();
                    fleet.stats.failed(&Failure::JoinRefused(reason));
                }
                ClientEvent::Close { .. } => break 'conn Ended::Closed,
                ClientEvent::Message {
                    topic,
                    event,
                    payload,
                } if topic == DEVICE_TOPIC && event == "update" => {
                    fleet.stats.update_received();
                    if let Some(next) = take_update(fleet, session, payload).await {
                        // Flush the progress pushes, then "reboot".
                        while let Some(frame) = session.poll_transmit() {
                            let _ = socket.send(Message::text(frame.to_json())).await;
                        }
                        let _ = socket.close(None).await;
                        break 'conn Ended::Rebooted(next);
                    }
                }
                _ => {}
            }
        }
        let deadline = session
            .poll_timeout()
            .map(|at| *origin + at)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => match Frame::from_json(text.as_bytes()) {
                    Ok(frame) => session.handle_frame(frame, now()),
                    Err(e) => tracing::debug!(error = %e, "undecodable frame"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if joined {
                        fleet.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        fleet.stats.failed(&Failure::ClosedBeforeJoin);
                    }
                    break 'conn Ended::Closed;
                }
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(now()),
            _ = signals.storm.changed() => {
                let _ = socket.close(None).await;
                break 'conn Ended::Storm;
            }
            _ = signals.stop.changed() => {
                let _ = socket.close(None).await;
                break 'conn Ended::Stop;
            }
        }
    };
    if joined {
        fleet.stats.left();
    }
    ended
}

/// Takes an `update` as the run's [`UpdateMode`] says; the firmware to reboot onto, if any.
async fn take_update(
    fleet: &Fleet,
    session: &mut ClientSession,
    payload: Value,
) -> Option<Firmware> {
    let DeviceServerEvent::Update(update) =
        DeviceServerEvent::from_parts("update", payload).ok()?
    else {
        return None;
    };
    match fleet.updates {
        UpdateMode::Ignore => return None,
        UpdateMode::Report => {}
        UpdateMode::Download => {
            if let Err(e) = download(fleet, &update).await {
                tracing::warn!(error = %e, "download failed");
                fleet.stats.downloads_failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }
    for value in [0, 50, 100] {
        let _ = session.push(DEVICE_TOPIC, "fwup_progress", json!({ "value": value }));
    }
    let meta = &update.firmware_meta;
    let next = Firmware {
        uuid: meta.uuid.clone()?,
        version: meta.version.clone().unwrap_or_default(),
        product: meta
            .product
            .clone()
            .unwrap_or_else(|| fleet.firmware.product.clone()),
        platform: meta
            .platform
            .clone()
            .unwrap_or_else(|| fleet.firmware.platform.clone()),
        architecture: meta
            .architecture
            .clone()
            .unwrap_or_else(|| fleet.firmware.architecture.clone()),
    };
    Some(next)
}

/// Downloads the firmware and checks its size and SHA-256 against the `update`.
async fn download(fleet: &Fleet, update: &UpdatePayload) -> Result<(), String> {
    let response = fleet
        .http
        .get(&update.firmware_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    fleet
        .stats
        .downloaded_bytes
        .fetch_add(size, Ordering::Relaxed);
    if let Some(expected) = update.size
        && expected != size
    {
        return Err(format!("size {size}, expected {expected}"));
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    match &update.checksum {
        Some(expected) if !expected.eq_ignore_ascii_case(&digest) => {
            Err(format!("SHA-256 {digest}, expected {expected}"))
        }
        _ => Ok(()),
    }
}
