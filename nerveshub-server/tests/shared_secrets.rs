//! Product (`nhp_…`) and device (`nhd_…`) shared secrets on the management API, on SQLite
//! and PostgreSQL: formats, the authorization matrix, deactivation, audit rows.

mod common;
mod devices_support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{OrgFixture, TestServer};
use devices_support::{assert_audited, device, product};

/// 32 bytes in base64 without padding.
fn assert_32_bytes_b64(text: &str) {
    assert_eq!(text.len(), 43, "{text}");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(text).map(|b| b.len()).ok(),
        Some(32),
        "{text}"
    );
}

/// The whole life of the secrets at `base` (a product's or a device's), keys with `prefix`.
async fn secrets_life(ts: &TestServer, f: &OrgFixture, base: &str, prefix: &str) {
    // Creating: managers and admins.
    let (status, _) = ts.request(Method::POST, None, base, Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = ts
        .request(Method::POST, Some("nhu_bad"), base, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = ts.post(&f.outsider, base, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.post(&f.view, base, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut keys = Vec::new();
    for token in [&f.manage, &f.admin] {
        let (status, body) = ts.post(token, base, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let data = &body["data"];
        let key = data["key"].as_str().expect("key");
        assert!(key.starts_with(prefix), "{key}");
        assert_32_bytes_b64(&key[prefix.len()..]);
        assert_32_bytes_b64(data["secret"].as_str().expect("secret"));
        assert_ne!(
            &key[prefix.len()..],
            data["secret"].as_str().unwrap_or_default()
        );
        assert_eq!(data["deactivated_at"], Value::Null);
        keys.push(key.to_owned());
    }
    assert_ne!(keys[0], keys[1]);

    // Listing: viewers may; secrets are not shown again.
    let (status, _) = ts.get(&f.outsider, base).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.request(Method::GET, None, base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, list) = ts.get(&f.view, base).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["key"].as_str().expect("key"))
        .collect();
    assert_eq!(listed, keys.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        list["data"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s.get("secret").is_none() && s["deactivated_at"].is_null())
    );

    // Deactivating: managers only; the key stays listed with deactivated_at.
    let one = format!("{base}/{}", keys[0]);
    let (status, _) = ts.delete(&f.view, &one).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ts.delete(&f.outsider, &one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.request(Method::DELETE, None, &one, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = ts.delete(&f.manage, &one).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = ts.delete(&f.manage, &one).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "deactivating twice is harmless"
    );
    let (status, _) = ts
        .delete(&f.manage, &format!("{base}/{prefix}unknown"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = ts.get(&f.view, base).await;
    let rows = list["data"].as_array().expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], keys[0].as_str());
    assert!(
        rows[0]["deactivated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{list}"
    );
    assert!(rows[1]["deactivated_at"].is_null());

    assert_audited(ts, f, "shared_secret", "create", &keys[1]).await;
    assert_audited(ts, f, "shared_secret", "deactivate", &keys[0]).await;
}

#[tokio::test]
async fn product_and_device_shared_secrets() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "hub").await;
        device(
            &ts,
            &f.manage,
            "acme",
            "hub",
            json!({"identifier": "nerves-1"}),
        )
        .await;
        secrets_life(&ts, &f, "/orgs/acme/products/hub/shared_secrets", "nhp_").await;
        secrets_life(
            &ts,
            &f,
            "/orgs/acme/products/hub/devices/nerves-1/shared_secrets",
            "nhd_",
        )
        .await;

        // A product key is not reachable through a device path, nor the reverse.
        let (_, list) = ts
            .get(&f.view, "/orgs/acme/products/hub/shared_secrets")
            .await;
        let product_key = list["data"][1]["key"].as_str().expect("key").to_owned();
        let (status, _) = ts
            .delete(
                &f.manage,
                &format!("/orgs/acme/products/hub/devices/nerves-1/shared_secrets/{product_key}"),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Missing product or device: 404.
        let (status, _) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/nope/shared_secrets",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/hub/devices/nope/shared_secrets",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // No secret ever reaches the audit log.
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/hub/shared_secrets",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let secret = body["data"]["secret"].as_str().expect("secret").to_owned();
        let log = devices_support::audit_log(&ts, &f.admin, "acme").await;
        assert!(!log.is_empty());
        assert!(!Value::Array(log).to_string().contains(&secret));
        ts.stop().await;
    }
}
