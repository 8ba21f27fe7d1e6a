//! The simulated devices of the cluster tests: drivers of `nerveshub_proto::ClientSession` that
//! record every `update` push (which node's socket sent it), each connection's join and close
//! times, and can hold an update before they "reboot".

use super::*;

/// How a simulated device proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// NH1 headers signed with a product key at each connection.
    Nh1 { key: String, secret: String },
    /// A client certificate (`tls` carries it).
    Certificate,
}

/// One `update` a device was sent.
#[derive(Debug, Clone)]
pub struct Push {
    pub at: Instant,
    /// The device port of the node whose socket delivered it.
    pub port: u16,
    pub uuid: Option<String>,
    pub url: String,
}

/// One connection of a device.
#[derive(Debug, Clone)]
pub struct Connection {
    pub port: u16,
    pub joined: Option<Instant>,
    pub closed: Option<Instant>,
}

/// Everything a device saw.
#[derive(Debug, Default, Clone)]
pub struct DeviceLog {
    pub connections: Vec<Connection>,
    pub pushes: Vec<Push>,
    /// Failed connection attempts and refused joins.
    pub errors: Vec<String>,
}

impl DeviceLog {
    /// The port of the node the device is joined on now.
    pub fn joined_on(&self) -> Option<u16> {
        self.connections
            .last()
            .filter(|c| c.joined.is_some() && c.closed.is_none())
            .map(|c| c.port)
    }
}

/// A simulated device: connects to the node its target names (reconnecting there 200 ms
/// after a connection ends), joins `device` with its firmware, records every `update`, and
/// takes an update by reporting progress `hold` after the first push, "rebooting" (closing)
/// and joining again on the new firmware. A second `update` while it holds one is recorded
/// and otherwise ignored, as nerves_hub_link does.
pub struct SimDevice {
    pub identifier: String,
    log: Arc<Mutex<DeviceLog>>,
    target: Arc<Mutex<Option<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What one device task needs.
struct DeviceSetup {
    identifier: String,
    credentials: Credentials,
    tls: Arc<rustls::ClientConfig>,
    firmware: Firmware,
    hold: Duration,
    log: Arc<Mutex<DeviceLog>>,
    target: Arc<Mutex<Option<u16>>>,
}

impl SimDevice {
    /// An NH1 device (registered by its first connection) on the node at `port`.
    pub fn nh1(
        cluster: &Cluster,
        identifier: &str,
        (key, secret): &(String, String),
        firmware: Firmware,
        hold: Duration,
        port: u16,
    ) -> SimDevice {
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(cluster.roots())
            .with_no_client_auth();
        let credentials = Credentials::Nh1 {
            key: key.clone(),
            secret: secret.clone(),
        };
        Self::start(identifier, credentials, tls, firmware, hold, port)
    }

    /// A device with a certificate issued now by `ca` (registered by JITP when `ca` is a
    /// Device CA the server knows) on the node at `port`.
    pub fn certificate(
        cluster: &Cluster,
        identifier: &str,
        ca: &nerveshub_pki::DeviceCa,
        firmware: Firmware,
        port: u16,
    ) -> SimDevice {
        use nerveshub_pki::{CertOptions, UnixTime};
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let options = CertOptions::new(
            identifier,
            UnixTime::since_unix_epoch(now - Duration::from_secs(3600)),
            UnixTime::since_unix_epoch(now + Duration::from_secs(86_400)),
        );
        let (cert, key) = ca.issue_device(&options).unwrap();
        let chain = vec![rustls_pki_types::CertificateDer::from(cert.der().to_vec())];
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.to_der()),
        );
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(cluster.roots())
            .with_client_auth_cert(chain, key)
            .unwrap();
        Self::start(
            identifier,
            Credentials::Certificate,
            tls,
            firmware,
            Duration::ZERO,
            port,
        )
    }

    fn start(
        identifier: &str,
        credentials: Credentials,
        tls: rustls::ClientConfig,
        firmware: Firmware,
        hold: Duration,
        port: u16,
    ) -> SimDevice {
        let log = Arc::new(Mutex::new(DeviceLog::default()));
        let target = Arc::new(Mutex::new(Some(port)));
        let setup = DeviceSetup {
            identifier: identifier.to_owned(),
            credentials,
            tls: Arc::new(tls),
            firmware,
            hold,
            log: log.clone(),
            target: target.clone(),
        };
        SimDevice {
            identifier: identifier.to_owned(),
            log,
            target,
            task: tokio::spawn(run_device(setup)),
        }
    }

    /// Where the device connects from now on (`None`: it stays offline). The connection it
    /// has is kept.
    pub fn retarget(&self, port: Option<u16>) {
        *self.target.lock().unwrap() = port;
    }

    /// A copy of what it saw.
    pub fn log(&self) -> DeviceLog {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the device is joined on the node at `port`.
    pub async fn wait_joined(&self, port: u16) {
        eventually(
            &format!("{} joined on port {port}", self.identifier),
            Duration::from_secs(30),
            async || match self.log() {
                log if log.joined_on() == Some(port) => Ok(()),
                log => Err(format!("{log:?}")),
            },
        )
        .await;
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Socket = WebSocketStream<TlsStream<TcpStream>>;

async fn run_device(setup: DeviceSetup) {
    let mut firmware = setup.firmware.clone();
    loop {
        let target = *setup.target.lock().unwrap();
        let Some(port) = target else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let socket =
            match tokio::time::timeout(Duration::from_secs(10), connect(&setup, port)).await {
                Ok(Ok(socket)) => socket,
                Ok(Err(e)) => {
                    setup.log.lock().unwrap().errors.push(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(_) => {
                    setup
                        .log
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("connecting to {port} timed out"));
                    continue;
                }
            };
        setup.log.lock().unwrap().connections.push(Connection {
            port,
            joined: None,
            closed: None,
        });
        let next = connected(&setup, socket, port, &firmware).await;
        if let Some(connection) = setup.log.lock().unwrap().connections.last_mut() {
            connection.closed = Some(Instant::now());
        }
        match next {
            // "Rebooted" onto new firmware: join again at once.
            Some(next) => firmware = next,
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// TCP, TLS and the WebSocket upgrade to the node at `port`.
async fn connect(setup: &DeviceSetup, port: u16) -> Result<Socket, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("tcp {port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream = TlsConnector::from(setup.tls.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("tls {port}: {e}"))?;
    let path = match setup.credentials {
        Credentials::Nh1 { .. } => "/device-socket/websocket",
        Credentials::Certificate => "/socket/websocket",
    };
    let mut request = format!("wss://localhost:{port}{path}?vsn=2.0.0")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Credentials::Nh1 { key, secret } = &setup.credentials {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let headers = SharedSecretHeaders::sign(key, secret.as_bytes(), &setup.identifier, now);
        for (name, value) in headers.pairs() {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value).unwrap());
        }
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(format!(
            "upgrade on {port}: {} {:?}",
            response.status(),
            response.headers().get("nh-connection-error-reason")
        )),
        Err(e) => Err(format!("upgrade on {port}: {e}")),
    }
}

/// Drives one connection until it ends; the firmware to join on next when it ended by an
/// update's "reboot".
async fn connected(
    setup: &DeviceSetup,
    mut socket: Socket,
    port: u16,
    firmware: &Firmware,
) -> Option<Firmware> {
    let origin = Instant::now();
    let now = || origin.elapsed();
    let mut session = ClientSession::new(ClientConfig::default(), u64::from(port));
    session.join(DEVICE_TOPIC, firmware.join_params());
    session.handle_connected(now());
    // The update being taken: (when its progress is reported, the firmware it brings).
    let mut holding: Option<(Instant, Firmware)> = None;
    loop {
        while let Some(frame) = session.poll_transmit() {
            if socket.send(Message::text(frame.to_json())).await.is_err() {
                return None;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Joined { topic, .. } if topic == DEVICE_TOPIC => {
                    if let Some(c) = setup.log.lock().unwrap().connections.last_mut() {
                        c.joined = Some(Instant::now());
                    }
                }
                ClientEvent::JoinRefused {
                    topic, response, ..
                } if topic == DEVICE_TOPIC => {
                    setup
                        .log
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("join refused on {port}: {response}"));
                }
                ClientEvent::Close { .. } | ClientEvent::ChannelClosed { .. } => {
                    let _ = socket.close(None).await;
                    return None;
                }
                ClientEvent::Message {
                    topic,
                    event,
                    payload,
                } if topic == DEVICE_TOPIC && event == "update" => {
                    let Ok(DeviceServerEvent::Update(update)) =
                        DeviceServerEvent::from_parts("update", payload)
                    else {
                        continue;
                    };
                    let meta = &update.firmware_meta;
                    setup.log.lock().unwrap().pushes.push(Push {
                        at: Instant::now(),
                        port,
                        uuid: meta.uuid.clone(),
                        url: update.firmware_url.clone(),
                    });
                    if holding.is_none()
                        && let Some(uuid) = meta.uuid.clone()
                    {
                        let next = Firmware {
                            uuid,
                            version: meta.version.clone().unwrap_or_default(),
                        };
                        holding = Some((Instant::now() + setup.hold, next));
                    }
                }
                _ => {}
            }
        }
        let session_deadline = session.poll_timeout().map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            |at| origin + at,
        );
        let deadline = holding
            .as_ref()
            .map_or(session_deadline, |(at, _)| (*at).min(session_deadline));
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(frame) = Frame::from_json(text.as_bytes()) {
                        session.handle_frame(frame, now());
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                if let Some((at, _)) = &holding && *at <= Instant::now() {
                    for value in [0, 50, 100] {
                        let _ = session.push(DEVICE_TOPIC, "fwup_progress", json!({ "value": value }));
                    }
                    while let Some(frame) = session.poll_transmit() {
                        let _ = socket.send(Message::text(frame.to_json())).await;
                    }
                    let _ = socket.close(None).await;
                    return holding.map(|(_, next)| next);
                }
                session.handle_timeout(now());
            }
        }
    }
}
