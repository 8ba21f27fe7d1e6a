//! The web UI: server-rendered HTML on the API listener at `/` (the API stays under `/api`).
//!
//! **Every page and action goes through the management API, in-process, as the signed-in
//! user** ([`backend::WebState::call`]): a page asks the API router for its data and a form
//! posts to it, with the session's user attached as [`crate::auth::SignedIn`]. The API's
//! route table then authorizes exactly as it does for a token, so the UI cannot show or change
//! anything the same user could not through `/api`, and refusals keep the API's status codes
//! (404 for another org, 403 for too low a role).
//!
//! Pages are maud templates (checked at compile time). htmx and its SSE extension (vendored,
//! embedded in the binary) swap in live fragments; every page works without JavaScript,
//! except that live fragments then need a reload. The content security policy allows scripts
//! and styles from this origin only, so no inline script can run.

mod account;
mod assets;
mod backend;
mod deployment_form;
mod deployments;
mod live;
mod orgs;
mod page;
mod rollout;
mod session;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use axum::response::Response;

use crate::state::AppState;

/// The web UI's routes, to merge with the API's router. `secure_cookies` marks the session
/// cookie `Secure` (the HTTPS API listener).
pub(crate) fn router(state: AppState, secure_cookies: bool) -> Router {
    let web = backend::WebState::new(state, secure_cookies);
    Router::new()
        .merge(account::routes())
        .merge(orgs::routes())
        .merge(deployments::routes())
        .merge(deployment_form::routes())
        .merge(rollout::routes())
        .with_state(web)
        .merge(assets::routes())
        .layer(middleware::map_response(security_headers))
}

/// What every web answer carries: scripts, styles and connections from this origin only, no
/// framing, no MIME sniffing, no caching of pages that show account data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}
