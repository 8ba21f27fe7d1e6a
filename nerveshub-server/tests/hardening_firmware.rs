//! Issue 25, items 3, 5 and 10 for firmware: uploads racing the deletion of their signing key
//! or product, and identical uploads at once, on every database and storage backend.

mod common;
mod firmware_support;

use firmware_support::*;
use futures_util::future::join_all;
use reqwest::StatusCode;

/// Deleting the signing key while firmware it signed uploads: the delete answers 204 or 409,
/// the upload 201 or a 4xx, never a 5xx; an acknowledged firmware keeps its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_delete_racing_uploads_answers_no_500() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let f = fw.org_with_product("acme", "demo", None).await;
        for round in 0..4u64 {
            fw.add_key(&f, "fwup-key").await;
            let version = format!("1.0.{round}");
            let firmware = make_firmware(&full_meta("demo", &version), 64 * 1024, round);
            let upload = fw.upload(&f.manage, "acme", "demo", firmware);
            let delete = fw.ts.delete(&f.manage, "/orgs/acme/keys/fwup-key");
            let ((up_status, up_body, _), (del_status, del_body)) = tokio::join!(upload, delete);
            assert!(
                !up_status.is_server_error(),
                "{label}: upload {up_status} {up_body}"
            );
            assert!(
                del_status == StatusCode::NO_CONTENT || del_status == StatusCode::CONFLICT,
                "{label}: key delete {del_status} {del_body}"
            );
            if up_status == StatusCode::CREATED {
                assert_eq!(
                    del_status,
                    StatusCode::CONFLICT,
                    "{label}: the key of an acknowledged firmware was deleted"
                );
                let uuid = up_body["data"]["uuid"].as_str().unwrap().to_owned();
                let (status, body) = fw
                    .ts
                    .delete(
                        &f.manage,
                        &format!("/orgs/acme/products/demo/firmwares/{uuid}"),
                    )
                    .await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{label}: {body}");
                let (status, body) = fw.ts.delete(&f.manage, "/orgs/acme/keys/fwup-key").await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{label}: {body}");
            }
        }
        fw.ts.stop().await;
    }
}

/// Deleting the product while firmware uploads into it: an acknowledged firmware is never
/// removed by the product's cascade.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn product_delete_racing_uploads_loses_nothing() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let f = fw.org_with_product("acme", "p0", Some("fwup-key")).await;
        for round in 0..4u64 {
            let product = format!("p{round}");
            if round > 0 {
                let (status, body) = fw
                    .ts
                    .post(
                        &f.admin,
                        "/orgs/acme/products",
                        serde_json::json!({"name": product}),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
            let firmware = make_firmware(&full_meta(&product, "1.0.0"), 64 * 1024, round);
            let upload = fw.upload(&f.manage, "acme", &product, firmware);
            let product_path = format!("/orgs/acme/products/{product}");
            let delete = fw.ts.delete(&f.admin, &product_path);
            let ((up_status, up_body, _), (del_status, del_body)) = tokio::join!(upload, delete);
            assert!(
                !up_status.is_server_error(),
                "{label}: upload {up_status} {up_body}"
            );
            assert!(
                !del_status.is_server_error(),
                "{label}: delete {del_status} {del_body}"
            );
            if up_status == StatusCode::CREATED {
                assert_ne!(
                    del_status,
                    StatusCode::NO_CONTENT,
                    "{label}: product deleted after its firmware was acknowledged"
                );
                let uuid = up_body["data"]["uuid"].as_str().unwrap();
                let (status, body) = fw
                    .ts
                    .get(
                        &f.view,
                        &format!("/orgs/acme/products/{product}/firmwares/{uuid}"),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{label}: {body}");
            }
        }
        fw.ts.stop().await;
    }
}

/// 20 identical uploads at once: one 201, the rest 4xx (duplicate UUID), no 5xx, and no
/// stored object is left without its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_uploads_at_once_make_one() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let f = fw.org_with_product("acme", "demo", Some("fwup-key")).await;
        let firmware = make_firmware(&full_meta("demo", "2.0.0"), 64 * 1024, 7);
        let answers =
            join_all((0..20).map(|_| fw.upload(&f.manage, "acme", "demo", firmware.clone()))).await;
        let created = answers
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::CREATED)
            .count();
        for (status, body, _) in &answers {
            assert!(
                *status == StatusCode::CREATED || status.is_client_error(),
                "{label}: {status} {body}"
            );
        }
        assert_eq!(created, 1, "{label}");
        assert_eq!(fw.stored_objects().await.len(), 1, "{label}");
        fw.ts.stop().await;
    }
}

/// Item 10 without the race: deleting the key of a stored firmware answers 409 and keeps the
/// key (SQLite reports the `ON DELETE RESTRICT` refusal under its own code, 1811).
#[tokio::test]
async fn deleting_the_key_of_stored_firmware_is_a_conflict() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let f = fw.org_with_product("acme", "demo", None).await;
        fw.add_key(&f, "fwup-key").await;
        let firmware = make_firmware(&full_meta("demo", "1.0.0"), 64 * 1024, 7);
        let (status, body, _) = fw.upload(&f.manage, "acme", "demo", firmware).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let (status, body) = fw.ts.delete(&f.manage, "/orgs/acme/keys/fwup-key").await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        let (status, body) = fw.ts.get(&f.view, "/orgs/acme/keys/fwup-key").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        fw.ts.stop().await;
    }
}
