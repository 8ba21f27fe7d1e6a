//! The management API: JSON under `/api`, NervesHub's paths and shapes. Every route is added
//! through [`Api`], which records it for the OpenAPI document, so the two cannot drift apart.

mod audit;
mod ca_certificates;
mod certificates;
mod deployments;
mod device_actions;
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
mod user_certificates;
mod users;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::Role;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) use docs::{Endpoint, Method, Success};

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
}

/// The router being built, with the description of every route.
pub(crate) struct Api {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
}

impl Api {
    fn new() -> Self {
        Api {
            router: Router::new(),
            endpoints: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path` (axum syntax, `{param}`), described by `doc`.
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
        self.router = self.router.route(endpoint.path, on(filter, handler));
        self.endpoints.push(endpoint);
        self
    }
}

/// Every endpoint of the management API, in the order they were added.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    build().endpoints
}

fn build() -> Api {
    let api = Api::new();
    let api = users::routes(api);
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
    let api = build();
    Router::new()
        .nest("/api", api.router)
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
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
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Validation(
                [("body".to_owned(), vec![e.body_text()])].into(),
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
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
    Ok(())
}
