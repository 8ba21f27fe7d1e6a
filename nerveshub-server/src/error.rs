//! The server's two error boundaries: [`ServerError`] for starting and running the server,
//! [`ApiError`] for answers on the management API (the only place that knows status codes).

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What NervesHub answers for a missing org, a non-member, or a role that is too low.
pub(crate) const NOT_FOUND_OR_INSUFFICIENT: &str =
    "Resource Not Found or Authorization Insufficient";

/// An error starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is inconsistent or names something that cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened, migrated or queried.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database schema could not be migrated.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A certificate or key could not be generated or loaded.
    #[error("certificates: {0}")]
    Pki(#[from] nerveshub_pki::Error),
    /// The TLS configuration was refused.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The database URL names a database this build leaves out (crate feature `sqlite` or
    /// `postgres`).
    #[error("database: this server was built without {backend} (crate feature `{feature}`)")]
    DatabaseNotCompiled {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The crate feature that adds it.
        feature: &'static str,
    },
    /// The storage configuration names a backend this build leaves out (crate feature `s3`).
    #[error("storage: this server was built without {backend} (crate feature `{feature}`)")]
    StorageNotCompiled {
        /// `S3`.
        backend: &'static str,
        /// The crate feature that adds it.
        feature: &'static str,
    },
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// An answer other than success on the management API, shaped as NervesHub's
/// (`{"errors":{"detail":…}}`, or `{"errors":{field:[…]}}` for validation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No usable API token: 401.
    #[error("unauthorized")]
    Unauthorized,
    /// The org does not exist or the caller is not a member: 404, saying nothing more.
    #[error("{NOT_FOUND_OR_INSUFFICIENT}")]
    NotFoundOrInsufficient,
    /// The caller's role is too low: 403.
    #[error("forbidden")]
    Forbidden,
    /// A named thing inside an org the caller may see does not exist: 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Invalid input, per field: 422.
    #[error("validation failed")]
    Validation(BTreeMap<String, Vec<String>>),
    /// The request cannot be carried out in the resource's current state: 409.
    #[error("{0}")]
    Conflict(String),
    /// A malformed request: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than allowed: 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many attempts; retry after this many seconds: 429 with `Retry-After`.
    #[error("too many attempts; retry in {0} s")]
    TooManyRequests(u64),
    /// A fault on our side: 500 with a generic body. The error (and its whole `source()`
    /// chain) travels with the response to the one middleware that logs it
    /// (`observability::log_server_errors`); nothing of it reaches the caller.
    #[error("internal error: {0}")]
    Internal(#[source] InternalError),
}

/// Any error, boxed, as [`InternalError`] keeps its cause.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A fault on the server's side: what was being done, and the error that stopped it (absent
/// when the fault is a broken invariant of our own rather than a failed call).
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct InternalError {
    context: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl InternalError {
    /// A fault caused by `source` while doing `context`.
    pub(crate) fn caused(
        context: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        InternalError {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A broken invariant of our own: nothing failed below us, so no cause.
    pub(crate) fn broken(context: impl Into<Cow<'static, str>>) -> Self {
        InternalError {
            context: context.into(),
            source: None,
        }
    }

    /// What was being done when the fault happened.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl ApiError {
    /// A 422 answer for one field.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    /// A 500 caused by `source` while doing `context` (both logged, neither shown).
    pub(crate) fn internal(
        context: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        ApiError::Internal(InternalError {
            context: context.into(),
            source: Some(source.into()),
        })
    }

    /// A 500 for a broken invariant of our own: nothing failed below us, so no cause.
    pub(crate) fn bug(context: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Internal(InternalError {
            context: context.into(),
            source: None,
        })
    }
}

impl From<sqlx::Error> for ApiError {
    /// Races between requests surface as database errors; they are the caller's to retry or
    /// resolve, never a 500: a row that vanished or is still referenced (foreign key), a
    /// duplicate that slipped past a handler's own check (unique), and lock or serialization
    /// conflicts (SQLite's busy/locked, PostgreSQL's serialization failure and deadlock).
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_foreign_key_violation(&e) {
            return ApiError::Conflict(
                "a record this request refers to was removed or is still in use by another; \
                 reload and try again"
                    .into(),
            );
        }
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApiError::Conflict(
                    "a record with the same unique value was created at the same time".into(),
                );
            }
            if is_lock_conflict(db.as_ref()) {
                return ApiError::Conflict(
                    "a concurrent change to the same records won; try again".into(),
                );
            }
        }
        ApiError::internal("database", e)
    }
}

/// Whether a database error is a lock or serialization conflict between transactions.
fn is_lock_conflict(e: &dyn sqlx::error::DatabaseError) -> bool {
    match e.code().as_deref() {
        // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
        Some("40001" | "40P01" | "55P03") => true,
        // SQLite: SQLITE_BUSY and SQLITE_LOCKED with their extended codes (the low byte).
        // SQLite's codes are short decimal numbers; PostgreSQL's are always five characters.
        Some(code) if code.len() < 5 => {
            code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
        }
        Some(_) => false,
        None => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = |status: StatusCode, detail: &str| {
            (status, Json(json!({"errors": {"detail": detail}}))).into_response()
        };
        match self {
            ApiError::Unauthorized => detail(StatusCode::UNAUTHORIZED, NOT_FOUND_OR_INSUFFICIENT),
            ApiError::NotFoundOrInsufficient => {
                detail(StatusCode::NOT_FOUND, NOT_FOUND_OR_INSUFFICIENT)
            }
            ApiError::Forbidden => detail(StatusCode::FORBIDDEN, NOT_FOUND_OR_INSUFFICIENT),
            ApiError::NotFound(what) => detail(StatusCode::NOT_FOUND, &format!("{what} not found")),
            ApiError::Validation(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": fields })),
            )
                .into_response(),
            ApiError::Conflict(msg) => detail(StatusCode::CONFLICT, &msg),
            ApiError::BadRequest(msg) => detail(StatusCode::BAD_REQUEST, &msg),
            ApiError::PayloadTooLarge(msg) => detail(StatusCode::PAYLOAD_TOO_LARGE, &msg),
            ApiError::TooManyRequests(seconds) => {
                let mut response = detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("too many sign-in attempts; retry in {seconds} s"),
                );
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(seconds),
                );
                response
            }
            ApiError::Internal(error) => {
                let mut response =
                    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
                crate::observability::attach_cause(&mut response, error);
                response
            }
        }
    }
}
