//! A product's device list: filters, pages the API cuts in SQL, a table that stays live, and
//! the form to add a device.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Request, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::backend::{WebState, read_answer, seg};
use super::live;
use super::page::{Page, PageContext, WebError, form_outcome, text, when};
use super::session::{Posted, Session};
use crate::auth::Role;

/// The largest device list answer read (a page of at most 100 devices).
const MAX_LIST_ANSWER: usize = 4 * 1024 * 1024;

/// The statuses the filter offers: (API value, label).
const STATUSES: &[(&str, &str)] = &[
    ("online", "Online"),
    ("offline", "Offline"),
    ("updating", "Updating"),
    ("penalty_box", "Penalty box"),
];

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/orgs/{org}/products/{product}/devices",
            get(list).post(create),
        )
        .route(
            "/orgs/{org}/products/{product}/devices/live",
            get(live_list),
        )
}

/// The list's query string: the API's own filter and page parameters.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(super) struct ListQuery {
    #[serde(default, skip_serializing_if = "is_blank")]
    identifier: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    status: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    page: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    page_size: Option<String>,
}

fn is_blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

impl ListQuery {
    fn encode(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// The same filters on page `page`.
    fn on_page(&self, page: i64) -> String {
        let mut query = self.clone();
        query.page = Some(page.to_string());
        query.encode()
    }
}

/// `/orgs/<org>/products/<product>/devices`, encoded.
fn devices_path(org: &str, product: &str) -> String {
    format!("/orgs/{}/products/{}/devices", seg(org), seg(product))
}

/// A page of devices as the API answers it: the devices and the `pagination` object, which
/// [`WebState::get`] would leave out.
async fn devices_page(
    web: &WebState,
    session: &Session,
    org: &str,
    product: &str,
    query: &ListQuery,
) -> Result<(Vec<Value>, Value), WebError> {
    let encoded = query.encode();
    let mut uri = format!("/api{}", devices_path(org, product));
    if !encoded.is_empty() {
        uri = format!("{uri}?{encoded}");
    }
    let request = Request::get(uri)
        .body(Body::empty())
        .map_err(|e| WebError::internal("building an API request", e))?;
    let response = web.send(&session.user, request).await;
    if !response.status().is_success() {
        return Err(read_answer(response)
            .await
            .err()
            .unwrap_or_else(|| WebError::bug("a refusal without an error")));
    }
    let bytes = axum::body::to_bytes(response.into_body(), MAX_LIST_ANSWER)
        .await
        .map_err(|e| WebError::internal("reading the device list", e))?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| WebError::internal("the device list is not JSON", e))?;
    let devices = json["data"].as_array().cloned().unwrap_or_default();
    Ok((devices, json["pagination"].clone()))
}

/// The status badges of a device (as text, not colour alone).
pub(super) fn badges(device: &Value) -> Markup {
    html! {
        @if device["online"].as_bool() == Some(true) {
            span.badge.online { "online" }
        } @else {
            span.badge.offline { "offline" }
        }
        @if device["updating"].as_bool() == Some(true) {
            " " span.badge.updating { "updating" }
        }
        @if device["in_penalty_box"].as_bool() == Some(true) {
            " " span.badge.penalty { "penalty box" }
        }
        @if device["updates_enabled"].as_bool() == Some(false) {
            " " span.badge.off { "updates off" }
        }
    }
}

/// The table and pager: the list's live part.
async fn table_fragment(
    web: &WebState,
    session: &Session,
    org: &str,
    product: &str,
    query: &ListQuery,
) -> Result<Markup, WebError> {
    let (devices, pagination) = devices_page(web, session, org, product, query).await?;
    let base = devices_path(org, product);
    let page = pagination["page"].as_i64().unwrap_or(1);
    let total_pages = pagination["total_pages"].as_i64().unwrap_or(1);
    let total = pagination["total_entries"].as_i64().unwrap_or(0);
    Ok(html! {
        @if devices.is_empty() {
            p.empty { "No devices match." }
        } @else {
            div.table-scroll {
                table #devices {
                    thead { tr {
                        th scope="col" { "Identifier" }
                        th scope="col" { "Status" }
                        th scope="col" { "Firmware" }
                        th scope="col" { "Tags" }
                        th scope="col" { "Last seen" }
                    } }
                    tbody {
                        @for device in &devices {
                            @let identifier = text(&device["identifier"]);
                            tr data-identifier=(identifier) {
                                td.identifier { a href={(base) "/" (seg(&identifier))} { (identifier) } }
                                td.status { (badges(device)) }
                                td.version { (text(&device["version"])) }
                                td.tags {
                                    @for tag in device["tags"].as_array().into_iter().flatten() {
                                        span.badge { (text(tag)) } " "
                                    }
                                }
                                td.seen { (when(&device["last_communication"])) }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if page > 1 {
                a rel="prev" href={(base) "?" (query.on_page(page - 1))} { "← Previous" }
            }
            span { "Page " (page) " of " (total_pages.max(1)) " · " (total) @if total == 1 { " device" } @else { " devices" } }
            @if page < total_pages {
                a rel="next" href={(base) "?" (query.on_page(page + 1))} { "Next →" }
            }
        }
    })
}

fn filter_form(base: &str, query: &ListQuery) -> Markup {
    let chosen = query.status.as_deref().unwrap_or("");
    html! {
        form.filters method="get" action=(base) role="search" {
            div {
                label for="filter-identifier" { "Identifier" }
                input #filter-identifier type="search" name="identifier"
                    value=(query.identifier.as_deref().unwrap_or(""));
            }
            div {
                label for="filter-tag" { "Tag" }
                input #filter-tag name="tag" value=(query.tag.as_deref().unwrap_or(""));
            }
            div {
                label for="filter-status" { "Status" }
                select #filter-status name="status" {
                    option value="" selected[chosen.is_empty()] { "Any" }
                    @for (value, label) in STATUSES {
                        option value=(value) selected[chosen == *value] { (label) }
                    }
                }
            }
            @if let Some(size) = query.page_size.as_deref().filter(|s| !s.is_empty()) {
                input type="hidden" name="page_size" value=(size);
            }
            button type="submit" { "Filter" }
            @if !is_blank(&query.identifier) || !is_blank(&query.tag) || !is_blank(&query.status) {
                a href=(base) { "Clear" }
            }
        }
    }
}

fn add_form(ctx: &PageContext, base: &str) -> Markup {
    html! {
        section.card {
            h2 { "Add a device" }
            form method="post" action=(base) {
                (ctx.csrf_field())
                label for="device-identifier" { "Identifier" }
                input #device-identifier name="identifier" required maxlength="255"
                    aria-describedby="device-identifier-help";
                p.help #device-identifier-help { "Unique on the server; no spaces or / ? # % \\." }
                label for="device-description" { "Description" }
                input #device-description name="description" maxlength="10000";
                label for="device-tags" { "Tags" }
                input #device-tags name="tags" aria-describedby="device-tags-help";
                p.help #device-tags-help { "Separated by commas, e.g. “beta, lab”." }
                button.primary type="submit" { "Add device" }
            }
        }
    }
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Page, WebError> {
    let table = table_fragment(&web, &session, &org, &product, &query).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    let base = devices_path(&org, &product);
    let encoded = query.encode();
    let source = if encoded.is_empty() {
        format!("{base}/live")
    } else {
        format!("{base}/live?{encoded}")
    };
    let body = html! {
        (filter_form(&base, &query))
        (live::region(&source, table))
        @if ctx.can(Role::Manage) {
            (add_form(&ctx, &base))
        }
    };
    Ok(Page::new(ctx, format!("Devices of {product}"), body))
}

/// `…/devices/live`: the table's event stream for the browser's EventSource, and otherwise
/// the page of a device named `live`, which the static route would hide.
async fn live_list(
    State(web): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path((org, product)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_events {
        let page = super::device_page::device_page(&web, &session, &org, &product, "live").await?;
        return Ok(page.into_response());
    }
    Ok(live::stream(move || {
        let (web, session, org, product, query) = (
            web.clone(),
            session.clone(),
            org.clone(),
            product.clone(),
            query.clone(),
        );
        async move { table_fragment(&web, &session, &org, &product, &query).await }
    })
    .into_response())
}

#[derive(Deserialize)]
struct NewDeviceForm {
    identifier: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
}

async fn create(
    State(web): State<WebState>,
    Path((org, product)): Path<(String, String)>,
    posted: Posted<NewDeviceForm>,
) -> Response {
    let identifier = posted.form.identifier.trim().to_owned();
    let base = devices_path(&org, &product);
    let result = web
        .post(
            &posted.session,
            &base,
            &json!({
                "identifier": identifier,
                "description": posted.form.description.trim(),
                // The API takes tags as one comma-separated string, as this field has them.
                "tags": posted.form.tags,
            }),
        )
        .await;
    form_outcome(
        result,
        &format!("{base}/{}", seg(&identifier)),
        &base,
        &format!("Device {identifier} added."),
        web.secure_cookies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_links_keep_the_filters() {
        let query = ListQuery {
            identifier: Some("abc".into()),
            tag: Some(String::new()),
            status: Some("online".into()),
            page: Some("2".into()),
            page_size: None,
        };
        assert_eq!(query.on_page(3), "identifier=abc&status=online&page=3");
        assert_eq!(ListQuery::default().encode(), "");
    }
}
