//! A product's firmware: the list, uploads (forwarded as they are to the API's upload route,
//! which verifies the signature and reads the metadata), details and deletion.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::Value;

use super::backend::{WebState, read_answer, seg};
use super::page::{Flash, Page, WebError, form_outcome, redirect_with, text, when};
use super::session::{NoFields, Posted, Session, check_csrf};
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/orgs/{org}/products/{product}/firmwares",
            get(list).post(upload),
        )
        .route("/orgs/{org}/products/{product}/firmwares/{uuid}", get(show))
        .route(
            "/orgs/{org}/products/{product}/firmwares/{uuid}/delete",
            post(delete),
        )
        .route(
            "/orgs/{org}/products/{product}/firmwares/{uuid}/download",
            get(download),
        )
}

fn firmwares_path(org: &str, product: &str) -> String {
    format!("/orgs/{}/products/{}/firmwares", seg(org), seg(product))
}

/// A size in bytes as people read it.
fn size(value: &Value) -> String {
    let Some(bytes) = value.as_u64() else {
        return text(value);
    };
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else if bytes < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Whether the request is a script's (the upload form's XHR following its redirect) rather
/// than the browser navigating: the page is then loaded again by navigation, and the flash
/// that carries the upload's verdict must be left for that load.
fn fetched_by_script(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-dest")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "empty")
}

fn upload_form(csrf: &str, base: &str) -> Markup {
    // Multipart has no urlencoded field to carry the token, so it rides in the action's query.
    let action = format!("{base}?_csrf={csrf}");
    html! {
        section.card {
            h2 { "Upload firmware" }
            form method="post" action=(action) enctype="multipart/form-data"
                data-upload data-progress="upload-progress" {
                label for="firmware-file" { "Firmware file (.fw)" }
                input #firmware-file type="file" name="firmware" accept=".fw" required
                    aria-describedby="firmware-file-help";
                p.help #firmware-file-help {
                    "Signed with one of the organization's signing keys; the product, version, platform and architecture come from its metadata."
                }
                progress #upload-progress max="100" value="0" hidden aria-label="Upload progress" {}
                button.primary type="submit" { "Upload" }
            }
        }
    }
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path((org, product)): Path<(String, String)>,
) -> Result<Response, WebError> {
    if fetched_by_script(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let base = firmwares_path(&org, &product);
    let firmwares = web.get(&session, &base).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    let body = html! {
        @let firmwares = firmwares.as_array().cloned().unwrap_or_default();
        @if firmwares.is_empty() {
            p.empty { "No firmware uploaded yet." }
        } @else {
            div.table-scroll {
                table #firmwares {
                    thead { tr {
                        th scope="col" { "Version" }
                        th scope="col" { "UUID" }
                        th scope="col" { "Platform" }
                        th scope="col" { "Architecture" }
                        th scope="col" { "Size" }
                        th scope="col" { "Signed with" }
                        th scope="col" { "Uploaded" }
                    } }
                    tbody {
                        @for fw in &firmwares {
                            @let uuid = text(&fw["uuid"]);
                            tr data-uuid=(uuid) {
                                td.version { a href={(base) "/" (seg(&uuid))} { (text(&fw["version"])) } }
                                td.mono.uuid { (uuid) }
                                td { (text(&fw["platform"])) }
                                td { (text(&fw["architecture"])) }
                                td { (size(&fw["size"])) }
                                td.key { (text(&fw["signing_key"])) }
                                td { (when(&fw["inserted_at"])) }
                            }
                        }
                    }
                }
            }
        }
        @if ctx.can(Role::Manage) {
            (upload_form(&ctx.csrf, &base))
        }
    };
    Ok(Page::new(ctx, format!("Firmware of {product}"), body).into_response())
}

/// The upload: the CSRF token checked (from the query), then the multipart body forwarded
/// unread to the API's upload route, which streams, limits and verifies it.
async fn upload(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
    request: Request,
) -> Result<Response, WebError> {
    let (parts, body) = request.into_parts();
    check_csrf(&parts, &session, None)?;
    let base = firmwares_path(&org, &product);
    let mut forward = Request::post(format!("/api{base}"));
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            forward = forward.header(name, value);
        }
    }
    let forward = forward
        .body(Body::new(body))
        .map_err(|e| WebError::internal("building the upload request", e))?;
    let answer = read_answer(web.send(&session.user, forward).await).await;
    Ok(match answer {
        Ok(fw) => {
            let uuid = text(&fw["uuid"]);
            let key = match fw["signing_key"].as_str() {
                Some(key) => format!("key {key}"),
                None => "one of the organization's keys".to_owned(),
            };
            let verdict = format!(
                "Firmware {} uploaded: signature verified with {key}; product {}, platform {}, architecture {}, uuid {uuid}.",
                text(&fw["version"]),
                text(&fw["product"]),
                text(&fw["platform"]),
                text(&fw["architecture"]),
            );
            redirect_with(
                &format!("{base}/{}", seg(&uuid)),
                Flash::ok(verdict),
                web.secure_cookies,
            )
        }
        Err(WebError::Refused { status, messages })
            if status != StatusCode::FORBIDDEN && status != StatusCode::NOT_FOUND =>
        {
            redirect_with(
                &base,
                Flash::error(format!("Upload refused: {}", messages.join(" "))),
                web.secure_cookies,
            )
        }
        Err(error) => error.into_response(),
    })
}

async fn show(
    State(web): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path((org, product, uuid)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    if fetched_by_script(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let path = format!("{}/{}", firmwares_path(&org, &product), seg(&uuid));
    let fw = web.get(&session, &path).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    // The fields shown first, in this order; any others the API adds follow.
    const FIRST: &[(&str, &str)] = &[
        ("uuid", "UUID"),
        ("version", "Version"),
        ("product", "Product"),
        ("platform", "Platform"),
        ("architecture", "Architecture"),
        ("size", "Size"),
        ("signing_key", "Signing key"),
        ("author", "Author"),
        ("description", "Description"),
        ("vcs_identifier", "VCS identifier"),
        ("misc", "Misc"),
        ("checksum", "SHA-256"),
        ("tool", "Tool"),
        ("inserted_at", "Uploaded"),
    ];
    let rest: Vec<(String, Value)> = fw
        .as_object()
        .map(|object| {
            object
                .iter()
                .filter(|(k, _)| {
                    !FIRST.iter().any(|(f, _)| f == k) && k.as_str() != "partials_checksums"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let partials = fw["partials_checksums"].as_array().map_or(0, Vec::len);
    let body = html! {
        section.card {
            dl.facts #firmware-facts {
                @for (field, label) in FIRST {
                    dt { (label) }
                    dd class=(field) {
                        @match *field {
                            "size" => { (size(&fw["size"])) " (" (text(&fw["size"])) " bytes)" },
                            "inserted_at" => { (when(&fw["inserted_at"])) },
                            "uuid" | "checksum" => { span.mono { (text(&fw[*field])) } },
                            _ => { (text(&fw[*field])) },
                        }
                    }
                }
                dt { "Partial checksums" } dd { (partials) @if partials == 1 { " piece" } @else { " pieces" } " of 1 MiB" }
                @for (field, value) in &rest {
                    dt { (field) } dd { (text(value)) }
                }
            }
        }
        div.actions #firmware-actions {
            a.button href={(path) "/download"} { "Download" }
            @if ctx.can(Role::Manage) {
                (ctx.button(&format!("{path}/delete"), "Delete firmware", "danger",
                    Some("Really delete this firmware?")))
            }
        }
    };
    let title = format!("Firmware {}", text(&fw["version"]));
    Ok(Page::new(ctx, title, body).into_response())
}

/// The API's expiring download URL, followed.
async fn download(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, uuid)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let uri = format!(
        "/api{}/{}/download",
        firmwares_path(&org, &product),
        seg(&uuid)
    );
    let request = Request::get(uri)
        .body(Body::empty())
        .map_err(|e| WebError::internal("building an API request", e))?;
    let response = web.send(&session.user, request).await;
    match response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(location) if response.status().is_redirection() => {
            Ok(Redirect::to(location).into_response())
        }
        _ => Err(read_answer(response)
            .await
            .err()
            .unwrap_or_else(|| WebError::bug("no download URL"))),
    }
}

async fn delete(
    State(web): State<WebState>,
    Path((org, product, uuid)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let base = firmwares_path(&org, &product);
    let path = format!("{base}/{}", seg(&uuid));
    let result = web.delete(&posted.session, &path).await;
    form_outcome(
        result,
        &base,
        &path,
        &format!("Firmware {uuid} deleted."),
        web.secure_cookies,
    )
}
