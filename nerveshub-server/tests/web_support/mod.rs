//! Headless Chromium driven through WebDriver (chromedriver on loopback), for the web UI's
//! tests. Without chromedriver the tests print that they are skipped (and fail under
//! `NERVESHUB_CI=1`). Every screenshot is written under the browser's temp directory and,
//! when `NERVESHUB_SCREENSHOT_DIR` is set, copied there too (how README's pictures are made).
#![allow(dead_code, unreachable_pub, clippy::print_stderr)] // shared by the web test binaries

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::TestServer;

/// The password `TestServer::user` gives every user it makes.
pub const PASSWORD: &str = "a long test password";

/// One Chromium at a time per test binary: two cores are shared by the server, the browser
/// and the test.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: tokio::process::Child,
    shots: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A browser pointed at `ts`'s API listener, or `None` (skipped) without chromedriver.
    pub async fn start(ts: &TestServer) -> Option<Browser> {
        let Some(driver_path) = nerveshub_test_support::find_on_path("chromedriver") else {
            nerveshub_test_support::skip_or_fail(
                "chromedriver is not installed (apt install chromium chromium-driver; .ci/install-deps does)",
            );
            return None;
        };
        let turn = ONE_BROWSER.lock().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
            ],
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        Some(Browser {
            client,
            base: format!("http://{}", ts.server.api_addr()),
            driver,
            shots: tempfile::tempdir().unwrap(),
            _turn: turn,
        })
    }

    /// The element `locator` finds, waiting up to 10 s for it: a click that submits a form
    /// returns before the next page has loaded.
    async fn find(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(Locator::Css(css)).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(Locator::Css(css)).await.click().await.unwrap();
    }

    /// Clicks the button or link whose text is `label`.
    pub async fn click_text(&self, label: &str) {
        let xpath = format!(
            "//button[normalize-space()='{label}'] | //a[normalize-space()='{label}'] | //input[@type='submit' and @value='{label}']"
        );
        self.find(Locator::XPath(&xpath))
            .await
            .click()
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(Locator::Css(css)).await.text().await.unwrap()
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// The text of the page's `main` element.
    pub async fn main_text(&self) -> String {
        self.text("main").await
    }

    /// Waits (up to `secs`) until `css` shows non-empty text containing `needle`, without
    /// reloading, and returns that text.
    pub async fn wait_text(&self, css: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // Not found yet counts as no text: right after a click the old page may still be
            // shown, or none, and an empty needle must not accept either.
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if !found.is_empty() && found.contains(needle) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; it shows {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs in through the form and checks it lands on `next` (or the org list).
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.goto("/login").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
        // The form posts and redirects; until the browser has followed, the path is still
        // /login, so poll it rather than judge the first look.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.path().await.starts_with("/login") {
            assert!(
                Instant::now() < deadline,
                "sign-in as {email} failed: {}",
                self.main_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of cookie `name`, if the browser holds it.
    pub async fn cookie(&self, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
        self.client.get_named_cookie(name).await.ok()
    }

    /// The `_csrf` value of the first form on the page.
    pub async fn csrf(&self) -> String {
        self.client
            .find(Locator::Css("input[name=_csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap()
    }

    /// Saves the page as `<name>.png` under the browser's temp directory (and under
    /// `NERVESHUB_SCREENSHOT_DIR` when set); returns the file.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.shots.path().join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        if let Some(dir) = std::env::var_os("NERVESHUB_SCREENSHOT_DIR") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), &png).unwrap();
        }
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

/// A plain HTTP client carrying the browser's session cookie, for requests a browser would
/// not make (a form without its token).
pub async fn as_browser(browser: &Browser) -> reqwest::Client {
    let session = browser
        .cookie("nh_session")
        .await
        .expect("a session cookie")
        .value()
        .to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("nh_session={session}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
