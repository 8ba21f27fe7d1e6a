//! The server as a product's dependency: a product's own object store holds the firmware
//! (`StorageConfig::ObjectStore`) and its own routes are served under `/ext`
//! (`Config::api_extension`), on SQLite and PostgreSQL. Download URLs expire by the server's
//! clock, so the expiry is checked by moving a `ManualClock`, not by waiting.

mod common;
mod firmware_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use firmware_support::*;
use nerveshub_server::axum::{Router, routing::get};
use nerveshub_server::object_store::memory::InMemory;
use nerveshub_server::object_store::{ObjectStore, ObjectStoreExt as _};
use nerveshub_server::{ManualClock, StorageConfig};
use reqwest::StatusCode;

/// Every object in `store` with its bytes.
async fn objects(store: &InMemory) -> Vec<(String, Vec<u8>)> {
    let listing = store.list_with_delimiter(None).await.unwrap();
    let mut found = Vec::new();
    let mut pending: Vec<_> = listing.common_prefixes;
    let mut metas = listing.objects;
    while let Some(dir) = pending.pop() {
        let listing = store.list_with_delimiter(Some(&dir)).await.unwrap();
        pending.extend(listing.common_prefixes);
        metas.extend(listing.objects);
    }
    for meta in metas {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        found.push((meta.location.to_string(), bytes.to_vec()));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_products_object_store_and_routes_are_served() {
    for db in common::databases().await {
        let store = Arc::new(InMemory::new());
        let manual = ManualClock::new(SystemTime::now());
        let clock = manual.clock();
        let product_store: Arc<dyn ObjectStore> = store.clone();
        let fw = FwServer::start_with(db, TestStorage::Local, |config| {
            config.storage = StorageConfig::ObjectStore {
                store: product_store,
                name: "memory://firmware".to_owned(),
            };
            config.clock = clock;
            config.api_extension = Some(Router::new().route(
                "/provisioning/hello",
                get(|| async { "hello from the product" }),
            ));
        })
        .await;
        let label = fw.ts.db.name();

        // The upload lands in the product's store, byte for byte, and nowhere on disk.
        let acme = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let bytes = fixture_bytes("fw/simple-signed.fw");
        let (status, body, _) = fw.upload(&acme.manage, "acme", SIMPLE, bytes.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let stored = objects(&store).await;
        assert_eq!(stored.len(), 1, "{label}: {stored:?}");
        assert!(stored[0].1 == bytes, "{label}: the stored object differs");
        assert!(
            !fw.ts.data_dir.path().join("firmware").exists(),
            "{label}: nothing is written to local storage"
        );

        // The API's 302 points at the device endpoint's signed URL, which serves the object
        // (whole, and a resumed range) from the product's store.
        let path = format!("{}/{SIMPLE_UUID}/download", firmwares_path("acme", SIMPLE));
        let response = tls_client(None)
            .get(fw.ts.api(&path))
            .header("authorization", format!("token {}", acme.view))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{label}");
        let url = response.headers()["location"].to_str().unwrap().to_owned();
        let port = fw.ts.server.device_addr().port();
        assert!(
            url.starts_with(&format!("https://localhost:{port}/firmware/")),
            "{label}: {url}"
        );
        let device = fw.device_client();
        let whole = device.get(&url).send().await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK, "{label}");
        assert!(whole.bytes().await.unwrap() == bytes, "{label}: download");
        let resumed = device
            .get(&url)
            .header("range", "bytes=1000-")
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), StatusCode::PARTIAL_CONTENT, "{label}");
        assert!(
            resumed.bytes().await.unwrap() == bytes[1000..],
            "{label}: range"
        );

        // The URL lives 24 hours by the server's clock.
        manual.advance(Duration::from_secs(23 * 3600));
        let status = device.get(&url).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{label}: 23 hours old");
        manual.advance(Duration::from_secs(2 * 3600));
        let late = device.get(&url).send().await.unwrap();
        assert_eq!(
            late.status(),
            StatusCode::FORBIDDEN,
            "{label}: 25 hours old"
        );
        assert_eq!(
            late.text().await.unwrap(),
            r#"{"errors":{"detail":"download URL expired"}}"#
        );

        // The product's route answers under /ext, beside the API; nothing else is there.
        let http = reqwest::Client::new();
        let base = format!("http://{}", fw.ts.server.api_addr());
        let hello = http
            .get(format!("{base}/ext/provisioning/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(hello.status(), StatusCode::OK, "{label}");
        assert_eq!(hello.text().await.unwrap(), "hello from the product");
        let unmounted = http
            .get(format!("{base}/provisioning/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(unmounted.status(), StatusCode::NOT_FOUND, "{label}");
        let (status, _) = fw.ts.get(&acme.view, &firmwares_path("acme", SIMPLE)).await;
        assert_eq!(status, StatusCode::OK, "{label}: the API is still there");

        // Deleting the firmware deletes the product's object.
        let (status, body) = fw
            .ts
            .delete(
                &acme.manage,
                &format!("{}/{SIMPLE_UUID}", firmwares_path("acme", SIMPLE)),
            )
            .await;
        assert!(status.is_success(), "{label}: {status} {body}");
        assert!(objects(&store).await.is_empty(), "{label}");
        fw.ts.stop().await;
    }
}
