//! Management API (1/4): first start, users and tokens, orgs and members, signing keys,
//! products, the audit log — on SQLite and PostgreSQL.

mod common;

use common::{TestServer, databases};
use reqwest::StatusCode;
use serde_json::json;

const FWUP_KEY_PUB: &str = include_str!("../../nerveshub-fwup/testdata/fixtures/keys/fwup-key.pub");
const OTHER_KEY_PUB: &str =
    include_str!("../../nerveshub-fwup/testdata/fixtures/keys/other-key.pub");

#[tokio::test]
async fn first_start_creates_admin_token_file_and_dev_certificates_reused_after() {
    for db in databases().await {
        let ts = TestServer::start(db.clone()).await;
        let admin = ts.server.first_admin().unwrap();
        assert_eq!(admin.email, "admin@localhost");
        assert!(admin.token.starts_with("nhu_"));
        assert!(admin.password.len() >= 20);
        let token_file = ts.data_dir.path().join("admin-token");
        assert_eq!(
            std::fs::read_to_string(&token_file).unwrap(),
            format!("{}\n", admin.token)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "admin-token must be private");
            let key_mode = std::fs::metadata(ts.data_dir.path().join("tls/server-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(key_mode & 0o777, 0o600, "the TLS key must be private");
        }
        for file in ["ca.pem", "server.pem", "server-key.pem"] {
            assert!(ts.data_dir.path().join("tls").join(file).exists(), "{file}");
        }
        // The admin can sign in with the printed password.
        let (status, body) = ts
            .request(
                reqwest::Method::POST,
                None,
                "/users/auth",
                Some(
                    json!({"email": "ADMIN@localhost", "password": admin.password, "note": "cli"}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["email"], "admin@localhost");

        // A restart on the same data: no new admin, same token, same certificates.
        let ca_before = std::fs::read(ts.data_dir.path().join("tls/ca.pem")).unwrap();
        let cert_before = std::fs::read(ts.data_dir.path().join("tls/server.pem")).unwrap();
        let TestServer {
            server,
            data_dir,
            admin_token,
            ..
        } = ts;
        server.shutdown().await;
        let mut config = nerveshub_server::Config::new(data_dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        if let common::TestDb::Postgres(_) = db {
            // The PostgreSQL variant's database went away with the first server's harness;
            // the restart check is about files in the data directory, which SQLite covers.
            continue;
        }
        let again = nerveshub_server::RunningServer::start(config)
            .await
            .unwrap();
        assert!(again.first_admin().is_none());
        assert_eq!(
            std::fs::read(data_dir.path().join("tls/ca.pem")).unwrap(),
            ca_before
        );
        assert_eq!(
            std::fs::read(data_dir.path().join("tls/server.pem")).unwrap(),
            cert_before
        );
        let me = reqwest::Client::new()
            .get(format!("http://{}/api/users/me", again.api_addr()))
            .header("authorization", format!("Bearer {admin_token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        again.shutdown().await;
    }
}

#[tokio::test]
async fn tokens_sign_in_and_users() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let admin = ts.admin_token.clone();
        let (status, body) = ts.get(&admin, "/users/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"data": {"name": "admin", "email": "admin@localhost"}})
        );

        // Missing, malformed, well-formed but unknown tokens, and an unknown scheme: 401.
        let (status, body) = ts
            .request(reqwest::Method::GET, None, "/users/me", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["errors"]["detail"].is_string());
        for header in [
            "token nhu_nonsense",
            "token abc",
            "Basic YWRtaW46YWRtaW4=",
            "token nhu_1M7ZvVbLzOVvbGe0ZKybvDCUbrNq0wOp1JEDcE4Y1ZRSpfmc9D3O",
        ] {
            let response = ts
                .http
                .get(ts.api("/users/me"))
                .header("authorization", header)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        }
        let response = ts
            .http
            .get(ts.api("/users/me"))
            .header("authorization", format!("BEARER {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the scheme is case-insensitive"
        );

        // Server admins create users; users sign in for tokens.
        let (status, body) = ts
            .post(
                &admin,
                "/users",
                json!({"email": "Jane@Example.com", "password": "hunter2hunter2", "name": "Jane"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body,
            json!({"data": {"name": "Jane", "email": "jane@example.com"}})
        );
        let (status, body) = ts
            .post(
                &admin,
                "/users",
                json!({"email": "jane@example.com", "password": "hunter2hunter2"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"errors": {"email": ["has already been taken"]}})
        );
        let (status, body) = ts
            .post(
                &admin,
                "/users",
                json!({"email": "nope", "password": "hunter2hunter2"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["errors"]["email"].is_array());
        let (status, body) = ts
            .post(
                &admin,
                "/users",
                json!({"email": "x@y.z", "password": "short"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["errors"]["password"].is_array());
        let (status, _) = ts.post(&admin, "/users", json!({"email": 5})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        for path in ["/users/auth", "/users/login"] {
            let (status, body) = ts
                .request(
                    reqwest::Method::POST,
                    None,
                    path,
                    Some(json!({"email": "jane@example.com", "password": "hunter2hunter2", "note": "laptop"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["data"]["name"], "Jane");
            let jane = body["data"]["token"].as_str().unwrap().to_owned();
            let (status, body) = ts.get(&jane, "/users/me").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["data"]["email"], "jane@example.com");
            // Jane is no server admin.
            let (status, _) = ts
                .post(
                    &jane,
                    "/users",
                    json!({"email": "eve@example.com", "password": "hunter2hunter2"}),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        for wrong in [
            json!({"email": "jane@example.com", "password": "wrong password"}),
            json!({"email": "nobody@example.com", "password": "hunter2hunter2"}),
        ] {
            let (status, _) = ts
                .request(reqwest::Method::POST, None, "/users/auth", Some(wrong))
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        ts.stop().await;
    }
}

#[tokio::test]
async fn orgs_and_members() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;

        let (status, body) = ts.get(&f.admin, "/orgs").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"data": [{"name": "acme", "role": "admin"}]}));
        let (status, body) = ts.get(&f.view, "/orgs").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"data": [{"name": "acme", "role": "view"}]}));

        let (status, body) = ts.post(&f.view, "/orgs", json!({"name": "acme"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"errors": {"name": ["has already been taken"]}})
        );
        for bad in ["", "a b", "a/b", &"x".repeat(101)] {
            let (status, _) = ts.post(&f.view, "/orgs", json!({"name": bad})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        }

        let (status, body) = ts.get(&f.admin, "/orgs/acme/users").await;
        assert_eq!(status, StatusCode::OK);
        let emails: Vec<_> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["email"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            emails,
            [
                ("admin@acme.test", "admin"),
                ("manage@acme.test", "manage"),
                ("view@acme.test", "view")
            ]
            .map(|(e, r)| (e.to_owned(), r.to_owned()))
        );

        // Add, change, remove.
        ts.user("new@acme.test").await;
        let (status, body) = ts
            .post(
                &f.admin,
                "/orgs/acme/users",
                json!({"email": "NEW@acme.test", "role": "view"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["role"], "view");
        let (status, _) = ts
            .post(
                &f.admin,
                "/orgs/acme/users",
                json!({"email": "new@acme.test", "role": "view"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = ts
            .post(
                &f.admin,
                "/orgs/acme/users",
                json!({"email": "ghost@acme.test", "role": "view"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["errors"]["email"].is_array());
        let (status, body) = ts
            .post(
                &f.admin,
                "/orgs/acme/users",
                json!({"email": "new@acme.test", "role": "owner"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["errors"]["role"].is_array());
        let (status, body) = ts
            .put(
                &f.admin,
                "/orgs/acme/users/new@acme.test",
                json!({"role": "manage"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["data"],
            json!({"name": "new@acme.test", "email": "new@acme.test", "role": "manage"})
        );
        let (status, body) = ts.get(&f.admin, "/orgs/acme/users/new@acme.test").await;
        assert_eq!(
            (status, body["data"]["role"].clone()),
            (StatusCode::OK, json!("manage"))
        );
        let (status, _) = ts.delete(&f.admin, "/orgs/acme/users/new@acme.test").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts.get(&f.admin, "/orgs/acme/users/new@acme.test").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The last admin can neither leave nor step down.
        let (status, body) = ts
            .put(
                &f.admin,
                "/orgs/acme/users/admin@acme.test",
                json!({"role": "view"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = ts
            .delete(&f.admin, "/orgs/acme/users/admin@acme.test")
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, body) = ts.get(&f.admin, "/orgs/acme/users/admin@acme.test").await;
        assert_eq!(
            body["data"]["role"], "admin",
            "a refused change leaves the role as it was"
        );
        ts.stop().await;
    }
}

#[tokio::test]
async fn signing_keys_and_products() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/keys",
                json!({"name": "prod", "key": FWUP_KEY_PUB}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut body = body;
        // When it was added (api_tokens.rs checks the value).
        assert!(
            body["data"]
                .as_object_mut()
                .unwrap()
                .remove("inserted_at")
                .is_some_and(|t| t.is_string()),
            "{body}"
        );
        assert_eq!(
            body,
            json!({"data": {"name": "prod", "key": FWUP_KEY_PUB.trim(), "scheme": "ed25519"}})
        );
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/keys",
                json!({"name": "prod", "key": OTHER_KEY_PUB}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"errors": {"name": ["has already been taken"]}})
        );
        let (status, body) = ts
            .post(
                &f.manage,
                "/orgs/acme/keys",
                json!({"name": "again", "key": FWUP_KEY_PUB}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body, json!({"errors": {"key": ["has already been taken"]}}));
        for bad in ["", "not base64!", "AAAA", &FWUP_KEY_PUB.trim()[..20]] {
            let (status, body) = ts
                .post(
                    &f.manage,
                    "/orgs/acme/keys",
                    json!({"name": "bad", "key": bad}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
            assert!(body["errors"]["key"].is_array());
        }
        let (status, body) = ts.get(&f.view, "/orgs/acme/keys/prod").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["name"], "prod");
        let (status, body) = ts.get(&f.view, "/orgs/acme/keys").await;
        assert_eq!(
            (status, body["data"].as_array().unwrap().len()),
            (StatusCode::OK, 1)
        );
        let (status, _) = ts.delete(&f.manage, "/orgs/acme/keys/prod").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts.get(&f.view, "/orgs/acme/keys/prod").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, body) = ts
            .post(&f.admin, "/orgs/acme/products", json!({"name": "gizmo"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body, json!({"data": {"name": "gizmo"}}));
        let (status, _) = ts
            .post(&f.admin, "/orgs/acme/products", json!({"name": "gizmo"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // The same product name in another org is fine.
        let (status, _) = ts
            .post(
                &f.outsider,
                &format!("/orgs/{}/products", f.other_org),
                json!({"name": "gizmo"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = ts
            .put(
                &f.manage,
                "/orgs/acme/products/gizmo",
                json!({"name": "gizmo 2"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"data": {"name": "gizmo 2"}}));
        let (status, _) = ts.get(&f.view, "/orgs/acme/products/gizmo").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = ts.get(&f.view, "/orgs/acme/products/gizmo%202").await;
        assert_eq!(
            (status, body["data"]["name"].clone()),
            (StatusCode::OK, json!("gizmo 2"))
        );
        let (status, body) = ts.get(&f.view, "/orgs/acme/products").await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"data": [{"name": "gizmo 2"}]}))
        );
        let (status, _) = ts.delete(&f.admin, "/orgs/acme/products/gizmo%202").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, body) = ts.get(&f.view, "/orgs/acme/products").await;
        assert_eq!(body, json!({"data": []}));

        // Every change above left an audit row.
        let (status, body) = ts.get(&f.view, "/orgs/acme/audit_logs?limit=1000").await;
        assert_eq!(status, StatusCode::OK);
        let actions: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|row| {
                format!(
                    "{} {} {}",
                    row["action"].as_str().unwrap(),
                    row["resource_type"].as_str().unwrap(),
                    row["resource_id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                "create org acme",
                "create org_user manage@acme.test",
                "create org_user view@acme.test",
                "create org_key prod",
                "delete org_key prod",
                "create product gizmo",
                "update product gizmo 2",
                "delete product gizmo 2",
            ]
        );
        assert!(
            body["data"][0]["inserted_at"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let (status, _) = ts.get(&f.view, "/orgs/acme/audit_logs?limit=0").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        ts.stop().await;
    }
}
