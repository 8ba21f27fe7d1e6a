//! Rules with lifetimes, tested by moving the server's clock (`Config::clock` set to a
//! [`ManualClock`]) instead of sleeping, on SQLite and PostgreSQL.

mod common;
mod device_support;
mod devices_support;
mod firmware_support;
mod fleet_support;

use std::time::{Duration, SystemTime};

use nerveshub_server::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestServer;
use devices_support::{b64, pki_ca, pki_proof, verification_token};
use fleet_support::{Behaviour, Fleet, wait_sims};

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

/// An update the device never answers expires after the in-flight timeout (30 minutes by
/// default) by the server's clock, and the deployment sends it again: nothing expires while
/// the clock stands still, and moving it 31 minutes expires the row at the next sweep.
#[tokio::test]
async fn a_silent_update_expires_after_the_in_flight_timeout() {
    for db in common::databases().await {
        let manual = ManualClock::new(SystemTime::now());
        let clock = manual.clock();
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |config| config.clock = clock).await;
        fleet
            .deployment("main", "2.0.0", json!({"is_active": true}))
            .await;
        let mute = fleet.spawn("dev-mute", "1.0.0", Behaviour::Mute);
        let rows = fleet.wait_updates("dev-mute", |r| r.len() == 1).await;
        assert_eq!(rows[0]["in_flight"], true, "{rows:?}");

        // Several sweeps (one per second in these tests) with the clock standing still.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rows = fleet.updates("dev-mute").await;
        assert_eq!(
            rows.len(),
            1,
            "nothing expires while the clock stands: {rows:?}"
        );
        assert_eq!(rows[0]["in_flight"], true, "{rows:?}");

        manual.advance(Duration::from_secs(31 * 60));
        let rows = fleet.wait_updates("dev-mute", |r| r.len() >= 2).await;
        assert_eq!(rows[0]["status"], "expired", "{rows:?}");
        wait_sims(
            std::slice::from_ref(&mute),
            Duration::from_secs(60),
            "update sent again",
            |s| s.updates().len() >= 2,
        )
        .await;
        mute.stop();
        fleet.fw.ts.stop().await;
    }
}
