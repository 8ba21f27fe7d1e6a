//! A test device: real TLS (tokio-rustls, TLS 1.2 like nerves_hub_link or 1.3) and a real
//! WebSocket (tokio-tungstenite) to the device endpoint, speaking frames through
//! nerveshub-proto's codec.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use nerveshub_pki::{CertOptions, Certificate, DeviceCa, PrivateKey, UnixTime};
use nerveshub_proto::{
    Codec, DeviceJoinParams, DeviceMeta, Event, Frame, SharedSecretHeaders, Vsn, WireMessage,
};
use rustls::ClientConfig;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn now() -> UnixTime {
    UnixTime::since_unix_epoch(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

pub fn unix(secs_from_now: i64) -> UnixTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UnixTime::since_unix_epoch(Duration::from_secs(
        now.saturating_add_signed(secs_from_now),
    ))
}

const DAY: i64 = 24 * 3600;

/// A Device CA valid from yesterday for a year.
pub fn device_ca(name: &str) -> DeviceCa {
    DeviceCa::generate(&CertOptions::new(name, unix(-DAY), unix(365 * DAY))).unwrap()
}

/// A device certificate from `ca` valid from yesterday for a year.
pub fn device_cert(ca: &DeviceCa, identifier: &str) -> (Certificate, PrivateKey) {
    ca.issue_device(&CertOptions::new(identifier, unix(-DAY), unix(365 * DAY)))
        .unwrap()
}

/// A device certificate from `ca` that expired yesterday.
pub fn expired_device_cert(ca: &DeviceCa, identifier: &str) -> (Certificate, PrivateKey) {
    ca.issue_device(&CertOptions::new(identifier, unix(-30 * DAY), unix(-DAY)))
        .unwrap()
}

/// NH1 headers signed `offset_s` seconds from now.
pub fn nh1(key: &str, secret: &str, identifier: &str, offset_s: i64) -> Vec<(String, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = now.saturating_add_signed(offset_s);
    SharedSecretHeaders::sign(key, secret.as_bytes(), identifier, at)
        .pairs()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The TLS client of a device: trusts `ca_pem` (the server's CA), presents `identity`.
pub fn tls_client(
    ca_pem: &[u8],
    identity: Option<(&Certificate, &PrivateKey)>,
    tls12_only: bool,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.to_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// What a connection attempt came to.
#[derive(Debug)]
pub enum Connect {
    Upgraded(Box<DeviceWs>),
    /// The server answered the upgrade with this status.
    Refused {
        status: u16,
        headers: HeaderMap,
    },
    /// TLS or TCP failed (a refused client certificate ends the TLS 1.2 handshake).
    Failed(String),
}

impl Connect {
    pub fn device(self) -> DeviceWs {
        match self {
            Connect::Upgraded(ws) => *ws,
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    /// Whether the server refused the device (a 401, or a handshake that failed).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            Connect::Refused { status: 401, .. } | Connect::Failed(_)
        )
    }
}

/// Opens `wss://localhost:<port><path>?vsn=<vsn>` with `headers`.
pub async fn connect(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    path: &str,
    vsn: Vsn,
    headers: &[(String, String)],
) -> Connect {
    let tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => return Connect::Failed(format!("tcp: {e}")),
    };
    let stream = match TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => return Connect::Failed(format!("tls: {e}")),
    };
    let url = format!("wss://localhost:{}{path}?vsn={}", addr.port(), vsn.as_str());
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    request.headers_mut().insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Connect::Upgraded(Box::new(DeviceWs {
            ws,
            codec: Codec::new(vsn),
            next_ref: 0,
            join_ref: None,
        })),
        Err(tungstenite::Error::Http(response)) => Connect::Refused {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
        },
        Err(e) => Connect::Failed(format!("websocket: {e}")),
    }
}

/// A connected test device.
#[derive(Debug)]
pub struct DeviceWs {
    ws: WebSocketStream<TlsStream<TcpStream>>,
    codec: Codec,
    next_ref: u64,
    join_ref: Option<String>,
}

impl DeviceWs {
    fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Whether this connection's TLS handshake resumed an earlier session.
    pub fn tls_resumed(&self) -> bool {
        self.ws.get_ref().get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub async fn send(&mut self, frame: &Frame) {
        let msg = match self.codec.encode(frame).unwrap() {
            WireMessage::Text(t) => Message::Text(t.into()),
            WireMessage::Binary(b) => Message::Binary(b.into()),
        };
        self.ws.send(msg).await.unwrap();
    }

    /// The next frame, or `None` when the socket closed or nothing came within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(self.codec.decode(t.as_bytes()).unwrap()),
                Message::Binary(b) => return Some(self.codec.decode(&b).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn recv(&mut self) -> Frame {
        self.recv_within(WAIT)
            .await
            .expect("a frame from the server")
    }

    /// The close code the server ends the socket with.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.ok()? {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Joins `device` and returns the reply's payload.
    pub async fn join_device(&mut self, params: &DeviceJoinParams) -> Value {
        let r = self.next_ref();
        self.join_ref = Some(r.clone());
        self.send(&Frame::join(r.clone(), "device", params.to_payload()))
            .await;
        let reply = self.recv().await;
        assert_eq!(reply.event, Event::Reply, "{reply:?}");
        assert_eq!(reply.msg_ref.as_deref(), Some(r.as_str()));
        reply.payload
    }

    /// Pushes `event` on `device` with a ref, as nerves_hub_link does.
    pub async fn push(&mut self, event: &str, payload: Value) {
        let r = self.next_ref();
        let frame = Frame::new(self.join_ref.clone(), Some(r), "device", event, payload);
        self.send(&frame).await;
    }

    /// [`push`](Self::push) on a socket the server may have dropped: false when the send
    /// failed (a simulated device then reconnects, as nerves_hub_link does).
    pub async fn try_push(&mut self, event: &str, payload: Value) -> bool {
        let r = self.next_ref();
        let frame = Frame::new(self.join_ref.clone(), Some(r), "device", event, payload);
        let msg = match self.codec.encode(&frame).unwrap() {
            WireMessage::Text(t) => Message::Text(t.into()),
            WireMessage::Binary(b) => Message::Binary(b.into()),
        };
        self.ws.send(msg).await.is_ok()
    }

    /// Sends a heartbeat and returns its ref.
    pub async fn heartbeat(&mut self) -> String {
        let r = self.next_ref();
        self.send(&Frame::heartbeat(r.clone())).await;
        r
    }

    /// Frames of the given event, skipping others, until one arrives.
    pub async fn recv_event(&mut self, event: &str) -> Frame {
        loop {
            let f = self.recv().await;
            if f.event.as_str() == event {
                return f;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// nerves_hub_link's join params for a firmware.
pub fn join_params(uuid: &str, version: &str) -> DeviceJoinParams {
    DeviceJoinParams {
        nerves_fw_uuid: Some(uuid.into()),
        nerves_fw_product: Some("demo".into()),
        nerves_fw_version: Some(version.into()),
        nerves_fw_platform: Some("host".into()),
        nerves_fw_architecture: Some("x86_64".into()),
        nerves_fw_author: Some("The Authors".into()),
        nerves_fw_description: Some("test firmware".into()),
        nerves_fw_vcs_identifier: Some("abc123".into()),
        nerves_fw_misc: Some("".into()),
        fwup_version: Some("1.16.0".into()),
        device_api_version: Some("2.3.0".into()),
        console_version: Some("2.0.0".into()),
        currently_downloading_uuid: None,
        meta: Some(DeviceMeta {
            firmware_validated: Some(true),
            firmware_auto_revert_detected: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn ok_response(reply: &Value) -> &Value {
    assert_eq!(reply["status"], "ok", "{reply}");
    &reply["response"]
}

pub fn empty() -> Value {
    json!({})
}

// ---- fixtures through the management API ----------------------------------------------------

use crate::common::{OrgFixture, TestServer};
use nerveshub_pki::ProofPlacement;
use reqwest::StatusCode;

/// The product the device tests use.
pub const PRODUCT: &str = "demo";

/// The server's development CA (what devices trust).
pub fn server_ca(ts: &TestServer) -> Vec<u8> {
    std::fs::read(ts.server.dev_ca_file().expect("a development CA")).unwrap()
}

/// An org `org` with product [`PRODUCT`].
pub async fn org_with_product(ts: &TestServer, org: &str) -> OrgFixture {
    let fixture = ts.org_fixture(org).await;
    let (status, body) = ts
        .post(
            &fixture.admin,
            &format!("/orgs/{org}/products"),
            json!({"name": PRODUCT}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    fixture
}

pub fn device_path(org: &str, identifier: &str) -> String {
    format!("/orgs/{org}/products/{PRODUCT}/devices/{identifier}")
}

/// Registers `ca` with the org (proof of possession through the API), with a JITP profile
/// into [`PRODUCT`] when `jitp` is set.
pub async fn register_ca(ts: &TestServer, f: &OrgFixture, ca: &DeviceCa, jitp: bool) {
    let (status, body) = ts
        .get(
            &f.manage,
            &format!("/orgs/{}/ca_certificates/verification_token", f.org),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["data"]["verification_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proof = ca
        .verification_certificate(&token, ProofPlacement::SanUri, unix(-DAY), unix(DAY))
        .unwrap();
    let mut request = json!({
        "cert": ca.certificate().to_pem(),
        "verification_cert": proof.to_pem(),
        "description": "test CA",
    });
    if jitp {
        request["jitp"] =
            json!({"product_name": PRODUCT, "tags": ["jitp"], "description": "made by JITP"});
    }
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("/orgs/{}/ca_certificates", f.org),
            request,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Creates device `identifier` in [`PRODUCT`].
pub async fn create_device(ts: &TestServer, f: &OrgFixture, identifier: &str) {
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("/orgs/{}/products/{PRODUCT}/devices", f.org),
            json!({"identifier": identifier}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Adds a certificate to a device through the API.
pub async fn add_device_certificate(
    ts: &TestServer,
    f: &OrgFixture,
    identifier: &str,
    cert: &Certificate,
) {
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("{}/certificates", device_path(&f.org, identifier)),
            json!({"cert": cert.to_pem()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A new product shared secret: `(key, secret)`.
pub async fn product_secret(ts: &TestServer, f: &OrgFixture) -> (String, String) {
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("/orgs/{}/products/{PRODUCT}/shared_secrets", f.org),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    secret_pair(&body)
}

/// A new device shared secret: `(key, secret)`.
pub async fn device_secret(ts: &TestServer, f: &OrgFixture, identifier: &str) -> (String, String) {
    let (status, body) = ts
        .post(
            &f.manage,
            &format!("{}/shared_secrets", device_path(&f.org, identifier)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    secret_pair(&body)
}

fn secret_pair(body: &Value) -> (String, String) {
    (
        body["data"]["key"].as_str().unwrap().to_owned(),
        body["data"]["secret"].as_str().unwrap().to_owned(),
    )
}

/// The device as the API shows it.
pub async fn device_json(ts: &TestServer, f: &OrgFixture, identifier: &str) -> Value {
    let (status, body) = ts.get(&f.view, &device_path(&f.org, identifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

/// Waits until the device JSON satisfies `ok` (connection state is written asynchronously).
pub async fn wait_device(
    ts: &TestServer,
    f: &OrgFixture,
    identifier: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let device = device_json(ts, f, identifier).await;
        if ok(&device) {
            return device;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "device never matched: {device}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects to the device endpoint of `ts` with a certificate, over TLS 1.2 as
/// nerves_hub_link does.
pub async fn connect_cert(ts: &TestServer, cert: &Certificate, key: &PrivateKey) -> Connect {
    let tls = tls_client(&server_ca(ts), Some((cert, key)), true);
    connect(
        ts.server.device_addr(),
        tls,
        "/socket/websocket",
        Vsn::V2Json,
        &[],
    )
    .await
}

/// Connects with NH1 headers.
pub async fn connect_nh1(ts: &TestServer, headers: &[(String, String)], vsn: Vsn) -> Connect {
    let tls = tls_client(&server_ca(ts), None, true);
    connect(
        ts.server.device_addr(),
        tls,
        "/device-socket/websocket",
        vsn,
        headers,
    )
    .await
}
