//! One device: its firmware, connection and update history (live), certificates, deployment,
//! and the actions a manager may take on it.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backend::{WebState, seg};
use super::devices::badges;
use super::live;
use super::page::{Page, PageContext, WebError, form_outcome, text, when};
use super::session::{Posted, Session};
use crate::auth::Role;

const DEVICE: &str = "/orgs/{org}/products/{product}/devices/{identifier}";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(DEVICE, get(show))
        .route(
            "/orgs/{org}/products/{product}/devices/{identifier}/live",
            get(live_status),
        )
        .route(
            "/orgs/{org}/products/{product}/devices/{identifier}/{action}",
            post(action),
        )
}

/// `/orgs/<org>/products/<product>/devices/<identifier>`, encoded.
fn device_path(org: &str, product: &str, identifier: &str) -> String {
    format!(
        "/orgs/{}/products/{}/devices/{}",
        seg(org),
        seg(product),
        seg(identifier)
    )
}

/// How the device authenticated its socket, in words.
fn tls_kind(auth: &Value) -> &'static str {
    match auth.as_str() {
        Some("certificate") => "certificate (mutual TLS)",
        Some("shared_secret") => "shared secret (NH1 headers)",
        _ => "—",
    }
}

fn update_status(update: &Value) -> Markup {
    let status = text(&update["status"]);
    let class = match status.as_str() {
        "completed" if update["in_flight"] == json!(false) => "badge done",
        "failed" | "interrupted" | "expired" | "undelivered" => "badge failed",
        _ if update["in_flight"] == json!(true) => "badge updating",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

/// The live part of the page: connection, firmware and update history.
async fn status_fragment(
    web: &WebState,
    session: &Session,
    org: &str,
    product: &str,
    identifier: &str,
) -> Result<Markup, WebError> {
    let path = device_path(org, product, identifier);
    let device = web.get(session, &path).await?;
    let updates = web.get(session, &format!("{path}/updates")).await?;
    let meta = &device["firmware_metadata"];
    let connection = &device["connection"];
    let updates: Vec<Value> = updates
        .as_array()
        .map(|list| list.iter().rev().cloned().collect())
        .unwrap_or_default();
    Ok(html! {
        div.grid {
            section.card #connection {
                h2 { "Connection" }
                dl.facts {
                    dt { "Status" } dd.status { (badges(&device)) }
                    dt { "Last seen" } dd { (when(&device["last_communication"])) }
                    dt { "Remote address" } dd.mono #remote-address { (text(&connection["remote_address"])) }
                    dt { "TLS" } dd #tls-kind { (tls_kind(&connection["auth"])) }
                }
            }
            section.card #firmware {
                h2 { "Firmware" }
                @if meta.is_object() {
                    dl.facts {
                        dt { "Version" } dd #fw-version { (text(&meta["version"])) }
                        dt { "UUID" } dd.mono #fw-uuid { (text(&meta["uuid"])) }
                        dt { "Platform" } dd { (text(&meta["platform"])) }
                        dt { "Architecture" } dd { (text(&meta["architecture"])) }
                    }
                } @else {
                    p.empty { "Not reported yet: the device has not connected." }
                }
            }
        }
        section #updates {
            h2 { "Update history" }
            @if updates.is_empty() {
                p.empty { "No updates have been pushed to this device." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Firmware" }
                        th scope="col" { "Status" }
                        th scope="col" { "Progress" }
                        th scope="col" { "From" }
                        th scope="col" { "Updated" }
                    } }
                    tbody {
                        @for update in &updates {
                            @let progress = update["progress"].as_i64().unwrap_or(0).clamp(0, 100);
                            tr data-update=(text(&update["id"])) {
                                td { (text(&update["firmware_version"])) br; small.mono { (text(&update["firmware_uuid"])) } }
                                td { (update_status(update))
                                    @if let Some(reason) = update["reason"].as_str() { br; small { (reason) } } }
                                td {
                                    @if update["in_flight"] == json!(true) {
                                        progress max="100" value=(progress) aria-label="Update progress" { (progress) "%" }
                                        " " span.progress-value { (progress) "%" }
                                    } @else {
                                        span.progress-value { (progress) "%" }
                                    }
                                }
                                td { (update["deployment"].as_str().unwrap_or("manual push")) }
                                td { (when(&update["updated_at"])) }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn actions(ctx: &PageContext, path: &str, device: &Value, firmwares: &[Value]) -> Markup {
    let updates_on = device["updates_enabled"].as_bool() != Some(false);
    let penalty = device["in_penalty_box"].as_bool() == Some(true)
        || !device["updates_blocked_until"].is_null();
    html! {
        section.card #actions {
            h2 { "Actions" }
            div.actions {
                (ctx.button(&format!("{path}/reboot"), "Reboot", "", Some("Really reboot this device?")))
                (ctx.button(&format!("{path}/reconnect"), "Reconnect", "", None))
                (ctx.button(&format!("{path}/identify"), "Identify", "", None))
                @if updates_on {
                    (ctx.button(&format!("{path}/disable-updates"), "Disable updates", "", None))
                } @else {
                    (ctx.button(&format!("{path}/enable-updates"), "Enable updates", "", None))
                }
                @if penalty {
                    (ctx.button(&format!("{path}/clear-penalty"), "Clear penalty box", "", None))
                }
            }
            @if firmwares.is_empty() {
                p.help { "Upload a firmware to push it to this device." }
            } @else {
                form method="post" action={(path) "/upgrade"} {
                    (ctx.csrf_field())
                    label for="push-firmware" { "Push firmware" }
                    select #push-firmware name="uuid" required {
                        @for fw in firmwares {
                            option value=(text(&fw["uuid"])) {
                                (text(&fw["version"])) " · " (text(&fw["uuid"]))
                            }
                        }
                    }
                    p.help { "The device installs it now; its automatic updates are turned off." }
                    button.primary type="submit" { "Push firmware" }
                }
            }
            div.actions {
                (ctx.button(&format!("{path}/delete"), "Delete device", "danger",
                    Some("Really delete this device with its certificates?")))
            }
        }
    }
}

/// The device page (also reached through the list's `live` route for a device of that name).
pub(super) async fn device_page(
    web: &WebState,
    session: &Session,
    org: &str,
    product: &str,
    identifier: &str,
) -> Result<Page, WebError> {
    let path = device_path(org, product, identifier);
    let device = web.get(session, &path).await?;
    let status = status_fragment(web, session, org, product, identifier).await?;
    let certificates = web.get(session, &format!("{path}/certificates")).await?;
    let ctx = web.context(session, Some(org), Some(product)).await?;
    let firmwares = if ctx.can(Role::Manage) {
        let product_path = format!("/orgs/{}/products/{}", seg(org), seg(product));
        web.get(session, &format!("{product_path}/firmwares"))
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let deployment = &device["deployment_group"];
    let body = html! {
        @if let Some(description) = device["description"].as_str().filter(|d| !d.is_empty()) {
            p { (description) }
        }
        @if let Some(tags) = device["tags"].as_array().filter(|t| !t.is_empty()) {
            p { "Tags: " @for tag in tags { span.badge { (text(tag)) } " " } }
        }
        (live::region(&format!("{path}/live"), status))
        div.grid {
            section.card #deployment {
                h2 { "Deployment" }
                @if deployment.is_object() {
                    @let name = text(&deployment["name"]);
                    dl.facts {
                        dt { "Name" }
                        dd { a href={(ctx.product_path()) "/deployments/" (seg(&name))} { (name) } }
                        dt { "State" }
                        dd { @if deployment["is_active"] == json!(true) { span.badge.on { "active" } } @else { span.badge.off { "inactive" } } }
                        dt { "Firmware" } dd { (text(&deployment["firmware_version"])) }
                    }
                } @else {
                    p.empty { "Not in a deployment." }
                }
            }
            section.card #certificates {
                h2 { "Certificates" }
                @let certs = certificates.as_array().cloned().unwrap_or_default();
                @if certs.is_empty() {
                    p.empty { "No certificates." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Serial" } th scope="col" { "Valid from" } th scope="col" { "Valid until" } } }
                        tbody {
                            @for cert in &certs {
                                tr {
                                    td.mono { (text(&cert["serial"])) }
                                    td { (when(&cert["not_before"])) }
                                    td { (when(&cert["not_after"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if ctx.can(Role::Manage) {
            (actions(&ctx, &path, &device, &firmwares))
        }
    };
    Ok(Page::new(ctx, identifier.to_owned(), body))
}

async fn show(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, identifier)): Path<(String, String, String)>,
) -> Result<Page, WebError> {
    device_page(&web, &session, &org, &product, &identifier).await
}

async fn live_status(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, identifier)): Path<(String, String, String)>,
) -> Response {
    live::stream(move || {
        let (web, session, org, product, identifier) = (
            web.clone(),
            session.clone(),
            org.clone(),
            product.clone(),
            identifier.clone(),
        );
        async move { status_fragment(&web, &session, &org, &product, &identifier).await }
    })
    .into_response()
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    uuid: Option<String>,
}

/// `POST …/devices/<identifier>/<action>`: each goes to the API route of the same role
/// (manage), which decides.
async fn action(
    State(web): State<WebState>,
    Path((org, product, identifier, action)): Path<(String, String, String, String)>,
    posted: Posted<ActionForm>,
) -> Response {
    let path = device_path(&org, &product, &identifier);
    let session = &posted.session;
    let mut to = path.clone();
    let (result, done) = match action.as_str() {
        "reboot" | "reconnect" | "identify" => {
            let result = web
                .post(session, &format!("{path}/{action}"), &json!({}))
                .await;
            let done = match action.as_str() {
                "reboot" => "The device was asked to reboot.",
                "reconnect" => "The device was asked to reconnect.",
                _ => "The device was asked to identify itself.",
            };
            (result, done.to_owned())
        }
        "upgrade" => {
            let uuid = posted.form.uuid.clone().unwrap_or_default();
            let result = web
                .post(session, &format!("{path}/upgrade"), &json!({"uuid": uuid}))
                .await;
            let version = result
                .as_ref()
                .ok()
                .map(|created| text(&created["firmware_version"]))
                .unwrap_or_default();
            (
                result,
                format!("Firmware {version} pushed; automatic updates are now off."),
            )
        }
        "clear-penalty" => (
            web.delete(session, &format!("{path}/penalty")).await,
            "The device is out of the penalty box; updates are on.".to_owned(),
        ),
        "enable-updates" | "disable-updates" => {
            let enabled = action == "enable-updates";
            (
                web.put(session, &path, &json!({"updates_enabled": enabled}))
                    .await,
                format!(
                    "Automatic updates {}.",
                    if enabled { "enabled" } else { "disabled" }
                ),
            )
        }
        "delete" => {
            to = format!("/orgs/{}/products/{}/devices", seg(&org), seg(&product));
            (
                web.delete(session, &path).await,
                format!("Device {identifier} deleted."),
            )
        }
        _ => return WebError::not_found("That action").into_response(),
    };
    form_outcome(result, &to, &path, &done, web.secure_cookies)
}
