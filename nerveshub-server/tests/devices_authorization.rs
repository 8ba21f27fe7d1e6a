//! The authorization matrix of the management API (2/4): every devices, device certificate,
//! Device CA and shared-secret endpoint × admin, manage, view, a member of another org, no
//! token and a bad token — on SQLite and PostgreSQL.

mod common;
mod devices_support;

use common::{OrgFixture, TestServer, databases};
use devices_support::{b64, device, pki_ca, pki_device_cert, pki_proof, product};
use nerveshub_pki::{Certificate, DeviceCa};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Needs {
    View,
    Manage,
}

/// Every endpoint of this wave, by what it needs and answers on success.
#[derive(Clone, Copy, Debug)]
enum Case {
    ListDevices,
    CreateDevice,
    DeviceAuth,
    ShowDevice,
    UpdateDevice,
    DeleteDevice,
    ListCerts,
    CreateCert,
    ShowCert,
    DeleteCert,
    VerificationToken,
    ListCas,
    CreateCa,
    ShowCa,
    DeleteCa,
    ListProductSecrets,
    CreateProductSecret,
    DeleteProductSecret,
    ListDeviceSecrets,
    CreateDeviceSecret,
    DeleteDeviceSecret,
}

const CASES: [Case; 21] = [
    Case::ListDevices,
    Case::CreateDevice,
    Case::DeviceAuth,
    Case::ShowDevice,
    Case::UpdateDevice,
    Case::DeleteDevice,
    Case::ListCerts,
    Case::CreateCert,
    Case::ShowCert,
    Case::DeleteCert,
    Case::VerificationToken,
    Case::ListCas,
    Case::CreateCa,
    Case::ShowCa,
    Case::DeleteCa,
    Case::ListProductSecrets,
    Case::CreateProductSecret,
    Case::DeleteProductSecret,
    Case::ListDeviceSecrets,
    Case::CreateDeviceSecret,
    Case::DeleteDeviceSecret,
];

const D0: &str = "/orgs/acme/products/p0/devices/d0";

/// What exists before the matrix runs: device d0 in product p0 with one certificate, and one
/// registered CA.
struct World {
    ca: DeviceCa,
    d0_cert: String,
    d0_serial: String,
    ca_serial: String,
}

fn ok(status: StatusCode, body: &Value) {
    assert!(status.is_success(), "setup failed: {body}");
}

/// Adds a fresh certificate of `ca` to d0 (as admin) and returns its serial.
async fn add_cert(ts: &TestServer, f: &OrgFixture, ca: &DeviceCa) -> String {
    let pem = pki_device_cert(ca, "d0");
    let (s, b) = ts
        .post(
            &f.admin,
            &format!("{D0}/certificates"),
            json!({"cert": b64(&pem)}),
        )
        .await;
    ok(s, &b);
    b["data"]["serial"].as_str().expect("serial").to_owned()
}

/// A registration body for a fresh CA with a fresh token (asked for by the admin).
async fn ca_registration(ts: &TestServer, f: &OrgFixture) -> (Value, String) {
    let ca = pki_ca("Matrix CA");
    let token = devices_support::verification_token(ts, &f.admin, "acme").await;
    let serial = ca.certificate().serial().to_owned();
    (
        json!({"cert": b64(&ca.certificate().to_pem()), "verification_cert": b64(&pki_proof(&ca, &token))}),
        serial,
    )
}

async fn new_secret(ts: &TestServer, f: &OrgFixture, base: &str) -> String {
    let (s, b) = ts.post(&f.admin, base, json!({})).await;
    ok(s, &b);
    b["data"]["key"].as_str().expect("key").to_owned()
}

/// The request a caller `who` makes for `case` (with whatever it needs set up first), what
/// it needs, and what success is.
async fn prepare(
    ts: &TestServer,
    f: &OrgFixture,
    world: &World,
    case: Case,
    who: &str,
) -> (Method, String, Option<Value>, Needs, StatusCode) {
    use Method as M;
    use StatusCode as S;
    let devices = "/orgs/acme/products/p0/devices".to_owned();
    let psecrets = "/orgs/acme/products/p0/shared_secrets".to_owned();
    let dsecrets = format!("{D0}/shared_secrets");
    match case {
        Case::ListDevices => (M::GET, devices, None, Needs::View, S::OK),
        Case::CreateDevice => (
            M::POST,
            devices,
            Some(json!({"identifier": format!("new-{who}")})),
            Needs::Manage,
            S::CREATED,
        ),
        Case::DeviceAuth => (
            M::POST,
            format!("{devices}/auth"),
            Some(json!({"certificate": b64(&world.d0_cert)})),
            Needs::View,
            S::OK,
        ),
        Case::ShowDevice => (M::GET, D0.to_owned(), None, Needs::View, S::OK),
        Case::UpdateDevice | Case::DeleteDevice => {
            let identifier = format!("d-{who}");
            device(
                ts,
                &f.admin,
                "acme",
                "p0",
                json!({"identifier": identifier}),
            )
            .await;
            let path = format!("{devices}/{identifier}");
            match case {
                Case::UpdateDevice => (
                    M::PUT,
                    path,
                    Some(json!({"tags": ["x"]})),
                    Needs::Manage,
                    S::OK,
                ),
                _ => (M::DELETE, path, None, Needs::Manage, S::NO_CONTENT),
            }
        }
        Case::ListCerts => (
            M::GET,
            format!("{D0}/certificates"),
            None,
            Needs::View,
            S::OK,
        ),
        Case::CreateCert => (
            M::POST,
            format!("{D0}/certificates"),
            Some(json!({"cert": b64(&pki_device_cert(&world.ca, "d0"))})),
            Needs::Manage,
            S::CREATED,
        ),
        Case::ShowCert => (
            M::GET,
            format!("{D0}/certificates/{}", world.d0_serial),
            None,
            Needs::View,
            S::OK,
        ),
        Case::DeleteCert => {
            let serial = add_cert(ts, f, &world.ca).await;
            (
                M::DELETE,
                format!("{D0}/certificates/{serial}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
        Case::VerificationToken => (
            M::GET,
            "/orgs/acme/ca_certificates/verification_token".to_owned(),
            None,
            Needs::Manage,
            S::OK,
        ),
        Case::ListCas => (
            M::GET,
            "/orgs/acme/ca_certificates".to_owned(),
            None,
            Needs::View,
            S::OK,
        ),
        Case::CreateCa => {
            let (body, _) = ca_registration(ts, f).await;
            (
                M::POST,
                "/orgs/acme/ca_certificates".to_owned(),
                Some(body),
                Needs::Manage,
                S::CREATED,
            )
        }
        Case::ShowCa => (
            M::GET,
            format!("/orgs/acme/ca_certificates/{}", world.ca_serial),
            None,
            Needs::View,
            S::OK,
        ),
        Case::DeleteCa => {
            let (body, serial) = ca_registration(ts, f).await;
            let (s, b) = ts.post(&f.admin, "/orgs/acme/ca_certificates", body).await;
            ok(s, &b);
            (
                M::DELETE,
                format!("/orgs/acme/ca_certificates/{serial}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
        Case::ListProductSecrets => (M::GET, psecrets, None, Needs::View, S::OK),
        Case::CreateProductSecret => (
            M::POST,
            psecrets,
            Some(json!({})),
            Needs::Manage,
            S::CREATED,
        ),
        Case::DeleteProductSecret => {
            let key = new_secret(ts, f, &psecrets).await;
            (
                M::DELETE,
                format!("{psecrets}/{key}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
        Case::ListDeviceSecrets => (M::GET, dsecrets, None, Needs::View, S::OK),
        Case::CreateDeviceSecret => (
            M::POST,
            dsecrets,
            Some(json!({})),
            Needs::Manage,
            S::CREATED,
        ),
        Case::DeleteDeviceSecret => {
            let key = new_secret(ts, f, &dsecrets).await;
            (
                M::DELETE,
                format!("{dsecrets}/{key}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
    }
}

#[tokio::test]
async fn device_endpoints_by_role() {
    for db in databases().await {
        let ts = TestServer::start(db.clone()).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "p0").await;
        device(&ts, &f.admin, "acme", "p0", json!({"identifier": "d0"})).await;
        let ca = pki_ca("Matrix Device CA");
        let d0_cert = pki_device_cert(&ca, "d0");
        let (s, b) = ts
            .post(
                &f.admin,
                &format!("{D0}/certificates"),
                json!({"cert": b64(&d0_cert)}),
            )
            .await;
        ok(s, &b);
        let d0_serial = Certificate::from_pem(d0_cert.as_bytes())
            .expect("parse")
            .serial()
            .to_owned();
        let (body, ca_serial) = ca_registration(&ts, &f).await;
        let (s, b) = ts.post(&f.admin, "/orgs/acme/ca_certificates", body).await;
        ok(s, &b);
        let world = World {
            ca,
            d0_cert,
            d0_serial,
            ca_serial,
        };

        let callers: [(&str, Option<&str>, Option<Needs>); 6] = [
            ("admin", Some(&f.admin), Some(Needs::Manage)),
            ("manage", Some(&f.manage), Some(Needs::Manage)),
            ("view", Some(&f.view), Some(Needs::View)),
            ("outsider", Some(&f.outsider), None),
            ("none", None, None),
            (
                "bad",
                Some("nhu_1M7ZvVbLzOVvbGe0ZKybvDCUbrNq0wOp1JEDcE4Y1ZRSpfmc9D3O"),
                None,
            ),
        ];
        let mut checked = 0;
        for (index, case) in CASES.into_iter().enumerate() {
            for (who, token, role) in callers {
                let unique = format!("{who}{index}");
                let (method, path, body, needs, success) =
                    prepare(&ts, &f, &world, case, &unique).await;
                let (status, answer) = ts.request(method.clone(), token, &path, body).await;
                let expected = match (who, role) {
                    ("none" | "bad", _) => StatusCode::UNAUTHORIZED,
                    (_, None) => StatusCode::NOT_FOUND,
                    (_, Some(role)) if role < needs => StatusCode::FORBIDDEN,
                    _ => success,
                };
                assert_eq!(
                    status,
                    expected,
                    "[{}] {case:?}: {method} {path} as {who}: {answer}",
                    db.name()
                );
                if expected != success {
                    assert_eq!(
                        answer,
                        json!({"errors": {"detail": "Resource Not Found or Authorization Insufficient"}}),
                        "{method} {path} as {who}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, CASES.len() * 6);
        ts.stop().await;
    }
}

/// The matrix covers every operation this wave added to the OpenAPI document.
#[test]
fn the_matrix_covers_every_documented_operation() {
    let doc = nerveshub_server::openapi_document();
    let tags = [
        "devices",
        "device certificates",
        "ca certificates",
        "shared secrets",
    ];
    let operations = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter(|op| {
            op["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| tags.contains(&t.as_str().unwrap_or(""))))
        })
        .count();
    assert_eq!(operations, CASES.len());
}
