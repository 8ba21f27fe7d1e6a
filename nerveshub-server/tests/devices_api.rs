//! Devices on the management API, on SQLite and PostgreSQL: CRUD with the authorization
//! matrix, NervesHub's device JSON, server-wide unique identifiers, tags, pagination and
//! filters, audit rows.

mod common;
mod devices_support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::TestServer;
use devices_support::{assert_audited, device, product};

#[tokio::test]
async fn devices_crud_with_authorization_matrix() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "hub").await;
        let devices = "/orgs/acme/products/hub/devices";
        let one = "/orgs/acme/products/hub/devices/nerves-1";

        // No token, a malformed token, a well-formed token nobody holds: 401.
        for (token, label) in [
            (None, "missing"),
            (Some("nhu_garbage"), "bad"),
            (
                Some("nhu_4f0000000000000000000000000000000000000000000000"),
                "unknown",
            ),
        ] {
            let (status, body) = ts.request(Method::GET, token, devices, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
            let (status, _) = ts
                .request(
                    Method::POST,
                    token,
                    devices,
                    Some(json!({"identifier": "x"})),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        }
        // Another org's admin: 404, NervesHub's answer for non-members.
        let (status, body) = ts.get(&f.outsider, devices).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(
            body["errors"]["detail"],
            "Resource Not Found or Authorization Insufficient"
        );
        let (status, _) = ts
            .post(&f.outsider, devices, json!({"identifier": "nerves-1"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A viewer reads but does not create.
        let (status, body) = ts.get(&f.view, devices).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"], json!([]));
        let (status, _) = ts
            .post(&f.view, devices, json!({"identifier": "nerves-1"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // A manager creates; the answer is NervesHub's device JSON.
        let created = device(
            &ts,
            &f.manage,
            "acme",
            "hub",
            json!({"identifier": "nerves-1", "description": "bench unit", "tags": ["beta", "eu", "beta"]}),
        )
        .await;
        assert_eq!(
            created,
            json!({
                "identifier": "nerves-1", "description": "bench unit", "tags": ["beta", "eu"],
                "online": false, "connection_status": "not_seen", "last_communication": null,
                "firmware_metadata": null, "version": null, "updates_enabled": true, "updates_blocked_until": null,
                "in_penalty_box": false, "updating": false,
                "connection": {"remote_address": null, "auth": null},
                "deployment_group": null, "org_name": "acme", "product_name": "hub"
            })
        );
        // An admin creates too; tags may come as a comma-separated string.
        let created = device(
            &ts,
            &f.admin,
            "acme",
            "hub",
            json!({"identifier": "nerves-2", "tags": "prod, eu"}),
        )
        .await;
        assert_eq!(created["tags"], json!(["prod", "eu"]));
        assert_eq!(created["description"], "");

        // Identifiers are unique on the whole server, across orgs.
        let (status, body) = ts
            .post(&f.manage, devices, json!({"identifier": "nerves-1"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"errors": {"identifier": ["has already been taken"]}})
        );
        let (status, body) = ts
            .post(
                &f.outsider,
                &format!("/orgs/{}/products", f.other_org),
                json!({"name": "hub"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = ts
            .post(
                &f.outsider,
                &format!("/orgs/{}/products/hub/devices", f.other_org),
                json!({"identifier": "nerves-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"]["identifier"][0], "has already been taken");

        // Invalid input: 422 per field, nothing written.
        for (input, field) in [
            (json!({"identifier": "two words"}), "identifier"),
            (json!({"identifier": ""}), "identifier"),
            (json!({"identifier": "a/b"}), "identifier"),
            (json!({"identifier": "auth"}), "identifier"),
            (json!({"identifier": "n-3", "tags": ["has space"]}), "tags"),
            (json!({"identifier": "n-3", "tags": ["quo\"te"]}), "tags"),
            (json!({"identifier": "n-3", "tags": [1]}), "tags"),
        ] {
            let (status, body) = ts.post(&f.manage, devices, input.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input}: {body}");
            assert!(body["errors"][field].is_array(), "{input}: {body}");
        }
        let (status, body) = ts.post(&f.manage, devices, json!({"tags": []})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (_, body) = ts.get(&f.view, devices).await;
        assert_eq!(body["pagination"]["total_entries"], 2, "{body}");

        // Show.
        let (status, body) = ts.get(&f.view, one).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["identifier"], "nerves-1");
        let (status, _) = ts.get(&f.outsider, one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.request(Method::GET, None, one, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = ts
            .get(&f.view, "/orgs/acme/products/hub/devices/nope")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        // A device is reached only through its own product.
        product(&ts, &f, "other").await;
        let (status, _) = ts
            .get(&f.view, "/orgs/acme/products/other/devices/nerves-1")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Update: viewers may not; managers change description, tags, updates flag.
        let change =
            json!({"description": "field unit", "tags": ["prod"], "updates_enabled": false});
        let (status, _) = ts.put(&f.view, one, change.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = ts.put(&f.outsider, one, change.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = ts.put(&f.manage, one, change).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["description"], "field unit");
        assert_eq!(body["data"]["tags"], json!(["prod"]));
        assert_eq!(body["data"]["updates_enabled"], false);
        // Fields left out keep their values.
        let (status, body) = ts
            .put(&f.manage, one, json!({"updates_enabled": true}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["description"], "field unit");
        assert_eq!(body["data"]["tags"], json!(["prod"]));
        let (status, body) = ts.put(&f.manage, one, json!({"tags": ["a b"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        // Delete.
        let (status, _) = ts.delete(&f.view, one).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = ts.delete(&f.outsider, one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.request(Method::DELETE, None, one, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = ts.delete(&f.manage, one).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = ts.get(&f.view, one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = ts.delete(&f.manage, one).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The identifier is free again.
        device(
            &ts,
            &f.manage,
            "acme",
            "hub",
            json!({"identifier": "nerves-1"}),
        )
        .await;

        assert_audited(&ts, &f, "device", "create", "nerves-2").await;
        assert_audited(&ts, &f, "device", "update", "nerves-1").await;
        assert_audited(&ts, &f, "device", "delete", "nerves-1").await;
        ts.stop().await;
    }
}

fn identifiers(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|d| d["identifier"].as_str().expect("identifier").to_owned())
        .collect()
}

#[tokio::test]
async fn devices_pagination_and_filters() {
    for db in common::databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        product(&ts, &f, "hub").await;
        for (i, tags) in [
            (1, json!(["prod", "eu"])),
            (2, json!(["production"])),
            (3, json!(["prod"])),
            (4, json!([])),
            (5, json!(["EU"])),
            (6, json!(["prod"])),
            (7, json!(["eu"])),
        ] {
            device(
                &ts,
                &f.manage,
                "acme",
                "hub",
                json!({"identifier": format!("Unit-{i:02}"), "tags": tags}),
            )
            .await;
        }
        // Other products' devices never show.
        product(&ts, &f, "other").await;
        device(
            &ts,
            &f.manage,
            "acme",
            "other",
            json!({"identifier": "unit-99", "tags": ["prod"]}),
        )
        .await;
        let base = "/orgs/acme/products/hub/devices";

        let (status, body) = ts.get(&f.view, base).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["pagination"],
            json!({"page": 1, "page_size": 50, "total_pages": 1, "total_entries": 7})
        );
        assert_eq!(identifiers(&body).len(), 7);

        let mut seen = Vec::new();
        for page in 1..=3 {
            let (status, body) = ts
                .get(&f.view, &format!("{base}?page={page}&page_size=3"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body["pagination"],
                json!({"page": page, "page_size": 3, "total_pages": 3, "total_entries": 7})
            );
            seen.extend(identifiers(&body));
        }
        let expected: Vec<String> = (1..=7).map(|i| format!("Unit-{i:02}")).collect();
        assert_eq!(
            seen, expected,
            "pages cover every device once, by identifier"
        );
        let (_, body) = ts.get(&f.view, &format!("{base}?page=4&page_size=3")).await;
        assert_eq!(identifiers(&body), Vec::<String>::new());
        // NervesHub's nested form.
        let (status, body) = ts
            .get(
                &f.view,
                &format!("{base}?pagination[page]=2&pagination[page_size]=5"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(identifiers(&body), vec!["Unit-06", "Unit-07"]);

        for bad in [
            "page=0",
            "page=x",
            "page_size=0",
            "page_size=101",
            "online=maybe",
        ] {
            let (status, body) = ts.get(&f.view, &format!("{base}?{bad}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }

        // identifier: case-insensitive substring.
        let (_, body) = ts.get(&f.view, &format!("{base}?identifier=unit-0")).await;
        assert_eq!(identifiers(&body).len(), 7);
        let (_, body) = ts.get(&f.view, &format!("{base}?identifier=NIT-03")).await;
        assert_eq!(identifiers(&body), vec!["Unit-03"]);
        assert_eq!(body["pagination"]["total_entries"], 1);
        let (_, body) = ts.get(&f.view, &format!("{base}?identifier=%25")).await;
        assert_eq!(
            identifiers(&body),
            Vec::<String>::new(),
            "% is not a wildcard"
        );
        // tag: exact and case-sensitive ("prod" is not "production").
        let (_, body) = ts.get(&f.view, &format!("{base}?tag=prod")).await;
        assert_eq!(identifiers(&body), vec!["Unit-01", "Unit-03", "Unit-06"]);
        let (_, body) = ts.get(&f.view, &format!("{base}?filters[tag]=eu")).await;
        assert_eq!(identifiers(&body), vec!["Unit-01", "Unit-07"]);
        let (_, body) = ts.get(&f.view, &format!("{base}?tag=pro")).await;
        assert_eq!(identifiers(&body), Vec::<String>::new());
        // online: nothing is connected here.
        let (_, body) = ts.get(&f.view, &format!("{base}?online=true")).await;
        assert_eq!(body["pagination"]["total_entries"], 0);
        assert_eq!(body["pagination"]["total_pages"], 0);
        let (_, body) = ts
            .get(
                &f.view,
                &format!("{base}?online=false&tag=prod&page_size=2"),
            )
            .await;
        assert_eq!(identifiers(&body), vec!["Unit-01", "Unit-03"]);
        assert_eq!(
            body["pagination"],
            json!({"page": 1, "page_size": 2, "total_pages": 2, "total_entries": 3})
        );
        ts.stop().await;
    }
}

#[tokio::test]
async fn openapi_documents_the_device_endpoints() {
    let doc = nerveshub_server::openapi_document();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/orgs/{org}/products/{product}/devices", "get"),
        ("/api/orgs/{org}/products/{product}/devices", "post"),
        ("/api/orgs/{org}/products/{product}/devices/auth", "post"),
        (
            "/api/orgs/{org}/products/{product}/devices/{identifier}",
            "put",
        ),
        (
            "/api/orgs/{org}/products/{product}/devices/{identifier}/certificates/{serial}",
            "delete",
        ),
        ("/api/orgs/{org}/ca_certificates/verification_token", "get"),
        ("/api/orgs/{org}/ca_certificates", "post"),
        ("/api/orgs/{org}/ca_certificates/{serial}", "delete"),
        ("/api/orgs/{org}/products/{product}/shared_secrets", "post"),
        (
            "/api/orgs/{org}/products/{product}/shared_secrets/{key}",
            "delete",
        ),
        (
            "/api/orgs/{org}/products/{product}/devices/{identifier}/shared_secrets",
            "post",
        ),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Device",
        "DeviceCertificate",
        "CaCertificate",
        "NewSharedSecret",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert_eq!(
        paths["/api/orgs/{org}/products/{product}/devices"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["properties"]["pagination"]["$ref"],
        "#/components/schemas/Pagination"
    );
}
