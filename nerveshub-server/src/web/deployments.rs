//! A product's deployments: the list, one deployment's settings, releases and live rollout
//! (`rollout.rs`), and its one-button actions (switch on or off, resume, delete). The forms
//! are in `deployment_form.rs`.
//!
//! Resuming a halted deployment is switching it on again: the API's update lifts the halt
//! whenever a body sets `is_active` true, even on a deployment already on.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::backend::{WebState, seg};
use super::deployment_form;
use super::page::{Page, WebError, comma_list, form_outcome, text, when};
use super::rollout;
use super::session::{NoFields, Posted, Session};
use crate::auth::Role;

const ONE: &str = "/orgs/{org}/products/{product}/deployments/{name}";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/orgs/{org}/products/{product}/deployments",
            get(list).post(deployment_form::create),
        )
        .route(ONE, get(show))
        .route(&format!("{ONE}/on"), post(switch_on))
        .route(&format!("{ONE}/off"), post(switch_off))
        .route(&format!("{ONE}/resume"), post(resume))
        .route(&format!("{ONE}/delete"), post(remove))
}

fn product_path(org: &str, product: &str) -> String {
    format!("/orgs/{}/products/{}", seg(org), seg(product))
}

/// On/off and halted, as text badges.
fn state_badges(d: &Value) -> Markup {
    let on = d["is_active"].as_bool().unwrap_or(false);
    html! {
        @if on { span.badge.on { "on" } } @else { span.badge.off { "off" } }
        @if d["status"] == "halted" { " " span.badge.halted { "halted" } }
    }
}

/// The conditions in words.
fn conditions(d: &Value) -> String {
    let c = &d["conditions"];
    let version = c["version"].as_str().unwrap_or_default();
    let tags = comma_list(&c["tags"]);
    let mut parts = Vec::new();
    if !version.is_empty() {
        parts.push(format!("version {version}"));
    }
    if !tags.is_empty() {
        let need = if c["tag_operator"] == "or" {
            "any of"
        } else {
            "all of"
        };
        parts.push(format!("tags: {need} {tags}"));
    }
    if parts.is_empty() {
        "any device of the platform".to_owned()
    } else {
        parts.join("; ")
    }
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
) -> Result<Page, WebError> {
    let base = product_path(&org, &product);
    let deployments = web.get(&session, &format!("{base}/deployments")).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    let deployments = deployments.as_array().cloned().unwrap_or_default();
    let body = html! {
        @if ctx.can(Role::Manage) {
            p.actions { a.button.primary href={(base) "/deployments/new"} { "New deployment" } }
        }
        @if deployments.is_empty() {
            p.empty { "No deployments yet. A deployment sends a firmware to the devices that match its conditions." }
        } @else {
            div.table-scroll {
                table.deployments {
                    thead { tr {
                        th { "Name" } th { "Firmware" } th { "State" } th { "Conditions" } th { "Devices" }
                    } }
                    tbody {
                        @for d in &deployments {
                            @let name = text(&d["name"]);
                            tr {
                                td { a href={(base) "/deployments/" (seg(&name))} { (name) } }
                                td { (text(&d["current_release"]["firmware"]["version"]))
                                    " " span.help { "(release #" (text(&d["current_release"]["number"])) ")" } }
                                td { (state_badges(d)) }
                                td { (conditions(d)) }
                                td { (text(&d["device_count"])) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(ctx, "Deployments", body))
}

fn yes_no(value: &Value) -> &'static str {
    if value.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

/// The settings, grouped as the form groups them.
fn summary(d: &Value, base: &str) -> Markup {
    let firmware = &d["current_release"]["firmware"];
    let uuid = text(&firmware["uuid"]);
    let halt = match d["halt_failure_rate"].as_i64() {
        Some(rate) => format!(
            "at {rate}% failed of the last {} updates",
            text(&d["halt_window"])
        ),
        None => "never".to_owned(),
    };
    let release_tags = comma_list(&d["release_tags"]);
    html! {
        div.grid.deployment-settings {
            section.card {
                h3 { "Release" }
                dl.facts {
                    dt { "State" } dd { (state_badges(d)) }
                    dt { "Release" } dd { "#" (text(&d["current_release"]["number"])) }
                    dt { "Firmware" } dd { (text(&firmware["version"])) " "
                        a.mono href={(base) "/firmwares/" (seg(&uuid))} { (uuid) } }
                    dt { "Platform" } dd { (text(&d["platform"])) " / " (text(&d["architecture"])) }
                    dt { "Devices" } dd { (text(&d["device_count"])) }
                    dt { "Updated" } dd { (when(&d["updated_at"])) }
                }
            }
            section.card {
                h3 { "Conditions and caps" }
                dl.facts {
                    dt { "Conditions" } dd { (conditions(d)) }
                    dt { "Concurrent updates" } dd { (text(&d["concurrent_updates"])) }
                    dt { "Queue" } dd { (text(&d["queue_management"])) }
                    dt { "Priority queue" } dd {
                        @if d["priority_queue_enabled"].as_bool().unwrap_or(false) {
                            (text(&d["priority_queue_concurrent_updates"])) " slots for version ≤ "
                            (text(&d["priority_queue_firmware_version_threshold"]))
                        } @else { "off" }
                    }
                    dt { "Release tags" } dd { @if release_tags.is_empty() { "—" } @else { (release_tags) } }
                    dt { "Membership locked" } dd { (yes_no(&d["lock_device_membership"])) }
                }
            }
            section.card {
                h3 { "Penalty box, halt and health" }
                dl.facts {
                    dt { "Penalty after" } dd {
                        (text(&d["device_failure_threshold"])) " attempts, or "
                        (text(&d["device_failure_rate_amount"])) " within "
                        (text(&d["device_failure_rate_seconds"])) " s"
                    }
                    dt { "Penalty time" } dd { (text(&d["penalty_timeout_minutes"])) " min" }
                    dt { "Halt" } dd { (halt) }
                    dt { "Require validated" } dd { (yes_no(&d["require_validated"])) }
                    dt { "Health timeout" } dd { (text(&d["health_timeout_minutes"])) " min" }
                }
            }
        }
        @if let Some(notes) = d["notes"].as_str().filter(|n| !n.is_empty()) {
            h3 { "Notes" }
            p.notes { (notes) }
        }
    }
}

async fn show(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, name)): Path<(String, String, String)>,
) -> Result<Page, WebError> {
    let base = product_path(&org, &product);
    let page = format!("{base}/deployments/{}", seg(&name));
    let d = web.get(&session, &page).await?;
    let releases = web.get(&session, &format!("{page}/releases")).await?;
    let live = rollout::region(&web, &session, (&org, &product, &name)).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    let on = d["is_active"].as_bool().unwrap_or(false);
    let releases = releases.as_array().cloned().unwrap_or_default();
    let body = html! {
        @if ctx.can(Role::Manage) {
            div.actions.deployment-actions {
                @if on {
                    (ctx.button(&format!("{page}/off"), "Switch off", "", None))
                } @else {
                    (ctx.button(&format!("{page}/on"), "Switch on", "primary", None))
                }
                a.button href={(page) "/edit"} { "Edit settings" }
                (ctx.button(&format!("{page}/delete"), "Delete deployment", "danger",
                    Some(&format!("Really delete deployment {name}? Its devices stay, without a deployment."))))
            }
        }
        section.rollout aria-labelledby="rollout-heading" {
            h2 #rollout-heading { "Rollout" }
            (live)
        }
        h2 { "Settings" }
        (summary(&d, &base))
        h2 { "Release history" }
        @if releases.is_empty() {
            p.empty { "No releases." }
        } @else {
            table.releases {
                thead { tr { th { "Release" } th { "Firmware" } th { "By" } th { "When" } } }
                tbody {
                    @for r in &releases {
                        tr {
                            td { "#" (text(&r["number"])) }
                            td { (text(&r["firmware"]["version"])) " "
                                span.mono.help { (text(&r["firmware"]["uuid"])) } }
                            td { (text(&r["created_by"])) }
                            td { (when(&r["inserted_at"])) }
                        }
                    }
                }
            }
        }
        p { a href={(base) "/deployments"} { "All deployments" } }
    };
    Ok(Page::new(ctx, format!("Deployment {name}"), body))
}

/// `PUT` with `{"deployment": {"is_active": on}}`, back to the deployment page.
async fn switch(
    web: &WebState,
    session: &Session,
    (org, product, name): (&str, &str, &str),
    on: bool,
    done: &str,
) -> Response {
    let page = format!("{}/deployments/{}", product_path(org, product), seg(name));
    let result = web
        .put(session, &page, &json!({"deployment": {"is_active": on}}))
        .await;
    form_outcome(result, &page, &page, done, web.secure_cookies)
}

async fn switch_on(
    State(web): State<WebState>,
    Path((org, product, name)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let done = format!("Deployment {name} switched on.");
    switch(&web, &posted.session, (&org, &product, &name), true, &done).await
}

async fn switch_off(
    State(web): State<WebState>,
    Path((org, product, name)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let done = format!("Deployment {name} switched off: nothing more is sent.");
    switch(&web, &posted.session, (&org, &product, &name), false, &done).await
}

async fn resume(
    State(web): State<WebState>,
    Path((org, product, name)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let done = format!("Deployment {name} resumed: the halt is lifted.");
    switch(&web, &posted.session, (&org, &product, &name), true, &done).await
}

async fn remove(
    State(web): State<WebState>,
    Path((org, product, name)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let list = format!("{}/deployments", product_path(&org, &product));
    let page = format!("{list}/{}", seg(&name));
    let result = web.delete(&posted.session, &page).await;
    form_outcome(
        result,
        &list,
        &page,
        &format!("Deployment {name} deleted."),
        web.secure_cookies,
    )
}
