//! The authorization matrix of the deployment endpoints and the penalty-box clear: every
//! operation × admin, manage, view, a member of another org, no token and a bad token — on
//! SQLite and PostgreSQL — and the deployments API's validation and shapes.

mod common;
mod firmware_support;

use common::OrgFixture;
use firmware_support::{FwServer, TestStorage, full_meta, make_firmware, uuid_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Needs {
    View,
    Manage,
}

#[derive(Clone, Copy, Debug)]
enum Case {
    List,
    Create,
    Show,
    Update,
    Delete,
    Releases,
    Status,
    Members,
    Assign,
    Unassign,
    ClearPenalty,
}

const CASES: [Case; 11] = [
    Case::List,
    Case::Create,
    Case::Show,
    Case::Update,
    Case::Delete,
    Case::Releases,
    Case::Status,
    Case::Assign,
    Case::Unassign,
    Case::ClearPenalty,
    // Last: the audit checks below name devices by their case's index.
    Case::Members,
];

const BASE: &str = "/orgs/acme/products/p0";

fn ok(status: StatusCode, body: &Value) {
    assert!(status.is_success(), "setup failed: {body}");
}

async fn new_deployment(fw: &FwServer, f: &OrgFixture, name: &str, uuid: &str) {
    let (s, b) = fw
        .ts
        .post(
            &f.admin,
            &format!("{BASE}/deployments"),
            json!({"name": name, "firmware": uuid}),
        )
        .await;
    ok(s, &b);
}

async fn new_device(fw: &FwServer, f: &OrgFixture, identifier: &str) {
    let (s, b) = fw
        .ts
        .post(
            &f.admin,
            &format!("{BASE}/devices"),
            json!({"identifier": identifier}),
        )
        .await;
    ok(s, &b);
}

async fn prepare(
    fw: &FwServer,
    f: &OrgFixture,
    uuid: &str,
    case: Case,
    who: &str,
) -> (Method, String, Option<Value>, Needs, StatusCode) {
    use Method as M;
    use StatusCode as S;
    let list = format!("{BASE}/deployments");
    let d0 = format!("{BASE}/deployments/d0");
    match case {
        Case::List => (M::GET, list, None, Needs::View, S::OK),
        Case::Create => (
            M::POST,
            list,
            Some(json!({"name": format!("new-{who}"), "firmware": uuid})),
            Needs::Manage,
            S::CREATED,
        ),
        Case::Show => (M::GET, d0, None, Needs::View, S::OK),
        Case::Update => (
            M::PUT,
            d0,
            Some(json!({"deployment": {"notes": format!("by {who}")}})),
            Needs::Manage,
            S::OK,
        ),
        Case::Delete => {
            let name = format!("gone-{who}");
            new_deployment(fw, f, &name, uuid).await;
            (
                M::DELETE,
                format!("{list}/{name}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
        Case::Releases => (M::GET, format!("{d0}/releases"), None, Needs::View, S::OK),
        Case::Status => (M::GET, format!("{d0}/status"), None, Needs::View, S::OK),
        Case::Members => (M::GET, format!("{d0}/devices"), None, Needs::View, S::OK),
        Case::Assign => {
            let identifier = format!("a-{who}");
            new_device(fw, f, &identifier).await;
            (
                M::POST,
                format!("{d0}/devices"),
                Some(json!({"identifiers": [identifier]})),
                Needs::Manage,
                S::OK,
            )
        }
        Case::Unassign => {
            let identifier = format!("u-{who}");
            new_device(fw, f, &identifier).await;
            let (s, b) = fw
                .ts
                .post(
                    &f.admin,
                    &format!("{d0}/devices"),
                    json!({"identifiers": [identifier]}),
                )
                .await;
            ok(s, &b);
            (
                M::DELETE,
                format!("{d0}/devices/{identifier}"),
                None,
                Needs::Manage,
                S::NO_CONTENT,
            )
        }
        Case::ClearPenalty => (
            M::DELETE,
            format!("{BASE}/devices/dev0/penalty"),
            None,
            Needs::Manage,
            S::NO_CONTENT,
        ),
    }
}

#[tokio::test]
async fn every_deployment_endpoint_checks_org_and_role() {
    for db in common::databases().await {
        let fw = FwServer::start(db.clone(), TestStorage::Local).await;
        let f = fw.org_with_product("acme", "p0", Some("fwup-key")).await;
        let bytes = make_firmware(&full_meta("p0", "1.0.0"), 512, 1);
        let uuid = uuid_of(&bytes);
        let (s, b, _) = fw.upload(&f.manage, "acme", "p0", bytes).await;
        ok(s, &b);
        new_deployment(&fw, &f, "d0", &uuid).await;
        new_device(&fw, &f, "dev0").await;
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
                    prepare(&fw, &f, &uuid, case, &unique).await;
                let (status, answer) = fw.ts.request(method.clone(), token, &path, body).await;
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
                if expected != success && who != "none" && who != "bad" {
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
        // Every change was audited.
        let (_, audit) = fw
            .ts
            .get(&f.admin, "/orgs/acme/audit_logs?limit=1000")
            .await;
        let text = audit.to_string();
        for needle in [
            "created deployment new-admin1",
            "updated deployment d0",
            "deleted deployment gone-manage4",
            "put device a-admin7 into deployment d0",
            "took device u-manage8 out of deployment d0",
            "cleared the penalty box of device dev0",
        ] {
            assert!(text.contains(needle), "{needle} not audited: {text}");
        }
        fw.ts.stop().await;
    }
}

#[tokio::test]
async fn deployments_validate_and_answer_nerveshub_shapes() {
    for db in common::databases().await {
        let fw = FwServer::start(db, TestStorage::Local).await;
        let f = fw.org_with_product("acme", "p0", Some("fwup-key")).await;
        let mut uuids = Vec::new();
        for (i, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
            let bytes = make_firmware(&full_meta("p0", version), 512, i as u64 + 1);
            uuids.push(uuid_of(&bytes));
            let (s, b, _) = fw.upload(&f.manage, "acme", "p0", bytes).await;
            ok(s, &b);
        }
        let other = {
            let mut meta = full_meta("p0", "1.2.0");
            meta[2] = ("meta-platform", "bbb");
            let bytes = make_firmware(&meta, 512, 9);
            let uuid = uuid_of(&bytes);
            let (s, b, _) = fw.upload(&f.manage, "acme", "p0", bytes).await;
            ok(s, &b);
            uuid
        };
        let list = format!("{BASE}/deployments");
        // Invalid bodies: 422 naming the field, nothing created.
        for (body, field) in [
            (json!({"firmware": uuids[0]}), "name"),
            (json!({"name": "x"}), "firmware"),
            (json!({"name": "x", "firmware": "nope"}), "firmware"),
            (
                json!({"name": "x", "firmware": uuids[0], "conditions": {"version": ">= 1.0"}}),
                "conditions",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "conditions": {"tag_operator": "xor"}}),
                "conditions",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "concurrent_updates": 0}),
                "concurrent_updates",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "queue_management": "RANDOM"}),
                "queue_management",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "penalty_timeout_minutes": 5}),
                "penalty_timeout_minutes",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "halt_failure_rate": 150}),
                "halt_failure_rate",
            ),
            (
                json!({"name": "x", "firmware": uuids[0], "platform": "other"}),
                "platform",
            ),
        ] {
            let (status, answer) = fw.ts.post(&f.manage, &list, body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert!(answer["errors"][field].is_array(), "{body}: {answer}");
        }
        let (_, listed) = fw.ts.get(&f.view, &list).await;
        assert_eq!(listed["data"], json!([]));

        let (status, created) = fw
            .ts
            .post(
                &f.manage,
                &list,
                json!({"name": "prod", "firmware": uuids[0],
                       "conditions": {"version": "~> 1.0", "tags": "beta, eu", "tag_operator": "or"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let d = &created["data"];
        assert_eq!(d["name"], "prod");
        assert_eq!(d["is_active"], false, "deployments start off");
        assert_eq!(d["state"], "off");
        assert_eq!(d["status"], "ready");
        assert_eq!(d["firmware_uuid"], uuids[0]);
        assert_eq!(d["current_release"]["number"], 1);
        assert_eq!(d["current_release"]["firmware"]["version"], "1.0.0");
        assert_eq!(d["platform"], "rpi4");
        assert_eq!(
            d["conditions"],
            json!({"version": "~> 1.0", "tags": ["beta", "eu"], "tag_operator": "or"})
        );
        assert_eq!(d["concurrent_updates"], 10);
        assert_eq!(d["queue_management"], "FIFO");
        assert_eq!(d["penalty_timeout_minutes"], 1440);
        assert_eq!(d["halt_failure_rate"], Value::Null);
        assert_eq!(d["device_count"], 0);
        let (status, dup) = fw
            .ts
            .post(
                &f.manage,
                &list,
                json!({"name": "prod", "firmware": uuids[0]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{dup}");

        // Settings change; a firmware makes a new release; platform is fixed.
        let one = format!("{list}/prod");
        let (status, changed) = fw
            .ts
            .put(
                &f.manage,
                &one,
                json!({"deployment": {"firmware": uuids[1], "concurrent_updates": 3,
                                      "queue_management": "lifo", "state": "on",
                                      "halt_failure_rate": 25}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        let d = &changed["data"];
        assert_eq!(d["current_release"]["number"], 2);
        assert_eq!(d["firmware_uuid"], uuids[1]);
        assert_eq!(d["concurrent_updates"], 3);
        assert_eq!(d["queue_management"], "LIFO");
        assert_eq!(d["is_active"], true);
        assert_eq!(d["halt_failure_rate"], 25);
        assert_eq!(d["releases_count"], 2);
        let (status, answer) = fw
            .ts
            .put(&f.manage, &one, json!({"deployment": {"firmware": other}}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let (status, _) = fw
            .ts
            .put(
                &f.manage,
                &one,
                json!({"deployment": {"halt_failure_rate": null}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, shown) = fw.ts.get(&f.view, &one).await;
        assert_eq!(shown["data"]["halt_failure_rate"], Value::Null);
        let (_, releases) = fw.ts.get(&f.view, &format!("{one}/releases")).await;
        let numbers: Vec<&Value> = releases["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["number"])
            .collect();
        assert_eq!(numbers, [&json!(2), &json!(1)]);
        assert_eq!(releases["data"][0]["created_by"], "manage@acme.test");

        // Manual membership: unknown devices are a 404; a device on another platform a 422.
        let (status, _) = fw
            .ts
            .post(
                &f.manage,
                &format!("{one}/devices"),
                json!({"identifiers": ["ghost"]}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = fw
            .ts
            .post(
                &f.manage,
                &format!("{one}/devices"),
                json!({"identifiers": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = fw
            .ts
            .delete(&f.manage, &format!("{one}/devices/ghost"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A firmware used by a release cannot be deleted; deleting the deployment frees it.
        let (status, _) = fw
            .ts
            .delete(&f.manage, &format!("{BASE}/firmwares/{}", uuids[0]))
            .await;
        assert!(status.is_client_error(), "{status}");
        let (status, _) = fw.ts.delete(&f.manage, &one).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = fw.ts.get(&f.view, &one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        fw.ts.stop().await;
    }
}

/// The matrix covers every deployment operation of the OpenAPI document.
#[test]
fn the_matrix_covers_every_documented_deployment_operation() {
    let doc = nerveshub_server::openapi_document();
    let operations = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter(|op| {
            op["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "deployments"))
        })
        .count();
    // Every deployments-tagged operation, plus the penalty clear.
    assert_eq!(operations + 1, CASES.len());
}
