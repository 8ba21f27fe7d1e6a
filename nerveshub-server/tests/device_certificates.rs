//! Device certificates on the management API, on SQLite and PostgreSQL: made by the `openssl`
//! CLI and by nerveshub-pki, decimal serials, the authorization matrix, `devices/auth`, audit.

mod common;
mod devices_support;

use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{OrgFixture, TestServer};
use devices_support::{
    OpensslCa, assert_audited, b64, device, hex_to_decimal, openssl_available, pki_ca,
    pki_device_cert, pki_proof, product, verification_token,
};

const CERTS: &str = "/orgs/acme/products/hub/devices/nerves-1/certificates";
const AUTH: &str = "/orgs/acme/products/hub/devices/auth";

/// Adds `pem` to nerves-1 and checks the whole life of the certificate: listing, showing,
/// `devices/auth`, the authorization matrix, duplicates and deletion. Returns nothing; leaves
/// the certificate deleted.
async fn certificate_life(ts: &TestServer, f: &OrgFixture, pem: &str, decimal_serial: &str) {
    let body = json!({"cert": b64(pem)});
    // Who may add it.
    let (status, _) = ts
        .request(Method::POST, None, CERTS, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = ts.post(&f.outsider, CERTS, body.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.post(&f.view, CERTS, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = ts.post(&f.manage, CERTS, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let data = &created["data"];
    assert_eq!(data["serial"], decimal_serial, "{created}");
    for field in ["not_before", "not_after"] {
        let text = data[field].as_str().expect("time");
        assert!(
            text.len() >= 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T',
            "{field} is ISO 8601: {text}"
        );
    }
    // The same certificate again: refused.
    let (status, body_again) = ts.post(&f.admin, CERTS, body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body_again}");

    // Listing and showing.
    let (status, list) = ts.get(&f.view, CERTS).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"], json!([data]));
    let one = format!("{CERTS}/{decimal_serial}");
    let (status, shown) = ts.get(&f.view, &one).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(&shown["data"], data);
    let (status, _) = ts.get(&f.outsider, &one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.request(Method::GET, None, &one, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = ts.get(&f.view, &format!("{CERTS}/12345")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // devices/auth finds the owner.
    let (status, owner) = ts
        .post(&f.view, AUTH, json!({"certificate": b64(pem)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    assert_eq!(owner["data"]["identifier"], "nerves-1");
    assert_eq!(owner["data"]["product_name"], "hub");
    let (status, _) = ts
        .post(&f.outsider, AUTH, json!({"certificate": b64(pem)}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Asked through another product of the org: not that product's device.
    let (status, refused) = ts
        .post(
            &f.view,
            "/orgs/acme/products/spare/devices/auth",
            json!({"certificate": b64(pem)}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused, json!({"status": "Unauthorized"}));

    // Deleting.
    let (status, _) = ts.delete(&f.view, &one).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ts.delete(&f.outsider, &one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ts.delete(&f.manage, &one).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = ts.get(&f.view, &one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, refused) = ts
        .post(&f.view, AUTH, json!({"certificate": b64(pem)}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused, json!({"status": "Unauthorized"}));
    assert_audited(ts, f, "device_certificate", "create", decimal_serial).await;
    assert_audited(ts, f, "device_certificate", "delete", decimal_serial).await;
}

async fn setup(ts: &TestServer) -> OrgFixture {
    let f = ts.org_fixture("acme").await;
    product(ts, &f, "hub").await;
    product(ts, &f, "spare").await;
    device(
        ts,
        &f.manage,
        "acme",
        "hub",
        json!({"identifier": "nerves-1"}),
    )
    .await;
    f
}

#[tokio::test]
async fn device_certificates_made_by_openssl() {
    if !openssl_available() {
        return;
    }
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = setup(&ts).await;
        let ca = OpensslCa::new("Acme Device CA");
        let pem = ca.device_cert("nerves-1");
        // `openssl x509 -serial` prints hex; the API speaks decimal, as NervesHub.
        let decimal = hex_to_decimal(&ca.hex_serial(&pem));
        certificate_life(&ts, &f, &pem, &decimal).await;

        // Raw PEM and base64 broken into lines are read too.
        let (status, body) = ts.post(&f.manage, CERTS, json!({"cert": pem})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let other = ca.device_cert("nerves-1");
        let wrapped: String = b64(&other)
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        let (status, body) = ts.post(&f.manage, CERTS, json!({"cert": wrapped})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, list) = ts.get(&f.view, CERTS).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
        ts.stop().await;
    }
}

#[tokio::test]
async fn device_certificates_made_by_nerveshub_pki() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = setup(&ts).await;
        let ca = pki_ca("Acme Device CA");
        let pem = pki_device_cert(&ca, "nerves-1");
        let serial = nerveshub_pki::Certificate::from_pem(pem.as_bytes())
            .expect("parse")
            .serial()
            .to_owned();
        assert!(serial.bytes().all(|b| b.is_ascii_digit()), "{serial}");
        certificate_life(&ts, &f, &pem, &serial).await;
        ts.stop().await;
    }
}

#[tokio::test]
async fn device_certificates_refused() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = setup(&ts).await;
        device(
            &ts,
            &f.manage,
            "acme",
            "hub",
            json!({"identifier": "nerves-2"}),
        )
        .await;

        for garbage in [
            "",
            "not base64!",
            "aGVsbG8=",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let (status, body) = ts.post(&f.manage, CERTS, json!({"cert": garbage})).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{garbage:?}: {body}"
            );
            assert!(body["errors"]["cert"].is_array(), "{body}");
            // devices/auth refuses garbage the NervesHub way.
            let (status, body) = ts
                .post(&f.view, AUTH, json!({"certificate": garbage}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(body, json!({"status": "Unauthorized"}));
        }
        let (status, body) = ts.post(&f.manage, CERTS, json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        // An unknown certificate is not anyone's.
        let ca = pki_ca("Acme Device CA");
        let (status, body) = ts
            .post(
                &f.view,
                AUTH,
                json!({"certificate": b64(&pki_device_cert(&ca, "nerves-1"))}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body, json!({"status": "Unauthorized"}));

        // A certificate held by one device cannot be added to another.
        let pem = pki_device_cert(&ca, "nerves-1");
        let (status, _) = ts.post(&f.manage, CERTS, json!({"cert": b64(&pem)})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/hub/devices/nerves-2/certificates",
                json!({"cert": b64(&pem)}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        // A certificate of a CA another org registered cannot join this org's device.
        let theirs = pki_ca("Other Device CA");
        let token = verification_token(&ts, &f.outsider, &f.other_org).await;
        let (status, body) = ts
            .post(
                &f.outsider,
                &format!("/orgs/{}/ca_certificates", f.other_org),
                json!({"cert": b64(&theirs.certificate().to_pem()),
                       "verification_cert": b64(&pki_proof(&theirs, &token))}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/hub/devices/nerves-2/certificates",
                json!({"cert": b64(&pki_device_cert(&theirs, "nerves-2"))}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["errors"]["cert"][0],
            "is issued by a CA registered to another org"
        );

        // Certificates of a missing device: 404.
        let (status, _) = ts
            .get(&f.view, "/orgs/acme/products/hub/devices/nope/certificates")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Deleting the device takes its certificates with it.
        let (status, _) = ts
            .delete(&f.manage, "/orgs/acme/products/hub/devices/nerves-1")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts
            .post(&f.view, AUTH, json!({"certificate": b64(&pem)}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        ts.stop().await;
    }
}
