//! The device client against an in-test NervesHub endpoint and download server: real TLS on
//! loopback, A/B firmware built in the test, the built-in fwup engine writing an image file.
//! The configurations use the default aws-lc-rs provider (`Config::new`).
#![cfg(feature = "aws-lc-rs")]

use nerveshub_test_support::device as common;

use std::path::Path;

use common::firmware::{self, SLOT_A, SLOT_B};
use common::http::FileServer;
use common::pki::Pki;
use common::server::{Options, Seen, TestServer};
use common::{TestClient, env_of, fast, progress, status, update_for};
use nerveshub_client::{
    Auth, Config, DefaultClient, Device, Identity, NO_PUBLIC_KEYS, RebootReason, SharedSecret,
    Stopped, Trust, UpdateDecision, Updater, certificates_from_bytes,
};
use nerveshub_proto::{DeviceEvent, DeviceServerEvent, StatusUpdate};
use tokio::task::JoinHandle;

struct Setup {
    dir: tempfile::TempDir,
    pki: Pki,
    fw1: Vec<u8>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let fw1 = firmware::build(dir.path(), "1.0.0", &firmware::signing_key(1));
        firmware::provision(&dir.path().join("disk.img"), &fw1);
        Setup {
            dir,
            pki: Pki::new(),
            fw1,
        }
    }

    fn image(&self) -> std::path::PathBuf {
        self.dir.path().join("disk.img")
    }

    fn trust(&self) -> Trust {
        Trust::Roots(certificates_from_bytes(self.pki.server_ca_pem().as_bytes()).unwrap())
    }

    fn cert_config(&self, server: &TestServer) -> Config {
        let id = Identity::from_bytes(
            self.pki.device_cert_pem.as_bytes(),
            self.pki.device_key_pem.as_bytes(),
        )
        .unwrap();
        self.config(server, Auth::Certificate(id))
    }

    fn config(&self, server: &TestServer, auth: Auth) -> Config {
        let mut c = Config::new(
            server.url.clone(),
            auth,
            self.trust(),
            Updater::built_in(self.image()),
        );
        c.join_params = env_of(&self.image()).join_params();
        c.firmware_keys = vec![firmware::signing_key(1).public_key()];
        c.network_interface = Some("eth0".into());
        fast(&mut c);
        c
    }
}

fn spawn(mut device: Device<TestClient>) -> JoinHandle<(Device<TestClient>, Stopped)> {
    tokio::spawn(async move {
        let stopped = device.run().await.unwrap();
        (device, stopped)
    })
}

/// Waits for the device to connect and join; returns the connect record and join params.
async fn connected(server: &mut TestServer) -> (Seen, nerveshub_proto::DeviceJoinParams) {
    let connect = async {
        loop {
            match server.next().await {
                c @ Seen::Connected { .. } => break c,
                Seen::Refused { .. } | Seen::Closed | Seen::Pushed(_) | Seen::Heartbeat => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let connect = tokio::time::timeout(std::time::Duration::from_secs(60), connect)
        .await
        .expect("no connection within 60 s");
    (connect, server.next_join().await)
}

/// Collects pushes until a final status (completed / failed / ignored / rescheduled).
async fn until_final(server: &mut TestServer) -> Vec<DeviceEvent> {
    let mut seen = Vec::new();
    loop {
        let e = server.next_push().await;
        if matches!(e, DeviceEvent::ReportNetworkInterface(_)) {
            continue;
        }
        let last = status(&e).is_some_and(|s| {
            matches!(
                s.status(),
                "completed" | "failed" | "ignored" | "rescheduled"
            )
        });
        seen.push(e);
        if last {
            return seen;
        }
    }
}

fn statuses(events: &[DeviceEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(status)
        .map(StatusUpdate::status)
        .collect()
}

/// The update messages nerves_hub_link sends for a successful update, in order.
fn assert_successful_sequence(events: &[DeviceEvent], starts: usize) {
    assert_eq!(status(&events[0]).unwrap().status(), "received");
    assert_eq!(progress(&events[1]), Some(0));
    assert_eq!(
        status(&events[2]),
        Some(&StatusUpdate::Started {
            downloader_network_interface: Some("eth0".into()),
            extra: Default::default()
        })
    );
    let values: Vec<u64> = events.iter().filter_map(progress).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    assert_eq!(values.last(), Some(&100));
    assert!(values.len() > 3, "{values:?}");
    let mut expected = vec!["received"];
    expected.extend(std::iter::repeat_n("started", starts));
    expected.push("completed");
    assert_eq!(statuses(events), expected);
    let n = events.len();
    assert_eq!(progress(&events[n - 2]), Some(100));
}

/// Simulates the reboot: read the environment, validate the new firmware, write it back.
fn reboot(image: &Path) -> nerveshub_client::FirmwareEnv {
    let mut env = env_of(image);
    assert!(!env.firmware_validated());
    env.validate();
    env.write().unwrap();
    env_of(image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_device_updates_reboots_and_reports_the_new_version() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let files = FileServer::start(&s.pki, fw2.clone(), None).await;
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let client = TestClient::new();
    let record = client.record.clone();
    let device = Device::new(s.cert_config(&server), client).unwrap();
    let run = spawn(device);

    let (connect, join) = connected(&mut server).await;
    let Seen::Connected {
        path, client_cert, ..
    } = connect
    else {
        unreachable!()
    };
    assert_eq!(path, "/socket/websocket?vsn=2.0.0");
    assert!(client_cert);
    assert_eq!(join.nerves_fw_version.as_deref(), Some("1.0.0"));
    assert_eq!(join.nerves_fw_product.as_deref(), Some("demo"));
    assert_eq!(join.device_api_version.as_deref(), Some("2.3.0"));
    assert_eq!(join.fwup_version.as_deref(), Some("1.16.0"));
    assert_eq!(join.currently_downloading_uuid, None);
    assert_eq!(join.fwup_public_keys, None);
    assert_eq!(join.meta.as_ref().unwrap().firmware_validated, Some(true));
    let first = server.next_push().await;
    assert_eq!(
        first,
        DeviceEvent::ReportNetworkInterface(nerveshub_proto::NetworkInterface {
            interface: "eth0".into(),
            extra: Default::default()
        })
    );

    server.push(&DeviceServerEvent::Update(Box::new(update_for(
        &files.url, &fw2, "2.0.0",
    ))));
    let events = until_final(&mut server).await;
    assert_successful_sequence(&events, 1);
    let (device, stopped) = run.await.unwrap();
    assert_eq!(stopped, Stopped::Reboot(RebootReason::UpdateApplied));
    assert_eq!(files.ranges.lock().unwrap().as_slice(), &[None]);
    {
        let r = record.lock().unwrap();
        assert_eq!(r.reboots, [RebootReason::UpdateApplied]);
        assert_eq!(r.messages.last(), Some(&nerveshub_client::FwupMessage::Ok));
        assert_eq!(r.offers.len(), 1);
    }

    // The new firmware is in slot b, slot a is untouched, b is active.
    assert_eq!(
        firmware::slot(&s.image(), SLOT_B),
        firmware::rootfs("2.0.0")
    );
    assert_eq!(
        firmware::slot(&s.image(), SLOT_A),
        firmware::rootfs("1.0.0")
    );
    let env = reboot(&s.image());
    assert_eq!(env.active_slot(), Some("b"));

    // "Reboot": reconnect with the new firmware's metadata.
    let mut device = device;
    device.config_mut().join_params = env.join_params();
    let run = spawn(device);
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.nerves_fw_version.as_deref(), Some("2.0.0"));
    assert_eq!(join.meta.as_ref().unwrap().firmware_validated, Some(true));
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_device_resumes_a_cut_download_with_range() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let cut = 700_000;
    let files = FileServer::start(&s.pki, fw2.clone(), Some(cut)).await;
    let options = Options {
        shared_secret: Some(("nhp_product".into(), b"product secret".to_vec())),
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let auth = Auth::SharedSecret(SharedSecret {
        key: "nhp_product".into(),
        secret: b"product secret".to_vec(),
        identifier: "device-7".into(),
    });
    let device = Device::new(s.config(&server, auth), TestClient::new()).unwrap();
    let run = spawn(device);

    let (connect, _) = connected(&mut server).await;
    let Seen::Connected {
        path,
        headers,
        client_cert,
    } = connect
    else {
        unreachable!()
    };
    assert_eq!(path, "/device-socket/websocket?vsn=2.0.0");
    assert!(!client_cert);
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        header("x-nh-alg").as_deref(),
        Some("NH1-HMAC-sha256-1000-32")
    );
    assert_eq!(header("x-nh-key").as_deref(), Some("nhp_product"));

    server.push(&DeviceServerEvent::Update(Box::new(update_for(
        &files.url, &fw2, "2.0.0",
    ))));
    let events = until_final(&mut server).await;
    assert_successful_sequence(&events, 2);
    let (_, stopped) = run.await.unwrap();
    assert_eq!(stopped, Stopped::Reboot(RebootReason::UpdateApplied));
    assert_eq!(
        files.ranges.lock().unwrap().as_slice(),
        &[None, Some(format!("bytes={cut}-"))]
    );
    assert_eq!(
        firmware::slot(&s.image(), SLOT_B),
        firmware::rootfs("2.0.0")
    );
    assert_eq!(reboot(&s.image()).active_slot(), Some("b"));
}

/// Runs one update that must fail; returns the pushes and the image before and after.
async fn failing_update(
    s: &Setup,
    fw: Vec<u8>,
    tweak: impl FnOnce(&mut nerveshub_proto::UpdatePayload),
) -> Vec<DeviceEvent> {
    let files = FileServer::start(&s.pki, fw.clone(), None).await;
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let device = Device::new(s.cert_config(&server), TestClient::new()).unwrap();
    let run = spawn(device);
    connected(&mut server).await;
    let mut update = update_for(&files.url, &fw, "2.0.0");
    tweak(&mut update);
    server.push(&DeviceServerEvent::Update(Box::new(update)));
    let events = until_final(&mut server).await;
    // The device keeps running on its old firmware.
    assert!(!run.is_finished());
    run.abort();
    events
}

fn failure_reason(events: &[DeviceEvent]) -> String {
    match status(events.last().unwrap()) {
        Some(StatusUpdate::Failed { reason, .. }) => reason.clone(),
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_signed_with_an_untrusted_key_fails_and_changes_nothing() {
    let s = Setup::new();
    let before = std::fs::read(s.image()).unwrap();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(9));
    let events = failing_update(&s, fw2, |_| {}).await;
    assert_eq!(statuses(&events), ["received", "started", "failed"]);
    let reason = failure_reason(&events);
    assert!(reason.starts_with("FWUP error : "), "{reason}");
    assert!(reason.contains("signature"), "{reason}");
    assert_eq!(std::fs::read(s.image()).unwrap(), before);
    assert_eq!(
        env_of(&s.image())
            .join_params()
            .nerves_fw_version
            .as_deref(),
        Some("1.0.0")
    );
    drop(s.fw1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_fails_before_on_finish() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let events = failing_update(&s, fw2, |u| {
        u.checksum = Some(common::sha256_hex(b"something else"));
        u.partials_checksums = None;
    })
    .await;
    assert_eq!(statuses(&events), ["received", "started", "failed"]);
    let reason = failure_reason(&events);
    assert!(
        reason.starts_with("Download failed : checksum mismatch"),
        "{reason}"
    );
    let env = env_of(&s.image());
    assert_eq!(env.active_slot(), Some("a"));
    assert_eq!(
        env.join_params().nerves_fw_version.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        firmware::slot(&s.image(), SLOT_A),
        firmware::rootfs("1.0.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_checksum_mismatch_fails_early() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let events = failing_update(&s, fw2, |u| {
        if let Some(p) = u.partials_checksums.as_mut() {
            p[0] = common::sha256_hex(b"not the first part");
        }
    })
    .await;
    let reason = failure_reason(&events);
    assert!(
        reason.starts_with("Download failed : checksum mismatch in part 0"),
        "{reason}"
    );
    assert_eq!(env_of(&s.image()).active_slot(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_public_keys_updates_are_refused_with_nerves_hub_links_text() {
    let s = Setup::new();
    let before = std::fs::read(s.image()).unwrap();
    let options = Options {
        // The server offers its keys, but the product did not opt in to trusting them.
        org_keys: vec![firmware::signing_key(1).public_key().to_base64()],
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let mut config = s.cert_config(&server);
    config.firmware_keys.clear();
    let run = spawn(Device::new(config, TestClient::new()).unwrap());
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.fwup_public_keys.as_deref(), Some("on_connect"));
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    server.push(&DeviceServerEvent::Update(Box::new(update_for(
        "https://localhost:1/never.fw",
        &fw2,
        "2.0.0",
    ))));
    let events = until_final(&mut server).await;
    assert_eq!(
        events.iter().filter_map(status).collect::<Vec<_>>(),
        [&StatusUpdate::Failed {
            reason: NO_PUBLIC_KEYS.into(),
            extra: Default::default()
        }]
    );
    assert_eq!(
        NO_PUBLIC_KEYS,
        "Refusing unverified firmware : no public keys available"
    );
    assert_eq!(std::fs::read(s.image()).unwrap(), before);
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keys_are_used_when_the_product_opts_in() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let files = FileServer::start(&s.pki, fw2.clone(), None).await;
    let options = Options {
        org_keys: vec![firmware::signing_key(1).public_key().to_base64()],
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let mut config = s.cert_config(&server);
    config.firmware_keys.clear();
    config.accept_server_keys = true;
    let run = spawn(Device::new(config, TestClient::new()).unwrap());
    connected(&mut server).await;
    server.push(&DeviceServerEvent::Update(Box::new(update_for(
        &files.url, &fw2, "2.0.0",
    ))));
    let events = until_final(&mut server).await;
    assert_eq!(statuses(&events).last(), Some(&"completed"));
    let (_, stopped) = run.await.unwrap();
    assert_eq!(stopped, Stopped::Reboot(RebootReason::UpdateApplied));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_and_reschedule_are_reported() {
    let s = Setup::new();
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let mut client = TestClient::new();
    client.decision = UpdateDecision::Reschedule {
        delay_for_minutes: 7,
        reason: Some("busy".into()),
    };
    let run = spawn(Device::new(s.cert_config(&server), client).unwrap());
    connected(&mut server).await;
    let update = update_for("https://localhost:1/never.fw", b"x", "2.0.0");
    server.push(&DeviceServerEvent::Update(Box::new(update.clone())));
    let events = until_final(&mut server).await;
    assert_eq!(statuses(&events), ["received", "rescheduled"]);
    assert_eq!(
        status(events.last().unwrap()).unwrap().to_payload(),
        serde_json::json!({"status": "rescheduled", "delay_for": 7, "reason": "busy"})
    );
    run.abort();

    // The default client ignores the firmware it is already running.
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let mut device = Device::new(s.cert_config(&server), DefaultClient).unwrap();
    let run = tokio::spawn(async move { device.run().await });
    connected(&mut server).await;
    let running = env_of(&s.image()).join_params().nerves_fw_uuid;
    assert!(running.is_some());
    let mut same = update;
    same.firmware_meta.uuid = running;
    server.push(&DeviceServerEvent::Update(Box::new(same)));
    let events = until_final(&mut server).await;
    assert_eq!(statuses(&events), ["received", "ignored"]);
    assert_eq!(
        status(events.last().unwrap()).unwrap().to_payload(),
        serde_json::json!({"status": "ignored", "reason": ""})
    );
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_headers_are_signed_fresh_with_the_servers_date_after_a_refusal() {
    let s = Setup::new();
    let options = Options {
        shared_secret: Some(("nhd_device".into(), b"device secret".to_vec())),
        // The server's clock is an hour ahead of the device's: the first token is stale.
        clock_offset_secs: 3600,
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let auth = Auth::SharedSecret(SharedSecret {
        key: "nhd_device".into(),
        secret: b"device secret".to_vec(),
        identifier: "device-8".into(),
    });
    let run = spawn(Device::new(s.config(&server, auth), TestClient::new()).unwrap());
    let time_of = |headers: &[(String, String)]| -> u64 {
        headers
            .iter()
            .find(|(k, _)| k == "x-nh-time")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    };
    let refused = match server.next().await {
        Seen::Refused { headers } => time_of(&headers),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let accepted = match server.next().await {
        Seen::Connected { headers, .. } => time_of(&headers),
        other => panic!("expected a connection, got {other:?}"),
    };
    assert!(
        accepted >= refused + 3590,
        "the second attempt must be signed at the server's time: {refused} then {accepted}"
    );
    server.next_join().await;
    run.abort();
}

static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The system clock, one second further on every read: each attempt's signing time differs.
fn ticking_clock() -> u64 {
    nerveshub_client::system_clock() + ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_rejoin_with_headers_signed_for_each_attempt() {
    let s = Setup::new();
    let options = Options {
        shared_secret: Some(("nhp_product".into(), b"product secret".to_vec())),
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let auth = Auth::SharedSecret(SharedSecret {
        key: "nhp_product".into(),
        secret: b"product secret".to_vec(),
        identifier: "device-9".into(),
    });
    let mut config = s.config(&server, auth);
    config.wall_clock = ticking_clock;
    let record = TestClient::new();
    let errors = record.record.clone();
    let run = spawn(Device::new(config, record).unwrap());
    let header = |seen: &Seen, name: &str| match seen {
        Seen::Connected { headers, .. } => headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap(),
        other => panic!("expected a connection, got {other:?}"),
    };
    let (first, join1) = connected(&mut server).await;
    server.disconnect();
    let (second, join2) = connected(&mut server).await;
    let t1: u64 = header(&first, "x-nh-time").parse().unwrap();
    let t2: u64 = header(&second, "x-nh-time").parse().unwrap();
    assert!(t2 > t1, "{t1} then {t2}");
    assert_ne!(
        header(&first, "x-nh-signature"),
        header(&second, "x-nh-signature")
    );
    assert_eq!(join1, join2);
    assert!(
        !errors.lock().unwrap().errors.is_empty(),
        "the disconnect is reported"
    );
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_heartbeat_closes_the_socket_and_the_device_reconnects() {
    let s = Setup::new();
    let options = Options {
        mute_heartbeats: true,
        ..Options::default()
    };
    let mut server = TestServer::start(&s.pki, options).await;
    let mut config = s.cert_config(&server);
    config.session.heartbeat_interval = std::time::Duration::from_millis(50);
    let run = spawn(Device::new(config, TestClient::new()).unwrap());
    connected(&mut server).await;
    // One heartbeat goes unanswered; at the next one the device gives up on the socket.
    loop {
        match server.next().await {
            Seen::Heartbeat | Seen::Pushed(_) => {}
            Seen::Closed => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.nerves_fw_version.as_deref(), Some("1.0.0"));
    run.abort();
}

/// Waits until the client recorded an error (polling; bounded by the caller's patience).
async fn first_error(record: &std::sync::Arc<std::sync::Mutex<common::Record>>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Some(e) = record.lock().unwrap().errors.first() {
                return e.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("no error reported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_server_certificates_and_sni() {
    let s = Setup::new();
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    // Connect by address, name the server through SNI, trust it by its pinned certificate.
    let mut config = s.cert_config(&server);
    config.server = server.url.replace("localhost", "127.0.0.1");
    config.sni = Some("localhost".into());
    config.trust = Trust::pin_certificate(s.pki.server.certificate.der());
    let run = spawn(Device::new(config, TestClient::new()).unwrap());
    connected(&mut server).await;
    run.abort();

    // Another pin: the handshake fails and the error reaches the client.
    let mut config = s.cert_config(&server);
    config.trust = Trust::pin_certificate(s.pki.server.ca.der());
    let client = TestClient::new();
    let record = client.record.clone();
    let run = spawn(Device::new(config, client).unwrap());
    let error = first_error(&record).await;
    assert!(error.starts_with("TLS: "), "{error}");
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_firmware_url_fails_after_the_retry_budget() {
    let s = Setup::new();
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let run = spawn(Device::new(s.cert_config(&server), TestClient::new()).unwrap());
    connected(&mut server).await;
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let update = update_for("https://localhost:1/never.fw", &fw2, "2.0.0");
    server.push(&DeviceServerEvent::Update(Box::new(update)));
    let events = until_final(&mut server).await;
    assert_eq!(statuses(&events), ["received", "failed"]);
    assert_eq!(
        status(events.last().unwrap()),
        Some(&StatusUpdate::Failed {
            reason: "Download failed : max_disconnects_reached".into(),
            extra: Default::default()
        })
    );
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_serializer() {
    let s = Setup::new();
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let mut config = s.cert_config(&server);
    config.vsn = nerveshub_proto::Vsn::V3MsgPack;
    let mut client = TestClient::new();
    client.decision = UpdateDecision::Ignore("not now".into());
    let run = spawn(Device::new(config, client).unwrap());
    let (connect, join) = connected(&mut server).await;
    let Seen::Connected { path, .. } = connect else {
        unreachable!()
    };
    assert_eq!(path, "/socket/websocket?vsn=3.0.0");
    assert_eq!(join.nerves_fw_version.as_deref(), Some("1.0.0"));
    let update = update_for("https://localhost:1/never.fw", b"x", "2.0.0");
    server.push(&DeviceServerEvent::Update(Box::new(update)));
    let events = until_final(&mut server).await;
    assert_eq!(
        status(events.last().unwrap()),
        Some(&StatusUpdate::Ignored {
            reason: "not now".into(),
            extra: Default::default()
        })
    );
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_during_a_download_reports_the_firmware_being_downloaded() {
    let s = Setup::new();
    let fw2 = firmware::build(s.dir.path(), "2.0.0", &firmware::signing_key(1));
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let files = FileServer::start_paused(&s.pki, fw2.clone(), 300_000, release.clone()).await;
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let run = spawn(Device::new(s.cert_config(&server), TestClient::new()).unwrap());
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.currently_downloading_uuid, None);
    server.push(&DeviceServerEvent::Update(Box::new(update_for(
        &files.url, &fw2, "2.0.0",
    ))));
    loop {
        if status(&server.next_push().await).is_some_and(|s| s.status() == "started") {
            break;
        }
    }
    // The socket drops while the download is stalled; the download goes on.
    server.disconnect();
    let (_, join) = connected(&mut server).await;
    assert_eq!(
        join.currently_downloading_uuid.as_deref(),
        Some("uuid-2.0.0")
    );
    release.notify_one();
    let events = until_final(&mut server).await;
    assert_eq!(statuses(&events).last(), Some(&"completed"));
    let (device, stopped) = run.await.unwrap();
    assert_eq!(stopped, Stopped::Reboot(RebootReason::UpdateApplied));
    assert_eq!(device.join_params(None).currently_downloading_uuid, None);
    assert_eq!(
        firmware::slot(&s.image(), SLOT_B),
        firmware::rootfs("2.0.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_reconnects_and_reports_validation() {
    let s = Setup::new();
    let mut server = TestServer::start(&s.pki, Options::default()).await;
    let mut config = s.cert_config(&server);
    let meta = config.join_params.meta.as_mut().unwrap();
    meta.firmware_validated = Some(false);
    let device = Device::new(config, TestClient::new()).unwrap();
    let handle = device.handle();
    let run = spawn(device);
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.meta.unwrap().firmware_validated, Some(false));

    handle.firmware_validated();
    loop {
        if matches!(server.next_push().await, DeviceEvent::FirmwareValidated(_)) {
            break;
        }
    }
    handle.reconnect();
    let (_, join) = connected(&mut server).await;
    assert_eq!(join.meta.unwrap().firmware_validated, Some(true));
    run.abort();
}
