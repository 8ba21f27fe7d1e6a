//! `GET …/devices/{identifier}/updates`, on SQLite and PostgreSQL: who may read it and what a
//! device without updates shows. The statuses an update goes through are checked end to end
//! with the real device client (examples/tests/e2e_server_device.rs).

mod common;
mod devices_support;

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::TestServer;
use devices_support::{device, product};

#[tokio::test]
async fn device_updates_need_the_view_role() {
    for db in common::databases().await {
        let ts = TestServer::start(db.clone()).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "p").await;
        device(&ts, &f.admin, "acme", "p", json!({"identifier": "d1"})).await;
        let path = "/orgs/acme/products/p/devices/d1/updates";
        for token in [&f.view, &f.manage, &f.admin] {
            let (status, body) = ts.get(token, path).await;
            assert_eq!(status, StatusCode::OK, "[{}] {body}", db.name());
            assert_eq!(body, json!({"data": []}));
        }
        let (status, _) = ts.get(&f.outsider, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.request(Method::GET, None, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts
            .get(&f.admin, "/orgs/acme/products/p/devices/nope/updates")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        ts.stop().await;
    }
}
