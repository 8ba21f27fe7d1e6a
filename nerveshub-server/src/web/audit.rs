//! An org's audit log, newest first, narrowed by resource type and action, paged backwards
//! with `before` (the last shown entry's id).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backend::{WebState, seg};
use super::page::{Page, WebError, text, when};
use super::session::Session;

/// Entries per page.
const PAGE: usize = 50;

/// Suggestions for the filters (what the server writes); any other word may be typed.
const RESOURCE_TYPES: &[&str] = &[
    "org",
    "org_user",
    "org_key",
    "product",
    "device",
    "device_certificate",
    "ca_certificate",
    "ca_verification_token",
    "shared_secret",
    "firmware",
    "deployment",
];
const ACTIONS: &[&str] = &[
    "create",
    "update",
    "delete",
    "deactivate",
    "halt",
    "update_scheduled",
    "deployment_assigned",
    "deployment_removed",
    "penalty_box",
    "penalty_cleared",
];

pub(super) fn routes() -> Router<WebState> {
    Router::new().route("/orgs/{org}/audit", get(list))
}

#[derive(Deserialize, Serialize, Default, Clone)]
struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<String>,
}

impl Filters {
    /// Empty fields (a submitted but blank filter) count as absent.
    fn tidy(self) -> Self {
        let keep = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Filters {
            resource_type: keep(self.resource_type),
            action: keep(self.action),
            before: keep(self.before),
        }
    }

    fn query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

fn datalist(id: &str, words: &[&str]) -> Markup {
    html! { datalist id=(id) { @for word in words { option value=(word) {} } } }
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Page, WebError> {
    let filters = filters.tidy();
    let limit = format!("limit={PAGE}");
    let query = match filters.query() {
        q if q.is_empty() => limit,
        q => format!("{q}&{limit}"),
    };
    // The same filters from the newest entry on.
    let unpaged = Filters {
        before: None,
        ..filters.clone()
    };
    let path = format!("/orgs/{}/audit_logs?{query}", seg(&org));
    // A filter the API refuses is shown with the form, so it can be corrected.
    let (entries, refusal) = match web.get(&session, &path).await {
        Ok(entries) => (entries.as_array().cloned().unwrap_or_default(), None),
        Err(WebError::Refused { status, messages })
            if status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            (Vec::new(), Some(messages.join(" ")))
        }
        Err(other) => return Err(other),
    };
    let ctx = web.context(&session, Some(&org), None).await?;
    let base = format!("{}/audit", ctx.org_path());
    let older = match entries.last().map(|e| &e["id"]) {
        Some(Value::Number(id)) if entries.len() == PAGE => {
            let mut next = unpaged.clone();
            next.before = Some(id.to_string());
            Some(format!("{base}?{}", next.query()))
        }
        _ => None,
    };
    let newest = filters.before.as_ref().map(|_| match unpaged.query() {
        q if q.is_empty() => base.clone(),
        q => format!("{base}?{q}"),
    });
    let body = html! {
        form.filters method="get" action=(base) role="search" {
            div {
                label for="filter-resource" { "Resource type" }
                input #filter-resource name="resource_type" list="resource-types" maxlength="100"
                    value=(filters.resource_type.as_deref().unwrap_or(""));
                (datalist("resource-types", RESOURCE_TYPES))
            }
            div {
                label for="filter-action" { "Action" }
                input #filter-action name="action" list="audit-actions" maxlength="100"
                    value=(filters.action.as_deref().unwrap_or(""));
                (datalist("audit-actions", ACTIONS))
            }
            button type="submit" { "Filter" }
            @if filters.resource_type.is_some() || filters.action.is_some() {
                a href=(base) { "Clear filters" }
            }
        }
        @if let Some(message) = &refusal {
            p.flash.error role="alert" { (message) }
        }
        @if entries.is_empty() {
            p.empty { "No entries." }
        } @else {
            div.table-scroll {
                table.audit {
                    thead { tr {
                        th { "Time" } th { "Actor" } th { "Resource" } th { "Action" } th { "Description" }
                    } }
                    tbody {
                        @for entry in &entries {
                            tr {
                                td { (when(&entry["inserted_at"])) }
                                td { (text(&entry["actor_type"]))
                                    @if let Some(id) = entry["actor"].as_str() { " " (id) } }
                                td { (text(&entry["resource_type"])) " "
                                    @if let Some(id) = entry["resource_id"].as_str().filter(|s| !s.is_empty()) { code { (id) } } }
                                td { (text(&entry["action"])) }
                                td { (text(&entry["description"])) }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if let Some(newest) = &newest { a href=(newest) { "Newest" } }
            @if let Some(older) = &older { a href=(older) rel="next" { "Older" } }
        }
    };
    Ok(Page::new(ctx, "Audit log", body))
}
