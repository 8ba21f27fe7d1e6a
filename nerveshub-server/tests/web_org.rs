//! The organization's admin pages of the web UI (members, signing keys, Device CAs, the audit
//! log, shared secrets, API tokens), in headless Chromium against a real server; each change
//! made through a page is then checked through the API.

mod common;
mod devices_support;
mod web_support;

use std::process::Command;

use common::{TestDb, TestServer};
use devices_support::{openssl_available, pki_ca, pki_proof, verification_token};
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};
use web_support::{Browser, PASSWORD, as_browser};

/// The fixture public key fwup made (`fwup -g`), as a user would paste it.
fn fwup_public_key(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nerveshub-fwup/testdata/fixtures/keys")
        .join(format!("{name}.pub"));
    std::fs::read_to_string(path).expect("fixture key")
}

/// The row of the page's table whose cells mention `needle`, by XPath.
fn row(needle: &str) -> String {
    format!("//tr[td[contains(normalize-space(), '{needle}')]]")
}

/// Clicks the button `label` in the row mentioning `needle`, accepting its confirmation.
async fn confirm_in_row(browser: &Browser, needle: &str, label: &str) {
    let xpath = format!("{}//button[normalize-space()='{label}']", row(needle));
    click_xpath(browser, &xpath).await;
    browser.client.accept_alert().await.expect("a confirmation");
}

/// Clicks the element `xpath` finds.
async fn click_xpath(browser: &Browser, xpath: &str) {
    browser
        .client
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("{xpath}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Chooses `value` in the role picker of the member row mentioning `email`.
async fn pick_role(browser: &Browser, email: &str, value: &str) {
    browser
        .client
        .find(Locator::XPath(&format!("{}//select", row(email))))
        .await
        .unwrap_or_else(|e| panic!("no role picker for {email}: {e}"))
        .select_by_value(value)
        .await
        .unwrap();
}

/// Sets a textarea's or input's value (long PEM text, faster than typing it).
async fn set_value(browser: &Browser, css: &str, value: &str) {
    let element = browser.client.find(Locator::Css(css)).await.unwrap();
    let element = serde_json::to_value(element).unwrap();
    browser
        .client
        .execute(
            "arguments[0].value = arguments[1];",
            vec![element, json!(value)],
        )
        .await
        .unwrap();
}

async fn select(browser: &Browser, css: &str, value: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap();
}

/// How many elements match `css` now.
async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(css))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_changes_and_removes_a_member() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("memco").await;
    ts.user("newbie@example.test").await;
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("admin@memco.test", PASSWORD).await;
    browser.goto("/orgs/memco").await;
    browser.click("nav.side a[href$='/members']").await;
    browser.wait_text("h1", "Members of memco", 5).await;
    assert!(browser.main_text().await.contains("view@memco.test"));

    browser.fill("#member-email", "newbie@example.test").await;
    select(&browser, "#member-role", "manage").await;
    browser.click_text("Add member").await;
    browser
        .wait_text(".flash.ok", "newbie@example.test added as manage", 5)
        .await;
    let (_, member) = ts
        .get(&f.admin, "/orgs/memco/users/newbie@example.test")
        .await;
    assert_eq!(member["data"]["role"], "manage");

    // An email without an account: the API's message, back on the page.
    browser.fill("#member-email", "nobody@example.test").await;
    browser.click_text("Add member").await;
    browser
        .wait_text(".flash.error", "no user has this email", 5)
        .await;

    pick_role(&browser, "newbie@example.test", "view").await;
    let change = format!(
        "{}//button[normalize-space()='Change role']",
        row("newbie@example.test")
    );
    click_xpath(&browser, &change).await;
    browser
        .wait_text(".flash.ok", "newbie@example.test is now view", 5)
        .await;
    let (_, member) = ts
        .get(&f.admin, "/orgs/memco/users/newbie@example.test")
        .await;
    assert_eq!(member["data"]["role"], "view");

    // The last admin cannot step down: the API's conflict, as a message.
    pick_role(&browser, "admin@memco.test", "view").await;
    let change_own = format!(
        "{}//button[normalize-space()='Change role']",
        row("admin@memco.test")
    );
    click_xpath(&browser, &change_own).await;
    browser
        .wait_text(".flash.error", "at least one admin", 5)
        .await;
    browser.screenshot("members").await;

    confirm_in_row(&browser, "newbie@example.test", "Remove").await;
    browser
        .wait_text(".flash.ok", "newbie@example.test removed from memco", 5)
        .await;
    assert!(!browser.text("tbody").await.contains("newbie@example.test"));
    let (status, _) = ts
        .get(&f.admin, "/orgs/memco/users/newbie@example.test")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, members) = ts.get(&f.admin, "/orgs/memco/users").await;
    assert_eq!(members["data"].as_array().unwrap().len(), 3);
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_added_and_deleted_through_the_page() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("keyco").await;
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("manage@keyco.test", PASSWORD).await;
    browser.goto("/orgs/keyco/keys").await;
    let page = browser.main_text().await;
    assert!(page.contains("No signing keys yet."), "{page}");
    assert_eq!(browser.text("#fwup-keygen").await, "fwup -g");
    assert!(browser.has("button[data-copy='fwup-keygen']").await);

    let public = fwup_public_key("fwup-key");
    browser.fill("#key-name", "release").await;
    browser.fill("#key-text", &public).await;
    browser.click_text("Add key").await;
    browser
        .wait_text(".flash.ok", "Signing key release added.", 5)
        .await;
    assert!(browser.main_text().await.contains(public.trim()));
    let (_, keys) = ts.get(&f.view, "/orgs/keyco/keys").await;
    assert_eq!(keys["data"][0]["name"], "release");
    assert_eq!(keys["data"][0]["key"], public.trim());

    // Not a key: the API's message.
    browser.fill("#key-name", "junk").await;
    browser.fill("#key-text", "not a key").await;
    browser.click_text("Add key").await;
    browser
        .wait_text(".flash.error", "not a base64 Ed25519 public key", 5)
        .await;
    browser.screenshot("keys").await;

    confirm_in_row(&browser, "release", "Delete").await;
    browser
        .wait_text(".flash.ok", "Signing key release deleted.", 5)
        .await;
    let (_, keys) = ts.get(&f.view, "/orgs/keyco/keys").await;
    assert_eq!(keys["data"], json!([]));
    browser.close().await;
    ts.stop().await;
}

/// Runs `script` with `sh` in `dir`, as a user pasting a copied command.
fn shell(dir: &std::path::Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_ca_is_registered_following_the_pages_steps() {
    if !openssl_available() {
        return;
    }
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("caco").await;
    let (status, _) = ts
        .post(&f.admin, "/orgs/caco/products", json!({"name": "gizmo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The user's own CA, made with openssl in their working directory.
    let dir = tempfile::tempdir().unwrap();
    shell(
        dir.path(),
        "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout ca.key -sha256 -days 365 -subj '/O=Caco/CN=Caco Device CA' \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
         -out ca.pem 2>/dev/null",
    );
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();

    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("manage@caco.test", PASSWORD).await;
    browser.goto("/orgs/caco/ca_certificates").await;
    assert!(
        browser
            .main_text()
            .await
            .contains("No Device CAs are registered.")
    );
    browser.click_text("Register a Device CA").await;
    browser.wait_text("h1", "Register a Device CA", 5).await;
    let token = browser.text("#ca-token").await;
    assert!(token.len() >= 40, "{token}");
    browser.screenshot("ca-register").await;

    // Each step is a command to copy; run them as shown.
    for step in ["ca-step-csr", "ca-step-ext", "ca-step-sign"] {
        assert!(browser.has(&format!("button[data-copy='{step}']")).await);
        let command = browser.text(&format!("pre#{step}")).await;
        shell(dir.path(), &command);
    }
    let subject = shell(
        dir.path(),
        "openssl x509 -in verification.pem -noout -subject -ext subjectAltName",
    );
    assert!(subject.contains(&format!("CN = {token}")), "{subject}");
    assert!(
        subject.contains(&format!("URI:urn:nerveshub:verify:{token}")),
        "{subject}"
    );
    let proof = std::fs::read_to_string(dir.path().join("verification.pem")).unwrap();

    set_value(&browser, "#ca-cert", &ca_pem).await;
    set_value(&browser, "#ca-verification", &proof).await;
    browser.fill("#ca-description", "Caco field devices").await;
    select(&browser, "#ca-jitp-product", "gizmo").await;
    browser.fill("#ca-jitp-tags", "jitp, field").await;
    browser.screenshot("ca-register-form").await;
    browser.click_text("Register CA").await;
    browser.wait_text(".flash.ok", "registered", 5).await;
    assert_eq!(browser.path().await, "/orgs/caco/ca_certificates");
    let page = browser.main_text().await;
    assert!(
        page.contains("Caco field devices") && page.contains("gizmo"),
        "{page}"
    );
    let (_, cas) = ts.get(&f.view, "/orgs/caco/ca_certificates").await;
    let ca = &cas["data"][0];
    assert_eq!(ca["description"], "Caco field devices");
    assert_eq!(ca["jitp"]["product_name"], "gizmo");
    assert_eq!(ca["jitp"]["tags"], json!(["jitp", "field"]));
    let serial = ca["serial"].as_str().unwrap().to_owned();
    assert!(page.contains(&serial));
    browser.screenshot("ca-certificates").await;

    // The used token's proof again: refused, shown on the same page with what was pasted.
    browser.goto("/orgs/caco/ca_certificates/new").await;
    let fresh = browser.text("#ca-token").await;
    assert_ne!(fresh, token, "a new token for each registration");
    set_value(&browser, "#ca-cert", &ca_pem).await;
    set_value(&browser, "#ca-verification", &proof).await;
    browser.click_text("Register CA").await;
    browser
        .wait_text(".flash.error", "verification_cert", 5)
        .await;
    assert_eq!(browser.text("#ca-token").await, fresh, "the same token");
    let kept = browser
        .client
        .find(Locator::Css("#ca-verification"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(kept.trim(), proof.trim());

    browser.goto("/orgs/caco/ca_certificates").await;
    confirm_in_row(&browser, &serial, "Delete").await;
    browser.wait_text(".flash.ok", "unregistered", 5).await;
    let (_, cas) = ts.get(&f.view, "/orgs/caco/ca_certificates").await;
    assert_eq!(cas["data"], json!([]));
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_secret_is_shown_once_then_listed() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("ssco").await;
    let (status, _) = ts
        .post(&f.admin, "/orgs/ssco/products", json!({"name": "gizmo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("manage@ssco.test", PASSWORD).await;
    browser
        .goto("/orgs/ssco/products/gizmo/shared_secrets")
        .await;
    assert!(browser.main_text().await.contains("No shared secrets yet."));
    browser.click_text("Create a shared secret").await;
    browser.wait_text("h1", "Shared secret created", 5).await;
    let secret = browser.text("#new-secret").await;
    let key = browser.text("#new-key").await;
    assert!(key.starts_with("nhp_"), "{key}");
    assert!(secret.len() >= 40, "{secret}");
    assert!(
        browser
            .main_text()
            .await
            .contains("it will not be shown again")
    );
    assert!(browser.has("button[data-copy='new-secret']").await);
    browser.screenshot("shared-secret").await;

    // The list shows the key, active, and never the secret.
    browser.click_text("Back to the shared secrets").await;
    browser.wait_text("h1", "Shared secrets", 5).await;
    let listed = browser.text("tbody tr td").await;
    assert!(listed.contains(&key), "{listed}");
    assert!(browser.main_text().await.contains("active"));
    let source = browser.client.source().await.unwrap();
    assert!(!source.contains(&secret), "the secret is not shown again");
    let (_, secrets) = ts
        .get(&f.view, "/orgs/ssco/products/gizmo/shared_secrets")
        .await;
    assert_eq!(secrets["data"][0]["key"], key.as_str());
    assert_eq!(secrets["data"][0]["deactivated_at"], Value::Null);

    confirm_in_row(&browser, &key, "Deactivate").await;
    browser.wait_text(".flash.ok", "deactivated", 5).await;
    assert!(browser.text("tbody").await.contains("deactivated"));
    let (_, secrets) = ts
        .get(&f.view, "/orgs/ssco/products/gizmo/shared_secrets")
        .await;
    assert!(secrets["data"][0]["deactivated_at"].is_string());
    browser.screenshot("shared-secrets").await;
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_made_on_the_page_works_until_revoked() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    ts.user("tok@example.test").await;
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("tok@example.test", PASSWORD).await;
    browser.click_text("API tokens").await;
    browser.wait_text("h1", "API tokens", 5).await;
    browser.fill("#token-note", "ci uploads").await;
    browser.click_text("Create token").await;
    browser.wait_text("h1", "API token created", 5).await;
    let token = browser.text("#new-token").await;
    assert!(token.starts_with("nhu_"), "{token}");
    assert!(browser.has("button[data-copy='new-token']").await);

    let me = |token: String| {
        let url = ts.api("/users/me");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let response = me(token.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["email"], "tok@example.test");

    browser.click_text("Back to your tokens").await;
    browser.wait_text("h1", "API tokens", 5).await;
    let line = browser.text("tbody tr:first-child").await;
    assert!(line.contains("ci uploads"), "{line}");
    assert!(!line.contains("never"), "used once already: {line}");
    browser.screenshot("tokens").await;
    confirm_in_row(&browser, "ci uploads", "Revoke").await;
    browser.wait_text(".flash.ok", "Token revoked.", 5).await;
    assert!(!browser.main_text().await.contains("ci uploads"));
    assert_eq!(me(token).await.status(), StatusCode::UNAUTHORIZED);
    browser.close().await;
    ts.stop().await;
}

/// The resource-type cells of the audit table.
async fn audit_resources(browser: &Browser) -> Vec<String> {
    let mut shown = Vec::new();
    for cell in browser
        .client
        .find_all(Locator::Css("table.audit tbody tr td:nth-child(3)"))
        .await
        .unwrap()
    {
        shown.push(cell.text().await.unwrap());
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_narrow_the_list_and_page_back() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("auditco").await;
    for i in 0..55 {
        let (status, _) = ts
            .post(
                &f.admin,
                "/orgs/auditco/products",
                json!({"name": format!("p{i:02}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = ts.delete(&f.admin, "/orgs/auditco/products/p00").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = ts
        .post(
            &f.manage,
            "/orgs/auditco/keys",
            json!({"name": "k", "key": fwup_public_key("fwup-key")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("view@auditco.test", PASSWORD).await;
    browser.goto("/orgs/auditco/audit").await;
    let all = audit_resources(&browser).await;
    assert_eq!(all.len(), 50, "a page of 50");
    assert!(all[0].starts_with("org_key"), "newest first: {all:?}");

    browser.fill("#filter-resource", "org_key").await;
    browser.click_text("Filter").await;
    browser.wait_text("main", "Clear filters", 5).await;
    let keys = audit_resources(&browser).await;
    assert_eq!(keys, ["org_key k"]);
    browser.screenshot("audit").await;

    browser.fill("#filter-resource", "product").await;
    browser.click_text("Filter").await;
    browser.wait_text("main", "Older", 5).await;
    let first = browser.text("table.audit tbody").await;
    assert_eq!(audit_resources(&browser).await.len(), 50);
    assert!(!first.contains("org_key"));
    browser.click_text("Older").await;
    browser.wait_text("main", "Newest", 5).await;
    let older = audit_resources(&browser).await;
    // 55 creations and 1 deletion of products: 6 left after the first 50.
    assert_eq!(older.len(), 6, "{older:?}");
    assert!(older.iter().all(|r| r.starts_with("product")));
    assert!(!browser.has("a[rel=next]").await, "the oldest page");

    browser.fill("#filter-action", "delete").await;
    browser.click_text("Filter").await;
    browser.wait_text("main", "Clear filters", 5).await;
    assert_eq!(audit_resources(&browser).await, ["product p00"]);
    let (_, api) = ts
        .get(
            &f.view,
            "/orgs/auditco/audit_logs?resource_type=product&action=delete",
        )
        .await;
    assert_eq!(api["data"].as_array().unwrap().len(), 1);
    browser.close().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_change_forms_and_is_refused_anyway() {
    let ts = TestServer::start(TestDb::Sqlite).await;
    let f = ts.org_fixture("viewco").await;
    let (status, _) = ts
        .post(&f.admin, "/orgs/viewco/products", json!({"name": "gizmo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = ts
        .post(
            &f.manage,
            "/orgs/viewco/keys",
            json!({"name": "release", "key": fwup_public_key("fwup-key")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ca = pki_ca("Viewco CA");
    let token = verification_token(&ts, &f.manage, "viewco").await;
    let (status, registered) = ts
        .post(
            &f.manage,
            "/orgs/viewco/ca_certificates",
            json!({"cert": ca.certificate().to_pem(), "verification_cert": pki_proof(&ca, &token)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let serial = registered["data"]["serial"].as_str().unwrap().to_owned();
    let (status, secret) = ts
        .post(
            &f.manage,
            "/orgs/viewco/products/gizmo/shared_secrets",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret_key = secret["data"]["key"].as_str().unwrap().to_owned();

    let Some(browser) = Browser::start(&ts).await else {
        return ts.stop().await;
    };
    browser.sign_in("view@viewco.test", PASSWORD).await;
    assert!(!browser.has("nav.side a[href$='/members']").await);
    // Each page shows its data, and no form that posts but the header's sign-out.
    for (page, shows) in [
        ("/orgs/viewco/keys", "release"),
        ("/orgs/viewco/ca_certificates", serial.as_str()),
        (
            "/orgs/viewco/products/gizmo/shared_secrets",
            secret_key.as_str(),
        ),
        ("/orgs/viewco/audit", "org_key"),
    ] {
        browser.goto(page).await;
        browser.wait_text("main", shows, 5).await;
        assert_eq!(
            count(&browser, "main form[method=post]").await,
            0,
            "{page} has no change forms"
        );
        assert!(!browser.has("main button.danger").await, "{page}");
        assert!(!browser.has("a[href$='/ca_certificates/new']").await);
    }
    browser.screenshot("viewer-keys").await;
    let csrf = browser.csrf().await;
    let http = as_browser(&browser).await;

    // Admin-only and manage-only pages: the API's 403.
    for page in ["/orgs/viewco/members", "/orgs/viewco/ca_certificates/new"] {
        let response = http
            .get(format!("{}{page}", browser.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{page}");
    }
    // Every form posted anyway, with a valid token: 403, and nothing changed.
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/orgs/viewco/members".into(),
            vec![("email", "view@viewco.test"), ("role", "admin")],
        ),
        (
            "/orgs/viewco/members/view%40viewco.test/role".into(),
            vec![("role", "admin")],
        ),
        (
            "/orgs/viewco/members/manage%40viewco.test/remove".into(),
            vec![],
        ),
        (
            "/orgs/viewco/keys".into(),
            vec![("name", "sneaky"), ("key", "AAAA")],
        ),
        ("/orgs/viewco/keys/release/delete".into(), vec![]),
        (
            "/orgs/viewco/ca_certificates".into(),
            vec![("token", "abc"), ("cert", "x"), ("verification_cert", "y")],
        ),
        (
            format!("/orgs/viewco/ca_certificates/{serial}/delete"),
            vec![],
        ),
        ("/orgs/viewco/products/gizmo/shared_secrets".into(), vec![]),
        (
            format!("/orgs/viewco/products/gizmo/shared_secrets/{secret_key}/deactivate"),
            vec![],
        ),
    ];
    for (path, mut form) in posts {
        form.push(("_csrf", csrf.as_str()));
        let response = http
            .post(format!("{}{path}", browser.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (_, members) = ts.get(&f.admin, "/orgs/viewco/users").await;
    assert_eq!(members["data"].as_array().unwrap().len(), 3);
    let (_, member) = ts
        .get(&f.admin, "/orgs/viewco/users/view@viewco.test")
        .await;
    assert_eq!(member["data"]["role"], "view");
    let (_, keys) = ts.get(&f.admin, "/orgs/viewco/keys").await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let (_, cas) = ts.get(&f.admin, "/orgs/viewco/ca_certificates").await;
    assert_eq!(cas["data"].as_array().unwrap().len(), 1);
    let (_, secrets) = ts
        .get(&f.admin, "/orgs/viewco/products/gizmo/shared_secrets")
        .await;
    assert_eq!(secrets["data"].as_array().unwrap().len(), 1);
    assert_eq!(secrets["data"][0]["deactivated_at"], Value::Null);
    browser.close().await;
    ts.stop().await;
}
