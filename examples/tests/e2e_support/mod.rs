//! Support for the server-and-device end-to-end tests: a real `nerveshub-server` on loopback
//! (SQLite in its data directory, or a fresh PostgreSQL database), its management API, a TLS
//! proxy in front of the firmware downloads that can cut the first one, and a simulated
//! device (`nerveshub-client` in-process, built-in fwup engine) that "reboots" like
//! `nerveshub-device`.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nerveshub_client::{
    Auth, Config, Device, FirmwareEnv, NERVES_UBOOT_ENV, PublicKey, Stopped, Trust, Updater,
    certificates_from_bytes, private_key_from_bytes,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use nerveshub_test_support::device::{Record, TestClient, fast};
use nerveshub_test_support::postgres::TestDatabase;

/// The org and product every test uses (the test firmware declares product `demo`).
pub const ORG: &str = "acme";
pub const PRODUCT: &str = "demo";

/// How long anything the tests wait for may take (a busy CI machine included).
const PATIENCE: Duration = Duration::from_secs(90);

pub use nerveshub_test_support::TestDb;

/// SQLite, plus PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` names one (required under
/// `NERVESHUB_CI=1`, as in the server's own tests).
pub fn databases() -> Vec<TestDb> {
    nerveshub_test_support::databases()
}

/// Calls the management API at `url` with the token: (status, JSON body, or the text when it
/// is not JSON).
pub(crate) async fn call_api(
    http: &reqwest::Client,
    token: &str,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http
        .request(method, url)
        .header("authorization", format!("token {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// A running server with an org `acme` holding product `demo`, and its admin's token.
pub struct Hub {
    server: Option<nerveshub_server::RunningServer>,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
    token: String,
    http: reqwest::Client,
    /// For PostgreSQL: its database, dropped in [`Hub::stop`].
    pg: Option<TestDatabase>,
}

impl Hub {
    /// Starts a server on loopback with `adjust` applied to its configuration, then makes the
    /// org and product.
    pub async fn start(db: TestDb, adjust: impl FnOnce(&mut nerveshub_server::Config)) -> Hub {
        let data_dir = tempfile::tempdir().unwrap();
        let pg = match &db {
            TestDb::Sqlite => None,
            TestDb::Postgres(url) => Some(TestDatabase::create(url, "nhe2e").await),
        };
        let mut config = nerveshub_server::Config::new(data_dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = pg.as_ref().map(TestDatabase::url);
        adjust(&mut config);
        let server = nerveshub_server::RunningServer::start(config)
            .await
            .unwrap();
        let token = server.first_admin().expect("first start").token.clone();
        let hub = Hub {
            server: Some(server),
            db,
            data_dir,
            token,
            http: reqwest::Client::new(),
            pg,
        };
        hub.ok(Method::POST, "/orgs", json!({"name": ORG})).await;
        hub.ok(
            Method::POST,
            &format!("/orgs/{ORG}/products"),
            json!({"name": PRODUCT}),
        )
        .await;
        hub
    }

    fn server(&self) -> &nerveshub_server::RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(database) = self.pg.take() {
            database.drop_database().await;
        }
    }

    /// The first admin's API token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The management API's base URL (`http://127.0.0.1:PORT`, without `/api`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server().api_addr())
    }

    /// The management API's HTTPS URL, when the hub was started with `api_tls_addr`.
    pub fn api_tls_url(&self) -> Option<String> {
        self.server()
            .api_tls_addr()
            .map(|addr| format!("https://localhost:{}", addr.port()))
    }

    /// The device endpoint, as devices are given it.
    pub fn device_url(&self) -> String {
        format!("wss://localhost:{}", self.server().device_addr().port())
    }

    pub fn device_addr(&self) -> SocketAddr {
        self.server().device_addr()
    }

    /// The server's development CA (what devices trust).
    pub fn ca_file(&self) -> PathBuf {
        self.server()
            .dev_ca_file()
            .expect("a development CA")
            .to_owned()
    }

    /// Calls the management API as the admin: (status, JSON body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("http://{}/api{path}", self.server().api_addr());
        call_api(&self.http, &self.token, method, url, body).await
    }

    /// A call that must succeed; its `data`.
    pub async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, answer) = self.request(method.clone(), path, Some(body)).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer["data"].clone()
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.request(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {answer}");
        answer["data"].clone()
    }

    /// Registers a firmware signing key in the org.
    pub async fn add_key(&self, name: &str, key: &PublicKey) {
        let body = json!({"name": name, "key": key.to_base64()});
        self.ok(Method::POST, &format!("/orgs/{ORG}/keys"), body)
            .await;
    }

    /// Uploads a `.fw` (multipart field `firmware`); returns its UUID.
    pub async fn upload(&self, fw: Vec<u8>) -> String {
        let url = format!(
            "http://{}/api/orgs/{ORG}/products/{PRODUCT}/firmwares",
            self.server().api_addr()
        );
        let part = reqwest::multipart::Part::bytes(fw).file_name("firmware.fw");
        let response = self
            .http
            .post(url)
            .header("authorization", format!("token {}", self.token))
            .multipart(reqwest::multipart::Form::new().part("firmware", part))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "upload: {body}");
        body["data"]["uuid"].as_str().unwrap().to_owned()
    }

    pub fn device_path(identifier: &str) -> String {
        format!("/orgs/{ORG}/products/{PRODUCT}/devices/{identifier}")
    }

    /// Adds device `identifier` and its certificate (PEM).
    pub async fn add_device_with_cert(&self, identifier: &str, cert_pem: &str) {
        let devices = format!("/orgs/{ORG}/products/{PRODUCT}/devices");
        self.ok(Method::POST, &devices, json!({"identifier": identifier}))
            .await;
        let certs = format!("{}/certificates", Self::device_path(identifier));
        self.ok(Method::POST, &certs, json!({"cert": cert_pem}))
            .await;
    }

    /// A new product shared secret: (`nhp_…` key, secret).
    pub async fn product_secret(&self) -> (String, String) {
        let path = format!("/orgs/{ORG}/products/{PRODUCT}/shared_secrets");
        let data = self.ok(Method::POST, &path, json!({})).await;
        let text = |f: &str| data[f].as_str().unwrap().to_owned();
        (text("key"), text("secret"))
    }

    /// `POST …/upgrade {uuid}`: must be accepted (202).
    pub async fn upgrade(&self, identifier: &str, uuid: &str) {
        let path = format!("{}/upgrade", Self::device_path(identifier));
        let (status, body) = self
            .request(Method::POST, &path, Some(json!({"uuid": uuid})))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "upgrade: {body}");
    }

    /// The device as the API shows it (`None` before it exists).
    pub async fn device(&self, identifier: &str) -> Option<Value> {
        let (status, body) = self
            .request(Method::GET, &Self::device_path(identifier), None)
            .await;
        (status == StatusCode::OK).then(|| body["data"].clone())
    }

    /// The device's updates, oldest first.
    pub async fn updates(&self, identifier: &str) -> Vec<Value> {
        let path = format!("{}/updates", Self::device_path(identifier));
        self.get(&path).await.as_array().unwrap().clone()
    }

    /// Waits until the device is online reporting firmware `version`.
    pub async fn wait_online_on(&self, identifier: &str, version: &str) -> Value {
        eventually(&format!("{identifier} online on {version}"), async || {
            let device = self.device(identifier).await;
            match device {
                Some(d) if d["online"] == true && d["firmware_metadata"]["version"] == version => {
                    Ok(d)
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// Waits until the device's newest update has ended (completed, failed, ignored or
    /// rescheduled) and returns it.
    pub async fn wait_update_ended(&self, identifier: &str) -> Value {
        eventually(&format!("an update of {identifier} ended"), async || {
            let updates = self.updates(identifier).await;
            match updates.last() {
                Some(u)
                    if matches!(
                        u["status"].as_str(),
                        Some("completed" | "failed" | "ignored" | "rescheduled")
                    ) =>
                {
                    Ok(u.clone())
                }
                _ => Err(format!("{updates:?}")),
            }
        })
        .await
    }

    /// The one stored firmware object with this size, under the local storage root.
    pub fn stored_object(&self, size: usize) -> PathBuf {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.data_dir.path().join("firmware"), &mut files);
        files.retain(|f| f.metadata().is_ok_and(|m| m.len() == size as u64));
        assert_eq!(files.len(), 1, "stored objects of {size} bytes: {files:?}");
        files.remove(0)
    }
}

/// Polls `check` until it gives a value, failing after [`PATIENCE`] with the last state it
/// described.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A device run by `nerveshub-client` in this process on a disk image, with the built-in
/// engine, short timers and the server's CA. After an update it "reboots" as
/// `nerveshub-device` does: re-reads the U-Boot environment, validates the new firmware and
/// reconnects with its metadata.
pub struct SimDevice {
    pub record: Arc<Mutex<Record>>,
    /// How many times it rebooted.
    pub reboots: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<String>,
}

impl SimDevice {
    pub fn start(hub: &Hub, auth: Auth, image: &Path, keys: Vec<PublicKey>) -> SimDevice {
        let ca = std::fs::read(hub.ca_file()).unwrap();
        let trust = Trust::Roots(certificates_from_bytes(&ca).unwrap());
        let mut config = Config::new(hub.device_url(), auth, trust, Updater::built_in(image));
        fast(&mut config);
        config.firmware_keys = keys;
        config.join_params = read_env(image).join_params();
        let client = TestClient::new();
        let record = client.record.clone();
        let reboots = Arc::new(AtomicU32::new(0));
        let mut device = Device::new(config, client).unwrap();
        let (image, count) = (image.to_owned(), reboots.clone());
        let task = tokio::spawn(async move {
            loop {
                match device.run().await {
                    Ok(Stopped::Reboot(_)) => {
                        let mut env = read_env(&image);
                        if !env.firmware_validated() {
                            env.validate();
                            env.write().unwrap();
                        }
                        device.config_mut().join_params = env.join_params();
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    other => return format!("{other:?}"),
                }
            }
        });
        SimDevice {
            record,
            reboots,
            task,
        }
    }

    /// What the client was told, for failure messages.
    pub fn log(&self) -> String {
        let r = self.record.lock().unwrap();
        format!(
            "errors: {:?}\nreboots: {:?}\nfwup messages: {}",
            r.errors,
            r.reboots,
            r.messages.len()
        )
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The U-Boot environment of an image (the Nerves layout).
pub fn read_env(image: &Path) -> FirmwareEnv {
    FirmwareEnv::read(image, NERVES_UBOOT_ENV).unwrap()
}

/// A TLS-terminating proxy for firmware downloads, standing where the server's `device_url`
/// points: it presents the server's own certificate, forwards each request to the device
/// endpoint over TLS, records every request head, and cuts the first response after
/// `cut_after` bytes (the connection just drops).
pub struct CutProxy {
    listener: Option<TcpListener>,
    pub port: u16,
    /// Every request head seen, in order, one per connection.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl CutProxy {
    /// Binds the port (so the server can be configured with it before it starts).
    pub async fn bind() -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        CutProxy {
            listener: Some(listener),
            port,
            requests: Arc::default(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Starts forwarding to `hub`'s device endpoint.
    pub fn run(&mut self, hub: &Hub, cut_after: usize) {
        let tls_dir = hub.data_dir.path().join("tls");
        let chain =
            certificates_from_bytes(&std::fs::read(tls_dir.join("server.pem")).unwrap()).unwrap();
        let key = private_key_from_bytes(&std::fs::read(tls_dir.join("server-key.pem")).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates_from_bytes(&std::fs::read(hub.ca_file()).unwrap()).unwrap() {
            roots.add(ca).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let listener = self.listener.take().expect("run once");
        let upstream = hub.device_addr();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let limit = if std::mem::take(&mut first) {
                    cut_after
                } else {
                    usize::MAX
                };
                let (acceptor, connector, requests) =
                    (acceptor.clone(), connector.clone(), requests.clone());
                tokio::spawn(async move {
                    let Ok(down) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                    let Ok(up) = connector.connect(name, up).await else {
                        return;
                    };
                    forward(down, up, limit, requests).await;
                });
            }
        });
    }
}

/// Forwards one connection: the request head (recorded) up, then the response down until
/// `limit` bytes have passed, then drops both sides.
async fn forward(
    mut down: impl AsyncRead + AsyncWrite + Unpin,
    mut up: impl AsyncRead + AsyncWrite + Unpin,
    limit: usize,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match down.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
    if up.write_all(&head).await.is_err() {
        return;
    }
    if limit == usize::MAX {
        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        return;
    }
    let mut passed = 0;
    while passed < limit {
        let n = match up.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(limit - passed),
        };
        if down.write_all(&buf[..n]).await.is_err() {
            return;
        }
        passed += n;
    }
    let _ = down.flush().await;
    // Dropping both streams closes the TCP connections without a TLS close_notify: to the
    // device the download just broke off.
}
