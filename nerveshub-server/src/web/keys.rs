//! An org's firmware signing keys: the Ed25519 public keys `fwup -g` makes.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::backend::{WebState, seg};
use super::page::{Page, WebError, form_outcome, text, when};
use super::session::{NoFields, Posted, Session};
use super::tokens::copyable;
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/orgs/{org}/keys", get(list).post(add))
        .route("/orgs/{org}/keys/{name}/delete", post(delete))
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
) -> Result<Page, WebError> {
    let keys = web
        .get(&session, &format!("/orgs/{}/keys", seg(&org)))
        .await?;
    let ctx = web.context(&session, Some(&org), None).await?;
    let base = format!("{}/keys", ctx.org_path());
    let manage = ctx.can(Role::Manage);
    let body = html! {
        p.help { "Firmware uploaded to this org must be signed by one of these keys; devices check the signature with the public key they were built with." }
        @let keys = keys.as_array().cloned().unwrap_or_default();
        @if keys.is_empty() {
            p.empty { "No signing keys yet." }
        } @else {
            table {
                thead { tr {
                    th { "Name" } th { "Public key" } th { "Created" }
                    @if manage { th { "Actions" } }
                } }
                tbody {
                    @for key in &keys {
                        @let name = text(&key["name"]);
                        tr {
                            td { (name) }
                            td { code { (text(&key["key"])) } }
                            td { (when(&key["inserted_at"])) }
                            @if manage {
                                td { (ctx.button(&format!("{base}/{}/delete", seg(&name)), "Delete", "danger",
                                    Some(&format!("Really delete signing key {name}? Firmware signed with it can no longer be uploaded."))))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            section.card {
                h2 { "Add a signing key" }
                p { "Make a key pair with fwup on your build machine:" }
                (copyable("fwup-keygen", "fwup -g"))
                p.help {
                    "This writes " code { "fwup-key.priv" } " (keep it secret; sign firmware with "
                    code { "fwup -S -s fwup-key.priv -i firmware.fw -o signed.fw" }
                    ") and " code { "fwup-key.pub" } ". Paste the contents of " code { "fwup-key.pub" } " below."
                }
                form method="post" action=(base) {
                    (ctx.csrf_field())
                    label for="key-name" { "Name" }
                    input #key-name name="name" required maxlength="100";
                    label for="key-text" { "Public key (contents of fwup-key.pub)" }
                    textarea #key-text name="key" required maxlength="256" rows="2"
                        placeholder="base64 of the 32-byte Ed25519 public key" {}
                    button.primary type="submit" { "Add key" }
                }
            }
        }
    };
    Ok(Page::new(ctx, "Signing keys", body))
}

#[derive(Deserialize)]
struct NewKey {
    name: String,
    key: String,
}

async fn add(
    State(web): State<WebState>,
    Path(org): Path<String>,
    posted: Posted<NewKey>,
) -> Response {
    let name = posted.form.name.trim().to_owned();
    let base = format!("/orgs/{}/keys", seg(&org));
    let result = web
        .post(
            &posted.session,
            &base,
            &json!({"name": name, "key": posted.form.key.trim()}),
        )
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("Signing key {name} added."),
        web.secure_cookies,
    )
}

async fn delete(
    State(web): State<WebState>,
    Path((org, name)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let base = format!("/orgs/{}/keys", seg(&org));
    let result = web
        .delete(&posted.session, &format!("{base}/{}", seg(&name)))
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("Signing key {name} deleted."),
        web.secure_cookies,
    )
}
