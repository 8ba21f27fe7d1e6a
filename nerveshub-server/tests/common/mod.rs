//! The server test harness: a real `RunningServer` on loopback, on SQLite (always) and on
//! PostgreSQL (when `NERVESHUB_TEST_DATABASE_URL` is set; each server gets a fresh database).
#![allow(dead_code, unreachable_pub, clippy::print_stderr)] // shared by several test binaries; says what it skips

use std::sync::atomic::{AtomicU32, Ordering};

use nerveshub_server::{Config, RunningServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Which database a test server uses.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite,
    /// The admin URL of a PostgreSQL server; each TestServer makes its own database there.
    Postgres(String),
}

impl TestDb {
    pub fn name(&self) -> &'static str {
        match self {
            TestDb::Sqlite => "sqlite",
            TestDb::Postgres(_) => "postgres",
        }
    }
}

/// Whether missing services must fail tests instead of skipping them (CI).
pub fn ci() -> bool {
    std::env::var("NERVESHUB_CI").is_ok_and(|v| v == "1")
}

/// SQLite, plus PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` names one.
#[allow(clippy::print_stderr)] // the `skipped:` line is the test's report
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::Sqlite];
    match std::env::var("NERVESHUB_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => dbs.push(TestDb::Postgres(url)),
        _ => {
            assert!(
                !ci(),
                "NERVESHUB_CI=1 but NERVESHUB_TEST_DATABASE_URL is not set: the PostgreSQL suite cannot run"
            );
            eprintln!(
                "skipped: PostgreSQL (set NERVESHUB_TEST_DATABASE_URL=postgres://… to run this test on it too)"
            );
        }
    }
    dbs
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database, dropped when the server stops.
struct PgDatabase {
    admin_url: String,
    name: String,
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin_execute(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to NERVESHUB_TEST_DATABASE_URL: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

impl PgDatabase {
    async fn create(admin_url: &str) -> PgDatabase {
        let name = format!(
            "nhtest_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        admin_execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    fn url(&self) -> String {
        replace_database(&self.admin_url, &self.name)
    }

    async fn drop_database(self) {
        admin_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
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
    pg: Option<PgDatabase>,
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
            TestDb::Postgres(url) => Some(PgDatabase::create(url).await),
        };
        let mut config = Config::new(data_dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = pg.as_ref().map(PgDatabase::url);
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
        config.database_url = self.pg.as_ref().map(PgDatabase::url);
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
        self.pg.as_ref().map(PgDatabase::url)
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
