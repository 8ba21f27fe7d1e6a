//! Device CAs on the management API, on SQLite and PostgreSQL: verification tokens,
//! registration with proof of possession (openssl CLI and nerveshub-pki), the refusals
//! (no proof, wrong key, not a CA, expired, foreign or used token), JITP, the authorization
//! matrix, audit rows.

mod common;
mod devices_support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::TestServer;
use devices_support::{
    OpensslCa, assert_audited, b64, hex_to_decimal, openssl_available, pki_ca, pki_device_cert,
    pki_expired_ca, pki_proof, product, verification_token,
};

const CAS: &str = "/orgs/acme/ca_certificates";
const TOKEN: &str = "/orgs/acme/ca_certificates/verification_token";

fn registration(ca_pem: &str, proof_pem: &str) -> Value {
    json!({"cert": b64(ca_pem), "verification_cert": b64(proof_pem), "description": "Acme devices"})
}

#[tokio::test]
async fn verification_tokens_and_registration_matrix() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;

        // Tokens: managers and admins ask for them.
        let (status, _) = ts.request(Method::GET, None, TOKEN, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts.request(Method::GET, Some("nhu_bad"), TOKEN, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts.get(&f.outsider, TOKEN).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.get(&f.view, TOKEN).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let admin_token = verification_token(&ts, &f.admin, "acme").await;
        let token = verification_token(&ts, &f.manage, "acme").await;
        assert_ne!(admin_token, token);
        assert!(token.len() >= 40, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "a token fits in a URI: {token}"
        );

        // Registering: managers only.
        let ca = pki_ca("Acme Device CA");
        let body = registration(&ca.certificate().to_pem(), &pki_proof(&ca, &token));
        let (status, _) = ts
            .request(Method::POST, None, CAS, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts.post(&f.outsider, CAS, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.post(&f.view, CAS, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, created) = ts.post(&f.manage, CAS, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let serial = ca.certificate().serial().to_owned();
        let data = &created["data"];
        assert_eq!(data["serial"], serial.as_str());
        assert_eq!(data["description"], "Acme devices");
        assert_eq!(data["jitp"], Value::Null);
        assert!(
            data["not_before"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert!(data["not_after"].as_str().is_some_and(|t| t.ends_with('Z')));

        // The token was used up: the same registration (or another CA) cannot reuse it.
        let other = pki_ca("Acme Second CA");
        let (status, body_again) = ts
            .post(
                &f.manage,
                CAS,
                registration(&other.certificate().to_pem(), &pki_proof(&other, &token)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body_again}");
        assert!(body_again["errors"]["verification_cert"].is_array());
        // The same CA again with a fresh token: its serial is taken.
        let fresh = verification_token(&ts, &f.manage, "acme").await;
        let (status, dup) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca.certificate().to_pem(), &pki_proof(&ca, &fresh)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{dup}");
        assert_eq!(
            dup,
            json!({"errors": {"serial": ["has already been taken"]}})
        );

        // Reading: viewers may; outsiders and strangers may not.
        let (status, list) = ts.get(&f.view, CAS).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["data"], json!([data]));
        let (status, _) = ts.get(&f.outsider, CAS).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.request(Method::GET, None, CAS, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let one = format!("{CAS}/{serial}");
        let (status, shown) = ts.get(&f.view, &one).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(&shown["data"], data);
        let (status, _) = ts.get(&f.outsider, &one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.get(&f.view, &format!("{CAS}/1")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The other org does not see acme's CA.
        let (status, theirs) = ts
            .get(
                &f.outsider,
                &format!("/orgs/{}/ca_certificates", f.other_org),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(theirs["data"], json!([]));

        // Deleting: managers only.
        let (status, _) = ts.delete(&f.view, &one).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = ts.delete(&f.outsider, &one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.request(Method::DELETE, None, &one, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts.delete(&f.manage, &one).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts.get(&f.view, &one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Once deleted, the CA can be registered again (with a fresh token: `fresh` is unused,
        // the refused registration above kept it).
        let (status, body) = ts
            .post(
                &f.admin,
                CAS,
                registration(&ca.certificate().to_pem(), &pki_proof(&ca, &fresh)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        assert_audited(&ts, &f, "ca_certificate", "create", &serial).await;
        assert_audited(&ts, &f, "ca_certificate", "delete", &serial).await;
        assert_audited(&ts, &f, "ca_verification_token", "create", "").await;
        ts.stop().await;
    }
}

#[tokio::test]
async fn registration_with_openssl_ca() {
    if !openssl_available() {
        return;
    }
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        let ca = OpensslCa::new("Acme Device CA");
        let token = verification_token(&ts, &f.manage, "acme").await;
        let (status, body) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca.ca_pem(), &ca.proof(&token)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["data"]["serial"],
            hex_to_decimal(&ca.hex_serial(&ca.ca_pem()))
        );
        // A device certificate from this CA joins a device of the same org.
        product(&ts, &f, "hub").await;
        devices_support::device(
            &ts,
            &f.manage,
            "acme",
            "hub",
            json!({"identifier": "nerves-7"}),
        )
        .await;
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/products/hub/devices/nerves-7/certificates",
                json!({"cert": b64(&ca.device_cert("nerves-7"))}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ts.stop().await;
    }
}

#[tokio::test]
async fn registration_refusals() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        let ca = pki_ca("Acme Device CA");
        let ca_pem = ca.certificate().to_pem();
        let token = verification_token(&ts, &f.manage, "acme").await;
        let refused = |body: &Value, field: &str| {
            assert!(
                body["errors"][field].is_array(),
                "expected a 422 on {field}: {body}"
            );
        };

        // Without proof.
        for body in [
            json!({"cert": b64(&ca_pem)}),
            json!({"cert": b64(&ca_pem), "verification_cert": ""}),
            json!({"cert": b64(&ca_pem), "verification_cert": null}),
        ] {
            let (status, answer) = ts.post(&f.manage, CAS, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            refused(&answer, "verification_cert");
        }
        // A proof signed by another key under the same CA name.
        let impostor = pki_ca("Acme Device CA");
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca_pem, &pki_proof(&impostor, &token)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(
            answer["errors"]["verification_cert"][0],
            "is not signed by the CA's key"
        );
        // A proof for a token nobody issued.
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca_pem, &pki_proof(&ca, "made-up")),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "verification_cert");
        // A proof carrying the token as common name only (the UI flow), not as SAN URI.
        let cn_proof = ca
            .verification_certificate(
                &token,
                nerveshub_pki::ProofPlacement::CommonName,
                devices_support::unix_from_now(-60),
                devices_support::unix_from_now(3600),
            )
            .expect("proof")
            .to_pem();
        let (status, answer) = ts
            .post(&f.manage, CAS, registration(&ca_pem, &cn_proof))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "verification_cert");
        // A token another org asked for.
        let theirs = verification_token(&ts, &f.outsider, &f.other_org).await;
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca_pem, &pki_proof(&ca, &theirs)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "verification_cert");
        // Not a CA: a device certificate.
        let leaf = pki_device_cert(&ca, "nerves-1");
        let (status, answer) = ts
            .post(&f.manage, CAS, registration(&leaf, &pki_proof(&ca, &token)))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(
            answer["errors"]["cert"][0],
            "is not a CA certificate (basicConstraints CA:TRUE is missing)"
        );
        // Expired.
        let old = pki_expired_ca("Acme Old CA");
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                registration(&old.certificate().to_pem(), &pki_proof(&old, &token)),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"]["cert"][0], "has expired");
        // Garbage.
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                json!({"cert": "bm90IGEgY2VydA==", "verification_cert": "eA=="}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "cert");
        // JITP naming a product the org does not have.
        let mut body = registration(&ca_pem, &pki_proof(&ca, &token));
        body["jitp"] = json!({"product_name": "nope"});
        let (status, answer) = ts.post(&f.manage, CAS, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "jitp");

        // Nothing was registered, and every refusal kept the token: it still works.
        let (_, list) = ts.get(&f.view, CAS).await;
        assert_eq!(list["data"], json!([]));
        let (status, answer) = ts
            .post(
                &f.manage,
                CAS,
                registration(&ca_pem, &pki_proof(&ca, &token)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        ts.stop().await;
    }
}

#[tokio::test]
async fn registration_with_jitp_profile() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "hub").await;
        let ca = pki_ca("Acme JITP CA");
        let token = verification_token(&ts, &f.manage, "acme").await;
        let mut body = registration(&ca.certificate().to_pem(), &pki_proof(&ca, &token));
        body["jitp"] =
            json!({"product_name": "hub", "tags": ["new", "eu"], "description": "provisioned"});
        let (status, answer) = ts.post(&f.manage, CAS, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(
            answer["data"]["jitp"],
            json!({"product_name": "hub", "tags": ["new", "eu"], "description": "provisioned"})
        );
        let (_, shown) = ts
            .get(&f.view, &format!("{CAS}/{}", ca.certificate().serial()))
            .await;
        assert_eq!(shown["data"]["jitp"], answer["data"]["jitp"]);
        // Tags follow the device rules.
        let ca2 = pki_ca("Acme JITP CA 2");
        let token = verification_token(&ts, &f.manage, "acme").await;
        let mut body = registration(&ca2.certificate().to_pem(), &pki_proof(&ca2, &token));
        body["jitp"] = json!({"product_name": "hub", "tags": ["has space"]});
        let (status, answer) = ts.post(&f.manage, CAS, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        ts.stop().await;
    }
}
