//! Signed-in browsers: the session cookie, the CSRF token of every form, and the flash
//! message a redirect leaves for the next page.
//!
//! The cookie holds 32 random bytes (`HttpOnly`, `SameSite=Lax`, `Secure` over HTTPS); the
//! database holds only their SHA-256. The CSRF token is derived from the cookie's secret, so
//! it needs no storage and a page from another origin cannot know it; every state-changing
//! request carries it as the `_csrf` form field, the `X-CSRF-Token` header or, for file
//! uploads (multipart), the `_csrf` query parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::backend::WebState;
use super::page::{Flash, WebError};
use crate::db::UserRow;

pub(crate) const SESSION_COOKIE: &str = "nh_session";
const FLASH_COOKIE: &str = "nh_flash";
/// The largest form body accepted (file uploads go straight to the API instead).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A signed-in user's request.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: UserRow,
    /// The SHA-256 of the cookie's secret, as stored.
    pub(crate) secret_hash: String,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    /// The message the previous request left (shown once).
    pub(crate) flash: Option<Flash>,
}

/// A new random secret, in its cookie form.
pub(crate) fn new_secret() -> Result<String, WebError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| WebError::internal("random", e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) fn secret_hash(secret: &str) -> String {
    crate::hex::upper(&Sha256::digest(secret.as_bytes()))
}

/// The CSRF token of the session whose cookie secret hashes to `secret_hash`.
fn csrf_token(secret_hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"nerveshub-rs web csrf\0");
    hasher.update(secret_hash.as_bytes());
    crate::hex::upper(&hasher.finalize())
}

/// Compares without stopping at the first difference.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, and `Secure` when asked.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// The `Set-Cookie` of a new session.
pub(crate) fn session_cookie(secret: &str, secure: bool) -> String {
    set_cookie(
        SESSION_COOKIE,
        secret,
        crate::db::web_sessions::ABSOLUTE_MS / 1000,
        secure,
    )
}

/// The `Set-Cookie` that leaves `flash` for the next page.
pub(crate) fn flash_cookie(flash: &Flash, secure: bool) -> String {
    set_cookie(FLASH_COOKIE, &flash.encode(), 60, secure)
}

/// The `Set-Cookie` that clears the flash message once shown.
pub(crate) fn clear_flash_cookie(secure: bool) -> String {
    set_cookie(FLASH_COOKIE, "", 0, secure)
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, web: &WebState) -> Result<Self, WebError> {
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(session.clone());
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let secret = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or(WebError::SignIn { next: next.clone() })?;
        let hash = secret_hash(secret);
        let user = web
            .app
            .db
            .web_session_user(&hash, web.app.clock.now_ms())
            .await
            .map_err(|e| WebError::internal("session", e))?
            .ok_or(WebError::SignIn { next })?;
        let session = Session {
            user,
            csrf: csrf_token(&hash),
            secret_hash: hash,
            flash: cookie(&parts.headers, FLASH_COOKIE).and_then(Flash::decode),
        };
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// A form posted by a signed-in user, its CSRF token checked: the only way a handler that
/// changes something gets its input.
#[derive(Debug)]
pub(crate) struct Posted<T> {
    pub(crate) session: Session,
    pub(crate) form: T,
}

/// A form with no fields but the token (buttons).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NoFields {}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Checks the request's CSRF token (header, query, then form field `body`) against the
/// session's.
pub(crate) fn check_csrf(
    parts: &Parts,
    session: &Session,
    body: Option<&[u8]>,
) -> Result<(), WebError> {
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from_query = || {
        parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<CsrfField>(q).ok())
            .and_then(|f| f.csrf)
    };
    let from_body = || {
        body.and_then(|b| serde_urlencoded::from_bytes::<CsrfField>(b).ok())
            .and_then(|f| f.csrf)
    };
    let presented = from_header.or_else(from_query).or_else(from_body);
    match presented {
        Some(token) if same_token(&token, &session.csrf) => Ok(()),
        _ => Err(WebError::Refused {
            status: StatusCode::FORBIDDEN,
            messages: vec![
                "The form's security token is missing or wrong. Reload the page and try again."
                    .to_owned(),
            ],
        }),
    }
}

impl<T: DeserializeOwned + Send> FromRequest<WebState> for Posted<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, web: &WebState) -> Result<Self, WebError> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, web).await?;
        let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| WebError::Refused {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                messages: vec!["The form is too large.".to_owned()],
            })?;
        check_csrf(&parts, &session, Some(&bytes))?;
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| WebError::Refused {
            status: StatusCode::BAD_REQUEST,
            messages: vec![format!("The form could not be read: {e}")],
        })?;
        Ok(Posted { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; nh_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "nh_session"), Some("abc"));
        assert_eq!(cookie(&headers, "nh"), None);
        assert!(set_cookie("x", "y", 5, true).ends_with("; Secure"));
        assert!(!set_cookie("x", "y", 5, false).contains("Secure"));
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_whole() {
        let a = csrf_token(&secret_hash("one"));
        let b = csrf_token(&secret_hash("two"));
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..10]));
    }
}
