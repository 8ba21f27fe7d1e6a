//! The stylesheet and scripts, embedded in the binary and served under a versioned path, so
//! browsers may cache them for good and a new release is fetched fresh.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Changes with every release.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// (name, content type, bytes). htmx and its SSE extension are the npm packages' own files
/// (`htmx.org` 2.0.11, `htmx-ext-sse` 2.2.4, 0BSD; see `assets/vendor/README.md`).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    ),
];

/// The URL of asset `name`.
pub(crate) fn path(name: &str) -> String {
    format!("/assets/{VERSION}/{name}")
}

pub(super) fn routes() -> Router {
    Router::new().route("/assets/{version}/{name}", get(asset))
}

async fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // An old page asking for another release's file gets this one, uncached.
    let cache = if version == VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, cache),
        ],
        *bytes,
    )
        .into_response()
}
