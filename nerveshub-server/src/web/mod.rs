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
mod audit;
mod backend;
mod ca_certificates;
mod deployment_form;
mod deployments;
mod device_page;
mod devices;
mod firmwares;
mod keys;
mod live;
mod members;
mod orgs;
mod page;
mod rollout;
mod session;
mod shared_secrets;
mod tokens;

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
        .merge(members::routes())
        .merge(keys::routes())
        .merge(ca_certificates::routes())
        .merge(audit::routes())
        .merge(shared_secrets::routes())
        .merge(tokens::routes())
        .merge(deployments::routes())
        .merge(deployment_form::routes())
        .merge(rollout::routes())
        .merge(devices::routes())
        .merge(device_page::routes())
        .merge(firmwares::routes())
        .with_state(web)
        .merge(assets::routes())
        .layer(middleware::map_response(security_headers))
}

/// See [`crate::fuzzing::web_request`].
pub(crate) fn fuzz_request(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let (cookie_line, body) = text.split_once('\n').unwrap_or((&text, ""));
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(cookie_line) {
        headers.insert(header::COOKIE, value);
    }
    for name in [session::SESSION_COOKIE, "nh_flash", "nh_login"] {
        if let Some(value) = session::cookie(&headers, name)
            && let Some(flash) = page::Flash::decode(value)
            && page::Flash::decode(&flash.encode()).as_ref() != Some(&flash)
            && flash.text.chars().count() <= 500
        {
            return Err(format!("flash {flash:?} does not survive its encoding"));
        }
    }
    let _ = serde_urlencoded::from_str::<Vec<(String, String)>>(body);
    let next = page::safe_next(body);
    if !next.starts_with('/') || next.starts_with("//") || next.starts_with("/\\") {
        return Err(format!("next {body:?} leaves the site as {next:?}"));
    }
    Ok(())
}

/// The page for a path nothing serves.
pub(crate) fn not_found() -> Response {
    use axum::response::IntoResponse;
    let mut response = page::WebError::not_found("This page").into_response();
    add_security_headers(&mut response);
    response
}

/// What every web answer carries: scripts, styles and connections from this origin only, no
/// framing, no MIME sniffing, no caching of pages that show account data.
async fn security_headers(mut response: Response) -> Response {
    add_security_headers(&mut response);
    response
}

fn add_security_headers(response: &mut Response) {
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
}
