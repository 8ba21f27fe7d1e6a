//! The device endpoint's answers as HTTP: how the device socket's refusals ([`DeviceError`])
//! and firmware downloads ([`Download`], [`DownloadError`]) become responses. The device and
//! storage code decide *what* happened; only this module (with the rest of `api/`) knows the
//! status codes and headers that say it.
//!
//! Every device refusal carries `Date`: newer nerves_hub_link re-signs NH1 headers with it
//! when its clock is off.

use axum::body::Body;
use axum::http::header::{self, DATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::observability::attach_cause;
use crate::storage::StorageError;

/// NervesHub's header naming why a connection was refused.
pub(crate) const ERROR_REASON_HEADER: &str = "nh-connection-error-reason";
/// Its text when a device sent no credentials at all (NervesHub's words).
pub(crate) const NO_CREDENTIALS_REASON: &str =
    "no certificate pair or shared secrets connection settings were provided";
/// Its text when the database could not be reached (NervesHub's words).
pub(crate) const UNAVAILABLE_REASON: &str =
    "the platform could not be reached, please try again later";

/// Why a device's WebSocket upgrade was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeviceError {
    /// The `vsn` query names a serializer we do not speak: 400.
    #[error("unsupported vsn")]
    UnsupportedVsn,
    /// Neither a certificate nor NH1 headers: 401 with NervesHub's reason header.
    #[error("no credentials")]
    NoCredentials,
    /// Credentials that do not check out: 401, saying nothing more.
    #[error("invalid credentials")]
    Unauthorized,
    /// The database could not be reached: 503 with the reason header and `Retry-After`
    /// (5–15 s, spread, so devices refused together do not come back together).
    #[error("device authentication failed on the database")]
    Unavailable(#[source] sqlx::Error),
}

impl IntoResponse for DeviceError {
    fn into_response(self) -> Response {
        let (status, reason, body) = match &self {
            DeviceError::UnsupportedVsn => (StatusCode::BAD_REQUEST, None, "unsupported vsn"),
            DeviceError::NoCredentials => (
                StatusCode::UNAUTHORIZED,
                Some(NO_CREDENTIALS_REASON),
                "no credentials",
            ),
            DeviceError::Unauthorized => (StatusCode::UNAUTHORIZED, None, ""),
            DeviceError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(UNAVAILABLE_REASON),
                "",
            ),
        };
        let mut response = (status, body).into_response();
        if let Some(reason) = reason {
            response
                .headers_mut()
                .insert(ERROR_REASON_HEADER, HeaderValue::from_static(reason));
        }
        if let DeviceError::Unavailable(_) = self {
            // Saturated or down: nerves_hub_link backs off on its own; a client that reads
            // the header waits at least this.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after());
            attach_cause(&mut response, self);
        }
        with_date(response)
    }
}

/// 5 to 15 seconds, so devices refused together do not come back together.
fn retry_after() -> HeaderValue {
    let mut byte = [0u8; 1];
    // Without randomness every refused device is told 10 s, which is still a valid answer.
    let spread = getrandom::fill(&mut byte).map_or(5, |()| u32::from(byte[0] % 11));
    HeaderValue::from(5 + spread)
}

/// `response` with `Date` (see the module documentation).
pub(crate) fn with_date(mut response: Response) -> Response {
    if let Some(date) = http_date(std::time::SystemTime::now()) {
        response.headers_mut().insert(DATE, date);
    }
    response
}

fn http_date(at: std::time::SystemTime) -> Option<HeaderValue> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let text = time::OffsetDateTime::from(at).format(format).ok()?;
    HeaderValue::from_str(&text).ok()
}

/// Why a signed firmware download (`GET /firmware/<key>?…`) was not served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// The URL's signature is valid but its time is up: 403.
    #[error("download URL expired")]
    Expired,
    /// The URL is not one we signed: 403.
    #[error("invalid download URL")]
    InvalidUrl,
    /// No such object: 404.
    #[error("firmware not found")]
    NotFound,
    /// The range starts past the object's `len` bytes: 416 with `Content-Range: bytes */len`.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The object's size.
        len: u64,
    },
    /// Storage failed: 500, the cause logged and never shown.
    #[error("serving firmware failed")]
    Storage(#[source] StorageError),
}

impl IntoResponse for DownloadError {
    fn into_response(self) -> Response {
        let plain = |status: StatusCode, message: &'static str| (status, message).into_response();
        match self {
            DownloadError::Expired => plain(StatusCode::FORBIDDEN, "download URL expired"),
            DownloadError::InvalidUrl => plain(StatusCode::FORBIDDEN, "invalid download URL"),
            DownloadError::NotFound => plain(StatusCode::NOT_FOUND, "firmware not found"),
            DownloadError::RangeNotSatisfiable { len } => {
                let mut response =
                    plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{len}")),
                );
                response
            }
            DownloadError::Storage(_) => {
                let mut response =
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
                attach_cause(&mut response, self);
                response
            }
        }
    }
}

/// A firmware object (or one range of it) on its way to a device.
#[derive(Debug)]
pub(crate) struct Download {
    /// The bytes to send.
    pub(crate) body: Body,
    /// How many bytes `body` holds.
    pub(crate) body_len: u64,
    /// The whole object's size.
    pub(crate) len: u64,
    /// The inclusive range sent, when the device asked for one we honour: 206.
    pub(crate) range: Option<(u64, u64)>,
    /// The object's ETag, quoted.
    pub(crate) etag: Option<String>,
}

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        let mut response = Response::new(self.body);
        if self.range.is_some() {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body_len));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(etag) = self.etag {
            h.insert(header::ETAG, header_value(&etag));
        }
        if let Some((start, end)) = self.range {
            h.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{}", self.len)),
            );
        }
        response
    }
}

/// A header value from text we made (digits, `bytes`, quotes, hex): always valid; anything
/// else becomes an empty value rather than a panic.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
