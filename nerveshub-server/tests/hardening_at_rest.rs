//! Issue 25, item 6: the data directory is the server's alone (0700, database files 0600),
//! and a copy of the database alone does not hold usable shared secrets: they are encrypted
//! with a key in a 0600 file; rows stored in plaintext before are
//! encrypted on the next start and keep working.
#![cfg(unix)]

mod common;
mod device_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use device_support::*;
use nerveshub_proto::Vsn;
use nerveshub_server::{Config, RunningServer};
use sqlx::Connection as _;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn sqlite(dir: &Path) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&format!("sqlite://{}", dir.join("nerveshub.db").display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn data_dir_is_private_and_secrets_are_encrypted() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let dir = ts.data_dir.path().to_owned();
    assert_eq!(mode(&dir), 0o700, "data dir");
    for name in [
        "nerveshub.db",
        "nerveshub.db-wal",
        "nerveshub.db-shm",
        "shared-secrets.key",
        "admin-token",
    ] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }

    let f = org_with_product(&ts, "acme").await;
    let (key, secret) = product_secret(&ts, &f).await;
    let mut db = sqlite(&dir).await;
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM product_shared_secrets WHERE key = $1")
            .bind(&key)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(stored.starts_with("enc1:"), "{stored}");
    assert!(!stored.contains(&secret));
    // The device signs with the secret it was given; the server decrypts to verify.
    let mut device = connect_nh1(&ts, &nh1(&key, &secret, "enc-1", 0), Vsn::V2Json)
        .await
        .device();
    ok_response(
        &device
            .join_device(&join_params(
                "11111111-1111-1111-1111-111111111111",
                "1.0.0",
            ))
            .await,
    );
    device.close().await;
    // A row moved to another key does not decrypt: refused, not a 500.
    let (other_key, _) = product_secret(&ts, &f).await;
    sqlx::query("UPDATE product_shared_secrets SET secret = $1 WHERE key = $2")
        .bind(&stored)
        .bind(&other_key)
        .execute(&mut db)
        .await
        .unwrap();
    let refused = connect_nh1(&ts, &nh1(&other_key, &secret, "enc-2", 0), Vsn::V2Json).await;
    assert!(refused.is_refused(), "{refused:?}");
    db.close().await.unwrap();
    ts.stop().await;
}

#[tokio::test]
async fn plaintext_secrets_are_encrypted_on_start_and_keep_working() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let dir = ts.data_dir.path().to_owned();
    let f = org_with_product(&ts, "acme").await;
    let (key, secret) = product_secret(&ts, &f).await;
    ts.server.shutdown().await;

    // As a server before encryption at rest stored it.
    let mut db = sqlite(&dir).await;
    sqlx::query("UPDATE product_shared_secrets SET secret = $1 WHERE key = $2")
        .bind(&secret)
        .bind(&key)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let mut config = Config::new(&dir);
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    let server = RunningServer::start(config).await.unwrap();
    let mut db = sqlite(&dir).await;
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM product_shared_secrets WHERE key = $1")
            .bind(&key)
            .fetch_one(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    assert!(stored.starts_with("enc1:"), "{stored}");
    let ca = std::fs::read(server.dev_ca_file().unwrap()).unwrap();
    let tls = tls_client(&ca, None, true);
    let mut device = connect(
        server.device_addr(),
        tls,
        "/device-socket/websocket",
        Vsn::V2Json,
        &nh1(&key, &secret, "migrated-1", 0),
    )
    .await
    .device();
    ok_response(
        &device
            .join_device(&join_params(
                "11111111-1111-1111-1111-111111111111",
                "1.0.0",
            ))
            .await,
    );
    device.close().await;
    server.shutdown().await;
}
