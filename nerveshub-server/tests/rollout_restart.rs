//! A server killed mid-rollout resumes it after a restart. The first server runs on its own
//! tokio runtime, which is shut down without the server's shutdown path — every task dropped
//! where it stands, sockets closed by the kernel, nothing flushed or recorded, as `kill -9`
//! leaves it (database transactions not committed are rolled back by the engine). A new
//! server opens the same data directory and database; the simulated devices reconnect to it
//! as nerves_hub_link does, those mid-download saying so (`currently_downloading_uuid`).
//!
//! What must hold: every device ends on the release, and none got a second `update` push —
//! no update in flight at the kill is sent again, and no completed one is lost.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use firmware_support::{full_meta, make_firmware, uuid_of};
use fleet_support::{Behaviour, PRODUCT, Sim, SimConfig, names, wait_sims};
use nerveshub_server::{Config, RunningServer};
use nerveshub_test_support::postgres::TestDatabase;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::sync::watch;

/// A server on a runtime of its own, which [`Crashable::kill`] stops dead.
struct Crashable {
    api: SocketAddr,
    device: SocketAddr,
    admin_token: Option<String>,
    dev_ca: PathBuf,
    kill: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Crashable {
    fn start(config: Config) -> Crashable {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kill, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(RunningServer::start(config)).unwrap();
            ready_tx
                .send((
                    server.api_addr(),
                    server.device_addr(),
                    server.first_admin().map(|a| a.token.clone()),
                    server.dev_ca_file().unwrap().to_owned(),
                ))
                .unwrap();
            let _ = kill_rx.recv();
            // No shutdown(): the tasks are dropped mid-flight.
            runtime.shutdown_background();
            drop(server);
        });
        let (api, device, admin_token, dev_ca) = ready_rx.recv().unwrap();
        Crashable {
            api,
            device,
            admin_token,
            dev_ca,
            kill,
            thread,
        }
    }

    fn kill(self) {
        let _ = self.kill.send(());
        self.thread.join().unwrap();
    }
}

struct Client {
    http: reqwest::Client,
    api: SocketAddr,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}/api{path}", self.api))
            .header("authorization", format!("token {}", self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {answer}");
        answer
    }

    async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.call(reqwest::Method::GET, path, None).await;
        assert!(status.is_success(), "GET {path}: {answer}");
        answer
    }
}

fn config(dir: &std::path::Path, database_url: Option<String>) -> Config {
    let mut config = Config::new(dir);
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = database_url;
    fleet_support::fast(&mut config);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_the_rollout_without_sending_twice() {
    for db in common::databases().await {
        let dir = tempfile::tempdir().unwrap();
        let database = match &db {
            common::TestDb::Sqlite => None,
            common::TestDb::Postgres(admin) => Some(TestDatabase::create(admin, "nhrestart").await),
        };
        let database_url = database.as_ref().map(TestDatabase::url);
        let first = Crashable::start(config(dir.path(), database_url.clone()));
        let client = Client {
            http: reqwest::Client::new(),
            api: first.api,
            token: first.admin_token.clone().unwrap(),
        };
        client.post("/orgs", json!({"name": "acme"})).await;
        client
            .post("/orgs/acme/products", json!({"name": PRODUCT}))
            .await;
        let public =
            String::from_utf8(firmware_support::fixture_bytes("keys/fwup-key.pub")).unwrap();
        client
            .post(
                "/orgs/acme/keys",
                json!({"name": "fwup-key", "key": public}),
            )
            .await;
        let mut firmware = Vec::new();
        for (i, version) in ["1.0.0", "2.0.0"].into_iter().enumerate() {
            let bytes = make_firmware(&full_meta(PRODUCT, version), 1024, i as u64 + 1);
            firmware.push(fleet_support::Fw {
                uuid: uuid_of(&bytes),
                version: version.to_owned(),
            });
            let form = Form::new().part("firmware", Part::bytes(bytes).file_name("f.fw"));
            let response = client
                .http
                .post(format!(
                    "http://{}/api/orgs/acme/products/{PRODUCT}/firmwares",
                    first.api
                ))
                .header("authorization", format!("token {}", client.token))
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        let secret = client
            .post(
                &format!("/orgs/acme/products/{PRODUCT}/shared_secrets"),
                json!({}),
            )
            .await;
        client
            .post(
                &format!("/orgs/acme/products/{PRODUCT}/deployments"),
                json!({"name": "main", "firmware": firmware[1].uuid, "is_active": true,
                       "concurrent_updates": 6}),
            )
            .await;

        let ca = std::fs::read(&first.dev_ca).unwrap();
        let (addr_tx, addr_rx) = watch::channel(Some(first.device));
        let sims: Vec<Sim> = names("dev", 30)
            .into_iter()
            .enumerate()
            .map(|(i, identifier)| {
                Sim::spawn(
                    SimConfig {
                        identifier,
                        key: secret["data"]["key"].as_str().unwrap().to_owned(),
                        secret: secret["data"]["secret"].as_str().unwrap().to_owned(),
                        ca: ca.clone(),
                        firmware: firmware[0].clone(),
                        // Downloads of different lengths, so that some are always under way.
                        behaviour: Behaviour::Slow(400 + 97 * (i as u64 % 7)),
                    },
                    addr_rx.clone(),
                    None,
                )
            })
            .collect();

        // Kill it once some devices are done and others are mid-download.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let done = sims
                .iter()
                .filter(|s| s.running().version == "2.0.0")
                .count();
            let got = sims.iter().filter(|s| !s.updates().is_empty()).count();
            if done >= 3 && got >= done + 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rollout did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.kill();
        let done_at_kill = sims
            .iter()
            .filter(|s| s.running().version == "2.0.0")
            .count();
        let sent_at_kill = sims.iter().filter(|s| !s.updates().is_empty()).count();
        assert!(
            done_at_kill < 30 && sent_at_kill > done_at_kill,
            "[{}] killed mid-rollout: {done_at_kill} done, {sent_at_kill} sent",
            db.name()
        );

        // The restart: same data directory, same database.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = Crashable::start(config(dir.path(), database_url.clone()));
        assert!(second.admin_token.is_none(), "the same database");
        addr_tx.send(Some(second.device)).unwrap();
        wait_sims(
            &sims,
            Duration::from_secs(120),
            "every device on 2.0.0",
            |s| s.running().version == "2.0.0",
        )
        .await;
        for sim in &sims {
            assert_eq!(
                sim.updates(),
                [firmware[1].uuid.clone()],
                "{} got exactly one update push",
                sim.identifier
            );
        }
        let client = Client {
            api: second.api,
            ..client
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status = client
                .get(&format!(
                    "/orgs/acme/products/{PRODUCT}/deployments/main/status"
                ))
                .await;
            if status["data"]["devices"]["up_to_date"] == 30 {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "{status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status["data"]["release"]["percent_complete"], 100);
        // Exactly one completed update per device.
        for sim in &sims {
            let updates = client
                .get(&format!(
                    "/orgs/acme/products/{PRODUCT}/devices/{}/updates",
                    sim.identifier
                ))
                .await;
            let completed = updates["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["status"] == "completed")
                .count();
            assert_eq!(completed, 1, "{}: {updates}", sim.identifier);
        }
        for sim in sims {
            sim.stop();
        }
        second.kill();
        if let Some(database) = database {
            database.drop_database().await;
        }
    }
}
