//! Device presence written by the batching writer: disconnections survive a database that
//! fails mid-storm, and a device that reconnects fast ends connected.

mod common;
mod device_support;

use std::time::{Duration, Instant};

use common::TestServer;
use device_support::*;
use futures_util::{StreamExt, stream};
use nerveshub_proto::Vsn;
use reqwest::StatusCode;

const UUID: &str = "55555555-5555-5555-5555-555555555555";
/// Devices in the storm.
const DEVICES: usize = 200;
/// Devices connecting (or closing) at once.
const PARALLEL: usize = 16;
/// How long the writer may take to catch up after the database is back: more than its
/// longest retry backoff (30 s).
const CATCH_UP: Duration = Duration::from_secs(90);

/// How many devices of the product the API shows online.
async fn online_count(ts: &TestServer, f: &common::OrgFixture) -> i64 {
    let path = format!(
        "/orgs/{}/products/{PRODUCT}/devices?online=true&page_size=1",
        f.org
    );
    let (status, body) = ts.get(&f.view, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["pagination"]["total_entries"].as_i64().unwrap()
}

/// Waits until `done` holds, failing after `within`.
async fn wait_for<F, Fut>(what: &str, within: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects `identifier` with the product key and joins `device`.
async fn joined(ts: &TestServer, key: &str, secret: &str, identifier: &str) -> DeviceWs {
    let mut device = connect_nh1(ts, &nh1(key, secret, identifier, 0), Vsn::V2Json)
        .await
        .device();
    ok_response(&device.join_device(&join_params(UUID, "1.0.0")).await);
    device
}

async fn close_all(devices: Vec<DeviceWs>) {
    stream::iter(devices)
        .for_each_concurrent(PARALLEL, DeviceWs::close)
        .await;
}

#[tokio::test]
async fn every_disconnection_is_written_once_the_database_is_back() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let (key, secret) = product_secret(&ts, &f).await;

        let mut devices: Vec<DeviceWs> = stream::iter(0..DEVICES)
            .map(|i| {
                let (ts, key, secret) = (&ts, &key, &secret);
                async move { joined(ts, key, secret, &format!("storm-{i}")).await }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        // A join is recorded before its reply.
        assert_eq!(online_count(&ts, &f).await, DEVICES as i64);

        // The first half goes while the database works.
        let second_half = devices.split_off(DEVICES / 2);
        close_all(devices).await;
        wait_for("the first half written", CATCH_UP, || async {
            online_count(&ts, &f).await == (DEVICES / 2) as i64
        })
        .await;

        // The database fails mid-storm: the other half's disconnections are held, not lost.
        ts.server.fail_presence_writes(true);
        close_all(second_half).await;
        wait_for("every closed socket handed over", CATCH_UP, || async {
            ts.server.pending_presence_writes() == DEVICES / 2
        })
        .await;
        assert_eq!(
            online_count(&ts, &f).await,
            (DEVICES / 2) as i64,
            "nothing is written while the database fails"
        );

        ts.server.fail_presence_writes(false);
        wait_for("every disconnection written", CATCH_UP, || async {
            online_count(&ts, &f).await == 0
        })
        .await;
        assert_eq!(ts.server.pending_presence_writes(), 0);
        for i in [0, DEVICES / 2, DEVICES - 1] {
            let device = device_json(&ts, &f, &format!("storm-{i}")).await;
            assert_eq!(device["connection_status"], "disconnected", "{device}");
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn a_device_that_reconnects_fast_ends_connected() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let (key, secret) = product_secret(&ts, &f).await;
        let id = "fast-1";

        // The old socket's disconnection waits (the database fails) while the device
        // reconnects and joins; written afterwards, it must not end the new connection.
        let first = joined(&ts, &key, &secret, id).await;
        ts.server.fail_presence_writes(true);
        first.close().await;
        wait_for("the close handed over", CATCH_UP, || async {
            ts.server.pending_presence_writes() == 1
        })
        .await;
        let second = joined(&ts, &key, &secret, id).await;
        ts.server.fail_presence_writes(false);
        wait_for("the old disconnection written", CATCH_UP, || async {
            ts.server.pending_presence_writes() == 0
        })
        .await;
        let shown = device_json(&ts, &f, id).await;
        assert_eq!(shown["connection_status"], "connected", "{shown}");

        // Closed and reopened at once, in whatever order the server sees them.
        second.close().await;
        let third = joined(&ts, &key, &secret, id).await;
        assert_eq!(settled_status(&ts, &f, id).await, "connected");

        // A new socket replacing one still open: the old one is told to close.
        let fourth = joined(&ts, &key, &secret, id).await;
        drop(third);
        assert_eq!(settled_status(&ts, &f, id).await, "connected");

        // And the current connection's own end is written.
        fourth.close().await;
        wait_device(&ts, &f, id, |d| d["connection_status"] == "disconnected").await;
        ts.stop().await;
    }
}

/// The device's connection status once the presence writer has written what it holds.
/// Settling, not timing: the server may see a close after a new join; a moment lets it hand
/// the close over and the writer (every second) write it.
async fn settled_status(ts: &TestServer, f: &common::OrgFixture, id: &str) -> String {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for("pending writes done", CATCH_UP, || async {
        ts.server.pending_presence_writes() == 0
    })
    .await;
    let shown = device_json(ts, f, id).await;
    shown["connection_status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn connections_open_at_shutdown_are_written_as_ended() {
    // SQLite only: the database is read after the server stopped, from its file.
    let ts = TestServer::start(common::TestDb::Sqlite).await;
    let f = org_with_product(&ts, "acme").await;
    let (key, secret) = product_secret(&ts, &f).await;
    let devices: Vec<DeviceWs> = stream::iter(0..20)
        .map(|i| {
            let (ts, key, secret) = (&ts, &key, &secret);
            async move { joined(ts, key, secret, &format!("open-{i}")).await }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    assert_eq!(online_count(&ts, &f).await, 20);

    let TestServer {
        server, data_dir, ..
    } = ts;
    server.shutdown().await;
    drop(devices);

    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        data_dir.path().join("nerveshub.db").display()
    );
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT connection_status, COUNT(*) FROM devices GROUP BY connection_status",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(by_status, vec![("disconnected".to_owned(), 20)]);
    let _ = conn.close().await;
}
