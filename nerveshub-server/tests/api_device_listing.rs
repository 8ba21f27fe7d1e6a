//! What the web UI lists: devices by state (`status=`) with their connection, update and
//! penalty-box fields, a deployment's members with their rollout state, the signing key of
//! each firmware and the subject of each Device CA — on SQLite and PostgreSQL. Plus an
//! `#[ignore]`d timing of listing 100k devices.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::time::{Duration, Instant};

use fleet_support::{Behaviour, Fleet, wait_sims};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);

/// The identifiers of a device listing's page.
fn identifiers(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|d| d["identifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn devices_by_state_and_deployment_members_with_their_rollout_state() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        let ts = fleet.ts();
        let view = &fleet.f.view;

        // Every uploaded firmware names the key that verified it.
        let (status, body) = ts.get(view, &fleet.path("/firmwares")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for firmware in body["data"].as_array().unwrap() {
            assert_eq!(firmware["signing_key"], "fwup-key", "{firmware}");
        }
        let uuid = fleet.fw("1.0.0").uuid;
        let (_, body) = ts
            .get(view, &fleet.path(&format!("/firmwares/{uuid}")))
            .await;
        assert_eq!(body["data"]["signing_key"], "fwup-key", "{body}");

        fleet
            .deployment("main", "2.0.0", json!({"is_active": true}))
            .await;
        // `hold-1` takes the update and holds it in flight; `done-1` already runs 2.0.0.
        let hold = fleet.spawn("hold-1", "1.0.0", Behaviour::Hold);
        let done = fleet.spawn("done-1", "2.0.0", Behaviour::Install);
        fleet
            .create_devices(&["boxed-1".to_owned(), "idle-1".to_owned()], &[])
            .await;
        wait_sims(std::slice::from_ref(&hold), LONG, "an update", |s| {
            !s.updates().is_empty()
        })
        .await;
        fleet
            .wait_status("main", LONG, |s| {
                s["devices"]["in_flight"] == 1 && s["devices"]["up_to_date"] == 1
            })
            .await;
        // Two devices that never connected, put in the deployment; one in the penalty box.
        {
            let mut conn = fleet.fw.database().await;
            let in_an_hour = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                + 3_600_000;
            sqlx::query(
                "UPDATE devices SET deployment_id = (SELECT id FROM deployments WHERE name = 'main')
                 WHERE identifier IN ('boxed-1', 'idle-1')",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE devices SET updates_blocked_until = {in_an_hour} WHERE identifier = 'boxed-1'"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }

        let devices_path = &fleet.path("/devices");
        let members_path = &fleet.path("/deployments/main/devices");
        let list = |query: &'static str| async move {
            let (status, body) = ts.get(view, &format!("{devices_path}?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        };
        let all = list("").await;
        assert_eq!(identifiers(&all), ["boxed-1", "done-1", "hold-1", "idle-1"]);
        let by_id = |id: &str| -> Value {
            all["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["identifier"] == id)
                .unwrap()
                .clone()
        };
        // A socket's join recorded its peer and how it authenticated.
        let hold_json = by_id("hold-1");
        assert_eq!(hold_json["updating"], true, "{hold_json}");
        assert_eq!(hold_json["in_penalty_box"], false);
        assert_eq!(hold_json["connection"]["auth"], "shared_secret");
        let address: std::net::SocketAddr = hold_json["connection"]["remote_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(address.ip().is_loopback(), "{address}");
        assert_eq!(by_id("done-1")["updating"], false);
        let boxed = by_id("boxed-1");
        assert_eq!(boxed["in_penalty_box"], true, "{boxed}");
        assert_eq!(
            by_id("idle-1")["connection"],
            json!({"remote_address": null, "auth": null})
        );

        assert_eq!(identifiers(&list("status=updating").await), ["hold-1"]);
        assert_eq!(identifiers(&list("status=penalty_box").await), ["boxed-1"]);
        assert_eq!(
            identifiers(&list("status=online").await),
            ["done-1", "hold-1"]
        );
        assert_eq!(
            identifiers(&list("filters[status]=offline").await),
            ["boxed-1", "idle-1"]
        );
        let page = list("status=offline&page_size=1&page=2").await;
        assert_eq!(identifiers(&page), ["idle-1"]);
        assert_eq!(page["pagination"]["total_entries"], 2);
        assert_eq!(
            identifiers(&list("status=online&identifier=hold").await),
            ["hold-1"]
        );
        for bad in ["bogus", "ONLINE", "updating,online"] {
            let (status, body) = ts
                .get(view, &format!("{}?status={bad}", fleet.path("/devices")))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(
                body["errors"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("status")
            );
        }

        // The deployment's members, each in one rollout state.
        let members = |query: &'static str| async move {
            let (status, body) = ts.get(view, &format!("{members_path}?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        };
        let body = members("").await;
        let states: Vec<(String, String)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["identifier"].as_str().unwrap().to_owned(),
                    m["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected = [
            ("boxed-1", "penalty_box"),
            ("done-1", "up_to_date"),
            ("hold-1", "in_flight"),
            ("idle-1", "offline"),
        ];
        assert_eq!(
            states,
            expected.map(|(i, s)| (i.to_owned(), s.to_owned())),
            "{body}"
        );
        assert_eq!(body["pagination"]["total_entries"], 4);
        let in_flight = &body["data"][2];
        assert!(in_flight["update"]["status"].is_string(), "{in_flight}");
        assert!(in_flight["update"]["progress"].is_i64(), "{in_flight}");
        assert_eq!(body["data"][1]["update"], Value::Null);
        assert_eq!(body["data"][1]["firmware_uuid"], fleet.fw("2.0.0").uuid);
        assert!(body["data"][0]["updates_blocked_until"].is_string());
        let page = members("page_size=1&page=3").await;
        assert_eq!(identifiers(&page), ["hold-1"]);
        assert_eq!(page["pagination"]["total_pages"], 4);
        assert_eq!(identifiers(&members("state=in_flight").await), ["hold-1"]);
        assert_eq!(identifiers(&members("state=failed").await).len(), 0);
        for bad in ["state=bogus", "page=0", "page_size=101"] {
            let (status, body) = ts
                .get(
                    view,
                    &format!("{}?{bad}", fleet.path("/deployments/main/devices")),
                )
                .await;
            assert!(status.is_client_error(), "{bad}: {status} {body}");
        }
        // Readable by every member, no one else; a missing deployment is 404.
        for token in [&fleet.f.admin, &fleet.f.manage] {
            let (status, _) = ts
                .get(token, &fleet.path("/deployments/main/devices"))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, _) = ts
            .get(&fleet.f.outsider, &fleet.path("/deployments/main/devices"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.get(view, &fleet.path("/deployments/none/devices")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The status counts agree with the members' states.
        let status = fleet.status("main").await;
        assert_eq!(
            (
                status["devices"]["penalty_box"].clone(),
                status["devices"]["offline"].clone()
            ),
            (json!(1), json!(1)),
            "{status}"
        );

        hold.finish();
        hold.stop();
        done.stop();
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn certificate_connections_and_device_ca_subjects() {
    use device_support::*;
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let ca = device_ca("Acme Device CA");
        register_ca(&ts, &f, &ca, false).await;
        let (status, body) = ts.get(&f.view, "/orgs/acme/ca_certificates").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let subject = body["data"][0]["subject"].as_str().unwrap().to_owned();
        assert!(subject.contains("CN=Acme Device CA"), "{body}");
        let serial = body["data"][0]["serial"].as_str().unwrap().to_owned();
        let (_, one) = ts
            .get(&f.view, &format!("/orgs/acme/ca_certificates/{serial}"))
            .await;
        assert_eq!(one["data"]["subject"], subject.as_str());

        create_device(&ts, &f, "cert-1").await;
        let (cert, key) = device_cert(&ca, "cert-1");
        let mut device = connect_cert(&ts, &cert, &key).await.device();
        ok_response(
            &device
                .join_device(&join_params(
                    "11111111-1111-1111-1111-111111111111",
                    "1.0.0",
                ))
                .await,
        );
        let json = device_json(&ts, &f, "cert-1").await;
        assert_eq!(json["connection"]["auth"], "certificate", "{json}");
        assert!(
            json["connection"]["remote_address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{json}"
        );
        device.close().await;
        // The record outlives the socket: the last connection.
        let json = wait_device(&ts, &f, "cert-1", |d| d["online"] == false).await;
        assert_eq!(json["connection"]["auth"], "certificate", "{json}");
        ts.stop().await;
    }
}

/// Lists the first and a deep page of a product with 100,000 devices and prints the times.
/// `cargo test -p nerveshub-server --release --test api_device_listing -- --ignored --nocapture`
#[tokio::test]
#[ignore = "inserts 100,000 devices; run by hand to time the listing"]
async fn listing_100k_devices_is_fast_on_the_first_and_a_deep_page() {
    const DEVICES: usize = 100_000;
    for db in common::databases().await {
        let name = db.name();
        let fw = firmware_support::FwServer::start_with(
            db,
            firmware_support::TestStorage::Local,
            |_| {},
        )
        .await;
        let f = fw.org_with_product("acme", "big", None).await;
        {
            let mut conn = fw.database().await;
            let (org_id, product_id): (i64, i64) =
                sqlx::query_as("SELECT p.org_id, p.id FROM products p WHERE p.name = 'big'")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            let started = Instant::now();
            for chunk in (0..DEVICES).collect::<Vec<_>>().chunks(1000) {
                let values: Vec<String> = chunk
                    .iter()
                    .map(|i| format!("({org_id}, {product_id}, 'dev-{i:06}', 1, 1, 'not_seen')"))
                    .collect();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO devices (org_id, product_id, identifier, inserted_at, updated_at, connection_status) VALUES {}",
                    values.join(", ")
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            eprintln!(
                "{name}: inserted {DEVICES} devices in {:?}",
                started.elapsed()
            );
            if name == "postgres" {
                sqlx::query("ANALYZE devices")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            } else {
                sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
            }
        }
        let path = "/orgs/acme/products/big/devices";
        for (what, query) in [
            ("first page", "page=1&page_size=50".to_owned()),
            ("middle page", "page=1000&page_size=50".to_owned()),
            ("last page", format!("page={}&page_size=50", DEVICES / 50)),
            ("first page, offline", "page=1&status=offline".to_owned()),
            ("deep page, offline", "page=1999&status=offline".to_owned()),
        ] {
            let mut times = Vec::new();
            let mut body = Value::Null;
            for _ in 0..5 {
                let started = Instant::now();
                let (status, answer) = fw.ts.get(&f.view, &format!("{path}?{query}")).await;
                times.push(started.elapsed());
                assert_eq!(status, StatusCode::OK, "{answer}");
                body = answer;
            }
            times.sort();
            eprintln!(
                "{name}: {what} ({query}): median {:?}, best {:?}, first {} ",
                times[2], times[0], body["data"][0]["identifier"]
            );
            assert_eq!(body["pagination"]["total_entries"], DEVICES);
            assert!(times[2] < Duration::from_secs(2), "{what}: {:?}", times[2]);
        }
        fw.ts.stop().await;
    }
}
