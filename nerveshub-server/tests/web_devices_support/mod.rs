//! The device and firmware page tests' shared parts: a server with an org, a product, its
//! signing key and a product shared secret; signed firmware; devices that connect with NH1
//! headers and report what the test tells them.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::time::{Duration, Instant};

use nerveshub_proto::Vsn;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{OrgFixture, TestDb, TestServer};
use crate::device_support::{DeviceWs, connect_nh1, join_params, nh1};
use crate::firmware_support::{FwServer, TestStorage, full_meta, make_firmware, uuid_of};
use crate::web_support::{Browser, PASSWORD};

pub const ORG: &str = "acme";
pub const PRODUCT: &str = "widget";
/// The signing key the firmware is signed with (`keys/fwup-key.priv`).
pub const KEY: &str = "fwup-key";

pub struct Rig {
    pub fw: FwServer,
    pub f: OrgFixture,
    /// The product shared secret's key and secret (NH1).
    pub key: String,
    pub secret: String,
}

/// A firmware made and signed here.
pub struct Firmware {
    pub bytes: Vec<u8>,
    pub uuid: String,
    pub version: String,
}

pub fn firmware(version: &str, seed: u64) -> Firmware {
    let bytes = make_firmware(&full_meta(PRODUCT, version), 2048, seed);
    Firmware {
        uuid: uuid_of(&bytes),
        version: version.to_owned(),
        bytes,
    }
}

impl Rig {
    pub async fn start() -> Rig {
        let fw = FwServer::start(TestDb::Sqlite, TestStorage::Local).await;
        let f = fw.org_with_product(ORG, PRODUCT, Some(KEY)).await;
        let (status, body) = fw
            .ts
            .post(&f.manage, &product_path("/shared_secrets"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Rig {
            key: body["data"]["key"].as_str().unwrap().to_owned(),
            secret: body["data"]["secret"].as_str().unwrap().to_owned(),
            fw,
            f,
        }
    }

    pub fn ts(&self) -> &TestServer {
        &self.fw.ts
    }

    /// Uploads `firmware` through the API.
    pub async fn upload(&self, firmware: &Firmware) {
        let (status, body, _) = self
            .fw
            .upload(&self.f.manage, ORG, PRODUCT, firmware.bytes.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates devices through the API with `tags`.
    pub async fn create(&self, identifiers: &[&str], tags: &[&str]) {
        for identifier in identifiers {
            let (status, body) = self
                .ts()
                .post(
                    &self.f.manage,
                    &product_path("/devices"),
                    json!({"identifier": identifier, "tags": tags}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }

    /// `GET /api/orgs/acme/products/widget<rest>` as the viewer.
    pub async fn api(&self, rest: &str) -> Value {
        let (status, body) = self.ts().get(&self.f.view, &product_path(rest)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Device `identifier` connected with the product secret and joined on `firmware`.
    pub async fn connect(&self, identifier: &str, firmware: &Firmware) -> DeviceWs {
        let headers = nh1(&self.key, &self.secret, identifier, 0);
        let mut ws = connect_nh1(self.ts(), &headers, Vsn::V2Json).await.device();
        let mut params = join_params(&firmware.uuid, &firmware.version);
        params.nerves_fw_product = Some(PRODUCT.into());
        params.nerves_fw_platform = Some("rpi4".into());
        params.nerves_fw_architecture = Some("arm".into());
        let reply = ws.join_device(&params).await;
        assert_eq!(reply["status"], "ok", "{reply}");
        ws
    }

    /// Waits until the API shows the device online.
    pub async fn wait_online(&self, identifier: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let device = self.api(&format!("/devices/{identifier}")).await["data"].clone();
            if device["online"] == json!(true) {
                return device;
            }
            assert!(Instant::now() < deadline, "never online: {device}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A browser signed in as `who@acme.test` (None without chromedriver).
    pub async fn browser(&self, who: &str) -> Option<Browser> {
        let browser = Browser::start(self.ts()).await?;
        browser
            .sign_in(&format!("{who}@{ORG}.test"), PASSWORD)
            .await;
        Some(browser)
    }
}

/// `/orgs/acme/products/widget<rest>`.
pub fn product_path(rest: &str) -> String {
    format!("/orgs/{ORG}/products/{PRODUCT}{rest}")
}

/// The texts of the elements matching `css`, read in one script: the live regions replace
/// their elements at any moment, so elements found one call earlier may be gone.
pub async fn column(browser: &Browser, css: &str) -> Vec<String> {
    let texts = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim());",
            vec![json!(css)],
        )
        .await
        .unwrap();
    serde_json::from_value(texts).unwrap()
}

/// Whether the page is still the one marked by [`mark_page`] (no reload since).
pub async fn page_marked(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .unwrap()
        == json!(true)
}

/// Marks the loaded page, so a reload can be told apart from a live change.
pub async fn mark_page(browser: &Browser) {
    browser
        .client
        .execute("window.__notReloaded = true;", vec![])
        .await
        .unwrap();
}

/// The text of the first element matching `css` (empty when none), read in one script.
pub async fn text_of(browser: &Browser, css: &str) -> String {
    column(browser, css)
        .await
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// The `href` of the first link matching `css`, read in one script (see [`column`]).
pub async fn href_of(browser: &Browser, css: &str) -> String {
    let href = browser
        .client
        .execute(
            "const a = document.querySelector(arguments[0]); return a ? a.getAttribute('href') : '';",
            vec![json!(css)],
        )
        .await
        .unwrap();
    href.as_str().unwrap_or_default().to_owned()
}

/// Clicks the first element matching `css` inside a live region, found and clicked in one
/// script (see [`column`]).
pub async fn click_live(browser: &Browser, css: &str) {
    let clicked = browser
        .client
        .execute(
            "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "nothing matches {css}");
}
