//! Temporary smoke test until the shared harness lands.
mod device_support;
use device_support::*;
use nerveshub_proto::Vsn;

#[tokio::test]
async fn no_credentials_get_401_with_reason_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = nerveshub_server::Config::new(dir.path());
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    let server = nerveshub_server::RunningServer::start(config).await.unwrap();
    let ca = std::fs::read(server.dev_ca_file().unwrap()).unwrap();
    for tls12 in [true, false] {
        let c = connect(server.device_addr(), tls_client(&ca, None, tls12), "/socket/websocket", Vsn::V2Json, &[]).await;
        match c {
            Connect::Refused { status, headers } => {
                assert_eq!(status, 401);
                assert_eq!(headers["nh-connection-error-reason"], "no certificate pair or shared secrets connection settings were provided");
                assert!(headers.contains_key("date"), "{headers:?}");
                eprintln!("{headers:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    let c = connect(server.device_addr(), tls_client(&ca, None, true), "/device-socket/websocket", Vsn::V2Json, &nh1("nhp_x", "s", "dev", 0)).await;
    assert!(matches!(c, Connect::Refused { status: 401, .. }), "{c:?}");
    let other = device_ca("Other CA");
    let (cert, key) = device_cert(&other, "dev-1");
    let c = connect(server.device_addr(), tls_client(&ca, Some((&cert, &key)), true), "/socket/websocket", Vsn::V2Json, &[]).await;
    assert!(c.is_refused(), "{c:?}");
    eprintln!("{c:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn session_smoke() {
    use nerveshub_proto::*;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let mut config = nerveshub_server::Config::new(dir.path());
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    let server = nerveshub_server::RunningServer::start(config).await.unwrap();
    let ca = std::fs::read(server.dev_ca_file().unwrap()).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", dir.path().join("nerveshub.db").display())).await.unwrap();
    for q in [
        "INSERT INTO orgs (id, name, inserted_at, updated_at) VALUES (1, 'acme', 0, 0)",
        "INSERT INTO products (id, org_id, name, inserted_at, updated_at) VALUES (1, 1, 'demo', 0, 0)",
        "INSERT INTO product_shared_secrets (product_id, key, secret, inserted_at) VALUES (1, 'nhp_k', 'sekret', 0)",
        "INSERT INTO org_keys (org_id, name, key, inserted_at) VALUES (1, 'k', 'AAAA', 0)",
    ] { sqlx::query(q).execute(&pool).await.unwrap(); }
    let mut dev = connect(server.device_addr(), tls_client(&ca, None, true), "/device-socket/websocket", Vsn::V3MsgPack, &nh1("nhp_k", "sekret", "dev-1", 0)).await.device();
    let mut params = join_params("uuid-1", "1.0.0");
    params.fwup_public_keys = Some("on_connect".into());
    let reply = dev.join_device(&params).await;
    assert_eq!(reply, json!({"status":"ok","response":{}}));
    let keys = dev.recv().await;
    assert_eq!(keys.event.as_str(), "fwup_public_keys");
    assert_eq!(keys.payload, json!({"keys":["AAAA"]}));
    dev.push("report_network_interface", json!({"interface":"eth0"})).await;
    dev.push("status_update", json!({"status":"received"})).await;
    assert!(dev.recv_within(std::time::Duration::from_millis(500)).await.is_none());
    let r = dev.heartbeat().await;
    let hb = dev.recv().await;
    assert_eq!(hb.msg_ref.as_deref(), Some(r.as_str()));
    let row: (String, String, Option<String>) = sqlx::query_as("SELECT connection_status, firmware_metadata, connection_metadata FROM devices WHERE identifier = 'dev-1'").fetch_one(&pool).await.unwrap();
    eprintln!("{row:?}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_events").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 2);
    let shut = tokio::spawn(server.shutdown());
    assert_eq!(dev.close_code().await, Some(1001));
    shut.await.unwrap();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", dir.path().join("nerveshub.db").display())).await.unwrap();
    let st: String = sqlx::query_scalar("SELECT connection_status FROM devices WHERE identifier = 'dev-1'").fetch_one(&pool).await.unwrap();
    assert_eq!(st, "disconnected");
}

#[tokio::test]
async fn js_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = nerveshub_server::Config::new(dir.path());
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    let server = nerveshub_server::RunningServer::start(config).await.unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", dir.path().join("nerveshub.db").display())).await.unwrap();
    for q in [
        "INSERT INTO orgs (id, name, inserted_at, updated_at) VALUES (1, 'acme', 0, 0)",
        "INSERT INTO products (id, org_id, name, inserted_at, updated_at) VALUES (1, 1, 'demo', 0, 0)",
        "INSERT INTO product_shared_secrets (product_id, key, secret, inserted_at) VALUES (1, 'nhp_k', 'sekret', 0)",
        "INSERT INTO org_keys (org_id, name, key, inserted_at) VALUES (1, 'k', 'AAAA', 0)",
    ] { sqlx::query(q).execute(&pool).await.unwrap(); }
    let out = tokio::process::Command::new("node")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/phoenix-js"))
        .args(["device.mjs", "--url", &format!("wss://localhost:{}", server.device_addr().port()),
            "--ca", server.dev_ca_file().unwrap().to_str().unwrap(),
            "--shared-key", "nhp_k", "--shared-secret", "sekret", "--identifier", "js-1",
            "--request-keys", "--heartbeat-ms", "300", "--exit-after", "heartbeat", "--timeout-s", "10"])
        .output().await.unwrap();
    eprintln!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    server.shutdown().await;
}
