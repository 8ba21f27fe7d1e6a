//! Issue 25, items 1, 3, 4, 5 and 10: concurrent requests on both backends. No request may
//! hold a pooled connection while asking for another (a burst of first-time JITP devices or
//! identical creates froze the server), deleting a product must not race its new devices
//! into a cascade, an org keeps an admin however its admins race, and races answer 4xx.

mod common;
mod device_support;

use std::time::{Duration, Instant};

use device_support::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long an unrelated API call may take while the server is busy. The bug made it take
/// 30–60 s (pool acquire timeout); this is a liveness bound, not a performance claim.
const UNRELATED_CALL_BOUND: Duration = Duration::from_secs(10);

/// Item 1: 64 never-seen devices of a JITP CA connect at once; every one is admitted and
/// created, and another org's API call answers meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_first_time_jitp_devices_at_once() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let f = org_with_product(&ts, "acme").await;
        let other = ts.org_fixture("globex").await;
        let ca = device_ca("Acme JITP CA");
        register_ca(&ts, &f, &ca, true).await;
        let devices: Vec<_> = (0..64)
            .map(|i| device_cert(&ca, &format!("jitp-burst-{i}")))
            .collect();

        let connects = join_all(devices.iter().map(|(cert, key)| async {
            match connect_cert(&ts, cert, key).await {
                Connect::Upgraded(mut device) => {
                    let reply = device
                        .join_device(&join_params(
                            "11111111-1111-1111-1111-111111111111",
                            "1.0.0",
                        ))
                        .await;
                    ok_response(&reply);
                    Ok(device)
                }
                other => Err(format!("{other:?}")),
            }
        }));
        let unrelated = async {
            // Let the burst start first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let started = Instant::now();
            let (status, body) = ts.get(&other.admin, "/orgs/globex/products").await;
            (status, body, started.elapsed())
        };
        let (results, (status, body, took)) = tokio::join!(connects, unrelated);
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name());
        assert!(
            took < UNRELATED_CALL_BOUND,
            "{}: an unrelated API call took {took:?} during the JITP burst",
            db.name()
        );
        let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failures.is_empty(),
            "{}: {} of 64 JITP devices were refused: {:?}",
            db.name(),
            failures.len(),
            failures.first()
        );
        let (status, listed) = ts
            .get(
                &f.view,
                "/orgs/acme/products/demo/devices?limit=100&page_size=100",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        for i in 0..64 {
            let (status, _) = ts
                .get(&f.view, &device_path("acme", &format!("jitp-burst-{i}")))
                .await;
            assert_eq!(status, StatusCode::OK, "{}: jitp-burst-{i}", db.name());
        }
        for device in results.into_iter().flatten() {
            device.close().await;
        }
        ts.stop().await;
    }
}

/// Sends `body` to `path` 20 times at once and checks: exactly one 201, the rest 422 (or 409
/// where the endpoint says so), never a 5xx, and the whole burst does not stall the server.
async fn burst(ts: &common::TestServer, token: &str, path: &str, body: Value, label: &str) {
    let started = Instant::now();
    let answers = join_all((0..20).map(|_| ts.post(token, path, body.clone()))).await;
    let took = started.elapsed();
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED
                || *status == StatusCode::UNPROCESSABLE_ENTITY
                || *status == StatusCode::CONFLICT,
            "{label}: {status} {body}"
        );
    }
    assert_eq!(created, 1, "{label}: {answers:?}");
    assert!(
        took < UNRELATED_CALL_BOUND,
        "{label}: 20 identical creates took {took:?}"
    );
}

/// Item 5: 20 identical requests to every create endpoint with a unique name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_creates_at_once_make_one() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let name = db.name();
        let f = org_with_product(&ts, "acme").await;
        let extra = ts.user("extra@acme.test").await;
        drop(extra);
        burst(
            &ts,
            &ts.admin_token,
            "/users",
            json!({"email": "burst@acme.test", "password": "a long test password"}),
            &format!("{name} POST /users"),
        )
        .await;
        burst(
            &ts,
            &f.admin,
            "/orgs",
            json!({"name": "burst-org"}),
            &format!("{name} POST /orgs"),
        )
        .await;
        burst(
            &ts,
            &f.admin,
            "/orgs/acme/users",
            json!({"email": "extra@acme.test", "role": "view"}),
            &format!("{name} POST /orgs/acme/users"),
        )
        .await;
        burst(
            &ts,
            &f.manage,
            "/orgs/acme/keys",
            json!({"name": "burst-key", "key": "Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA="}),
            &format!("{name} POST /orgs/acme/keys"),
        )
        .await;
        burst(
            &ts,
            &f.admin,
            "/orgs/acme/products",
            json!({"name": "burst-product"}),
            &format!("{name} POST /orgs/acme/products"),
        )
        .await;
        burst(
            &ts,
            &f.manage,
            "/orgs/acme/products/demo/devices",
            json!({"identifier": "burst-device"}),
            &format!("{name} POST devices"),
        )
        .await;
        let loose_ca = device_ca("Loose CA");
        let (cert, _) = device_cert(&loose_ca, "burst-device");
        burst(
            &ts,
            &f.manage,
            &format!("{}/certificates", device_path("acme", "burst-device")),
            json!({"cert": cert.to_pem()}),
            &format!("{name} POST device certificates"),
        )
        .await;
        ts.stop().await;
    }
}

/// Item 5, Device CAs: the same CA registered 20 times at once (each with its own proof).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_ca_registrations_at_once_make_one() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let f = org_with_product(&ts, "acme").await;
        let ca = device_ca("Burst CA");
        let mut requests = Vec::new();
        for _ in 0..20 {
            let (status, body) = ts
                .get(&f.manage, "/orgs/acme/ca_certificates/verification_token")
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let token = body["data"]["verification_token"].as_str().unwrap();
            let proof = ca
                .verification_certificate(
                    token,
                    nerveshub_pki::ProofPlacement::SanUri,
                    unix(-3600),
                    unix(3600),
                )
                .unwrap();
            requests.push(json!({
                "cert": ca.certificate().to_pem(),
                "verification_cert": proof.to_pem(),
            }));
        }
        let answers = join_all(
            requests
                .into_iter()
                .map(|body| ts.post(&f.manage, "/orgs/acme/ca_certificates", body)),
        )
        .await;
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        for (status, body) in &answers {
            assert!(
                status.is_success() || status.is_client_error(),
                "{}: {status} {body}",
                db.name()
            );
        }
        assert_eq!(created, 1, "{}: {answers:?}", db.name());
        ts.stop().await;
    }
}

/// Items 3 and 10: deleting a product while devices are created in it. Every device the API
/// acknowledged (201) still exists afterwards; no answer is a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn product_delete_racing_device_creates_loses_nothing() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let f = ts.org_fixture("acme").await;
        for round in 0..12 {
            let product = format!("p{round}");
            let (status, body) = ts
                .post(&f.admin, "/orgs/acme/products", json!({"name": product}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let devices_path = format!("/orgs/acme/products/{product}/devices");
            let product_path = format!("/orgs/acme/products/{product}");
            let creates = join_all((0..4).map(|i| {
                ts.post(
                    &f.manage,
                    &devices_path,
                    json!({"identifier": format!("race-{round}-{i}")}),
                )
            }));
            let delete = ts.delete(&f.admin, &product_path);
            let (creates, (deleted, delete_body)) = tokio::join!(creates, delete);
            assert!(
                deleted == StatusCode::NO_CONTENT
                    || deleted == StatusCode::CONFLICT
                    || deleted == StatusCode::NOT_FOUND,
                "{}: delete answered {deleted} {delete_body}",
                db.name()
            );
            for (i, (status, body)) in creates.iter().enumerate() {
                assert!(
                    !status.is_server_error(),
                    "{}: create answered {status} {body}",
                    db.name()
                );
                if *status == StatusCode::CREATED {
                    assert_ne!(
                        deleted,
                        StatusCode::NO_CONTENT,
                        "{}: product deleted although device race-{round}-{i} was acknowledged",
                        db.name()
                    );
                    let (status, body) = ts
                        .get(
                            &f.view,
                            &format!("/orgs/acme/products/{product}/devices/race-{round}-{i}"),
                        )
                        .await;
                    assert_eq!(
                        status,
                        StatusCode::OK,
                        "{}: acknowledged device race-{round}-{i} is gone: {body}",
                        db.name()
                    );
                }
            }
        }
        ts.stop().await;
    }
}

/// Item 4: two admins demoting (or removing) each other at once never leave the org without
/// an admin; the loser gets a 4xx. A server admin can see and repair any org's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_demoting_each_other_keep_one_admin() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let name = db.name();
        let f = ts.org_fixture("acme").await;
        let second = ts.user("second@acme.test").await;
        for round in 0..10 {
            // Both are admins again.
            for email in ["admin@acme.test", "second@acme.test"] {
                let (status, body) = ts
                    .put(
                        &ts.admin_token,
                        &format!("/orgs/acme/users/{email}"),
                        json!({"role": "admin"}),
                    )
                    .await;
                if status == StatusCode::NOT_FOUND {
                    let (status, body) = ts
                        .post(
                            &ts.admin_token,
                            "/orgs/acme/users",
                            json!({"email": email, "role": "admin"}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
                } else {
                    assert_eq!(status, StatusCode::OK, "{name}: {body}");
                }
            }
            let remove = round % 2 == 1;
            let act = |token: String, target: &'static str| {
                let ts = &ts;
                async move {
                    let path = format!("/orgs/acme/users/{target}");
                    if remove {
                        ts.delete(&token, &path).await
                    } else {
                        ts.put(&token, &path, json!({"role": "view"})).await
                    }
                }
            };
            let (a, b) = tokio::join!(
                act(f.admin.clone(), "second@acme.test"),
                act(second.clone(), "admin@acme.test"),
            );
            for (status, body) in [&a, &b] {
                assert!(
                    !status.is_server_error(),
                    "{name} round {round}: {status} {body}"
                );
            }
            assert!(
                !(a.0.is_success() && b.0.is_success()),
                "{name} round {round}: both admins were demoted: {a:?} {b:?}"
            );
            // The server admin sees the org's members although not a member.
            let (status, members) = ts.get(&ts.admin_token, "/orgs/acme/users").await;
            assert_eq!(status, StatusCode::OK, "{name}: {members}");
            let admins = members["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "admin")
                .count();
            assert!(
                admins >= 1,
                "{name} round {round}: no admin left: {members}"
            );
        }
        ts.stop().await;
    }
}
