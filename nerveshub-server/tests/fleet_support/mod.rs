//! Rollout tests' shared parts: a server with short orchestrator intervals, firmware of
//! several versions (made with nerveshub-fwup and signed), and simulated devices that speak
//! nerves_hub_link's protocol over real TLS and WebSockets — each a task that connects with a
//! product shared secret, joins with its firmware, and reacts to `update` pushes as it is told
//! (install and reboot into the new firmware, fail, reboot into the old one, stay silent…).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::print_stderr)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nerveshub_proto::{Event, Vsn};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::common::{OrgFixture, TestDb, TestServer};
use crate::device_support::{self, connect, join_params, nh1, tls_client};
use crate::firmware_support::{FwServer, TestStorage, full_meta, make_firmware, uuid_of};

/// The product of the rollout tests.
pub const PRODUCT: &str = "fleet";

/// A firmware uploaded to [`PRODUCT`].
#[derive(Debug, Clone)]
pub struct Fw {
    pub uuid: String,
    pub version: String,
}

/// A server on `db` with orchestrator intervals short enough for tests, an org with
/// [`PRODUCT`], its signing key, a product shared secret, and firmware of each version.
pub struct Fleet {
    pub fw: FwServer,
    pub f: OrgFixture,
    pub key: String,
    pub secret: String,
    pub firmware: HashMap<String, Fw>,
}

pub fn fast(config: &mut nerveshub_server::Config) {
    config.rollout_coalesce = Duration::from_millis(200);
    config.rollout_backup_tick = Duration::from_secs(1);
}

impl Fleet {
    pub async fn start(
        db: TestDb,
        versions: &[&str],
        adjust: impl FnOnce(&mut nerveshub_server::Config),
    ) -> Fleet {
        let fw = FwServer::start_with(db, TestStorage::Local, |c| {
            fast(c);
            adjust(c);
        })
        .await;
        let f = fw.org_with_product("acme", PRODUCT, Some("fwup-key")).await;
        let mut firmware = HashMap::new();
        for (i, version) in versions.iter().enumerate() {
            let bytes = make_firmware(&full_meta(PRODUCT, version), 1024, i as u64 + 1);
            let uuid = uuid_of(&bytes);
            let (status, body, _) = fw.upload(&f.manage, "acme", PRODUCT, bytes).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            firmware.insert(
                (*version).to_owned(),
                Fw {
                    uuid,
                    version: (*version).to_owned(),
                },
            );
        }
        let (status, body) = fw
            .ts
            .post(
                &f.manage,
                &format!("/orgs/acme/products/{PRODUCT}/shared_secrets"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let key = body["data"]["key"].as_str().unwrap().to_owned();
        let secret = body["data"]["secret"].as_str().unwrap().to_owned();
        Fleet {
            fw,
            f,
            key,
            secret,
            firmware,
        }
    }

    pub fn ts(&self) -> &TestServer {
        &self.fw.ts
    }

    pub fn fw(&self, version: &str) -> Fw {
        self.firmware[version].clone()
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/orgs/acme/products/{PRODUCT}{rest}")
    }

    /// Creates a deployment of `version` with `extra` fields; returns its JSON.
    pub async fn deployment(&self, name: &str, version: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "firmware": self.fw(version).uuid});
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        let (status, created) = self
            .ts()
            .post(&self.f.manage, &self.path("/deployments"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"].clone()
    }

    /// `PUT …/deployments/{name}` with `{"deployment": changes}`.
    pub async fn change(&self, name: &str, changes: Value) -> Value {
        let (status, body) = self
            .ts()
            .put(
                &self.f.manage,
                &self.path(&format!("/deployments/{name}")),
                json!({"deployment": changes}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    pub async fn status(&self, name: &str) -> Value {
        let (status, body) = self
            .ts()
            .get(
                &self.f.view,
                &self.path(&format!("/deployments/{name}/status")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// Waits until the deployment's status satisfies `ok`.
    pub async fn wait_status(
        &self,
        name: &str,
        within: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(name).await;
            if ok(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "status never matched: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates devices with tags before they first connect.
    pub async fn create_devices(&self, identifiers: &[String], tags: &[&str]) {
        for identifier in identifiers {
            let (status, body) = self
                .ts()
                .post(
                    &self.f.manage,
                    &self.path("/devices"),
                    json!({"identifier": identifier, "tags": tags}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }

    pub async fn device(&self, identifier: &str) -> Value {
        let (status, body) = self
            .ts()
            .get(&self.f.view, &self.path(&format!("/devices/{identifier}")))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }

    /// (status, reason, deployment, in_flight) of a device's updates, oldest first.
    pub async fn updates(&self, identifier: &str) -> Vec<Value> {
        let (status, body) = self
            .ts()
            .get(
                &self.f.view,
                &self.path(&format!("/devices/{identifier}/updates")),
            )
            .await;
        if status == StatusCode::NOT_FOUND {
            // Not registered yet: it has not connected.
            return Vec::new();
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Polls `identifier`'s updates (every 100 ms, a minute at most) until `ok` holds.
    pub async fn wait_updates(
        &self,
        identifier: &str,
        ok: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.updates(identifier).await;
            if ok(&rows) {
                return rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{identifier}'s updates never matched: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A simulated device running `version`, connected to this server.
    pub fn spawn(&self, identifier: &str, version: &str, behaviour: Behaviour) -> Sim {
        let (addr_tx, addr_rx) = watch::channel(Some(self.ts().server.device_addr()));
        let ca = device_support::server_ca(self.ts());
        Sim::spawn(
            SimConfig {
                identifier: identifier.to_owned(),
                key: self.key.clone(),
                secret: self.secret.clone(),
                ca,
                firmware: self.fw(version),
                behaviour,
            },
            addr_rx,
            Some(addr_tx),
        )
    }
}

/// What a simulated device does with an `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Installs it, reports like nerves_hub_link, reboots into it.
    Install,
    /// Reports `failed`.
    Fail,
    /// Says `completed`, then comes back on its old firmware (an automatic revert).
    RevertOnReboot,
    /// Says `completed`, then never comes back.
    Vanish,
    /// Reports `rescheduled` with `delay_for` 5 (minutes).
    Reschedule,
    /// Reports `ignored`.
    Ignore,
    /// Acknowledges and reports progress, then waits for [`Sim::finish`] (a long download).
    Hold,
    /// Installs it, taking this many milliseconds to download.
    Slow(u64),
    /// Acknowledges, then drops the connection and reconnects without saying it is
    /// downloading (a flaky link): the update is interrupted.
    Drop,
    /// Says nothing at all about it.
    Mute,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub identifier: String,
    pub key: String,
    pub secret: String,
    pub ca: Vec<u8>,
    pub firmware: Fw,
    pub behaviour: Behaviour,
}

/// What a simulated device saw.
#[derive(Debug, Default)]
pub struct SimLog {
    /// The uuid of each `update` pushed to it, in order.
    pub updates: Vec<String>,
    /// The firmware it runs now.
    pub running: Option<Fw>,
    /// Joins so far.
    pub joins: u32,
    pub connected: bool,
}

/// A simulated device's handle.
pub struct Sim {
    pub identifier: String,
    pub log: Arc<Mutex<SimLog>>,
    finish: Arc<tokio::sync::Notify>,
    addr_tx: Option<watch::Sender<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sim {
    pub fn spawn(
        config: SimConfig,
        addr: watch::Receiver<Option<SocketAddr>>,
        addr_tx: Option<watch::Sender<Option<SocketAddr>>>,
    ) -> Sim {
        let log = Arc::new(Mutex::new(SimLog {
            running: Some(config.firmware.clone()),
            ..Default::default()
        }));
        let finish = Arc::new(tokio::sync::Notify::new());
        let identifier = config.identifier.clone();
        let task = tokio::spawn(run(config, addr, log.clone(), finish.clone()));
        Sim {
            identifier,
            log,
            finish,
            addr_tx,
            task,
        }
    }

    pub fn updates(&self) -> Vec<String> {
        self.log.lock().unwrap().updates.clone()
    }

    pub fn running(&self) -> Fw {
        self.log.lock().unwrap().running.clone().unwrap()
    }

    pub fn joins(&self) -> u32 {
        self.log.lock().unwrap().joins
    }

    /// Lets a [`Behaviour::Hold`] device finish its download and reboot.
    pub fn finish(&self) {
        self.finish.notify_one();
    }

    /// Points the device at another server address (after a restart).
    pub fn move_to(&self, addr: SocketAddr) {
        if let Some(tx) = &self.addr_tx {
            let _ = tx.send(Some(addr));
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Reports a download installed (progress 100, `completed`); false when the socket is gone.
async fn report_installed(ws: &mut device_support::DeviceWs) -> bool {
    ws.try_push("fwup_progress", json!({"stage": "updating", "value": 100}))
        .await
        && ws
            .try_push("status_update", json!({"status": "completed"}))
            .await
}

/// The device's life: connect, join, react, reconnect when the socket drops.
async fn run(
    config: SimConfig,
    mut addr: watch::Receiver<Option<SocketAddr>>,
    log: Arc<Mutex<SimLog>>,
    finish: Arc<tokio::sync::Notify>,
) {
    let tls = tls_client(&config.ca, None, true);
    let mut downloading: Option<Fw> = None;
    loop {
        let Some(target) = *addr.borrow_and_update() else {
            return;
        };
        let headers = nh1(&config.key, &config.secret, &config.identifier, 0);
        let connection = connect(
            target,
            tls.clone(),
            "/device-socket/websocket",
            Vsn::V2Json,
            &headers,
        )
        .await;
        let mut ws = match connection {
            device_support::Connect::Upgraded(ws) => *ws,
            _ => {
                // The server is down (killed, restarting): retry like nerves_hub_link.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = addr.changed() => {}
                }
                continue;
            }
        };
        let running = log.lock().unwrap().running.clone().unwrap();
        let mut params = join_params(&running.uuid, &running.version);
        params.nerves_fw_product = Some(PRODUCT.into());
        params.nerves_fw_platform = Some("rpi4".into());
        params.nerves_fw_architecture = Some("arm".into());
        params.currently_downloading_uuid = downloading.as_ref().map(|f| f.uuid.clone());
        let r = "1".to_owned();
        ws.send(&nerveshub_proto::Frame::join(
            r.clone(),
            "device",
            params.to_payload(),
        ))
        .await;
        let Some(reply) = ws.recv_within(Duration::from_secs(10)).await else {
            continue;
        };
        if reply.event != Event::Reply || reply.payload["status"] != "ok" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        {
            let mut l = log.lock().unwrap();
            l.joins += 1;
            l.connected = true;
        }
        // A device that was downloading when it lost the server carries on.
        if let Some(fw) = downloading.clone() {
            match config.behaviour {
                Behaviour::Hold => finish.notified().await,
                Behaviour::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                _ => {}
            }
            // A socket lost again before the report: report on the next connection.
            if !report_installed(&mut ws).await {
                continue;
            }
            downloading = None;
            log.lock().unwrap().running = Some(fw);
            ws.close().await;
            continue;
        }
        let mut reboot_into: Option<Fw> = None;
        loop {
            let frame = tokio::select! {
                frame = ws.recv_within(Duration::from_secs(20)) => frame,
                _ = addr.changed() => None,
            };
            let Some(frame) = frame else {
                break;
            };
            if frame.event.as_str() == "fwup_public_keys" {
                continue;
            }
            if frame.event.as_str() != "update" {
                continue;
            }
            let meta = &frame.payload["firmware_meta"];
            let fw = Fw {
                uuid: meta["uuid"].as_str().unwrap().to_owned(),
                version: meta["version"].as_str().unwrap().to_owned(),
            };
            log.lock().unwrap().updates.push(fw.uuid.clone());
            if config.behaviour != Behaviour::Mute
                && !ws
                    .try_push("status_update", json!({"status": "received"}))
                    .await
            {
                break;
            }
            match config.behaviour {
                Behaviour::Install | Behaviour::Hold | Behaviour::Slow(_) => {
                    downloading = Some(fw.clone());
                    if !ws
                        .try_push("fwup_progress", json!({"stage": "updating", "value": 0}))
                        .await
                    {
                        break;
                    }
                    if !ws
                        .try_push(
                            "status_update",
                            json!({"status": "started", "downloader_network_interface": "eth0"}),
                        )
                        .await
                    {
                        break;
                    }
                    let wait = async {
                        match config.behaviour {
                            Behaviour::Hold => finish.notified().await,
                            Behaviour::Slow(ms) => {
                                tokio::time::sleep(Duration::from_millis(ms)).await
                            }
                            _ => {}
                        }
                    };
                    tokio::select! {
                        () = wait => {}
                        // The server went away mid-download: reconnect and say so.
                        _ = ws.recv_within(Duration::from_secs(3600)) => break,
                    }
                    // The server may have died as the download ended: then the next
                    // connection reports it (still `downloading`).
                    if !report_installed(&mut ws).await {
                        break;
                    }
                    downloading = None;
                    reboot_into = Some(fw);
                    break;
                }
                Behaviour::Fail => {
                    if !ws
                        .try_push(
                            "status_update",
                            json!({"status": "failed", "reason": "fwup error: simulated"}),
                        )
                        .await
                    {
                        break;
                    }
                }
                Behaviour::RevertOnReboot => {
                    if !ws
                        .try_push("status_update", json!({"status": "completed"}))
                        .await
                    {
                        break;
                    }
                    reboot_into = Some(running.clone());
                    break;
                }
                Behaviour::Vanish => {
                    if !ws
                        .try_push("status_update", json!({"status": "completed"}))
                        .await
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ws.close().await;
                    log.lock().unwrap().connected = false;
                    return;
                }
                Behaviour::Reschedule => {
                    if !ws
                        .try_push(
                            "status_update",
                            json!({"status": "rescheduled", "delay_for": 5, "reason": "busy"}),
                        )
                        .await
                    {
                        break;
                    }
                }
                Behaviour::Drop => break,
                Behaviour::Mute => {}
                Behaviour::Ignore => {
                    if !ws
                        .try_push(
                            "status_update",
                            json!({"status": "ignored", "reason": "not now"}),
                        )
                        .await
                    {
                        break;
                    }
                }
            }
        }
        log.lock().unwrap().connected = false;
        if let Some(fw) = reboot_into {
            // Let the pushes reach the server before the "reboot".
            tokio::time::sleep(Duration::from_millis(100)).await;
            ws.close().await;
            log.lock().unwrap().running = Some(fw);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` identifiers `<prefix>-000`…
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// Waits until every sim satisfies `ok`.
pub async fn wait_sims(sims: &[Sim], within: Duration, what: &str, ok: impl Fn(&Sim) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let missing: Vec<&str> = sims
            .iter()
            .filter(|s| !ok(s))
            .map(|s| s.identifier.as_str())
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still waiting for {} device(s): {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
