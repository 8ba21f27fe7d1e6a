//! Issue 25, items 8, 12 and 13: NUL and control characters refused before any write, dot
//! names and unbounded strings refused, sign-in rate limits, signed download URLs only for
//! GET and HEAD, the unregistered-intermediate rule and the NH1 parameter floor.

mod common;
mod device_support;

use device_support::*;
use nerveshub_pki::CertOptions;
use nerveshub_proto::{SharedSecretHeaders, Vsn};
use reqwest::StatusCode;
use serde_json::json;

/// Item 8: NUL in any JSON string, path or query is a 4xx on both backends, and nothing was
/// written.
#[tokio::test]
async fn nul_and_control_characters_are_refused_before_any_write() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let name = db.name();
        let f = org_with_product(&ts, "acme").await;
        let cases = [
            (
                "/users/auth",
                json!({"email": "a\u{0}@b.c", "password": "x"}),
                None,
            ),
            (
                "/users",
                json!({"email": "nul@acme.test", "password": "a long password", "name": "a\u{0}b"}),
                Some(ts.admin_token.clone()),
            ),
            (
                "/orgs/acme/users",
                json!({"email": "view\u{0}@acme.test", "role": "view"}),
                Some(f.admin.clone()),
            ),
            (
                "/orgs/acme/products/demo/devices",
                json!({"identifier": "nul-dev", "description": "a\u{0}b"}),
                Some(f.manage.clone()),
            ),
            ("/orgs", json!({"name": "a\u{0}b"}), Some(f.admin.clone())),
            (
                "/orgs/acme/products",
                json!({"name": "p\u{1}q"}),
                Some(f.admin.clone()),
            ),
        ];
        for (path, body, token) in cases {
            let (status, answer) = ts
                .request(reqwest::Method::POST, token.as_deref(), path, Some(body))
                .await;
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY
                    || status == StatusCode::BAD_REQUEST
                    || status == StatusCode::UNAUTHORIZED,
                "{name} {path}: {status} {answer}"
            );
        }
        let (status, _) = ts
            .get(&f.view, "/orgs/acme/products/demo/devices/nul-dev")
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{name}: a device was written"
        );
        for path in [
            "/orgs/a%00b/products",
            "/orgs/acme/products/demo/devices?page=%00",
            "/orgs/acme/audit_logs?limit=1%00",
        ] {
            let (status, answer) = ts.get(&f.view, path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name} {path}: {answer}");
            assert!(answer["errors"]["detail"].is_string(), "{answer}");
        }
        ts.stop().await;
    }
}

/// Item 12: `.` and `..` are not names; every string field is bounded.
#[tokio::test]
async fn dot_names_and_unbounded_strings_are_refused() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let f = org_with_product(&ts, "acme").await;
    for dots in [".", ".."] {
        for (path, body, token) in [
            ("/orgs", json!({"name": dots}), &f.admin),
            ("/orgs/acme/products", json!({"name": dots}), &f.admin),
            (
                "/orgs/acme/keys",
                json!({"name": dots, "key": "Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA="}),
                &f.manage,
            ),
            (
                "/orgs/acme/products/demo/devices",
                json!({"identifier": dots}),
                &f.manage,
            ),
        ] {
            let (status, answer) = ts.post(token, path, body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {dots}: {answer}"
            );
        }
    }
    let long = "x".repeat(100_000);
    let (status, answer) = ts
        .post(
            &ts.admin_token,
            "/users",
            json!({"email": "long@acme.test", "password": "a long password", "name": long}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["errors"]["name"].is_array(), "{answer}");
    let (status, answer) = ts
        .request(
            reqwest::Method::POST,
            None,
            "/users/auth",
            Some(json!({"email": "admin@acme.test", "password": "x", "note": long})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = ts
        .post(
            &ts.admin_token,
            "/users",
            json!({"email": "pw@acme.test", "password": "p".repeat(5000)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // The limits are in the OpenAPI document.
    let doc = nerveshub_server::openapi_document();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["UserCreate"]["properties"]["name"]["maxLength"],
        255
    );
    assert_eq!(schemas["Login"]["properties"]["note"]["maxLength"], 255);
    assert_eq!(
        schemas["ProductCreate"]["properties"]["name"]["maxLength"],
        100
    );
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("8 KiB")
    );
    ts.stop().await;
}

/// Item 13: failed sign-ins to one account are limited (429 with Retry-After), and so are
/// attempts from one address; the right password is refused too while limited.
#[tokio::test]
async fn sign_in_is_rate_limited() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let _token = ts.user("victim@acme.test").await;
    let attempt = |password: &'static str| {
        let ts = &ts;
        async move {
            ts.http
                .post(ts.api("/users/auth"))
                .json(&json!({"email": "victim@acme.test", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut limited = None;
    for _ in 0..20 {
        let response = attempt("wrong password").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = limited.expect("20 wrong passwords in a row were never limited");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: serde_json::Value = limited.json().await.unwrap();
    assert!(body["errors"]["detail"].is_string(), "{body}");
    let response = attempt("a long test password").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Per address: many accounts from one address.
    let mut address_limited = false;
    for i in 0..80 {
        let response = ts
            .http
            .post(ts.api("/users/auth"))
            .json(&json!({"email": format!("nobody{i}@acme.test"), "password": "x"}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            address_limited = true;
            break;
        }
    }
    assert!(
        address_limited,
        "80 sign-ins from one address were never limited"
    );
    ts.stop().await;
}

/// Item 13: a signed download URL answers GET and HEAD only.
#[tokio::test]
async fn download_urls_answer_only_get_and_head() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let tls = std::sync::Arc::unwrap_or_clone(tls_client(&server_ca(&ts), None, false));
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/firmware/1/1/x.fw?expires=1&signature=00",
        ts.server.device_addr().port()
    );
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
    }
    ts.stop().await;
}

/// Item 13, decided as NervesHub does: a device certificate signed by an intermediate that
/// is not registered is refused even when the intermediate chains to a registered CA; once
/// the intermediate is registered, the device is accepted.
#[tokio::test]
async fn unregistered_intermediates_are_refused() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let f = org_with_product(&ts, "acme").await;
        let root = device_ca("Acme Root CA");
        register_ca(&ts, &f, &root, true).await;
        let intermediate = root
            .issue_intermediate(&CertOptions::new(
                "Acme Intermediate CA",
                unix(-86_400),
                unix(86_400 * 30),
            ))
            .unwrap();
        let (cert, key) = device_cert(&intermediate, "via-intermediate");
        let tls = {
            let mut roots = rustls::RootCertStore::empty();
            use rustls_pki_types::pem::PemObject as _;
            for c in rustls_pki_types::CertificateDer::pem_slice_iter(&server_ca(&ts)) {
                roots.add(c.unwrap()).unwrap();
            }
            let chain = vec![cert.der().clone(), intermediate.certificate().der().clone()];
            std::sync::Arc::new(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    chain,
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(key.to_pem().as_bytes())
                        .unwrap(),
                )
                .unwrap(),
            )
        };
        let refused = connect(
            ts.server.device_addr(),
            tls.clone(),
            "/socket/websocket",
            Vsn::V2Json,
            &[],
        )
        .await;
        assert!(refused.is_refused(), "{}: {refused:?}", db.name());
        let (status, _) = ts
            .get(&f.view, &device_path("acme", "via-intermediate"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", db.name());

        register_ca(&ts, &f, &intermediate, true).await;
        let mut device = connect(
            ts.server.device_addr(),
            tls,
            "/socket/websocket",
            Vsn::V2Json,
            &[],
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
        ts.stop().await;
    }
}

/// Item 13: NH1 tokens derived with fewer than 1000 PBKDF2 iterations or keys shorter than
/// 32 bytes are refused, even with the right secret.
#[tokio::test]
async fn nh1_parameters_below_the_floor_are_refused() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let f = org_with_product(&ts, "acme").await;
    let (key, secret) = product_secret(&ts, &f).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for alg in [
        "NH1-HMAC-sha256-1-32",
        "NH1-HMAC-sha256-999-32",
        "NH1-HMAC-sha256-1000-16",
    ] {
        let headers: Vec<(String, String)> =
            SharedSecretHeaders::sign_with_alg(alg, &key, secret.as_bytes(), "floor-1", now)
                .unwrap()
                .pairs()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        let refused = connect_nh1(&ts, &headers, Vsn::V2Json).await;
        assert!(refused.is_refused(), "{alg}: {refused:?}");
    }
    // The floor itself and stronger parameters are accepted.
    for alg in ["NH1-HMAC-sha256-1000-32", "NH1-HMAC-sha512-2000-64"] {
        let headers: Vec<(String, String)> =
            SharedSecretHeaders::sign_with_alg(alg, &key, secret.as_bytes(), "floor-2", now)
                .unwrap()
                .pairs()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        let device = connect_nh1(&ts, &headers, Vsn::V2Json).await.device();
        device.close().await;
    }
    ts.stop().await;
}
