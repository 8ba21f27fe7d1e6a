//! Rollouts end to end: a real server (SQLite, and PostgreSQL when configured), simulated
//! nerves_hub_link devices over real TLS, deployments made through the API. Membership by
//! tags and version, the concurrency cap (checked over every update's lifetime), FIFO, LIFO
//! and the priority queue, penalties, reschedule, expiry, the health gate, the fleet-wide
//! halt and resume, and switching a deployment off mid-rollout.

mod common;
mod device_support;
mod firmware_support;
mod fleet_support;

use std::time::Duration;

use fleet_support::{Behaviour, Fleet, Sim, names, wait_sims};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row as _;

const LONG: Duration = Duration::from_secs(60);

/// Every update the deployments sent, in order: (identifier, inserted_at, finished_at, status).
async fn deployment_updates(fleet: &Fleet) -> Vec<(String, i64, Option<i64>, String)> {
    let mut db = fleet.fw.database().await;
    sqlx::query(
        "SELECT d.identifier, u.inserted_at, u.finished_at, u.status FROM device_updates u
         JOIN devices d ON d.id = u.device_id WHERE u.deployment_id IS NOT NULL ORDER BY u.id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// The most updates that were in flight at one moment.
fn max_overlap(rows: &[(String, i64, Option<i64>, String)]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (_, start, end, _) in rows {
        edges.push((*start, 1));
        edges.push((end.unwrap_or(i64::MAX), -1));
    }
    // An update that ends at the moment another starts freed its slot first.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        max = max.max(now);
    }
    usize::try_from(max).unwrap()
}

#[tokio::test]
async fn a_tagged_rollout_reaches_exactly_its_devices_within_the_cap() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["0.9.0", "1.0.0", "1.5.0", "2.0.0"], |_| {}).await;
        let beta = names("beta", 24);
        let plain = names("plain", 4);
        let old = names("old", 4);
        fleet.create_devices(&beta, &["beta"]).await;
        fleet.create_devices(&old, &["beta"]).await;
        fleet.create_devices(&plain, &[]).await;
        // Off at first: devices join it, nothing is sent.
        let d = fleet
            .deployment(
                "beta",
                "2.0.0",
                json!({"conditions": {"version": ">= 1.0.0 and < 1.2.0 or >= 1.5.0", "tags": ["beta"]},
                       "concurrent_updates": 5, "is_active": true}),
            )
            .await;
        assert_eq!(d["is_active"], true);
        assert_eq!(d["status"], "ready");
        assert_eq!(d["current_release"]["number"], 1);
        let mut sims: Vec<Sim> = Vec::new();
        for (i, id) in beta.iter().enumerate() {
            // Some Churn: a quarter of the devices install slowly, so slots free unevenly.
            let behaviour = if i % 4 == 0 {
                Behaviour::Slow(400)
            } else {
                Behaviour::Install
            };
            sims.push(fleet.spawn(id, if i % 2 == 0 { "1.0.0" } else { "1.5.0" }, behaviour));
        }
        // Not members: no tag, or a version the requirement excludes.
        let outsiders: Vec<Sim> = plain
            .iter()
            .map(|id| fleet.spawn(id, "1.0.0", Behaviour::Install))
            .chain(
                old.iter()
                    .map(|id| fleet.spawn(id, "0.9.0", Behaviour::Install)),
            )
            .collect();
        wait_sims(&sims, LONG, "beta devices on 2.0.0", |s| {
            s.running().version == "2.0.0"
        })
        .await;
        let status = fleet
            .wait_status("beta", LONG, |s| s["devices"]["up_to_date"] == 24)
            .await;
        assert_eq!(status["release"]["percent_complete"], 100, "{status}");
        assert_eq!(status["devices"]["total"], 24, "{status}");
        assert_eq!(status["devices"]["in_flight"], 0, "{status}");
        for sim in &sims {
            assert_eq!(sims_updates(sim), 1, "{} got one update", sim.identifier);
        }
        for sim in &outsiders {
            assert!(
                sim.updates().is_empty(),
                "{} is not a member",
                sim.identifier
            );
            let device = fleet.device(&sim.identifier).await;
            assert_eq!(device["deployment_group"], Value::Null, "{device}");
        }
        let device = fleet.device(&beta[0]).await;
        assert_eq!(device["deployment_group"]["name"], "beta", "{device}");
        assert_eq!(
            device["deployment_group"]["firmware_uuid"],
            fleet.fw("2.0.0").uuid
        );
        assert_eq!(device["version"], "2.0.0");
        let rows = deployment_updates(&fleet).await;
        assert_eq!(rows.len(), 24, "{rows:?}");
        assert!(rows.iter().all(|r| r.3 == "completed"), "{rows:?}");
        let overlap = max_overlap(&rows);
        assert!(overlap <= 5, "{overlap} updates were in flight at once");
        assert!(overlap >= 2, "the rollout ran in parallel ({overlap})");
        // The release list and the audit trail.
        let (status, releases) = fleet
            .ts()
            .get(&fleet.f.view, &fleet.path("/deployments/beta/releases"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(releases["data"][0]["firmware"]["version"], "2.0.0");
        for sim in sims.into_iter().chain(outsiders) {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}

fn sims_updates(sim: &Sim) -> usize {
    sim.updates().len()
}

/// Spawns devices one after another, each joined before the next connects.
async fn spawn_in_order(fleet: &Fleet, ids: &[(&str, &str)], behaviour: Behaviour) -> Vec<Sim> {
    let mut sims = Vec::new();
    for (id, version) in ids {
        let sim = fleet.spawn(id, version, behaviour);
        wait_sims(std::slice::from_ref(&sim), LONG, "joined", |s| {
            s.joins() > 0
        })
        .await;
        // Connection times are in milliseconds.
        tokio::time::sleep(Duration::from_millis(20)).await;
        sims.push(sim);
    }
    sims
}

/// `POST …/deployments/{name}/devices`: manual membership.
async fn assign(fleet: &Fleet, name: &str, ids: &[&str]) {
    let (status, body) = fleet
        .ts()
        .post(
            &fleet.f.manage,
            &fleet.path(&format!("/deployments/{name}/devices")),
            json!({"identifiers": ids}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), ids.len());
    for device in body["data"].as_array().unwrap() {
        assert_eq!(device["deployment_group"]["name"], name, "{device}");
    }
}

async fn order_sent(fleet: &Fleet) -> Vec<String> {
    deployment_updates(fleet)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect()
}

#[tokio::test]
async fn fifo_lifo_and_the_priority_queue() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["0.9.0", "1.1.0", "2.0.0"], |_| {}).await;
        // FIFO: the longest-connected first, one at a time.
        let fifo = spawn_in_order(
            &fleet,
            &[("f-a", "1.1.0"), ("f-b", "1.1.0"), ("f-c", "1.1.0")],
            Behaviour::Install,
        )
        .await;
        // Not active yet: nobody joined it automatically; assigned by hand in another order.
        fleet
            .deployment("fifo", "2.0.0", json!({"concurrent_updates": 1}))
            .await;
        assign(&fleet, "fifo", &["f-c", "f-b", "f-a"]).await;
        fleet.change("fifo", json!({"is_active": true})).await;
        wait_sims(&fifo, LONG, "fifo done", |s| s.running().version == "2.0.0").await;
        assert_eq!(order_sent(&fleet).await, ["f-a", "f-b", "f-c"]);
        fleet.change("fifo", json!({"is_active": false})).await;

        // LIFO: the most recently first-seen first.
        fleet
            .deployment(
                "lifo",
                "2.0.0",
                json!({"concurrent_updates": 1, "queue_management": "LIFO", "is_active": true,
                       "conditions": {"version": "< 1.0.0"}}),
            )
            .await;
        let lifo = spawn_in_order(
            &fleet,
            &[("l-a", "0.9.0"), ("l-b", "0.9.0"), ("l-c", "0.9.0")],
            Behaviour::Hold,
        )
        .await;
        // Active before they connect: they join it at their join, and the first run may pick
        // whoever joined first; after that one at a time, newest first.
        let first = wait_first_update(&lifo).await;
        for sim in &lifo {
            sim.finish();
        }
        wait_sims(&lifo, LONG, "lifo done", |s| {
            s.updates().len() == 1 && {
                s.finish();
                s.running().version == "2.0.0"
            }
        })
        .await;
        let sent: Vec<String> = order_sent(&fleet).await.into_iter().skip(3).collect();
        let rest: Vec<&str> = ["l-c", "l-b", "l-a"]
            .into_iter()
            .filter(|id| *id != first)
            .collect();
        assert_eq!(sent[0], first, "{sent:?}");
        assert_eq!(
            &sent[1..],
            &rest[..],
            "LIFO order after the first: {sent:?}"
        );
        fleet.change("lifo", json!({"is_active": false})).await;

        // Priority queue: devices at or below 1.0.0 have their own slots, so the last to
        // connect overtakes the FIFO queue.
        fleet
            .deployment(
                "prio",
                "2.0.0",
                json!({"concurrent_updates": 1, "priority_queue_enabled": true,
                       "priority_queue_concurrent_updates": 1,
                       "priority_queue_firmware_version_threshold": "1.0.0",
                       "conditions": {"tags": []}}),
            )
            .await;
        let prio = spawn_in_order(
            &fleet,
            &[("p-x1", "1.1.0"), ("p-x2", "1.1.0"), ("p-old", "0.9.0")],
            Behaviour::Hold,
        )
        .await;
        assign(&fleet, "prio", &["p-x1", "p-x2", "p-old"]).await;
        fleet.change("prio", json!({"is_active": true})).await;
        wait_sims(&prio, LONG, "two updates held", |s| {
            s.identifier == "p-x2" || !s.updates().is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            prio[1].updates().is_empty(),
            "p-x2 waits for the normal slot"
        );
        let status = fleet.status("prio").await;
        assert_eq!(status["devices"]["in_flight"], 2, "{status}");
        assert_eq!(status["devices"]["pending"], 1, "{status}");
        for sim in fifo.into_iter().chain(lifo).chain(prio) {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}

/// The identifier of the first device of `sims` to get an update.
async fn wait_first_update(sims: &[Sim]) -> String {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        if let Some(sim) = sims.iter().find(|s| !s.updates().is_empty()) {
            return sim.identifier.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no update sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failures_penalties_reschedules_and_attempt_limits() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        fleet
            .deployment(
                "main",
                "2.0.0",
                json!({"is_active": true, "device_failure_threshold": 2}),
            )
            .await;
        let fail = fleet.spawn("dev-fail", "1.0.0", Behaviour::Fail);
        let ignore = fleet.spawn("dev-ignore", "1.0.0", Behaviour::Ignore);
        let resched = fleet.spawn("dev-resched", "1.0.0", Behaviour::Reschedule);
        let flaky = fleet.spawn("dev-flaky", "1.0.0", Behaviour::Drop);

        let rows = fleet
            .wait_updates("dev-fail", |r| r.len() == 1 && r[0]["status"] == "failed")
            .await;
        assert_eq!(rows[0]["reason"], "fwup error: simulated");
        assert_eq!(rows[0]["in_flight"], false);
        assert_eq!(rows[0]["deployment"], "main");
        let device = fleet.device("dev-fail").await;
        assert!(device["updates_blocked_until"].is_string(), "{device}");

        let rows = fleet
            .wait_updates("dev-ignore", |r| {
                r.len() == 1 && r[0]["status"] == "ignored"
            })
            .await;
        assert_eq!(rows[0]["reason"], "not now");
        assert!(fleet.device("dev-ignore").await["updates_blocked_until"].is_string());

        let rows = fleet
            .wait_updates("dev-resched", |r| {
                r.len() == 1 && r[0]["status"] == "rescheduled"
            })
            .await;
        assert_eq!(rows[0]["reason"], "busy (retry in 5 min)");
        let blocked = fleet.device("dev-resched").await["updates_blocked_until"].clone();
        assert!(blocked.is_string(), "rescheduled devices wait");

        // The flaky device: each push is interrupted by a reconnect, and after two attempts
        // the orchestrator puts it in the penalty box instead of sending a third.
        wait_sims(std::slice::from_ref(&flaky), LONG, "two attempts", |s| {
            s.updates().len() >= 2
        })
        .await;
        let device = loop {
            let device = fleet.device("dev-flaky").await;
            if device["updates_blocked_until"].is_string() {
                break device;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(flaky.updates().len(), 2, "{device}");
        let rows = fleet.updates("dev-flaky").await;
        assert!(
            rows.iter().all(|r| r["status"] == "interrupted"),
            "{rows:?}"
        );

        // Nothing more is sent to penalized devices.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(fail.updates().len(), 1);
        assert_eq!(ignore.updates().len(), 1);
        assert_eq!(resched.updates().len(), 1);
        assert_eq!(flaky.updates().len(), 2);
        let status = fleet.status("main").await;
        assert_eq!(status["devices"]["failed"], 2, "{status}");
        assert_eq!(status["devices"]["penalty_box"], 2, "{status}");

        // Clearing the penalty box sends the release again.
        let (code, _) = fleet
            .ts()
            .delete(&fleet.f.manage, &fleet.path("/devices/dev-fail/penalty"))
            .await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        wait_sims(std::slice::from_ref(&fail), LONG, "retried", |s| {
            s.updates().len() == 2
        })
        .await;
        let (code, _) = fleet
            .ts()
            .delete(&fleet.f.view, &fleet.path("/devices/dev-fail/penalty"))
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        for sim in [fail, ignore, resched, flaky] {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn the_health_gate_and_expiry_of_silent_updates() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |c| {
            c.update_in_flight_timeout = Duration::from_secs(2);
        })
        .await;
        fleet
            .deployment("main", "2.0.0", json!({"is_active": true}))
            .await;
        // Says `completed`, comes back on the old firmware: failed, penalty box.
        let revert = fleet.spawn("dev-revert", "1.0.0", Behaviour::RevertOnReboot);
        // Says `completed`, never comes back: failed after the health timeout.
        let vanish = fleet.spawn("dev-vanish", "1.0.0", Behaviour::Vanish);
        // Never says anything: the update expires and is sent again.
        let mute = fleet.spawn("dev-mute", "1.0.0", Behaviour::Mute);
        let good = fleet.spawn("dev-good", "1.0.0", Behaviour::Install);

        let rows = fleet
            .wait_updates("dev-revert", |r| r.len() == 1 && r[0]["status"] == "failed")
            .await;
        let reason = rows[0]["reason"].as_str().unwrap();
        assert!(reason.contains("came back running"), "{reason}");
        assert!(fleet.device("dev-revert").await["updates_blocked_until"].is_string());
        assert_eq!(revert.running().version, "1.0.0");

        let rows = fleet
            .wait_updates("dev-vanish", |r| r.len() == 1 && r[0]["status"] == "failed")
            .await;
        let reason = rows[0]["reason"].as_str().unwrap();
        assert!(reason.contains("did not come back healthy"), "{reason}");

        let rows = fleet.wait_updates("dev-mute", |r| r.len() >= 2).await;
        assert_eq!(rows[0]["status"], "expired", "{rows:?}");
        // The row is committed before its push: wait for the push itself.
        wait_sims(
            std::slice::from_ref(&mute),
            LONG,
            "update sent again",
            |s| s.updates().len() >= 2,
        )
        .await;

        wait_sims(std::slice::from_ref(&good), LONG, "good updated", |s| {
            s.running().version == "2.0.0"
        })
        .await;
        let rows = fleet
            .wait_updates("dev-good", |r| {
                r.len() == 1 && r[0]["status"] == "completed"
            })
            .await;
        assert_eq!(rows[0]["progress"], 100);
        assert_eq!(rows[0]["in_flight"], false);
        for sim in [revert, vanish, mute, good] {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn a_failing_release_halts_the_deployment_until_reactivated() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        fleet
            .deployment(
                "main",
                "2.0.0",
                json!({"concurrent_updates": 2, "halt_failure_rate": 30, "halt_window": 10}),
            )
            .await;
        let bad_ids: Vec<(String, &str)> =
            names("bad", 4).into_iter().map(|n| (n, "1.0.0")).collect();
        let bad_refs: Vec<(&str, &str)> = bad_ids.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let bad = spawn_in_order(&fleet, &bad_refs, Behaviour::Fail).await;
        let good_ids = names("good", 8);
        let good: Vec<Sim> = good_ids
            .iter()
            .map(|id| fleet.spawn(id, "1.0.0", Behaviour::Install))
            .collect();
        wait_sims(&good, LONG, "joined", |s| s.joins() > 0).await;
        let all: Vec<&str> = bad_refs
            .iter()
            .map(|(n, _)| *n)
            .chain(good_ids.iter().map(String::as_str))
            .collect();
        assign(&fleet, "main", &all).await;
        fleet.change("main", json!({"state": "on"})).await;
        // FIFO sends to the failing devices first; the third failure (30% of 10) halts.
        let status = fleet
            .wait_status("main", LONG, |s| s["status"] == "halted")
            .await;
        let reason = status["halt_reason"].as_str().unwrap();
        assert!(
            reason.contains("of the last 10 updates failed (halt at 30%)"),
            "{reason}"
        );
        assert!(
            status["failing_devices"].as_array().unwrap().len() >= 3,
            "{status}"
        );
        let sent_at_halt: usize = good.iter().map(|s| s.updates().len()).sum();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let sent_later: usize = good.iter().map(|s| s.updates().len()).sum();
        assert_eq!(
            sent_at_halt, sent_later,
            "a halted deployment sends nothing"
        );
        let shown = fleet
            .ts()
            .get(&fleet.f.view, &fleet.path("/deployments/main"))
            .await
            .1;
        assert_eq!(shown["data"]["status"], "halted");
        let audit = fleet
            .ts()
            .get(&fleet.f.view, "/orgs/acme/audit_logs?limit=1000")
            .await
            .1;
        assert!(
            audit.to_string().contains("deployment main halted"),
            "the halt is audited"
        );
        // Re-activating lifts the halt; the failed devices stay in the penalty box, the rest
        // are updated.
        let d = fleet.change("main", json!({"is_active": true})).await;
        assert_eq!(d["status"], "ready");
        wait_sims(&good, LONG, "good devices updated", |s| {
            s.running().version == "2.0.0"
        })
        .await;
        assert!(bad.iter().all(|s| s.updates().len() == 1));
        // The failures before the halt do not count again.
        let status = fleet
            .wait_status("main", LONG, |s| s["devices"]["up_to_date"] == 8)
            .await;
        assert_eq!(status["status"], "ready", "{status}");
        for sim in bad.into_iter().chain(good) {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}

#[tokio::test]
async fn a_deployment_switched_off_mid_rollout_sends_nothing_more() {
    for db in common::databases().await {
        let fleet = Fleet::start(db, &["1.0.0", "2.0.0"], |_| {}).await;
        fleet
            .deployment(
                "main",
                "2.0.0",
                json!({"concurrent_updates": 2, "is_active": true}),
            )
            .await;
        let ids = names("dev", 12);
        let sims: Vec<Sim> = ids
            .iter()
            .map(|id| fleet.spawn(id, "1.0.0", Behaviour::Slow(300)))
            .collect();
        let deadline = std::time::Instant::now() + LONG;
        while sims.iter().filter(|s| !s.updates().is_empty()).count() < 3 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fleet.change("main", json!({"state": "off"})).await;
        let sent: usize = sims.iter().map(|s| s.updates().len()).sum();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let later: usize = sims.iter().map(|s| s.updates().len()).sum();
        assert_eq!(sent, later, "nothing is sent once the deployment is off");
        assert!(later < 12);
        let status = fleet.status("main").await;
        assert_eq!(status["is_active"], false);
        assert_eq!(status["devices"]["in_flight"], 0, "{status}");
        for sim in sims {
            sim.stop();
        }
        fleet.fw.ts.stop().await;
    }
}
