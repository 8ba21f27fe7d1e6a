//! Two nodes on one PostgreSQL database, in one test process: node "a" and node "b" share the
//! database and the data directory (TLS identity, shared-secrets key, local firmware storage
//! told to be shared). What one node does reaches a device or a trust snapshot on the other
//! through `LISTEN/NOTIFY`: an API call on B pushes to a device connected to A, a device
//! connected nowhere is still 409 offline, a CA registered or a certificate removed on B is
//! seen by A within a second, and a device connecting to B while its socket lives on A ends
//! that socket and stays connected on B; a node whose listening connection dies listens
//! again. PostgreSQL only (skipped with a reason without
//! `NERVESHUB_TEST_DATABASE_URL`).

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::time::{Duration, Instant};

use base64::Engine as _;

use common::{TestDb, TestServer};
use device_support::{
    Connect, DeviceWs, add_device_certificate, connect, create_device, device_ca, device_cert,
    device_path, join_params, nh1, ok_response, org_with_product, register_ca, server_ca,
    tls_client,
};
use fleet_support::Fleet;
use nerveshub_proto::Vsn;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long a trust change may take to reach the other node.
const TRUST_DELAY: Duration = Duration::from_secs(1);
/// How long the tests wait for connection state (written by the presence writer).
const WAIT: Duration = Duration::from_secs(15);

/// The PostgreSQL server of the tests, or `None` (with the reason printed) without one.
fn postgres() -> Option<TestDb> {
    nerveshub_test_support::postgres_admin_url().map(TestDb::Postgres)
}

/// Node `id` of a cluster sharing local storage.
fn node(config: &mut nerveshub_server::Config, id: &str) {
    config.node_id = Some(id.to_owned());
    config.storage = nerveshub_server::StorageConfig::Local {
        dir: None,
        shared: true,
    };
}

/// Node B beside `a`, started after it.
async fn peer(a: &TestServer) -> TestServer {
    a.start_peer(|c| {
        fleet_support::fast(c);
        node(c, "b");
    })
    .await
}

/// Connects to `ts`'s device endpoint with NH1 headers (its TLS identity is the cluster's).
async fn connect_nh1_to(ts: &TestServer, ca: &[u8], headers: &[(String, String)]) -> DeviceWs {
    connect(
        ts.server.device_addr(),
        tls_client(ca, None, true),
        "/device-socket/websocket",
        Vsn::V2Json,
        headers,
    )
    .await
    .device()
}

/// `devices.connected_node` of `identifier`, read from the database.
async fn connected_node(ts: &TestServer, identifier: &str) -> Option<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = ts.database_url().expect("a PostgreSQL database");
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let node: Option<String> =
        sqlx::query_scalar("SELECT connected_node FROM devices WHERE identifier = $1")
            .bind(identifier)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    node
}

/// The device as node `ts`'s API shows it.
async fn device_on(ts: &TestServer, token: &str, path: &str) -> Value {
    let (status, body) = ts.get(token, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

/// Waits until the device, as `ts` shows it, satisfies `ok`.
async fn wait_device_on(ts: &TestServer, token: &str, path: &str, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let device = device_on(ts, token, path).await;
        if ok(&device) {
            return;
        }
        assert!(Instant::now() < deadline, "device never matched: {device}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_device_on_one_node_is_reached_through_the_other() {
    let Some(db) = postgres() else { return };
    let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |c| node(c, "a")).await;
    let a = fleet.ts();
    let b = peer(a).await;
    let ca = server_ca(a);
    let view = &fleet.f.view;
    let path = fleet.path("/devices/dev-1");

    let mut device = connect_nh1_to(a, &ca, &nh1(&fleet.key, &fleet.secret, "dev-1", 0)).await;
    let reply = device
        .join_device(&join_params(&fleet.fw("1.0.0").uuid, "1.0.0"))
        .await;
    ok_response(&reply);
    wait_device_on(&b, view, &path, |d| d["online"] == true).await;
    assert_eq!(connected_node(a, "dev-1").await.as_deref(), Some("a"));

    // identify through B reaches the socket on A.
    let (status, body) = b
        .post(&fleet.f.manage, &format!("{path}/identify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    device.recv_event("identify").await;

    // A manual upgrade through B: the update reaches the device on A.
    let target = fleet.fw("2.0.0");
    let (status, body) = b
        .post(
            &fleet.f.manage,
            &format!("{path}/upgrade"),
            json!({"version": "2.0.0"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["status"], "requested", "{body}");
    let update = device.recv_event("update").await;
    assert!(
        update.payload.to_string().contains(&target.uuid),
        "{:?}",
        update.payload
    );

    // reconnect through B closes the socket on A.
    let (status, body) = b
        .post(&fleet.f.manage, &format!("{path}/reconnect"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(device.close_code().await, Some(1000));
    wait_device_on(&b, view, &path, |d| d["online"] == false).await;

    // Connected nowhere: 409 through either node.
    for ts in [a, &b] {
        for action in ["identify", "reboot", "reconnect"] {
            let (status, body) = ts
                .post(&fleet.f.manage, &format!("{path}/{action}"), json!({}))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
            assert_eq!(body["errors"]["detail"], "device is offline", "{body}");
        }
        let (status, body) = ts
            .post(
                &fleet.f.manage,
                &format!("{path}/upgrade"),
                json!({"version": "1.0.0"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }

    b.stop().await;
    fleet.fw.ts.stop().await;
}

#[tokio::test]
async fn a_second_connection_on_another_node_replaces_the_first() {
    let Some(db) = postgres() else { return };
    let a = TestServer::start_with(db, |c| node(c, "a")).await;
    let b = peer(&a).await;
    let f = org_with_product(&a, "acme").await;
    let (key, secret) = device_support::product_secret(&a, &f).await;
    let ca = server_ca(&a);
    let path = device_path(&f.org, "dev-1");
    let params = join_params("3b1c1b7a-0000-4000-8000-000000000001", "1.0.0");

    let mut on_a = connect_nh1_to(&a, &ca, &nh1(&key, &secret, "dev-1", 0)).await;
    ok_response(&on_a.join_device(&params).await);
    wait_device_on(&a, &f.view, &path, |d| d["online"] == true).await;

    let mut on_b = connect_nh1_to(&b, &ca, &nh1(&key, &secret, "dev-1", 0)).await;
    ok_response(&on_b.join_device(&params).await);
    // A's socket gives way to the newer one.
    assert_eq!(on_a.close_code().await, Some(1000));
    assert_eq!(connected_node(&a, "dev-1").await.as_deref(), Some("b"));
    // A's socket's disconnection is written within the presence writer's second; the device
    // stays connected on B.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for ts in [&a, &b] {
        assert_eq!(device_on(ts, &f.view, &path).await["online"], true);
    }
    assert_eq!(connected_node(&a, "dev-1").await.as_deref(), Some("b"));

    // And a push through A now reaches the socket on B.
    let (status, body) = a
        .post(&f.manage, &format!("{path}/identify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    on_b.recv_event("identify").await;

    on_b.close().await;
    b.stop().await;
    a.stop().await;
}

/// Ends node `node_id`'s listening connection (as a network failure or a database restart
/// would); returns how many connections were ended.
async fn terminate_listener(ts: &TestServer, node_id: &str) -> i64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = ts.database_url().expect("a PostgreSQL database");
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE $1) t",
    )
    .bind(format!("LISTEN \"nh_node_{node_id}\"%"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    ended
}

/// Connects to `ts` with a client certificate until `accepted(connection)` holds, for at
/// most [`TRUST_DELAY`]; returns whether it did.
async fn within_trust_delay(
    ts: &TestServer,
    ca: &[u8],
    cert: &nerveshub_pki::Certificate,
    key: &nerveshub_pki::PrivateKey,
    accepted: bool,
) -> bool {
    let deadline = Instant::now() + TRUST_DELAY;
    loop {
        let connection = connect(
            ts.server.device_addr(),
            tls_client(ca, Some((cert, key)), true),
            "/socket/websocket",
            Vsn::V2Json,
            &[],
        )
        .await;
        let upgraded = matches!(connection, Connect::Upgraded(_));
        if let Connect::Upgraded(ws) = connection {
            ws.close().await;
        }
        if upgraded == accepted {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn trust_changes_on_one_node_reach_the_other_within_a_second() {
    let Some(db) = postgres() else { return };
    let a = TestServer::start_with(db, |c| node(c, "a")).await;
    let b = peer(&a).await;
    let f = org_with_product(&a, "acme").await;
    let server = server_ca(&a);

    // A Device CA with JITP registered on B: a device it signed connects to A at once.
    let jitp_ca = device_ca("cluster JITP CA");
    let (cert, key) = device_cert(&jitp_ca, "jitp-1");
    assert!(
        within_trust_delay(&a, &server, &cert, &key, false).await,
        "an unknown CA's device is refused"
    );
    register_ca(&b, &f, &jitp_ca, true).await;
    assert!(
        within_trust_delay(&a, &server, &cert, &key, true).await,
        "the CA registered on B did not reach A within {TRUST_DELAY:?}"
    );

    // A certificate of an unregistered CA, added to a device on A, then removed on B: A
    // refuses it within a second.
    let other_ca = device_ca("unregistered CA");
    let (cert, key) = device_cert(&other_ca, "known-1");
    create_device(&a, &f, "known-1").await;
    add_device_certificate(&a, &f, "known-1", &cert).await;
    assert!(within_trust_delay(&a, &server, &cert, &key, true).await);
    assert!(
        within_trust_delay(&b, &server, &cert, &key, true).await,
        "the certificate added on A did not reach B"
    );
    let certs = format!("{}/certificates", device_path(&f.org, "known-1"));
    let (status, body) = b.get(&f.view, &certs).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["data"][0]["serial"].as_str().unwrap().to_owned();
    let (status, body) = b.delete(&f.manage, &format!("{certs}/{serial}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(
        within_trust_delay(&a, &server, &cert, &key, false).await,
        "the certificate removed on B is still trusted by A"
    );

    // A's listening connection dies: A listens again (and reloads its trust store), and
    // trust changes made on B reach it again.
    assert_eq!(terminate_listener(&a, "a").await, 1);
    let late_ca = device_ca("cluster CA after a reconnect");
    let (cert, key) = device_cert(&late_ca, "jitp-2");
    register_ca(&b, &f, &late_ca, true).await;
    assert!(
        within_trust_delay(&a, &server, &cert, &key, true).await,
        "the CA registered on B after A's listener reconnected did not reach A"
    );

    // Anyone who can connect to the database can NOTIFY: a forged "CA added" for a CA no one
    // registered is ignored (widening changes are checked against the database first).
    let forged_ca = device_ca("forged CA");
    let (cert, key) = device_cert(&forged_ca, "forged-1");
    forge_broadcast(
        &a,
        json!({"from": "mallory", "message": {"type": "trust", "body": {
            "change": "ca_added",
            "der": base64::engine::general_purpose::STANDARD.encode(forged_ca.certificate().der()),
        }}}),
    )
    .await;
    tokio::time::sleep(TRUST_DELAY).await;
    // Refused by the TLS layer itself (TLS 1.2 ends the handshake), not only by the upgrade.
    let connection = connect(
        a.server.device_addr(),
        tls_client(&server, Some((&cert, &key)), true),
        "/socket/websocket",
        Vsn::V2Json,
        &[],
    )
    .await;
    assert!(
        matches!(connection, Connect::Failed(_)),
        "a forged trust change widened A's trust: {connection:?}"
    );

    b.stop().await;
    a.stop().await;
}

/// Sends `envelope` on the broadcast channel as any database user could.
async fn forge_broadcast(ts: &TestServer, envelope: Value) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = ts.database_url().expect("a PostgreSQL database");
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_notify('nh_cluster', $1)")
        .bind(envelope.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
}
