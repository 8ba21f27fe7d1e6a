//! A deployment's live rollout view: devices by state, the release's progress, the updates
//! in flight and the failing devices, and — when the deployment halted — the reason and a
//! resume button. Rendered into the deployment page and re-rendered for its SSE stream.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use maud::{Markup, html};
use serde_json::Value;

use super::backend::{WebState, seg};
use super::live;
use super::page::{WebError, text, when};
use super::session::Session;
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new().route(
        "/orgs/{org}/products/{product}/deployments/{name}/live",
        get(stream),
    )
}

/// The states `…/status` counts, in the order shown, with their labels.
const STATES: [(&str, &str); 8] = [
    ("total", "Devices"),
    ("up_to_date", "Up to date"),
    ("in_flight", "Updating"),
    ("pending", "Waiting"),
    ("failed", "Failed"),
    ("penalty_box", "Penalty box"),
    ("offline", "Offline"),
    ("updates_disabled", "Updates off"),
];

/// The live section of the deployment page: the region and its first render.
pub(super) async fn region(
    web: &WebState,
    session: &Session,
    (org, product, name): (&str, &str, &str),
) -> Result<Markup, WebError> {
    let initial = fragment(web, session, (org, product, name)).await?;
    let page = format!(
        "/orgs/{}/products/{}/deployments/{}",
        seg(org),
        seg(product),
        seg(name)
    );
    Ok(live::region(&format!("{page}/live"), initial))
}

async fn stream(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, name)): Path<(String, String, String)>,
) -> impl IntoResponse {
    live::stream(move || {
        let (web, session) = (web.clone(), session.clone());
        let (org, product, name) = (org.clone(), product.clone(), name.clone());
        async move { fragment(&web, &session, (&org, &product, &name)).await }
    })
}

/// One render of the rollout, from `…/status`, as the user.
pub(super) async fn fragment(
    web: &WebState,
    session: &Session,
    (org, product, name): (&str, &str, &str),
) -> Result<Markup, WebError> {
    let product_path = format!("/orgs/{}/products/{}", seg(org), seg(product));
    let page = format!("{product_path}/deployments/{}", seg(name));
    let status = web.get(session, &format!("{page}/status")).await?;
    // Again at every tick, so a role taken away also takes the resume button.
    let ctx = web.context(session, Some(org), Some(product)).await?;
    let count = |state: &str| status["devices"][state].as_u64().unwrap_or(0);
    let (total, done) = (count("total"), count("up_to_date"));
    let percent = status["release"]["percent_complete"].as_u64().unwrap_or(0);
    let halted = status["status"] == "halted";
    let active = status["is_active"].as_bool().unwrap_or(false);
    let release = format!(
        "release #{} ({})",
        text(&status["release"]["number"]),
        text(&status["release"]["firmware_version"])
    );
    let summary = if halted {
        format!(
            "Halted: nothing is sent until it is resumed. {done} of {total} devices run {release}."
        )
    } else if !active {
        format!("Switched off: nothing is sent. {done} of {total} devices run {release}.")
    } else if total == 0 {
        "On, with no devices yet: devices join when their firmware and tags match.".to_owned()
    } else if done == total {
        format!("Rollout complete: all {total} devices run {release}.")
    } else {
        format!("Rolling out {release}: {done} of {total} devices up to date.")
    };
    let in_flight = status["in_flight"].as_array().cloned().unwrap_or_default();
    let failing = status["failing_devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let device_link = |identifier: &Value| {
        let id = text(identifier);
        html! { a href={(product_path) "/devices/" (seg(&id))} { (id) } }
    };
    Ok(html! {
        @if halted {
            div.banner.halted role="alert" {
                p { strong { "Rollout halted" } " since " (when(&status["halted_at"])) ": "
                    span.halt-reason { (text(&status["halt_reason"])) } }
                @if ctx.can(Role::Manage) {
                    (ctx.button(&format!("{page}/resume"), "Resume rollout", "primary", None))
                } @else {
                    p { "Someone with the manage role can resume it." }
                }
            }
        }
        p.rollout-summary {
            @if halted { span.badge.halted { "halted" } }
            @else if !active { span.badge.off { "off" } }
            @else if total > 0 && done == total { span.badge.done { "done" } }
            @else { span.badge.updating { "rolling out" } }
            " " (summary)
        }
        label for="rollout-progress" { "Progress of " (release) ": " span.percent { (percent) "%" } }
        progress #rollout-progress max="100" value=(percent) { (percent) "%" }
        ul.counts aria-label="Devices by state" {
            @for (key, label) in STATES {
                li data-state=(key) { span.n { (count(key)) } (label) }
            }
        }
        @if !in_flight.is_empty() {
            h3 { "Updating now" }
            table.in-flight {
                thead { tr { th { "Device" } th { "Status" } th { "Progress" } } }
                tbody {
                    @for u in &in_flight {
                        tr {
                            td { (device_link(&u["identifier"])) }
                            td { span.badge.updating { (text(&u["status"])) } }
                            td { (text(&u["progress"])) "%" }
                        }
                    }
                }
            }
        }
        @if !failing.is_empty() {
            h3 { "Failing devices" }
            p.help { "Failures of this release within the halt window, newest first." }
            table.failing {
                thead { tr { th { "Device" } th { "Reason" } } }
                tbody {
                    @for f in &failing {
                        tr {
                            td { (device_link(&f["identifier"])) " " span.badge.failed { "failed" } }
                            td { (text(&f["reason"])) }
                        }
                    }
                }
            }
        }
    })
}
