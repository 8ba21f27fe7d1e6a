//! How pages reach the server: the management API, called in-process as the signed-in user.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tower::ServiceExt;

use super::page::{PageContext, WebError};
use super::session::Session;
use crate::auth::{Role, SignedIn};
use crate::db::UserRow;
use crate::state::AppState;

/// The largest API answer a page reads (a page of devices is far smaller).
const MAX_API_ANSWER: usize = 16 * 1024 * 1024;

/// What the web handlers share.
#[derive(Clone)]
pub(crate) struct WebState {
    pub(crate) app: AppState,
    /// The management API's router, called in-process.
    api: Router,
    /// Whether cookies carry `Secure` (served over HTTPS).
    pub(crate) secure_cookies: bool,
}

impl WebState {
    pub(crate) fn new(app: AppState, secure_cookies: bool) -> Self {
        WebState {
            api: crate::api::router(app.clone()),
            app,
            secure_cookies,
        }
    }

    /// Sends `request` (its path under `/api`) to the API as `user`.
    pub(crate) async fn send(&self, user: &UserRow, mut request: Request<Body>) -> Response {
        request.extensions_mut().insert(SignedIn(user.clone()));
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Calls `method path` (relative to `/api`; segments encoded with [`seg`]) with an
    /// optional JSON body, as the session's user. Returns the answer's `data` (`Null` for
    /// 204), or the API's refusal with its status and messages.
    pub(crate) async fn call(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebError> {
        let builder = Request::builder().method(method).uri(format!("/api{path}"));
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .map_err(|e| WebError::internal("building an API request", e))?;
        let response = self.send(&session.user, request).await;
        read_answer(response).await
    }

    pub(crate) async fn get(&self, session: &Session, path: &str) -> Result<Value, WebError> {
        self.call(session, Method::GET, path, None).await
    }

    pub(crate) async fn post(
        &self,
        session: &Session,
        path: &str,
        body: &Value,
    ) -> Result<Value, WebError> {
        self.call(session, Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(
        &self,
        session: &Session,
        path: &str,
        body: &Value,
    ) -> Result<Value, WebError> {
        self.call(session, Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, session: &Session, path: &str) -> Result<Value, WebError> {
        self.call(session, Method::DELETE, path, None).await
    }

    /// The page context for `org` (and `product`): the session, its CSRF token, and the
    /// user's role there, which pages use only to hide buttons the API would refuse.
    pub(crate) async fn context(
        &self,
        session: &Session,
        org: Option<&str>,
        product: Option<&str>,
    ) -> Result<PageContext, WebError> {
        let role: Option<Role> = match org {
            Some(org) => self
                .app
                .db
                .membership(session.user.id, org)
                .await
                .map_err(|e| WebError::internal("membership", e))?
                .map(|m| m.role),
            None => None,
        };
        Ok(PageContext {
            user: session.user.clone(),
            csrf: session.csrf.clone(),
            org: org.map(str::to_owned),
            product: product.map(str::to_owned),
            role,
            flash: session.flash.clone(),
        })
    }
}

/// An API answer's `data`, or the refusal it carries.
pub(crate) async fn read_answer(response: Response) -> Result<Value, WebError> {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_API_ANSWER)
        .await
        .map_err(|e| WebError::internal("reading an API answer", e))?;
    let json: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    if status.is_success() {
        return Ok(json.get("data").cloned().unwrap_or(json));
    }
    Err(WebError::Refused {
        status,
        messages: error_messages(status, &json),
    })
}

/// The API's error body in sentences: `{"errors":{"detail":"…"}}` or
/// `{"errors":{"field":["…"]}}`.
fn error_messages(status: StatusCode, json: &Value) -> Vec<String> {
    let mut messages = Vec::new();
    if let Some(errors) = json.get("errors").and_then(Value::as_object) {
        for (field, value) in errors {
            let texts: Vec<String> = match value {
                Value::String(text) => vec![text.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                other => vec![other.to_string()],
            };
            for text in texts {
                if field == "detail" {
                    messages.push(text);
                } else {
                    messages.push(format!("{field}: {text}"));
                }
            }
        }
    }
    if messages.is_empty() {
        messages.push(
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        );
    }
    messages
}

/// One path segment, percent-encoded for a URL path (names may hold `.` or `@`).
pub(crate) fn seg(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("acme"), "acme");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("user@example.com"), "user%40example.com");
        assert_eq!(seg(".."), "..");
    }

    #[test]
    fn api_errors_become_sentences() {
        let detail = serde_json::json!({"errors": {"detail": "Not found"}});
        assert_eq!(
            error_messages(StatusCode::NOT_FOUND, &detail),
            ["Not found"]
        );
        let fields = serde_json::json!({"errors": {"name": ["has already been taken"]}});
        assert_eq!(
            error_messages(StatusCode::UNPROCESSABLE_ENTITY, &fields),
            ["name: has already been taken"]
        );
        assert_eq!(
            error_messages(StatusCode::FORBIDDEN, &Value::Null),
            ["Forbidden"]
        );
    }
}
