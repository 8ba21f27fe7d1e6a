//! The driver: a tokio loop around `nerveshub_proto::ClientSession`, in the style of quinn's
//! connection driver. It connects (signing shared-secret headers fresh for every attempt),
//! joins `device`, feeds frames and timers to the session, sends what the session queues,
//! and turns `device` messages into the product's decisions and updates.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use nerveshub_fwup::PublicKey;
use nerveshub_proto::{
    CONSOLE_VERSION, ChannelMessage, ClientEvent, ClientSession, Codec, DEVICE_API_VERSION,
    DEVICE_TOPIC, DeviceEvent, DeviceJoinParams, DeviceMeta, DeviceServerEvent, NetworkInterface,
    ON_CONNECT, Progress, SharedSecretHeaders, StatusUpdate, WireMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, info, warn};

use crate::client::{Client, FwupMessage, RebootAction, RebootReason, UpdateDecision, UpdateInfo};
use crate::config::{Auth, Config, Transport, Updater};
use crate::connection::{self, Socket};
use crate::error::{Error, Result, UpdateError};
use crate::handle::{Command, CommandSlot, DeviceHandle};
use crate::update::{UpdateJob, UpdateMsg, run_update};

mod poll;

/// nerves_hub_link's reason when it has no key to verify firmware with.
pub const NO_PUBLIC_KEYS: &str = "Refusing unverified firmware : no public keys available";

/// Why [`Device::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// A reboot is due and the [`Client`] chose [`RebootAction::Stop`]: reboot (or simulate
    /// it) and run again.
    Reboot(RebootReason),
}

struct RunningUpdate {
    uuid: Option<String>,
    rx: mpsc::UnboundedReceiver<UpdateMsg>,
    task: JoinHandle<()>,
    last_progress: Option<(u8, Instant)>,
}

impl Drop for RunningUpdate {
    fn drop(&mut self) {
        // Cancelling `run` cancels the download; the engine then sees its input end.
        self.task.abort();
    }
}

/// A NervesHub device: connects, reports its firmware, takes updates.
///
/// ```no_run
/// # async fn demo(config: nerveshub_client::Config) -> Result<(), nerveshub_client::Error> {
/// use nerveshub_client::{DefaultClient, Device, Stopped};
///
/// let mut device = Device::new(config, DefaultClient)?;
/// match device.run().await? {
///     Stopped::Reboot(_) => { /* reboot into the new firmware */ }
///     _ => {}
/// }
/// # Ok(()) }
/// ```
pub struct Device<C: Client> {
    config: Config,
    client: C,
    socket_tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    url: reqwest::Url,
    codec: Codec,
    /// The server's time (Unix seconds) when it refused us, and when that was.
    clock_hint: Option<(u64, Instant)>,
    server_keys: Vec<PublicKey>,
    /// Where [`DeviceHandle`]s send commands: the running `run`'s channel, if any.
    commands: CommandSlot,
}

impl<C: Client> std::fmt::Debug for Device<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl<C: Client> Device<C> {
    /// A device with `config`, deciding through `client`. Builds the TLS configurations and
    /// the HTTP client; connects only in [`run`](Self::run).
    ///
    /// # Errors
    /// [`Error::Config`] / [`Error::Tls`] for an unusable configuration (an unusable device
    /// key or CA certificate, a crypto provider without TLS 1.2 or 1.3 cipher suites).
    pub fn new(mut config: Config, client: C) -> Result<Self> {
        let url = config.socket_url()?;
        let identity = match &config.auth {
            Auth::Certificate(id) => Some(id),
            Auth::SharedSecret(_) => None,
        };
        let provider = &config.crypto_provider;
        let socket_tls = config.trust.client_config(provider, identity)?;
        let download_tls = config
            .download_trust
            .as_ref()
            .unwrap_or(&config.trust)
            .client_config(provider, None)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*download_tls).clone())
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("nerveshub-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config_caused("HTTP client", e))?;
        if config.join_params.fwup_version.is_none() {
            config.join_params.fwup_version = Some(fwup_version(&config.updater));
        }
        Ok(Device {
            codec: Codec::new(config.vsn),
            config,
            client,
            socket_tls,
            http,
            url,
            clock_hint: None,
            server_keys: Vec::new(),
            commands: Arc::default(),
        })
    }

    /// The configuration (e.g. to change the join params after a simulated reboot).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// The product's client.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The product's client, mutably.
    pub fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    /// A handle to control the device while it runs.
    pub fn handle(&self) -> DeviceHandle {
        DeviceHandle {
            commands: self.commands.clone(),
        }
    }

    /// The WebSocket URL the device connects to.
    pub fn socket_url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The join params sent on `device`: the configured firmware metadata plus the
    /// protocol versions, the download state and, without local keys, the request for the
    /// server's keys.
    pub fn join_params(&self, downloading: Option<&str>) -> DeviceJoinParams {
        let mut p = self.config.join_params.clone();
        p.device_api_version = Some(DEVICE_API_VERSION.to_owned());
        p.console_version = Some(CONSOLE_VERSION.to_owned());
        p.currently_downloading_uuid = downloading.map(str::to_owned);
        if self.config.firmware_keys.is_empty() || self.config.accept_server_keys {
            p.fwup_public_keys = Some(ON_CONNECT.to_owned());
        }
        p.meta.get_or_insert_with(|| DeviceMeta {
            firmware_auto_revert_detected: Some(false),
            firmware_validated: Some(true),
            extra: Default::default(),
        });
        p
    }

    /// The keys an update is verified with: the configured ones, plus the server's when
    /// the product accepts them.
    fn firmware_keys(&self) -> Vec<PublicKey> {
        let mut keys = self.config.firmware_keys.clone();
        if self.config.accept_server_keys {
            keys.extend(self.server_keys.iter().cloned());
        }
        keys
    }

    /// Connects (or polls, with [`Transport::Poll`]) and serves the device until a reboot is
    /// due. Connection failures are
    /// reported to [`Client::error`] and retried with backoff; cancel by dropping the
    /// future (an update in progress is abandoned; the active slot is untouched).
    ///
    /// # Errors
    /// None today: every failure is retried. The `Result` leaves room for fatal errors.
    pub async fn run(&mut self) -> Result<Stopped> {
        if let Transport::Poll { interval } = self.config.transport {
            return self.run_poll(interval).await;
        }
        let origin = Instant::now();
        let now = move || origin.elapsed();
        let seed = getrandom::u64().unwrap_or_else(|_| {
            // No OS randomness: the jitter only needs to differ between devices a little.
            u64::from(std::process::id()) ^ (self.config.wall_clock)()
        });
        let mut session = ClientSession::new(self.config.session.clone(), seed);
        session.join(DEVICE_TOPIC, self.join_params(None).to_payload());
        let mut socket: Option<Socket> = None;
        let mut want_connect = true;
        // The last connection failure's text, so that a failure repeating on every retry is
        // logged once.
        let mut last_failure: Option<String> = None;
        let mut update: Option<RunningUpdate> = None;
        let mut queued: VecDeque<DeviceEvent> = VecDeque::new();
        let (command_tx, mut commands) = mpsc::unbounded_channel();
        *self.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(command_tx);

        loop {
            if want_connect && socket.is_none() {
                want_connect = false;
                let uuid = update.as_ref().and_then(|u| u.uuid.clone());
                session.join(DEVICE_TOPIC, self.join_params(uuid.as_deref()).to_payload());
                match self.connect_once().await {
                    Ok(s) => {
                        info!(url = %self.url, "connected");
                        last_failure = None;
                        socket = Some(s);
                        session.handle_connected(now());
                    }
                    Err(e) => {
                        // Logged once while it keeps failing the same way; retries at debug.
                        // Errors are not comparable; their text tells a repeat apart.
                        let text = e.to_string();
                        if last_failure.as_deref() == Some(text.as_str()) {
                            debug!(error = %e, "connection failed again");
                        } else {
                            match e.hint() {
                                Some(hint) => {
                                    warn!(error = %e, hint, "connection failed; retrying")
                                }
                                None => warn!(error = %e, "connection failed; retrying"),
                            }
                            last_failure = Some(text);
                        }
                        self.client.error(&e);
                        session.handle_disconnected(now());
                    }
                }
            }
            // Send what the session queued and act on its events until both are drained.
            loop {
                self.flush(&mut session, &mut socket, now()).await;
                let mut any = false;
                while let Some(event) = session.poll_event() {
                    any = true;
                    match event {
                        ClientEvent::Connect => want_connect = true,
                        ClientEvent::Close { reason } => {
                            warn!(?reason, "closing the socket");
                            close(&mut socket).await;
                        }
                        ClientEvent::Disconnected { reconnect_at } => {
                            let delay = reconnect_at.saturating_sub(now());
                            info!(?delay, "disconnected; reconnecting later");
                        }
                        ClientEvent::Joined { topic, .. } if topic == DEVICE_TOPIC => {
                            info!("joined device");
                            self.on_joined(&mut session, &mut queued);
                        }
                        ClientEvent::JoinRefused {
                            topic, response, ..
                        } if topic == DEVICE_TOPIC => {
                            let e = Error::Channel(format!("join refused: {response}"));
                            warn!(error = %e, "device channel");
                            self.client.error(&e);
                        }
                        ClientEvent::ChannelClosed { topic, reason, .. }
                            if topic == DEVICE_TOPIC =>
                        {
                            let e = Error::Channel(format!("{reason:?}; rejoining"));
                            warn!(error = %e, "device channel");
                            self.client.error(&e);
                        }
                        ClientEvent::Message {
                            topic,
                            event,
                            payload,
                        } if topic == DEVICE_TOPIC => {
                            match DeviceServerEvent::from_parts(&event, payload) {
                                Ok(msg) => {
                                    if let Some(stop) =
                                        self.on_message(msg, &mut session, &mut update, &mut queued)
                                    {
                                        self.flush(&mut session, &mut socket, now()).await;
                                        close(&mut socket).await;
                                        return Ok(stop);
                                    }
                                }
                                Err(e) => warn!(%event, error = %e, "unreadable message"),
                            }
                        }
                        other => debug!(?other, "session event"),
                    }
                }
                if !any {
                    break;
                }
            }
            if want_connect {
                continue;
            }
            let deadline = session.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |t| origin + t,
            );
            tokio::select! {
                incoming = next_message(&mut socket) => match incoming {
                    Some(Ok(Message::Text(text))) => self.handle_wire(&mut session, text.as_bytes(), now()),
                    Some(Ok(Message::Binary(data))) => self.handle_wire(&mut session, &data, now()),
                    Some(Ok(Message::Close(frame))) => {
                        // The server asks for this (a reconnect request, a newer connection of
                        // the same device, a restart): not a failure.
                        match &frame {
                            Some(f) => info!(code = u16::from(f.code), reason = %f.reason, "the server closed the connection; reconnecting"),
                            None => info!("the server closed the connection; reconnecting"),
                        }
                        socket = None;
                        self.client.error(&Error::ClosedByServer);
                        session.handle_disconnected(now());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!(error = %e, "socket failed");
                        socket = None;
                        self.client.error(&Error::WebSocket(e));
                        session.handle_disconnected(now());
                    }
                    None => {
                        socket = None;
                        self.client.error(&Error::WebSocket(tungstenite::Error::ConnectionClosed));
                        session.handle_disconnected(now());
                    }
                },
                () = tokio::time::sleep_until(deadline) => session.handle_timeout(now()),
                Some(command) = commands.recv() => match command {
                    Command::Reconnect => {
                        info!("reconnecting on request");
                        close(&mut socket).await;
                        session.handle_disconnected(now());
                    }
                    Command::FirmwareValidated => {
                        info!("firmware validated");
                        let meta = self.config.join_params.meta.get_or_insert_with(DeviceMeta::default);
                        meta.firmware_validated = Some(true);
                        let uuid = update.as_ref().and_then(|u| u.uuid.clone());
                        session.join(DEVICE_TOPIC, self.join_params(uuid.as_deref()).to_payload());
                        let event = DeviceEvent::FirmwareValidated(Default::default());
                        if !self.push(&mut session, &event) {
                            queued.push_back(event);
                        }
                    }
                },
                msg = next_update(&mut update) => {
                    if let Some(stop) = self.on_update_msg(msg, &mut session, &mut update, &mut queued) {
                        self.flush(&mut session, &mut socket, now()).await;
                        close(&mut socket).await;
                        return Ok(stop);
                    }
                }
            }
        }
    }

    /// The shared-secret headers signed right now (none for certificate auth).
    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        match &self.config.auth {
            Auth::Certificate(_) => Vec::new(),
            Auth::SharedSecret(s) => {
                let signed_at = match self.clock_hint {
                    Some((server, at)) => server + at.elapsed().as_secs(),
                    None => (self.config.wall_clock)(),
                };
                let h = SharedSecretHeaders::sign(&s.key, &s.secret, &s.identifier, signed_at);
                h.pairs()
                    .iter()
                    .map(|(n, v)| (*n, (*v).to_owned()))
                    .collect()
            }
        }
    }

    /// One connection attempt, with shared-secret headers signed right now.
    async fn connect_once(&mut self) -> Result<Socket> {
        let headers = self.auth_headers();
        debug!(url = %self.url, "connecting");
        match connection::connect(
            &self.url,
            self.socket_tls.clone(),
            self.config.sni.as_deref(),
            &headers,
            self.config.connect_timeout,
        )
        .await
        {
            Ok((socket, _local)) => Ok(socket),
            Err(failed) => {
                let server_time = failed
                    .server_date
                    .and_then(|date| date.duration_since(UNIX_EPOCH).ok());
                if let Some(d) = server_time {
                    info!(
                        server_time = d.as_secs(),
                        "using the server's Date as clock hint"
                    );
                    self.clock_hint = Some((d.as_secs(), Instant::now()));
                }
                Err(failed.error)
            }
        }
    }

    fn handle_wire(&mut self, session: &mut ClientSession, bytes: &[u8], now: Duration) {
        match self.codec.decode(bytes) {
            Ok(frame) => session.handle_frame(frame, now),
            Err(e) => warn!(error = %e, "undecodable frame"),
        }
    }

    async fn flush(&self, session: &mut ClientSession, socket: &mut Option<Socket>, now: Duration) {
        while let Some(frame) = session.poll_transmit() {
            let Some(ws) = socket.as_mut() else {
                continue;
            };
            let message = match self.codec.encode(&frame) {
                Ok(WireMessage::Text(t)) => Message::text(t),
                Ok(WireMessage::Binary(b)) => Message::binary(b),
                Err(e) => {
                    warn!(error = %e, "unencodable frame");
                    continue;
                }
            };
            if let Err(e) = ws.send(message).await {
                warn!(error = %e, "send failed");
                *socket = None;
                session.handle_disconnected(now);
            }
        }
    }

    fn push(&self, session: &mut ClientSession, event: &DeviceEvent) -> bool {
        debug!(event = event.event(), payload = %event.to_payload(), "push");
        session
            .push(DEVICE_TOPIC, event.event(), event.to_payload())
            .is_ok()
    }

    /// Pushes a status now, or once `device` is joined (again).
    fn push_status(
        &self,
        session: &mut ClientSession,
        queued: &mut VecDeque<DeviceEvent>,
        status: StatusUpdate,
    ) {
        info!(status = status.status(), "status_update");
        let event = DeviceEvent::StatusUpdate(status);
        if !self.push(session, &event) {
            queued.push_back(event);
        }
    }

    fn on_joined(&mut self, session: &mut ClientSession, queued: &mut VecDeque<DeviceEvent>) {
        if let Some(interface) = &self.config.network_interface {
            let event = DeviceEvent::ReportNetworkInterface(NetworkInterface {
                interface: interface.clone(),
                extra: Default::default(),
            });
            self.push(session, &event);
        }
        while let Some(event) = queued.pop_front() {
            self.push(session, &event);
        }
        self.client.connected();
    }

    fn on_message(
        &mut self,
        msg: DeviceServerEvent,
        session: &mut ClientSession,
        update: &mut Option<RunningUpdate>,
        queued: &mut VecDeque<DeviceEvent>,
    ) -> Option<Stopped> {
        match msg {
            DeviceServerEvent::Update(payload) => {
                self.on_update(*payload, session, update, queued);
                None
            }
            DeviceServerEvent::Reboot(_) => {
                info!("the server asks for a reboot");
                self.push(session, &DeviceEvent::Rebooting(Default::default()));
                match self.client.reboot(RebootReason::ServerRequest) {
                    RebootAction::Stop => Some(Stopped::Reboot(RebootReason::ServerRequest)),
                    _ => None,
                }
            }
            DeviceServerEvent::Identify(_) => {
                info!("identify");
                self.client.identify();
                None
            }
            DeviceServerEvent::FwupPublicKeys(keys) => {
                let parsed: Vec<PublicKey> = keys
                    .keys
                    .iter()
                    .filter_map(|k| PublicKey::from_base64(k).ok())
                    .collect();
                info!(
                    count = parsed.len(),
                    used = self.config.accept_server_keys,
                    "server pushed firmware keys"
                );
                // An empty list never removes keys (nerves_hub_link).
                if !parsed.is_empty() {
                    self.server_keys = parsed;
                }
                None
            }
            other => {
                debug!(event = other.event(), "ignored message");
                None
            }
        }
    }

    fn on_update(
        &mut self,
        payload: nerveshub_proto::UpdatePayload,
        session: &mut ClientSession,
        update: &mut Option<RunningUpdate>,
        queued: &mut VecDeque<DeviceEvent>,
    ) {
        let uuid = payload.firmware_meta.uuid.clone();
        if update.is_some() {
            info!(?uuid, "update offered while updating; ignored");
            return;
        }
        info!(?uuid, version = ?payload.firmware_meta.version, "update available");
        let keys = self.firmware_keys();
        if keys.is_empty() {
            warn!("{NO_PUBLIC_KEYS}");
            self.push_status(session, queued, failed(NO_PUBLIC_KEYS));
            self.client
                .fwup_message(&FwupMessage::Error(NO_PUBLIC_KEYS.into()));
            return;
        }
        self.push_status(
            session,
            queued,
            StatusUpdate::Received {
                extra: Default::default(),
            },
        );
        let info = UpdateInfo {
            payload,
            running_uuid: self.config.join_params.nerves_fw_uuid.clone(),
        };
        match self.client.update_available(&info) {
            UpdateDecision::Apply => {}
            UpdateDecision::Ignore(reason) => {
                self.push_status(
                    session,
                    queued,
                    StatusUpdate::Ignored {
                        reason,
                        extra: Default::default(),
                    },
                );
                return;
            }
            UpdateDecision::Reschedule {
                delay_for_minutes,
                reason,
            } => {
                let status = StatusUpdate::Rescheduled {
                    delay_for_minutes,
                    reason,
                    extra: Default::default(),
                };
                self.push_status(session, queued, status);
                return;
            }
        }
        self.push(session, &progress(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let job = UpdateJob {
            payload: info.payload,
            keys,
            updater: self.config.updater.clone(),
            policy: self.config.download.clone(),
            http: self.http.clone(),
        };
        let task = tokio::spawn(run_update(job, tx));
        session.join(DEVICE_TOPIC, self.join_params(uuid.as_deref()).to_payload());
        *update = Some(RunningUpdate {
            uuid,
            rx,
            task,
            last_progress: Some((0, Instant::now())),
        });
    }

    fn on_update_msg(
        &mut self,
        msg: Option<UpdateMsg>,
        session: &mut ClientSession,
        update: &mut Option<RunningUpdate>,
        queued: &mut VecDeque<DeviceEvent>,
    ) -> Option<Stopped> {
        let interval = self.config.progress_interval;
        match msg {
            Some(UpdateMsg::Started) => {
                let status = StatusUpdate::Started {
                    downloader_network_interface: self.config.network_interface.clone(),
                    extra: Default::default(),
                };
                self.push_status(session, queued, status);
                None
            }
            Some(UpdateMsg::Fwup(message)) => {
                if let (FwupMessage::Progress(p), Some(u)) = (&message, update.as_mut()) {
                    let due = progress_due(u.last_progress, *p, Instant::now(), interval);
                    if due && self.push(session, &progress(*p)) {
                        u.last_progress = Some((*p, Instant::now()));
                    }
                }
                self.client.fwup_message(&message);
                None
            }
            Some(UpdateMsg::Finished(result)) => {
                self.finish_update(result, session, update, queued)
            }
            None => self.finish_update(Err(UpdateError::TaskEnded), session, update, queued),
        }
    }

    fn finish_update(
        &mut self,
        result: std::result::Result<(), UpdateError>,
        session: &mut ClientSession,
        update: &mut Option<RunningUpdate>,
        queued: &mut VecDeque<DeviceEvent>,
    ) -> Option<Stopped> {
        *update = None;
        session.join(DEVICE_TOPIC, self.join_params(None).to_payload());
        match result {
            Ok(()) => {
                self.push(session, &progress(100));
                let completed = StatusUpdate::Completed {
                    extra: Default::default(),
                };
                self.push_status(session, queued, completed);
                self.client.fwup_message(&FwupMessage::Ok);
                match self.client.reboot(RebootReason::UpdateApplied) {
                    RebootAction::Stop => Some(Stopped::Reboot(RebootReason::UpdateApplied)),
                    _ => None,
                }
            }
            Err(e) => {
                // The wire carries the reason as text (nerves_hub_link's `failed` reason).
                let reason = e.to_string();
                self.push_status(session, queued, failed(&reason));
                self.client.fwup_message(&FwupMessage::Error(reason));
                self.client.error(&Error::Update(e));
                None
            }
        }
    }
}

/// nerves_hub_link's throttle: push progress only when the percentage went up and at least
/// `interval` passed since the last push.
fn progress_due(last: Option<(u8, Instant)>, value: u8, now: Instant, interval: Duration) -> bool {
    last.is_none_or(|(v, at)| value > v && now.saturating_duration_since(at) >= interval)
}

fn failed(reason: &str) -> StatusUpdate {
    StatusUpdate::Failed {
        reason: reason.to_owned(),
        extra: Default::default(),
    }
}

fn progress(value: u8) -> DeviceEvent {
    DeviceEvent::FwupProgress(Progress::new("updating", u64::from(value)))
}

async fn close(socket: &mut Option<Socket>) {
    if let Some(mut ws) = socket.take() {
        // Best effort: the peer may already be gone.
        let _ = ws.close(None).await;
    }
}

async fn next_message(
    socket: &mut Option<Socket>,
) -> Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match socket {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn next_update(update: &mut Option<RunningUpdate>) -> Option<UpdateMsg> {
    match update {
        Some(u) => u.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The `fwup_version` to report: the engine's (fwup 1.16.0 behaviour) or `fwup --version`.
fn fwup_version(updater: &Updater) -> String {
    match updater {
        #[cfg(feature = "fwup-process")]
        Updater::Fwup { program, .. } => std::process::Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| nerveshub_fwup::FWUP_VERSION.to_owned()),
        Updater::BuiltIn { .. } => nerveshub_fwup::FWUP_VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_throttled_like_nerves_hub_link() {
        let t0 = Instant::now();
        let half = Duration::from_millis(500);
        assert!(progress_due(None, 0, t0, half));
        let last = Some((10, t0));
        assert!(!progress_due(
            last,
            11,
            t0 + Duration::from_millis(499),
            half
        ));
        assert!(progress_due(last, 11, t0 + half, half));
        assert!(!progress_due(last, 10, t0 + Duration::from_secs(5), half));
    }

    #[test]
    #[cfg(feature = "aws-lc-rs")] // Device::new builds TLS configurations: a provider is needed
    fn join_params_ask_for_keys_only_without_local_keys() {
        let config = Config::new(
            "wss://localhost:4001",
            Auth::SharedSecret(crate::SharedSecret {
                key: "nhp_k".into(),
                secret: b"s".to_vec(),
                identifier: "d".into(),
            }),
            crate::Trust::Pinned(vec![]),
            Updater::built_in("/nonexistent"),
        );
        let device = Device::new(config, crate::DefaultClient).unwrap();
        let p = device.join_params(Some("uuid-1"));
        assert_eq!(p.fwup_public_keys.as_deref(), Some(ON_CONNECT));
        assert_eq!(p.currently_downloading_uuid.as_deref(), Some("uuid-1"));
        assert_eq!(p.device_api_version.as_deref(), Some(DEVICE_API_VERSION));
        assert_eq!(p.console_version.as_deref(), Some(CONSOLE_VERSION));
        assert_eq!(
            p.fwup_version.as_deref(),
            Some(nerveshub_fwup::FWUP_VERSION)
        );
        assert_eq!(
            device.socket_url().as_str(),
            "wss://localhost:4001/device-socket/websocket?vsn=2.0.0"
        );
    }
}
