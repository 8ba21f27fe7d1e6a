//! Per-user API tokens (`/api/users/me/tokens`), the audit log's filters and paging, and the
//! signing keys' `inserted_at` — on SQLite and PostgreSQL.

mod common;

use common::{TestDb, TestServer, databases};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FWUP_KEY_PUB: &str = include_str!("../../nerveshub-fwup/testdata/fixtures/keys/fwup-key.pub");

/// A connection to the server's database.
async fn database(ts: &TestServer) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let url = match &ts.db {
        TestDb::Sqlite => format!(
            "sqlite://{}",
            ts.data_dir.path().join("nerveshub.db").display()
        ),
        TestDb::Postgres(_) => ts.database_url().unwrap(),
    };
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

fn tokens_of(body: &Value) -> Vec<Value> {
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn users_list_create_and_revoke_their_own_tokens() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let alice = ts.user("alice@example.test").await;
        let bob = ts.user("bob@example.test").await;

        // The sign-in token, marked as the one in use; never a hash or the token text.
        let (status, body) = ts.get(&alice, "/users/me/tokens").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let listed = tokens_of(&body);
        assert_eq!(listed.len(), 1, "{body}");
        assert_eq!(listed[0]["note"], "test");
        assert_eq!(listed[0]["current"], true);
        assert!(listed[0]["id"].is_i64(), "{body}");
        assert!(listed[0]["inserted_at"].as_str().unwrap().ends_with('Z'));
        // The listing request itself used the token.
        assert!(listed[0]["last_used"].is_string(), "{body}");
        let mut keys: Vec<&str> = listed[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["current", "id", "inserted_at", "last_used", "note"]);
        let sign_in_id = listed[0]["id"].as_i64().unwrap();

        // A new token: its text once, in the sign-in format; it works at once.
        let (status, body) = ts
            .post(&alice, "/users/me/tokens", json!({"note": "ci runner"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let made = &body["data"];
        let text = made["token"].as_str().unwrap().to_owned();
        assert!(text.starts_with("nhu_"), "{body}");
        assert_eq!(made["note"], "ci runner");
        assert_eq!(made["last_used"], Value::Null);
        assert_eq!(made["current"], false);
        let ci_id = made["id"].as_i64().unwrap();
        let (status, me) = ts.get(&text, "/users/me").await;
        assert_eq!(
            (status, me["data"]["email"].clone()),
            (StatusCode::OK, json!("alice@example.test"))
        );
        // No note is an empty one.
        let (status, body) = ts.post(&alice, "/users/me/tokens", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["note"], "");
        let spare_id = body["data"]["id"].as_i64().unwrap();

        // Newest first; the caller's current token is the one it used.
        let (_, body) = ts.get(&text, "/users/me/tokens").await;
        let ids: Vec<i64> = tokens_of(&body)
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [spare_id, ci_id, sign_in_id]);
        let current: Vec<bool> = tokens_of(&body)
            .iter()
            .map(|t| t["current"].as_bool().unwrap())
            .collect();
        assert_eq!(current, [false, true, false]);
        assert!(!body.to_string().contains(&text), "the text is shown once");

        // Notes are bounded like sign-in's.
        for note in [json!("x".repeat(256)), json!("bell\u{7}"), json!(5)] {
            let (status, body) = ts
                .post(&alice, "/users/me/tokens", json!({"note": note}))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        let (status, _) = ts
            .post(&alice, "/users/me/tokens", json!({"note": "x".repeat(255)}))
            .await;
        assert_eq!(status, StatusCode::CREATED);

        // Bob sees only his own and cannot revoke Alice's: the same 404 as a missing id.
        let (_, body) = ts.get(&bob, "/users/me/tokens").await;
        assert_eq!(tokens_of(&body).len(), 1, "{body}");
        for id in [ci_id.to_string(), "999999".into(), "abc".into()] {
            let (status, body) = ts.delete(&bob, &format!("/users/me/tokens/{id}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
        }
        let (status, _) = ts.get(&text, "/users/me").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "Bob's attempt left Alice's token alone"
        );

        // Alice revokes the CI token with her sign-in token, then her sign-in token with
        // itself: each stops working at once.
        let (status, _) = ts
            .delete(&alice, &format!("/users/me/tokens/{ci_id}"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts.get(&text, "/users/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = ts
            .delete(&alice, &format!("/users/me/tokens/{ci_id}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "already revoked");
        let (status, _) = ts
            .delete(&alice, &format!("/users/me/tokens/{sign_in_id}"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = ts.get(&alice, "/users/me/tokens").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // No token, no access.
        for (method, path) in [
            (reqwest::Method::GET, "/users/me/tokens"),
            (reqwest::Method::POST, "/users/me/tokens"),
            (reqwest::Method::DELETE, "/users/me/tokens/1"),
        ] {
            let (status, _) = ts.request(method, None, path, Some(json!({}))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }

        // Creations and revocations are audited, without the secret.
        use sqlx::Row as _;
        let mut conn = database(&ts).await;
        let rows = sqlx::query(
            "SELECT a.resource_id, a.action, a.description FROM audit_logs a
             WHERE a.resource_type = 'user_token' AND a.actor_id =
                 (SELECT id FROM users WHERE email = 'alice@example.test')
             ORDER BY a.id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let entries: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect();
        let id = |n: i64| n.to_string();
        assert_eq!(
            entries[1..],
            [
                (id(ci_id), "create".to_owned()),
                (id(spare_id), "create".to_owned()),
                (id(spare_id + 1), "create".to_owned()),
                (id(ci_id), "revoke".to_owned()),
                (id(sign_in_id), "revoke".to_owned()),
            ]
        );
        for row in &rows {
            let description: String = row.get(2);
            assert!(!description.contains("nhu_"), "{description}");
        }
        drop(conn);
        ts.stop().await;
    }
}

#[tokio::test]
async fn the_audit_log_filters_by_resource_and_action_and_pages_by_id() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        for name in ["one", "two", "three"] {
            let (status, body) = ts
                .post(&f.admin, "/orgs/acme/products", json!({"name": name}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (status, _) = ts.delete(&f.admin, "/orgs/acme/products/two").await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // Every entry carries its id, newest first.
        let (status, body) = ts.get(&f.view, "/orgs/acme/audit_logs").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let all = body["data"].as_array().unwrap().clone();
        let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

        let list = |query: &'static str| {
            let ts = &ts;
            let token = f.view.clone();
            async move {
                let (status, body) = ts
                    .get(&token, &format!("/orgs/acme/audit_logs?{query}"))
                    .await;
                assert_eq!(status, StatusCode::OK, "{query}: {body}");
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} {}",
                            e["action"].as_str().unwrap(),
                            e["resource_type"].as_str().unwrap(),
                            e["resource_id"].as_str().unwrap()
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list("resource_type=product").await,
            [
                "delete product two",
                "create product three",
                "create product two",
                "create product one"
            ]
        );
        assert_eq!(
            list("resource_type=product&action=create&limit=2").await,
            ["create product three", "create product two"]
        );
        assert_eq!(list("action=delete").await, ["delete product two"]);
        assert_eq!(list("resource_type=firmware").await, Vec::<String>::new());
        // Empty parameters are no filter.
        assert_eq!(list("resource_type=&action=").await.len(), all.len());

        // Paging: `before` the last id of a page gives the next one.
        let (_, first) = ts
            .get(
                &f.view,
                "/orgs/acme/audit_logs?resource_type=product&limit=2",
            )
            .await;
        let last = first["data"][1]["id"].as_i64().unwrap();
        let (_, next) = ts
            .get(
                &f.view,
                &format!("/orgs/acme/audit_logs?resource_type=product&limit=2&before={last}"),
            )
            .await;
        let resources: Vec<&str> = next["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource_id"].as_str().unwrap())
            .collect();
        assert_eq!(resources, ["two", "one"]);
        assert!(next["data"][0]["id"].as_i64().unwrap() < last);

        // Bad values: 400 with a message naming the parameter.
        for (query, word) in [
            ("before=abc", "before"),
            ("before=0", "before"),
            ("before=-5", "before"),
            ("resource_type=a%20b", "resource_type"),
            ("action=drop;table", "action"),
            ("limit=abc", "limit"),
        ] {
            let (status, body) = ts
                .get(&f.view, &format!("/orgs/acme/audit_logs?{query}"))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            let detail = body["errors"]["detail"].as_str().unwrap();
            assert!(detail.contains(word), "{query}: {detail}");
        }
        let long = format!("/orgs/acme/audit_logs?action={}", "a".repeat(101));
        assert_eq!(ts.get(&f.view, &long).await.0, StatusCode::BAD_REQUEST);

        // Members only, as before.
        let (status, _) = ts
            .get(&f.outsider, "/orgs/acme/audit_logs?action=create")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        ts.stop().await;
    }
}

#[tokio::test]
async fn signing_keys_show_when_they_were_added() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let f = ts.org_fixture("acme").await;
        let (status, body) = ts
            .post(
                &f.admin,
                "/orgs/acme/keys",
                json!({"name": "prod", "key": FWUP_KEY_PUB}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let created_at = body["data"]["inserted_at"].as_str().unwrap().to_owned();
        assert!(created_at.ends_with('Z'), "{body}");
        let (status, body) = ts.get(&f.view, "/orgs/acme/keys").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"][0]["inserted_at"], created_at.as_str());
        let (_, body) = ts.get(&f.view, "/orgs/acme/keys/prod").await;
        assert_eq!(body["data"]["inserted_at"], created_at.as_str());
        ts.stop().await;
    }
}
