//! The management API: JSON under `/api`, NervesHub's paths and shapes. Every route is added
//! through [`Api`], which records it for the OpenAPI document, so the two cannot drift apart.

mod audit;
mod ca_certificates;
mod certificates;
mod deployments;
mod device_actions;
mod device_answers;
mod device_updates;
pub(crate) mod devices;
mod docs;
pub(crate) use docs::openapi as docs_openapi;
mod firmware_upload;
mod firmwares;
mod keys;
mod orgs;
mod products;
mod shared_secrets;
mod tokens;
mod user_certificates;
mod users;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) use device_answers::{
    DeviceError, Download, DownloadError, ERROR_REASON_HEADER, NO_CREDENTIALS_REASON,
    UNAVAILABLE_REASON, with_date,
};
pub(crate) use docs::{Endpoint, Method, Success};
pub(crate) use users::{MAX_PASSWORD_BYTES, valid_email};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token needed.
    Public,
    /// Any signed-in user.
    User,
    /// A server admin.
    ServerAdmin,
    /// A member of the org in the path with at least this role.
    Org(Role),
    /// An admin of the org in the path, or any server admin: the org's members, which a
    /// server admin can always repair when an org has lost its admins.
    OrgAdminOrServerAdmin,
}

/// The router being built, with the description of every route.
pub(crate) struct Api {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
    /// The state the route layers authorize against; `None` when only the endpoint
    /// descriptions are wanted (the OpenAPI document).
    state: Option<AppState>,
}

impl Api {
    fn new(state: Option<AppState>) -> Self {
        Api {
            router: Router::new(),
            endpoints: Vec::new(),
            state,
        }
    }

    /// Adds `handler` for `method` on `path` (axum syntax, `{param}`), described by `doc`.
    ///
    /// The endpoint's [`Access`] is enforced here, in one place, by a route layer that runs
    /// before the handler (and before its body is read): handlers get an authorized
    /// [`Caller`], with [`Caller::membership`] on org routes.
    pub(crate) fn route<H, T>(mut self, endpoint: Endpoint, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match endpoint.method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        };
        let mut method_router = on(filter, handler);
        if let Some(state) = &self.state {
            method_router = method_router.route_layer(middleware::from_fn_with_state(
                (state.clone(), endpoint.access),
                authorize,
            ));
        }
        self.router = self.router.route(endpoint.path, method_router);
        self.endpoints.push(endpoint);
        self
    }
}

/// The route layer: authenticates and authorizes the request as the route table says, and
/// hands the [`Caller`] to the handler through the request's extensions.
async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if access == Access::Public {
        return Ok(next.run(request).await);
    }
    let (mut parts, body) = request.into_parts();
    match check_access(&state, access, &mut parts).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            Ok(next.run(Request::from_parts(parts, body)).await)
        }
        Err(refusal) => {
            // Refused before the body was read: read (a bounded amount of) it anyway, so a
            // client still sending an upload gets this answer instead of a reset.
            firmware_upload::drain_body(body).await;
            Err(refusal)
        }
    }
}

/// The caller of a request, authenticated and authorized as `access` says.
async fn check_access(
    state: &AppState,
    access: Access,
    parts: &mut Parts,
) -> Result<Caller, ApiError> {
    let mut caller = Caller::authenticate(parts, state).await?;
    match access {
        Access::Public | Access::User => {}
        Access::ServerAdmin => {
            if !caller.user.is_server_admin() {
                return Err(ApiError::Forbidden);
            }
        }
        Access::Org(role) => {
            let org = org_in_path(parts, state).await?;
            caller.authorize_org(state, &org, role).await?;
        }
        Access::OrgAdminOrServerAdmin => {
            let org = org_in_path(parts, state).await?;
            if caller.user.is_server_admin() {
                caller.authorize_server_admin_in(state, &org).await?;
            } else {
                caller.authorize_org(state, &org, Role::Admin).await?;
            }
        }
    }
    Ok(caller)
}

/// The `{org}` segment of the request's path.
async fn org_in_path(parts: &mut Parts, state: &AppState) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    params
        .iter()
        .find(|(name, _)| *name == "org")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::bug("org route without an {org} segment"))
}

/// Every endpoint of the management API, in the order they were added.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    build(None).endpoints
}

fn build(state: Option<AppState>) -> Api {
    let api = Api::new(state);
    let api = users::routes(api);
    let api = tokens::routes(api);
    let api = user_certificates::routes(api);
    let api = orgs::routes(api);
    let api = keys::routes(api);
    let api = products::routes(api);
    let api = device_actions::routes(api);
    let api = device_updates::routes(api);
    let api = audit::routes(api);
    let api = devices::routes(api);
    let api = certificates::routes(api);
    let api = ca_certificates::routes(api);
    let api = shared_secrets::routes(api);
    let api = firmwares::routes(api);
    let api = deployments::routes(api);
    docs::routes(api)
}

/// The management API's router, `/api/…`.
pub(crate) fn router(state: AppState) -> Router {
    let api = build(Some(state.clone()));
    Router::new()
        .nest("/api", api.router)
        .fallback(not_found)
        .with_state(state)
}

/// An unknown path: the API's JSON 404 under `/api`, the web UI's page elsewhere (the two
/// share the listener).
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        ApiError::NotFound("route").into_response()
    } else {
        crate::web::not_found()
    }
}

/// `{"data": …}`, NervesHub's wrapping of every answer.
pub(crate) fn data<T: Serialize>(value: T) -> Json<serde_json::Value> {
    Json(json!({ "data": value }))
}

/// `201 Created` with `{"data": …}`.
pub(crate) fn created<T: Serialize>(value: T) -> Response {
    (axum::http::StatusCode::CREATED, data(value)).into_response()
}

/// `204 No Content`.
pub(crate) fn no_content() -> Response {
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// A JSON body whose rejections are answered in NervesHub's error shape.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge(e.body_text()));
            }
            Err(JsonRejection::JsonDataError(e)) => {
                return Err(ApiError::Validation(
                    [("body".to_owned(), vec![e.body_text()])].into(),
                ));
            }
            Err(e) => return Err(ApiError::BadRequest(e.body_text())),
        };
        // NUL cannot be stored in PostgreSQL text and has no business in any field.
        if let Some(field) = field_with_nul(&value, "body") {
            return Err(ApiError::invalid(&field, "must not contain NUL characters"));
        }
        T::deserialize(value)
            .map(Body)
            // tidy: text — serde's message is the field-level answer the caller reads.
            .map_err(|e| ApiError::Validation([("body".to_owned(), vec![e.to_string()])].into()))
    }
}

/// The first field (by its top-level name) of a JSON document holding a string, or a key,
/// with a NUL character.
fn field_with_nul(value: &serde_json::Value, field: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(|| field.to_owned()),
        serde_json::Value::Array(items) => items.iter().find_map(|v| field_with_nul(v, field)),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let name = if field == "body" { k.as_str() } else { field };
            if k.contains('\0') {
                return Some(field.to_owned());
            }
            field_with_nul(v, name)
        }),
        _ => None,
    }
}

/// Checks a name used in URLs (orgs, products, keys): 1 to 100 characters, no `/`, no
/// control characters, no leading or trailing space.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(field, "can't be blank"));
    }
    if name.chars().count() > 100 {
        return Err(ApiError::invalid(
            field,
            "should be at most 100 character(s)",
        ));
    }
    if name.trim() != name || name.contains('/') || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "has invalid format (no '/', control characters or surrounding spaces)",
        ));
    }
    // A path segment of `.` or `..` is resolved away by clients before it is sent.
    if name == "." || name == ".." {
        return Err(ApiError::invalid(field, "can't be '.' or '..'"));
    }
    Ok(())
}

/// Checks free text (descriptions, notes, user names): at most `max` characters, and no
/// control characters other than tab and line breaks.
pub(crate) fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("should be at most {max} character(s)"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
