//! The outside services tests run on, from the environment: PostgreSQL
//! (`NERVESHUB_TEST_DATABASE_URL`) and the S3 test server (`NERVESHUB_TEST_S3_*`).

use crate::skip::skip_or_fail;

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Which database a test server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestDb {
    /// SQLite in the server's data directory.
    Sqlite,
    /// The admin URL of a PostgreSQL server; each test server makes its own database there.
    Postgres(String),
}

impl TestDb {
    /// `sqlite` or `postgres`, for test messages.
    pub fn name(&self) -> &'static str {
        match self {
            TestDb::Sqlite => "sqlite",
            TestDb::Postgres(_) => "postgres",
        }
    }
}

/// SQLite, plus PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` names a server. Without it the
/// PostgreSQL half is skipped (printed), or fails under `NERVESHUB_CI=1`.
pub fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::Sqlite];
    match var("NERVESHUB_TEST_DATABASE_URL") {
        Some(url) => dbs.push(TestDb::Postgres(url)),
        None => skip_or_fail(
            "PostgreSQL (set NERVESHUB_TEST_DATABASE_URL=postgres://… to run this test on it too)",
        ),
    }
    dbs
}

/// The PostgreSQL admin URL (`NERVESHUB_TEST_DATABASE_URL`) for a test that runs on
/// PostgreSQL only; `None` after printing the skip (a failure under `NERVESHUB_CI=1`).
pub fn postgres_admin_url() -> Option<String> {
    let url = var("NERVESHUB_TEST_DATABASE_URL");
    if url.is_none() {
        skip_or_fail(
            "this test needs PostgreSQL (set NERVESHUB_TEST_DATABASE_URL=postgres://… to run it)",
        );
    }
    url
}

/// An S3-protocol server for the tests, from the environment `.ci/s3-server` exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Server {
    /// `NERVESHUB_TEST_S3_ENDPOINT`, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// `NERVESHUB_TEST_S3_BUCKET`, a bucket tests make their own prefixes in.
    pub bucket: String,
}

/// The S3 test server when `NERVESHUB_TEST_S3_ENDPOINT`, `NERVESHUB_TEST_S3_BUCKET`,
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are all set; otherwise `None` after
/// printing the skip (a failure under `NERVESHUB_CI=1`).
pub fn s3_server() -> Option<S3Server> {
    match (
        var("NERVESHUB_TEST_S3_ENDPOINT"),
        var("NERVESHUB_TEST_S3_BUCKET"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(endpoint), Some(bucket), Some(_), Some(_)) => Some(S3Server { endpoint, bucket }),
        _ => {
            skip_or_fail(
                "S3 storage (source .ci/s3-server, or set NERVESHUB_TEST_S3_ENDPOINT, NERVESHUB_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            );
            None
        }
    }
}
