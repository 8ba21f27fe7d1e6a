//! The NervesHub update server as a library.
//!
//! One process serves two listeners:
//! - the **management API** (plain HTTP, `127.0.0.1:4000` by default): JSON under `/api` with
//!   NervesHub's paths and shapes, token authentication (`Authorization: token nhu_…`), org
//!   roles admin > manage > view, and an OpenAPI document at `/api/openapi`; and on the same
//!   listener the **web UI** at `/` (server-rendered pages that call the API in-process as
//!   the signed-in user, so the same role rules apply);
//! - the **device endpoint** (HTTPS with rustls, `0.0.0.0:4001`): TLS 1.2 and 1.3, client
//!   certificates optional at the TLS layer and checked by `nerveshub-pki`.
//!
//! Data lives in SQLite (the default, in the data directory) or PostgreSQL, through one set of
//! queries (sqlx's `Any` driver) and migrations for each. Every change writes an audit-log row
//! in the same transaction.
//!
//! # Crate features
//!
//! All on by default; a product that needs less turns the defaults off
//! (`default-features = false`) and names what it uses:
//! - `sqlite`: SQLite databases (bundled; the default database, in the data directory).
//! - `postgres`: PostgreSQL databases (`Config::database_url = postgres://…`), and with them
//!   several nodes on one database.
//! - `s3`: firmware in S3 ([`StorageConfig::S3`]).
//!
//! Asking at run time for what the build leaves out is refused when the server starts, with
//! [`ServerError::DatabaseNotCompiled`] or [`ServerError::StorageNotCompiled`] naming the
//! feature. Local firmware storage is always there.
//!
//! The cryptography is the caller's too: [`Config::crypto_provider`] (rustls' aws-lc-rs by
//! default) serves every TLS listener and checks device certificates.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), nerveshub_server::ServerError> {
//! let mut config = nerveshub_server::Config::new("./nerveshub-data");
//! config.api_addr = "127.0.0.1:0".parse().expect("address");
//! let server = nerveshub_server::RunningServer::start(config).await?;
//! if let Some(admin) = server.first_admin() {
//!     println!("admin token: {}", admin.token);
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Embedding it in a product
//!
//! Two places take a product's own parts, beside the crypto provider and the clock:
//! - **Firmware storage**: [`StorageConfig::ObjectStore`] takes any
//!   [`object_store::ObjectStore`] (Google Cloud Storage, Azure, an in-house store). Devices
//!   download from it through the server's own signed, expiring URLs on the device endpoint.
//! - **Routes**: [`Config::api_extension`] is an [`axum::Router`] served on the API listeners
//!   under `/ext` ([`EXTENSION_PREFIX`]), with the listeners' limits, hardening and metrics.
//!
//! The crate re-exports the `axum` and `object_store` it was built with, so a product's types
//! match.
//!
//! ```no_run
//! use std::sync::Arc;
//! use nerveshub_server::axum::{Router, routing::get};
//! use nerveshub_server::object_store::memory::InMemory;
//! use nerveshub_server::{Config, RunningServer, StorageConfig};
//!
//! # async fn run() -> Result<(), nerveshub_server::ServerError> {
//! let mut config = Config::new("./nerveshub-data");
//! config.storage = StorageConfig::ObjectStore {
//!     store: Arc::new(InMemory::new()),
//!     name: "memory://firmware".to_owned(),
//! };
//! // Served at GET /ext/hello on the management API's listener.
//! config.api_extension = Some(Router::new().route("/hello", get(|| async { "hello" })));
//! let server = RunningServer::start(config).await?;
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod auth;
mod clock;
mod cluster;
mod config;
mod db;
mod device;
mod device_endpoint;
mod error;
mod files;
mod fleet;
mod hex;
mod listener;
mod observability;
mod server;
mod state;
mod storage;
mod time;
mod tls;
mod user_ca;
mod web;

#[doc(hidden)]
pub mod fuzzing;

/// The `axum` this crate serves with: [`Config::api_extension`] is one of its routers.
pub use axum;
pub use clock::{Clock, ManualClock};
pub use cluster::{DrainPacing, NodeRole};
pub use config::{Config, DEFAULT_MAX_FIRMWARE_SIZE, EXTENSION_PREFIX, StorageConfig};
pub use error::{ApiError, InternalError, ServerError};
pub use listener::ConnectionLimits;
/// The `object_store` this crate stores firmware with: [`StorageConfig::ObjectStore`] takes
/// one of its stores.
pub use object_store;
pub use server::{FirstAdmin, RunningServer, reset_password};

/// The OpenAPI 3 document of the management API (also served at `GET /api/openapi`).
pub fn openapi_document() -> serde_json::Value {
    api::docs_openapi()
}
