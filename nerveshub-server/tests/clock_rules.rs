//! Rules with lifetimes, tested by moving the server's clock (`Config::clock` set to a
//! [`ManualClock`]) instead of sleeping, on SQLite and PostgreSQL.

mod common;
mod devices_support;

use std::time::{Duration, SystemTime};

use nerveshub_server::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestServer;
use devices_support::{b64, pki_ca, pki_proof, verification_token};

const CAS: &str = "/orgs/acme/ca_certificates";

fn registration(ca: &nerveshub_pki::DeviceCa, token: &str) -> Value {
    json!({
        "cert": b64(&ca.certificate().to_pem()),
        "verification_cert": b64(&pki_proof(ca, token)),
        "description": "Acme devices",
    })
}

/// A Device CA verification token is good for an hour after it was issued (NervesHub's
/// rule): one minute before, a registration with it succeeds; one minute after, it is refused.
#[tokio::test]
async fn a_verification_token_expires_an_hour_after_it_was_issued() {
    for db in common::databases().await {
        let manual = ManualClock::new(SystemTime::now());
        let clock = manual.clock();
        let ts = TestServer::start_with(db, |config| config.clock = clock).await;
        let f = ts.org_fixture("acme").await;

        let token = verification_token(&ts, &f.manage, "acme").await;
        manual.advance(Duration::from_secs(59 * 60));
        let ca = pki_ca("Acme Device CA");
        let (status, body) = ts.post(&f.manage, CAS, registration(&ca, &token)).await;
        assert_eq!(status, StatusCode::CREATED, "59 minutes old: {body}");

        let token = verification_token(&ts, &f.manage, "acme").await;
        manual.advance(Duration::from_secs(61 * 60));
        let late = pki_ca("Acme Late CA");
        let (status, body) = ts.post(&f.manage, CAS, registration(&late, &token)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "61 minutes old: {body}"
        );
        assert!(body["errors"]["verification_cert"].is_array(), "{body}");

        // A token issued now (by the moved clock) is good again.
        let token = verification_token(&ts, &f.manage, "acme").await;
        let (status, body) = ts.post(&f.manage, CAS, registration(&late, &token)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ts.stop().await;
    }
}
