//! Test harnesses shared by the nerveshub crates' tests. Dev-only: every crate lists it
//! under `[dev-dependencies]`, and it is not published.
//!
//! - The CI rule for tests that need an outside tool or service: without it a test prints
//!   `skipped: <why>` and passes, but under `NERVESHUB_CI=1` (set by `.ci/run`) it fails
//!   ([`skip_or_fail`], [`ci`], [`on_path`]).
//! - The databases a server test runs on ([`databases`], [`TestDb`]): SQLite always,
//!   PostgreSQL when `NERVESHUB_TEST_DATABASE_URL` names a server; with feature `postgres`, a
//!   fresh database there per test (`postgres::TestDatabase`).
//! - The S3 test server `.ci/s3-server` starts ([`s3_server`]).
//! - Names no other test or test process uses ([`unique_name`]).
//! - With feature `device`, the peers of device tests (`device`): certificates, A/B
//!   firmware, a device endpoint and a download server, as nerveshub-client's tests and the
//!   examples' end-to-end tests use them.
//!
//! # Crate features
//!
//! - `postgres` (off by default): `postgres::TestDatabase` and the SQL helpers behind it,
//!   through sqlx with the PostgreSQL driver.
//! - `device` (off by default): `device`, on nerveshub-client, -proto, -fwup and -pki (and
//!   tokio, rustls). A crate's integration tests may use it even when that crate is one of
//!   these: they link the same copy of it.
//!
//! Without features the crate has no dependencies, so the libraries' own tests (fwup, pki,
//! proto) use it without building the server's.

#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "postgres")]
pub mod postgres;
mod services;
mod skip;

pub use services::{S3Server, TestDb, databases, postgres_admin_url, s3_server};
pub use skip::{ci, find_on_path, on_path, skip_or_fail, unique_name};
