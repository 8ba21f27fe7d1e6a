//! A product's NH1 shared secrets: devices sign in with a key and an HMAC of the secret.
//! The API has no hard delete: a secret is deactivated, and its key stays listed.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use serde_json::{Value, json};

use super::backend::{WebState, seg};
use super::page::{Page, WebError, form_outcome, text, when};
use super::session::{NoFields, Posted, Session};
use super::tokens::{copyable, shown_once};
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/orgs/{org}/products/{product}/shared_secrets",
            get(list).post(create),
        )
        .route(
            "/orgs/{org}/products/{product}/shared_secrets/{key}/deactivate",
            post(deactivate),
        )
}

/// The API's path, which is also the page's (pages mirror the API without `/api`).
fn api_path(org: &str, product: &str) -> String {
    format!(
        "/orgs/{}/products/{}/shared_secrets",
        seg(org),
        seg(product)
    )
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
) -> Result<Page, WebError> {
    let secrets = web.get(&session, &api_path(&org, &product)).await?;
    let ctx = web.context(&session, Some(&org), Some(&product)).await?;
    let base = format!("{}/shared_secrets", ctx.product_path());
    let manage = ctx.can(Role::Manage);
    let body = html! {
        p.help {
            "Devices without a certificate sign in with a product key and secret (NH1 shared-secret authentication, "
            code { "nerves_hub_link" } "'s " code { "shared_secret" } " settings). The secret is shown only when it is made."
        }
        @let secrets = secrets.as_array().cloned().unwrap_or_default();
        @if secrets.is_empty() {
            p.empty { "No shared secrets yet." }
        } @else {
            table {
                thead { tr {
                    th { "Key" } th { "Created" } th { "Status" }
                    @if manage { th { "Actions" } }
                } }
                tbody {
                    @for secret in &secrets {
                        @let key = text(&secret["key"]);
                        @let active = secret["deactivated_at"].is_null();
                        tr {
                            td { code { (key) } }
                            td { (when(&secret["inserted_at"])) }
                            td {
                                @if active { span.badge.on { "active" } }
                                @else { span.badge.off { "deactivated " (when(&secret["deactivated_at"])) } }
                            }
                            @if manage {
                                td {
                                    @if active {
                                        (ctx.button(&format!("{base}/{}/deactivate", seg(&key)), "Deactivate", "danger",
                                            Some("Really deactivate this secret? Devices using it can no longer sign in.")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            form method="post" action=(base) {
                (ctx.csrf_field())
                button.primary type="submit" { "Create a shared secret" }
            }
        }
    };
    Ok(Page::new(ctx, "Shared secrets", body))
}

async fn create(
    State(web): State<WebState>,
    Path((org, product)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let session = &posted.session;
    let back = api_path(&org, &product);
    let made: Value = match web
        .post(session, &api_path(&org, &product), &json!({}))
        .await
    {
        Ok(made) => made,
        Err(error) => return form_outcome::<()>(Err(error), "", &back, "", web.secure_cookies),
    };
    let (Some(key), Some(secret)) = (made["key"].as_str(), made["secret"].as_str()) else {
        return WebError::bug("the new shared secret's answer lacks key or secret").into_response();
    };
    let ctx = match web.context(session, Some(&org), Some(&product)).await {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let usage = html! {
        dl.facts {
            dt { "Key" } dd { code #new-key { (key) } }
            dt { "Created" } dd { (when(&made["inserted_at"])) }
        }
        p { "In the device's config:" }
        (copyable("secret-config", &format!(
            "config :nerves_hub_link,\n  shared_secret: [\n    product_key: \"{key}\",\n    product_secret: \"{secret}\"\n  ]"
        )))
    };
    let body = html! {
        (shown_once("shared secret", "new-secret", secret, usage))
        p { a href=(back) { "Back to the shared secrets" } }
    };
    Page::new(ctx, "Shared secret created", body).into_response()
}

async fn deactivate(
    State(web): State<WebState>,
    Path((org, product, key)): Path<(String, String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let base = api_path(&org, &product);
    let result = web
        .delete(&posted.session, &format!("{base}/{}", seg(&key)))
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("Shared secret {key} deactivated."),
        web.secure_cookies,
    )
}
