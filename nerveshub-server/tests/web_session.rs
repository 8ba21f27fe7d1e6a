//! The web UI's sign-in, session cookie, CSRF checks and role rules, in headless Chromium
//! against a real server on loopback.

mod common;
mod web_support;

use common::{TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use web_support::{Browser, PASSWORD, as_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_create_an_org_and_product_then_sign_out() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let token = ts.user("alice@example.test").await;
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };

    // Not signed in: every page leads to the sign-in form, which comes back afterwards.
    browser.goto("/orgs").await;
    assert_eq!(browser.path().await, "/login?next=%2Forgs");
    browser.fill("#email", "alice@example.test").await;
    browser.fill("#password", "wrong password").await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_text("main", "email or password is wrong", 5)
        .await;
    browser.fill("#email", "alice@example.test").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_text("h1", "Organizations", 5).await;
    assert_eq!(browser.path().await, "/orgs");

    let cookie = browser
        .cookie("nh_session")
        .await
        .expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    assert_ne!(
        cookie.secure(),
        Some(true),
        "plain HTTP listener: not Secure"
    );

    // Create an org and a product through the forms.
    browser.fill("#org-name", "acme").await;
    browser.click_text("Create organization").await;
    browser
        .wait_text("main", "Organization acme created.", 5)
        .await;
    assert_eq!(browser.path().await, "/orgs/acme");
    browser.fill("#product-name", "widget").await;
    browser.click_text("Create product").await;
    browser
        .wait_text("main", "Product widget created.", 5)
        .await;
    assert_eq!(browser.path().await, "/orgs/acme/products/widget/devices");
    // The API sees what the forms made, as this user.
    let (status, body) = ts.get(&token, "/orgs/acme/products").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["name"], "widget");

    // A name the API refuses comes back as its message.
    browser.goto("/orgs").await;
    browser.fill("#org-name", "acme").await;
    browser.click_text("Create organization").await;
    let flash = browser.wait_text(".flash.error", "", 5).await;
    assert!(flash.contains("name"), "{flash}");

    browser.goto("/orgs/acme").await;
    browser.screenshot("org").await;
    browser.click_text("Sign out").await;
    browser.wait_text("h2", "Sign in", 5).await;
    assert!(browser.cookie("nh_session").await.is_none());
    browser.goto("/orgs/acme").await;
    assert_eq!(browser.path().await, "/login?next=%2Forgs%2Facme");
    browser.screenshot("sign-in").await;
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_csrf_token_are_refused() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let token = ts.user("bob@example.test").await;
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("bob@example.test", PASSWORD).await;
    browser.goto("/orgs").await;
    let csrf = browser.csrf().await;
    let http = as_browser(&browser).await;
    let url = format!("{}/orgs", browser.base);

    for form in [
        vec![("name", "nocsrf")],
        vec![("name", "nocsrf"), ("_csrf", "0000")],
        vec![("name", "nocsrf"), ("_csrf", &csrf[..csrf.len() - 1])],
    ] {
        let response = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.text().await.unwrap().contains("security token"));
    }
    let (_, orgs) = ts.get(&token, "/orgs").await;
    assert_eq!(orgs["data"], json!([]), "nothing was created");

    // The same form with the page's token goes through.
    let response = http
        .post(&url)
        .form(&[("name", "withcsrf"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, orgs) = ts.get(&token, "/orgs").await;
    assert_eq!(orgs["data"][0]["name"], "withcsrf");

    // Another session's token does not fit this one.
    let other = reqwest::Client::new();
    let response = other
        .post(&url)
        .form(&[("name", "x"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        response.url().path().starts_with("/login"),
        "no session: to the sign-in page"
    );

    // Sign-in itself needs the form's own token (login CSRF).
    let response = reqwest::Client::new()
        .post(format!("{}/login", browser.base))
        .form(&[("email", "bob@example.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_change_buttons_and_is_refused_anyway() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("viewco").await;
    let (status, _) = ts
        .post(&f.admin, "/orgs/viewco/products", json!({"name": "gizmo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("view@viewco.test", PASSWORD).await;
    browser.goto("/orgs/viewco").await;
    browser.wait_text("main", "gizmo", 5).await;
    assert!(
        !browser.has("#product-name").await,
        "no create form for a viewer"
    );
    assert!(!browser.has("nav.side a[href$='/members']").await);
    browser.screenshot("viewer-org").await;

    // Posting the admin's form anyway, with a valid token: the API's 403, as a page.
    let csrf = browser.csrf().await;
    let http = as_browser(&browser).await;
    let response = http
        .post(format!("{}/orgs/viewco/products", browser.base))
        .form(&[("name", "sneaky"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, products) = ts.get(&f.admin, "/orgs/viewco/products").await;
    assert_eq!(products["data"].as_array().unwrap().len(), 1);

    // Another org's pages are the API's 404.
    let response = http
        .get(format!("{}/orgs/{}", browser.base, f.other_org))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_page_shows_what_the_api_returns() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("textco").await;
    for name in ["alpha", "beta", "gamma"] {
        let (status, _) = ts
            .post(&f.admin, "/orgs/textco/products", json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("manage@textco.test", PASSWORD).await;
    browser.goto("/orgs/textco").await;
    let (_, api) = ts.get(&f.manage, "/orgs/textco/products").await;
    let from_api: Vec<String> = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let cards = browser
        .client
        .find_all(fantoccini::Locator::Css("ul.cards .title"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for card in cards {
        shown.push(card.text().await.unwrap());
    }
    assert_eq!(shown, from_api);
    browser.screenshot("products").await;

    // Pages carry the security headers; the API's own answers stay JSON.
    let page = reqwest::get(format!("{}/login", browser.base))
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let api = reqwest::get(ts.api("/users/me")).await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let body: Value = api.json().await.unwrap();
    assert!(body["errors"].is_object());
    browser.close().await;
    ts.stop().await;
}
