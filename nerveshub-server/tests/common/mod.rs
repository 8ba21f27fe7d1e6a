//! The server test harness: a real `RunningServer` on loopback, on SQLite (always) and on
//! PostgreSQL (when `NERVESHUB_TEST_DATABASE_URL` is set; each server gets a fresh database).
#![allow(dead_code, unreachable_pub)] // shared by several test binaries

use nerveshub_server::{Config, RunningServer};
use nerveshub_test_support::postgres::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use nerveshub_test_support::TestDb;

/// SQLite, plus PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` names one (skipped with a
/// message without it, a failure under `NERVESHUB_CI=1`).
pub async fn databases() -> Vec<TestDb> {
    nerveshub_test_support::databases()
}

/// Members of one org, each with their own API token.
#[derive(Debug, Clone)]
pub struct OrgFixture {
    pub org: String,
    pub admin: String,
    pub manage: String,
    pub view: String,
    /// A user who belongs to another org only.
    pub outsider: String,
    /// The other org, where `outsider` is admin.
    pub other_org: String,
}

/// A running server with its data directory and first admin's token.
pub struct TestServer {
    pub server: RunningServer,
    pub db: TestDb,
    pub admin_token: String,
    pub data_dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pg: Option<TestDatabase>,
}

impl TestServer {
    pub async fn start(db: TestDb) -> TestServer {
        TestServer::start_with(db, |_| {}).await
    }

    /// Starts a server on loopback (both ports chosen by the system), with `adjust` applied
    /// to its configuration.
    pub async fn start_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let pg = match &db {
            TestDb::Sqlite => None,
            TestDb::Postgres(url) => Some(TestDatabase::create(url, "nhtest").await),
        };
        let mut config = Config::new(data_dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = pg.as_ref().map(TestDatabase::url);
        adjust(&mut config);
        let server = RunningServer::start(config).await.unwrap();
        let admin_token = server
            .first_admin()
            .expect("a first start makes an admin")
            .token
            .clone();
        TestServer {
            server,
            db,
            admin_token,
            data_dir,
            http: reqwest::Client::new(),
            pg,
        }
    }

    /// Another node on this server's database and data directory (so the same TLS identity
    /// and shared-secrets key), with `adjust` applied. Stop it before this one: this one drops
    /// the database.
    pub async fn start_peer(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::new(self.data_dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = self.pg.as_ref().map(TestDatabase::url);
        adjust(&mut config);
        let server = RunningServer::start(config).await.unwrap();
        TestServer {
            server,
            db: self.db.clone(),
            admin_token: self.admin_token.clone(),
            // Unused: the peer works in this server's directory.
            data_dir: tempfile::tempdir().unwrap(),
            http: reqwest::Client::new(),
            pg: None,
        }
    }

    /// The PostgreSQL URL of this server's database, if it has one.
    pub fn database_url(&self) -> Option<String> {
        self.pg.as_ref().map(TestDatabase::url)
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(self) {
        self.server.shutdown().await;
        if let Some(pg) = self.pg {
            pg.drop_database().await;
        }
    }

    /// `http://127.0.0.1:<port>/api<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}/api{path}", self.server.api_addr())
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.api(path));
        if let Some(token) = token {
            request = request.header("authorization", format!("token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, Some(token), path, None)
            .await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, Some(token), path, Some(body))
            .await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PUT, Some(token), path, Some(body))
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, Some(token), path, None)
            .await
    }

    /// Creates a user (as the server admin) and signs in: returns their token.
    pub async fn user(&self, email: &str) -> String {
        let password = "a long test password";
        let (status, body) = self
            .post(
                &self.admin_token,
                "/users",
                json!({"email": email, "password": password, "name": email}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                None,
                "/users/auth",
                Some(json!({"email": email, "password": password, "note": "test"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["token"].as_str().unwrap().to_owned()
    }

    /// Org `org` with an admin, a manager and a viewer, plus an outsider who is admin of
    /// `<org>-other`.
    pub async fn org_fixture(&self, org: &str) -> OrgFixture {
        let admin = self.user(&format!("admin@{org}.test")).await;
        let manage = self.user(&format!("manage@{org}.test")).await;
        let view = self.user(&format!("view@{org}.test")).await;
        let outsider = self.user(&format!("outsider@{org}.test")).await;
        let (status, body) = self.post(&admin, "/orgs", json!({"name": org})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for (who, role) in [("manage", "manage"), ("view", "view")] {
            let (status, body) = self
                .post(
                    &admin,
                    &format!("/orgs/{org}/users"),
                    json!({"email": format!("{who}@{org}.test"), "role": role}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let other_org = format!("{org}-other");
        let (status, body) = self
            .post(&outsider, "/orgs", json!({"name": other_org}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        OrgFixture {
            org: org.to_owned(),
            admin,
            manage,
            view,
            outsider,
            other_org,
        }
    }
}
