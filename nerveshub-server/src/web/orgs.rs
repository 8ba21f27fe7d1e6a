//! Organizations and their products: the pages every other page hangs from.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::backend::{WebState, seg};
use super::page::{Page, WebError, form_outcome, text};
use super::session::{Posted, Session};
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/orgs", get(list).post(create))
        .route("/orgs/{org}", get(show))
        .route("/orgs/{org}/products", post(create_product))
        .route("/orgs/{org}/products/{product}", get(product))
        .route(
            "/orgs/{org}/products/{product}/delete",
            post(delete_product),
        )
}

async fn list(State(web): State<WebState>, session: Session) -> Result<Page, WebError> {
    let orgs = web.get(&session, "/orgs").await?;
    let ctx = web.context(&session, None, None).await?;
    let body = html! {
        @let orgs = orgs.as_array().cloned().unwrap_or_default();
        @if orgs.is_empty() {
            p.empty { "You are not a member of any organization yet. Create one below, or ask an organization's admin to add you." }
        } @else {
            table {
                thead { tr { th { "Organization" } th { "Your role" } } }
                tbody {
                    @for org in &orgs {
                        @let name = text(&org["name"]);
                        tr {
                            td { a href={"/orgs/" (seg(&name))} { (name) } }
                            td { (text(&org["role"])) }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Create an organization" }
            form method="post" action="/orgs" {
                (ctx.csrf_field())
                label for="org-name" { "Name" }
                input #org-name name="name" required pattern="[A-Za-z0-9_.\\-]+" maxlength="64"
                    aria-describedby="org-name-help";
                p.help #org-name-help { "Letters, digits, “-”, “_” and “.”; it appears in every URL." }
                button.primary type="submit" { "Create organization" }
            }
        }
    };
    Ok(Page::new(ctx, "Organizations", body))
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn create(State(web): State<WebState>, posted: Posted<NameForm>) -> Response {
    let name = posted.form.name.trim().to_owned();
    let result = web
        .post(&posted.session, "/orgs", &json!({"name": name}))
        .await;
    let to = format!("/orgs/{}", seg(&name));
    form_outcome(
        result,
        &to,
        "/orgs",
        &format!("Organization {name} created."),
        web.secure_cookies,
    )
}

async fn show(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
) -> Result<Page, WebError> {
    let products = web
        .get(&session, &format!("/orgs/{}/products", seg(&org)))
        .await?;
    let ctx = web.context(&session, Some(&org), None).await?;
    let org_path = ctx.org_path();
    let body = html! {
        @let products = products.as_array().cloned().unwrap_or_default();
        h2 { "Products" }
        @if products.is_empty() {
            p.empty { "No products yet." }
        } @else {
            ul.cards {
                @for product in &products {
                    @let name = text(&product["name"]);
                    li.card {
                        a.title href={(org_path) "/products/" (seg(&name))} { (name) }
                        @if let Some(seconds) = product["poll_interval_seconds"].as_i64() {
                            p.help { "Polling devices every " (seconds) " s" }
                        }
                    }
                }
            }
        }
        @if ctx.can(Role::Admin) {
            section.card {
                h2 { "Create a product" }
                form method="post" action={(org_path) "/products"} {
                    (ctx.csrf_field())
                    label for="product-name" { "Name" }
                    input #product-name name="name" required maxlength="64";
                    button.primary type="submit" { "Create product" }
                }
            }
        }
    };
    Ok(Page::new(ctx, org.clone(), body))
}

async fn create_product(
    State(web): State<WebState>,
    Path(org): Path<String>,
    posted: Posted<NameForm>,
) -> Response {
    let name = posted.form.name.trim().to_owned();
    let org_path = format!("/orgs/{}", seg(&org));
    let result = web
        .post(
            &posted.session,
            &format!("{org_path}/products"),
            &json!({"name": name}),
        )
        .await;
    let to = format!("{org_path}/products/{}/devices", seg(&name));
    form_outcome(
        result,
        &to,
        &org_path,
        &format!("Product {name} created."),
        web.secure_cookies,
    )
}

/// A product's home is its device list.
async fn product(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
) -> Result<Response, WebError> {
    // Asked of the API first, so a product that does not exist (or an org the user is not in)
    // is its 404 rather than a redirect to one.
    let path = format!("/orgs/{}/products/{}", seg(&org), seg(&product));
    let _: Value = web.get(&session, &path).await?;
    Ok(Redirect::to(&format!("{path}/devices")).into_response())
}

async fn delete_product(
    State(web): State<WebState>,
    Path((org, product)): Path<(String, String)>,
    posted: Posted<super::session::NoFields>,
) -> Response {
    let org_path = format!("/orgs/{}", seg(&org));
    let path = format!("{org_path}/products/{}", seg(&product));
    let result = web.delete(&posted.session, &path).await;
    form_outcome(
        result,
        &org_path,
        &format!("{path}/devices"),
        &format!("Product {product} deleted."),
        web.secure_cookies,
    )
}
