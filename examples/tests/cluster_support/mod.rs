//! Support for the multi-process cluster tests: a fresh PostgreSQL database and an S3 prefix
//! per test, real `nerveshub-server` processes on loopback sharing them (each killed -9 and
//! reaped when its guard drops), their management API, their metrics, and simulated devices
//! that record every `update` they are sent, when each connection joined and when it closed.
//!
//! The devices are small drivers of `nerveshub_proto::ClientSession` (as `nerveshub-loadgen`
//! drives it) rather than `nerveshub-client`: the tests need what the client hides — every
//! `update` push, a second one during an update included, and client-side close times.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

mod device;

pub use device::*;

use crate::e2e_support::call_api;
use nerveshub_test_support::postgres::TestDatabase;
use nerveshub_test_support::unique_name;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use nerveshub_proto::{
    ChannelMessage as _, ClientConfig, ClientEvent, ClientSession, DEVICE_API_VERSION,
    DEVICE_TOPIC, DeviceServerEvent, Frame, SharedSecretHeaders,
};
use reqwest::{Method, StatusCode};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The org and product every test uses (the test firmware declares product `demo`).
pub const ORG: &str = "acme";
pub const PRODUCT: &str = "demo";

const SERVER: &str = env!("CARGO_BIN_EXE_nerveshub-server");

/// The S3 test server `.ci/s3-server` started.
pub use nerveshub_test_support::S3Server as S3;

/// What every test needs: PostgreSQL (an admin URL to make databases with) and, for most,
/// S3. `None` (with the reason printed) when one is missing; a panic under `NERVESHUB_CI=1`.
pub fn services(need_s3: bool) -> Option<(String, Option<S3>)> {
    let pg = nerveshub_test_support::postgres_admin_url()?;
    if !need_s3 {
        return Some((pg, None));
    }
    let s3 = nerveshub_test_support::s3_server()?;
    Some((pg, Some(s3)))
}

/// Where the nodes keep firmware.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A prefix of its own in the S3 test bucket.
    S3 { spec: String, endpoint: String },
    /// Local storage; every node's `firmware` directory is the first node's (a shared
    /// directory, as an operator would mount one), with `--local-storage-shared`.
    LocalShared,
}

/// One test's cluster: its database, its storage, the directory every node's data directory
/// lives in, and the first admin's token once the first node made it.
pub struct Cluster {
    database: TestDatabase,
    pub database_url: String,
    storage: Storage,
    dir: tempfile::TempDir,
    /// The first node's data directory: the shared-secrets key, the TLS identity (and for
    /// local storage the firmware directory) every later node copies.
    seed: Mutex<Option<PathBuf>>,
    token: Mutex<Option<String>>,
    http: reqwest::Client,
}

impl Cluster {
    /// A fresh database on `pg` and the storage `storage` (S3 when `s3` is given).
    pub async fn new(pg: &str, s3: Option<&S3>) -> Cluster {
        let database = TestDatabase::create(pg, "nhcluster").await;
        let storage = match s3 {
            Some(s3) => Storage::S3 {
                spec: format!("s3://{}/{}", s3.bucket, unique_name("cluster")),
                endpoint: s3.endpoint.clone(),
            },
            None => Storage::LocalShared,
        };
        Cluster {
            database_url: database.url(),
            database,
            storage,
            dir: tempfile::tempdir().unwrap(),
            seed: Mutex::new(None),
            token: Mutex::new(None),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Starts node `name` with `extra` flags (e.g. `--node-role api`) and waits until it
    /// answers `/health`. The first node made the shared-secrets key and TLS identity; later
    /// nodes start with copies of them, as the README tells operators to do. After the first
    /// node, the org and product exist.
    pub async fn start(&self, name: &str, extra: &[&str]) -> Node {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let seed = self.seed.lock().unwrap().clone();
        if let Some(seed) = &seed {
            std::fs::copy(
                seed.join("shared-secrets.key"),
                data_dir.join("shared-secrets.key"),
            )
            .unwrap();
            copy_dir(&seed.join("tls"), &data_dir.join("tls"));
            if matches!(self.storage, Storage::LocalShared) {
                let firmware = seed.join("firmware");
                std::fs::create_dir_all(&firmware).unwrap();
                std::os::unix::fs::symlink(&firmware, data_dir.join("firmware")).unwrap();
            }
        }
        let mut node = Node {
            name: name.to_owned(),
            data_dir,
            api_port: 0,
            device_port: 0,
            metrics_port: 0,
            child: None,
            args: Vec::new(),
        };
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--database-url".into(),
            self.database_url.clone(),
            // The node's name in its log lines and in `nodes`.
            "--node-id".into(),
            name.to_owned(),
        ];
        match &self.storage {
            Storage::S3 { spec, endpoint } => {
                args.extend(["--storage".into(), spec.clone()]);
                for option in [
                    format!("aws_endpoint={endpoint}"),
                    "aws_allow_http=true".into(),
                    "aws_region=us-east-1".into(),
                ] {
                    args.extend(["--storage-option".into(), option]);
                }
            }
            Storage::LocalShared => {
                args.extend(["--storage".into(), "local".into()]);
                args.push("--local-storage-shared".into());
            }
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        node.args = args;
        // Ports are chosen free, then bound by the node: another test may take one in
        // between, so a node that finds its port in use starts again on others.
        for attempt in 1.. {
            node.api_port = free_port();
            node.device_port = free_port();
            node.metrics_port = free_port();
            node.spawn();
            match node.wait_healthy(&self.http).await {
                Ok(()) => break,
                Err(why) if attempt < 3 && why.contains("in use") => node.kill9(),
                Err(why) => panic!("{why}"),
            }
        }
        if seed.is_none() {
            let token = std::fs::read_to_string(node.data_dir.join("admin-token"))
                .expect("the first node wrote the admin token");
            *self.token.lock().unwrap() = Some(token.trim().to_owned());
            *self.seed.lock().unwrap() = Some(node.data_dir.clone());
            let api = self.api(&node);
            api.ok(Method::POST, "/orgs", json!({"name": ORG})).await;
            api.ok(
                Method::POST,
                &format!("/orgs/{ORG}/products"),
                json!({"name": PRODUCT}),
            )
            .await;
        }
        node
    }

    /// The management API of `node`, as the first admin.
    pub fn api(&self, node: &Node) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}/api", node.api_port),
            token: self.token.lock().unwrap().clone().expect("a node started"),
            http: self.http.clone(),
        }
    }

    /// The development CA every node's device certificate chains to (the first node's).
    pub fn ca_pem(&self) -> Vec<u8> {
        let seed = self.seed.lock().unwrap().clone().expect("a node started");
        std::fs::read(seed.join("tls/ca.pem")).unwrap()
    }

    /// The root store devices trust.
    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in nerveshub_client::certificates_from_bytes(&self.ca_pem()).unwrap() {
            roots.add(cert).unwrap();
        }
        Arc::new(roots)
    }

    /// An HTTPS client trusting the nodes' development CA (firmware downloads).
    pub fn https(&self) -> reqwest::Client {
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

impl Drop for Cluster {
    /// Drops the test's database. The nodes are gone by now (they are declared after the
    /// cluster, so dropped first); `WITH (FORCE)` covers any that is not.
    fn drop(&mut self) {
        let database = self.database.clone();
        // Its own thread and runtime: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(database.drop_database());
        })
        .join();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// One `nerveshub-server` process. Dropping it kills it (-9) and reaps it.
pub struct Node {
    pub name: String,
    pub data_dir: PathBuf,
    pub api_port: u16,
    pub device_port: u16,
    pub metrics_port: u16,
    child: Option<Child>,
    /// Its flags but the three listen addresses (added from the ports at each spawn).
    args: Vec<String>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.data_dir
            .parent()
            .unwrap()
            .join(format!("{}.log", self.name))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(SERVER);
        command
            .args(&self.args)
            .arg(format!("--api-addr=127.0.0.1:{}", self.api_port))
            .arg(format!("--device-addr=127.0.0.1:{}", self.device_port))
            .arg(format!("--metrics-addr=127.0.0.1:{}", self.metrics_port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // The caller's settings are not this node's; the AWS_* credentials stay (S3).
        for (key, _) in std::env::vars() {
            if key.starts_with("NERVESHUB_") {
                command.env_remove(key);
            }
        }
        command.env(
            "RUST_LOG",
            std::env::var("NERVESHUB_CLUSTER_LOG")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "info".into()),
        );
        self.child = Some(command.spawn().expect("starting nerveshub-server"));
    }

    /// Waits until the node answers `/health`; why not (with its log) when it exits first
    /// or takes too long.
    async fn wait_healthy(&mut self, http: &reqwest::Client) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/health", self.api_port);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "node {} exited at start ({status}):\n{}",
                    self.name,
                    self.log()
                ));
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {} never answered /health:\n{}",
                    self.name,
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The device endpoint's address.
    pub fn device_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.device_port))
    }

    /// Kills the process with SIGKILL (no drain, no lease release) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (the graceful drain).
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not exit within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The sum of a metric's samples in the node's `/metrics` (see [`scrape`]).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        scrape(self.metrics_port, name).await
    }
}

/// The sum of a metric's samples (every label set) at `http://127.0.0.1:{port}/metrics`;
/// `None` when nothing answers there or the metric is missing.
pub async fn scrape(port: u16, name: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The management API of one node, as the first admin.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// (status, JSON body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
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
    pub async fn add_key(&self, name: &str, key: &nerveshub_client::PublicKey) {
        let body = json!({"name": name, "key": key.to_base64()});
        self.ok(Method::POST, &format!("/orgs/{ORG}/keys"), body)
            .await;
    }

    /// Uploads a `.fw`; returns its UUID.
    pub async fn upload(&self, fw: Vec<u8>) -> String {
        let part = reqwest::multipart::Part::bytes(fw).file_name("firmware.fw");
        let response = self
            .http
            .post(format!(
                "{}/orgs/{ORG}/products/{PRODUCT}/firmwares",
                self.base
            ))
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

    /// A new product shared secret: (`nhp_…` key, secret).
    pub async fn product_secret(&self) -> (String, String) {
        let path = format!("/orgs/{ORG}/products/{PRODUCT}/shared_secrets");
        let data = self.ok(Method::POST, &path, json!({})).await;
        let text = |f: &str| data[f].as_str().unwrap().to_owned();
        (text("key"), text("secret"))
    }

    pub fn device_path(identifier: &str) -> String {
        format!("/orgs/{ORG}/products/{PRODUCT}/devices/{identifier}")
    }

    /// The device as the API shows it (`None` before it exists).
    pub async fn device(&self, identifier: &str) -> Option<Value> {
        let (status, body) = self
            .request(Method::GET, &Self::device_path(identifier), None)
            .await;
        (status == StatusCode::OK).then(|| body["data"].clone())
    }

    /// The device's `connection_status` (`None` before it exists).
    pub async fn connection_status(&self, identifier: &str) -> Option<String> {
        self.device(identifier)
            .await
            .and_then(|d| d["connection_status"].as_str().map(str::to_owned))
    }

    /// The device's updates, oldest first.
    pub async fn updates(&self, identifier: &str) -> Vec<Value> {
        let path = format!("{}/updates", Self::device_path(identifier));
        self.get(&path)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Polls `check` until it gives a value, failing after `limit` with the last state it
/// described.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The firmware a simulated device reports in its join.
#[derive(Debug, Clone)]
pub struct Firmware {
    pub uuid: String,
    pub version: String,
}

impl Firmware {
    fn join_params(&self) -> Value {
        json!({
            "nerves_fw_uuid": self.uuid,
            "nerves_fw_version": self.version,
            "nerves_fw_product": PRODUCT,
            "nerves_fw_platform": "host",
            "nerves_fw_architecture": "x86_64",
            "nerves_fw_author": "nerveshub-rs",
            "fwup_version": "1.16.0",
            "device_api_version": DEVICE_API_VERSION,
            "currently_downloading_uuid": null,
            "meta": {"firmware_validated": true},
        })
    }
}
