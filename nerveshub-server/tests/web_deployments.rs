//! The deployment pages in headless Chromium: a deployment made through the form rolls out to
//! simulated devices while its page follows live (no reload), a halted rollout shows why and
//! resumes from the page, edits reach the API (and its refusals reach the form), and a
//! viewer can neither see nor use the change buttons.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;
mod web_support;

use std::time::{Duration, Instant};

use common::TestDb;
use fantoccini::Locator;
use fleet_support::{Behaviour, Fleet, PRODUCT, Sim, names};
use reqwest::StatusCode;
use serde_json::{Value, json};
use web_support::{Browser, PASSWORD, as_browser};

const LONG: u64 = 90;

fn page(rest: &str) -> String {
    format!("/orgs/acme/products/{PRODUCT}/deployments{rest}")
}

/// The count the live view shows for `state`, if it shows one now.
async fn shown(browser: &Browser, state: &str) -> Option<u64> {
    let css = format!(".live li[data-state={state}] .n");
    let element = browser.client.find(Locator::Css(&css)).await.ok()?;
    element.text().await.ok()?.trim().parse().ok()
}

/// Waits until the live view's counts satisfy `ok` (without reloading).
async fn wait_counts(browser: &Browser, what: &str, ok: impl Fn(&dyn Fn(&str) -> u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(LONG);
    loop {
        let mut counts = std::collections::HashMap::new();
        for state in ["total", "up_to_date", "in_flight", "pending", "failed"] {
            counts.insert(state, shown(browser, state).await.unwrap_or(0));
        }
        let get = |s: &str| counts.get(s).copied().unwrap_or(0);
        if ok(&get) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the live view shows {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page in the browser's memory; a reload or navigation loses the mark.
async fn mark(browser: &Browser) {
    browser
        .client
        .execute("window.__notReloaded = 42;", vec![])
        .await
        .unwrap();
}

async fn still_marked(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.__notReloaded === 42;", vec![])
        .await
        .unwrap()
        == json!(true)
}

/// Clicks the button `label` inside the live region, again if the region was swapped between
/// finding and clicking it (the stream's first event replaces the page's first render).
async fn click_live(browser: &Browser, label: &str) {
    let xpath = format!("//div[contains(@class,'live')]//button[normalize-space()='{label}']");
    for _ in 0..20 {
        if let Ok(button) = browser.client.find(Locator::XPath(&xpath)).await
            && button.click().await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no button {label:?} to click in the live region");
}

/// The value a form field holds now.
async fn kept(browser: &Browser, css: &str) -> String {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_made_through_the_form_moves_to_done_live() {
    let fleet = Fleet::start(TestDb::Sqlite, &["1.0.0", "2.0.0"], |_| {}).await;
    let Some(browser) = Browser::start(fleet.ts()).await else {
        return fleet.fw.ts.stop().await;
    };
    browser.sign_in("manage@acme.test", PASSWORD).await;
    browser.goto(&page("")).await;
    browser.wait_text("main", "No deployments yet", 5).await;
    browser.click_text("New deployment").await;
    browser.wait_text("h1", "New deployment", 5).await;
    browser.fill("#d-name", "main").await;
    let target = fleet.fw("2.0.0");
    browser
        .click(&format!("#d-firmware option[value='{}']", target.uuid))
        .await;
    // One at a time, so the page can be caught mid-rollout.
    browser.fill("#d-concurrent_updates", "1").await;
    browser.click("#d-is_active").await;
    browser.click_text("Create deployment").await;
    browser
        .wait_text(".flash.ok", "Deployment main created.", 5)
        .await;
    assert_eq!(browser.path().await, page("/main"));
    let (_, d) = fleet
        .ts()
        .get(&fleet.f.view, &fleet.path("/deployments/main"))
        .await;
    assert_eq!(d["data"]["is_active"], true, "{d}");
    assert_eq!(d["data"]["concurrent_updates"], 1, "{d}");
    assert_eq!(d["data"]["firmware_uuid"], target.uuid.as_str());
    browser
        .wait_text(".live", "On, with no devices yet", 5)
        .await;

    // The page stays open (never reloaded) while the devices come and update.
    mark(&browser).await;
    let sims: Vec<Sim> = names("dev", 3)
        .iter()
        .map(|id| fleet.spawn(id, "1.0.0", Behaviour::Slow(2500)))
        .collect();
    wait_counts(&browser, "one updated, one updating", |n| {
        n("total") == 3 && n("up_to_date") >= 1 && n("up_to_date") < 3 && n("in_flight") == 1
    })
    .await;
    let text = browser.text(".live").await;
    assert!(text.contains("Rolling out release #1 (2.0.0)"), "{text}");
    assert!(browser.has(".live table.in-flight").await, "{text}");
    browser.screenshot("rollout-in-progress").await;

    browser
        .wait_text(
            ".live",
            "Rollout complete: all 3 devices run release #1 (2.0.0)",
            LONG,
        )
        .await;
    assert_eq!(shown(&browser, "up_to_date").await, Some(3));
    assert_eq!(shown(&browser, "in_flight").await, Some(0));
    assert_eq!(browser.text(".live .percent").await, "100%");
    assert!(still_marked(&browser).await, "the page was not reloaded");
    assert_eq!(browser.path().await, page("/main"));
    browser.screenshot("rollout-done").await;
    let status = fleet.status("main").await;
    assert_eq!(status["devices"]["up_to_date"], 3, "{status}");
    assert_eq!(status["release"]["percent_complete"], 100, "{status}");
    for sim in &sims {
        assert_eq!(sim.running().version, "2.0.0");
    }

    // The list shows it too.
    browser.goto(&page("")).await;
    let row = browser.text("table.deployments tbody tr").await;
    assert!(
        row.contains("main") && row.contains("2.0.0") && row.contains("on"),
        "{row}"
    );
    for sim in sims {
        sim.stop();
    }
    browser.close().await;
    fleet.fw.ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_rollout_shows_why_and_resumes_from_the_page() {
    let fleet = Fleet::start(TestDb::Sqlite, &["1.0.0", "2.0.0"], |_| {}).await;
    fleet
        .deployment(
            "main",
            "2.0.0",
            json!({"concurrent_updates": 2, "halt_failure_rate": 30, "halt_window": 10,
                   "is_active": true}),
        )
        .await;
    let Some(browser) = Browser::start(fleet.ts()).await else {
        return fleet.fw.ts.stop().await;
    };
    browser.sign_in("manage@acme.test", PASSWORD).await;
    browser.goto(&page("/main")).await;
    assert!(!browser.has(".banner.halted").await);
    mark(&browser).await;
    // Three failures among a window of 10 reach 30%: the rollout halts.
    let sims: Vec<Sim> = names("bad", 4)
        .iter()
        .map(|id| fleet.spawn(id, "1.0.0", Behaviour::Fail))
        .collect();
    let banner = browser
        .wait_text(".live .banner.halted", "Rollout halted", LONG)
        .await;
    assert!(
        banner.contains("of the last 10 updates failed (halt at 30%)"),
        "{banner}"
    );
    let status = fleet.status("main").await;
    assert_eq!(status["status"], "halted");
    assert_eq!(
        browser.text(".live .halt-reason").await,
        status["halt_reason"].as_str().unwrap()
    );
    let failing = browser.text(".live table.failing").await;
    assert!(failing.contains("fwup error: simulated"), "{failing}");
    assert!(failing.contains("bad-0"), "{failing}");
    assert!(still_marked(&browser).await, "shown live, not by a reload");
    browser.screenshot("rollout-halted").await;

    // A viewer sees why, but no resume button.
    browser.click_text("Sign out").await;
    browser.sign_in("view@acme.test", PASSWORD).await;
    browser.goto(&page("/main")).await;
    let banner = browser.text(".live .banner.halted").await;
    assert!(banner.contains("Someone with the manage role"), "{banner}");
    assert!(!browser.has(".banner.halted button").await);
    browser.click_text("Sign out").await;

    browser.sign_in("manage@acme.test", PASSWORD).await;
    browser.goto(&page("/main")).await;
    click_live(&browser, "Resume rollout").await;
    browser.wait_text(".flash.ok", "resumed", 5).await;
    assert!(!browser.has(".banner.halted").await);
    let status = fleet.status("main").await;
    assert_eq!(status["status"], "ready", "{status}");
    assert_eq!(status["is_active"], true, "{status}");
    let (_, d) = fleet
        .ts()
        .get(&fleet.f.view, &fleet.path("/deployments/main"))
        .await;
    assert_eq!(d["data"]["halt_reason"], Value::Null, "{d}");
    for sim in sims {
        sim.stop();
    }
    browser.close().await;
    fleet.fw.ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_the_api_and_its_refusals_reach_the_form() {
    let fleet = Fleet::start(TestDb::Sqlite, &["1.0.0", "2.0.0"], |_| {}).await;
    fleet.deployment("main", "1.0.0", json!({})).await;
    let Some(browser) = Browser::start(fleet.ts()).await else {
        return fleet.fw.ts.stop().await;
    };
    let api_path = fleet.path("/deployments/main");
    browser.sign_in("manage@acme.test", PASSWORD).await;
    browser.goto(&page("/main")).await;
    browser.click_text("Edit settings").await;
    browser.wait_text("h1", "Edit deployment main", 5).await;
    assert_eq!(browser.path().await, page("/main/edit"));
    browser.fill("#d-concurrent_updates", "7").await;
    browser.fill("#d-halt_failure_rate", "25").await;
    browser.fill("#d-version", "~> 1.0").await;
    browser.fill("#d-tags", "beta, gamma").await;
    browser.click("#d-tag_operator option[value=or]").await;
    browser.click("#d-require_validated").await;
    browser.fill("#d-health_timeout_minutes", "30").await;
    browser.fill("#d-notes", "canary first").await;
    browser.click_text("Save changes").await;
    browser
        .wait_text(".flash.ok", "Deployment main saved.", 5)
        .await;
    let (_, d) = fleet.ts().get(&fleet.f.view, &api_path).await;
    let d = &d["data"];
    assert_eq!(d["concurrent_updates"], 7, "{d}");
    assert_eq!(d["halt_failure_rate"], 25, "{d}");
    assert_eq!(d["conditions"]["version"], "~> 1.0", "{d}");
    assert_eq!(d["conditions"]["tags"], json!(["beta", "gamma"]), "{d}");
    assert_eq!(d["conditions"]["tag_operator"], "or", "{d}");
    assert_eq!(d["require_validated"], true, "{d}");
    assert_eq!(d["health_timeout_minutes"], 30, "{d}");
    assert_eq!(d["notes"], "canary first", "{d}");
    // Untouched settings stay; the same firmware made no new release.
    assert_eq!(d["device_failure_threshold"], 3, "{d}");
    assert_eq!(d["current_release"]["number"], 1, "{d}");
    let summary = browser.main_text().await;
    assert!(
        summary.contains("at 25% failed of the last 20 updates"),
        "{summary}"
    );

    // Another firmware is a new release, listed in the history.
    browser.click_text("Edit settings").await;
    let uuid = fleet.fw("2.0.0").uuid;
    browser
        .click(&format!("#d-firmware option[value='{uuid}']"))
        .await;
    browser.click_text("Save changes").await;
    browser.wait_text(".flash.ok", "saved", 5).await;
    let (_, d) = fleet.ts().get(&fleet.f.view, &api_path).await;
    assert_eq!(d["data"]["current_release"]["number"], 2, "{d}");
    let history = browser.text("table.releases").await;
    assert!(
        history.contains("#2") && history.contains("#1"),
        "{history}"
    );
    assert!(history.contains("manage@acme.test"), "{history}");

    // A value the API refuses: its own message, on the form as typed.
    let (status, refused) = fleet
        .ts()
        .put(
            &fleet.f.manage,
            &api_path,
            json!({"deployment": {"conditions": {"version": ">= banana"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let api_message = refused["errors"]["conditions"][0].as_str().unwrap();
    browser.click_text("Edit settings").await;
    browser.fill("#d-version", ">= banana").await;
    browser.fill("#d-concurrent_updates", "9").await;
    browser.click_text("Save changes").await;
    let flash = browser.wait_text(".flash.error", "not saved", 5).await;
    assert!(flash.contains(api_message), "{flash} / {api_message}");
    assert_eq!(kept(&browser, "#d-version").await, ">= banana");
    assert_eq!(kept(&browser, "#d-concurrent_updates").await, "9");
    browser.screenshot("deployment-form-refused").await;
    let (_, d) = fleet.ts().get(&fleet.f.view, &api_path).await;
    assert_eq!(d["data"]["concurrent_updates"], 7, "nothing changed: {d}");

    // A taken name on the create form: the API's message, the form kept.
    browser.goto(&page("/new")).await;
    browser.fill("#d-name", "main").await;
    browser.click_text("Create deployment").await;
    let flash = browser
        .wait_text(".flash.error", "has already been taken", 5)
        .await;
    assert!(flash.contains("name:"), "{flash}");
    assert_eq!(kept(&browser, "#d-name").await, "main");

    // Delete, confirmed.
    browser.goto(&page("/main")).await;
    browser.click_text("Delete deployment").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_text(".flash.ok", "Deployment main deleted.", 5)
        .await;
    assert_eq!(browser.path().await, page(""));
    let (status, _) = fleet.ts().get(&fleet.f.view, &api_path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    browser.close().await;
    fleet.fw.ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_change_buttons_and_is_refused_anyway() {
    let fleet = Fleet::start(TestDb::Sqlite, &["1.0.0"], |_| {}).await;
    fleet
        .deployment("main", "1.0.0", json!({"is_active": true}))
        .await;
    let Some(browser) = Browser::start(fleet.ts()).await else {
        return fleet.fw.ts.stop().await;
    };
    browser.sign_in("view@acme.test", PASSWORD).await;
    browser.goto(&page("")).await;
    browser.wait_text("table.deployments", "main", 5).await;
    assert!(!browser.has("a[href$='/deployments/new']").await);
    browser.goto(&page("/main")).await;
    browser
        .wait_text(".live", "On, with no devices yet", 5)
        .await;
    for css in [
        "form[action$='/off']",
        "form[action$='/on']",
        "form[action$='/delete']",
        "a[href$='/edit']",
    ] {
        assert!(!browser.has(css).await, "{css} is hidden from a viewer");
    }
    browser.screenshot("deployment-viewer").await;

    let csrf = browser.csrf().await;
    let http = as_browser(&browser).await;
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut fields = vec![("_csrf", csrf.clone())];
        fields.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        fields
    };
    let uuid = fleet.fw("1.0.0").uuid;
    let posts = [
        (
            page(""),
            vec![
                ("_csrf", csrf.clone()),
                ("name", "sneaky".to_owned()),
                ("firmware", uuid.clone()),
            ],
        ),
        (
            page("/main/edit"),
            form(&[("name", "main"), ("concurrent_updates", "99")]),
        ),
        (page("/main/off"), form(&[])),
        (page("/main/resume"), form(&[])),
        (page("/main/delete"), form(&[])),
    ];
    for (path, fields) in posts {
        let response = http
            .post(format!("{}{path}", browser.base))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let response = http
        .get(format!("{}{}", browser.base, page("/new")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "no form to fill");
    let (_, list) = fleet
        .ts()
        .get(&fleet.f.admin, &fleet.path("/deployments"))
        .await;
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["is_active"], true);
    assert_eq!(list[0]["concurrent_updates"], 10);
    browser.close().await;
    fleet.fw.ts.stop().await;
}
