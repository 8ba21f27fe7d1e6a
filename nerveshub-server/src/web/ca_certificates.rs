//! An org's Device CAs: listed, registered with proof of possession of the CA's key (a
//! verification certificate carrying a token from the API, made with the `openssl` commands
//! the page shows), optionally with just-in-time provisioning, and unregistered.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backend::{WebState, seg};
use super::page::{Flash, Page, PageContext, WebError, form_outcome, redirect_with, text, when};
use super::session::{NoFields, Posted, Session};
use super::tokens::copyable;
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/orgs/{org}/ca_certificates", get(list).post(register))
        .route("/orgs/{org}/ca_certificates/new", get(new))
        .route("/orgs/{org}/ca_certificates/{serial}/delete", post(delete))
}

fn api_path(org: &str) -> String {
    format!("/orgs/{}/ca_certificates", seg(org))
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
) -> Result<Page, WebError> {
    let cas = web.get(&session, &api_path(&org)).await?;
    let ctx = web.context(&session, Some(&org), None).await?;
    let base = format!("{}/ca_certificates", ctx.org_path());
    let manage = ctx.can(Role::Manage);
    let body = html! {
        p.help { "Devices whose TLS client certificate was issued by one of these CAs may connect. With just-in-time provisioning (JITP), a device the server has not seen is created in the CA's product on its first connection." }
        @if manage {
            p.actions { a.button.primary href={(base) "/new"} { "Register a Device CA" } }
        }
        @let cas = cas.as_array().cloned().unwrap_or_default();
        @if cas.is_empty() {
            p.empty { "No Device CAs are registered." }
        } @else {
            div.table-scroll {
                table {
                    thead { tr {
                        th { "Serial" } th { "Subject" } th { "Description" } th { "Valid" } th { "JITP" }
                        @if manage { th { "Actions" } }
                    } }
                    tbody {
                        @for ca in &cas {
                            @let serial = text(&ca["serial"]);
                            tr {
                                td { code { (serial) } }
                                td { (text(&ca["subject"])) }
                                td { (text(&ca["description"])) }
                                td { (when(&ca["not_before"])) " to " (when(&ca["not_after"])) }
                                td {
                                    @if ca["jitp"].is_object() {
                                        @let jitp = &ca["jitp"];
                                        (text(&jitp["product_name"]))
                                        @if jitp["tags"].as_array().is_some_and(|t| !t.is_empty()) {
                                            " (tags: "
                                            (super::page::comma_list(&jitp["tags"]))
                                            ")"
                                        }
                                    } @else { "—" }
                                }
                                @if manage {
                                    td { (ctx.button(&format!("{base}/{}/delete", seg(&serial)), "Delete", "danger",
                                        Some("Really unregister this CA? Devices with certificates it issued can no longer connect.")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(ctx, "Device CAs", body))
}

/// What the registration form posts (and shows again after a refusal).
#[derive(Deserialize, Default)]
struct CaForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    cert: String,
    #[serde(default)]
    verification_cert: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    jitp_product: String,
    #[serde(default)]
    jitp_tags: String,
    #[serde(default)]
    jitp_description: String,
}

/// Tokens go into shell commands the user copies: only the URL-safe base64 the API makes.
fn plain_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn new(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
) -> Result<Page, WebError> {
    let answer = web
        .get(&session, &format!("{}/verification_token", api_path(&org)))
        .await?;
    let token = answer["verification_token"]
        .as_str()
        .filter(|t| plain_token(t))
        .ok_or_else(|| WebError::bug("verification token missing or odd"))?
        .to_owned();
    let products = web
        .get(&session, &format!("/orgs/{}/products", seg(&org)))
        .await?;
    let ctx = web.context(&session, Some(&org), None).await?;
    let form = CaForm {
        token,
        ..CaForm::default()
    };
    let body = register_body(&ctx, &products, &form, None);
    Ok(Page::new(ctx, "Register a Device CA", body))
}

/// The proof-of-possession steps for `form.token`, then the registration form.
fn register_body(
    ctx: &PageContext,
    products: &Value,
    form: &CaForm,
    error: Option<&str>,
) -> Markup {
    let token = &form.token;
    let products = products.as_array().cloned().unwrap_or_default();
    let base = format!("{}/ca_certificates", ctx.org_path());
    html! {
        @if let Some(error) = error {
            p.flash.error role="alert" { (error) }
        }
        section.card {
            h2 { "1. Prove you hold the CA's key" }
            p {
                "Make a verification certificate signed by the CA's key. Its common name and its "
                code { "urn:nerveshub:verify:" } " URI carry this single-use token (valid for one hour):"
            }
            (copyable("ca-token", token))
            p { "In the directory holding the CA certificate " code { "ca.pem" } " and its key " code { "ca.key" } ", run:" }
            ol.steps {
                li {
                    p { "Make a key and a signing request whose common name is the token:" }
                    (copyable("ca-step-csr", &format!(
                        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\\n  -keyout verification.key -subj \"/CN={token}\" -out verification.csr"
                    )))
                }
                li {
                    p { "Put the token in the certificate's subject alternative name too:" }
                    (copyable("ca-step-ext", &format!(
                        "printf 'subjectAltName=URI:urn:nerveshub:verify:{token}\\n' > verification.ext"
                    )))
                }
                li {
                    p { "Sign it with the CA's key:" }
                    (copyable("ca-step-sign",
                        "openssl x509 -req -in verification.csr -CA ca.pem -CAkey ca.key -CAcreateserial \\\n  -days 1 -sha256 -extfile verification.ext -out verification.pem"))
                }
            }
            p.help { "The CA's key never leaves your machine; the server checks only that " code { "verification.pem" } " is signed by it." }
        }
        section.card {
            h2 { "2. Register the CA" }
            form method="post" action=(base) {
                (ctx.csrf_field())
                input type="hidden" name="token" value=(token);
                label for="ca-cert" { "CA certificate (contents of ca.pem)" }
                textarea #ca-cert name="cert" required rows="6"
                    placeholder="-----BEGIN CERTIFICATE-----" { (form.cert) }
                label for="ca-verification" { "Verification certificate (contents of verification.pem)" }
                textarea #ca-verification name="verification_cert" required rows="6"
                    placeholder="-----BEGIN CERTIFICATE-----" { (form.verification_cert) }
                label for="ca-description" { "Description" }
                input #ca-description name="description" maxlength="1000" value=(form.description);
                fieldset {
                    legend { "Just-in-time provisioning (optional)" }
                    p.help { "Devices with a certificate from this CA that the server has not seen are created on their first connection, in this product." }
                    label for="ca-jitp-product" { "Product" }
                    select #ca-jitp-product name="jitp_product" {
                        option value="" { "No JITP" }
                        @for product in &products {
                            @let name = text(&product["name"]);
                            option value=(name) selected[name == form.jitp_product] { (name) }
                        }
                    }
                    label for="ca-jitp-tags" { "Tags for new devices" }
                    input #ca-jitp-tags name="jitp_tags" value=(form.jitp_tags) aria-describedby="ca-jitp-tags-help";
                    p.help #ca-jitp-tags-help { "Separated by commas." }
                    label for="ca-jitp-description" { "Description for new devices" }
                    input #ca-jitp-description name="jitp_description" maxlength="1000" value=(form.jitp_description);
                }
                button.primary type="submit" { "Register CA" }
            }
        }
    }
}

async fn register(
    State(web): State<WebState>,
    Path(org): Path<String>,
    posted: Posted<CaForm>,
) -> Response {
    let form = posted.form;
    let session = &posted.session;
    if !plain_token(&form.token) {
        return WebError::bad_request("The form's verification token is missing or malformed.")
            .into_response();
    }
    let mut body = json!({
        "cert": form.cert,
        "verification_cert": form.verification_cert,
        "description": form.description.trim(),
    });
    if !form.jitp_product.is_empty() {
        body["jitp"] = json!({
            "product_name": form.jitp_product,
            "tags": form.jitp_tags,
            "description": form.jitp_description.trim(),
        });
    }
    let base = api_path(&org);
    let error = match web.post(session, &base, &body).await {
        Ok(made) => {
            let done = format!("Device CA {} registered.", text(&made["serial"]));
            return redirect_with(&base, Flash::ok(done), web.secure_cookies);
        }
        Err(WebError::Refused { status, messages })
            if status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST =>
        {
            messages.join(" ")
        }
        Err(other) => return other.into_response(),
    };
    // Refused for its content: the same page again, with the same token (a refused
    // registration does not use it up) and what was pasted.
    let page = async {
        let products = web
            .get(session, &format!("/orgs/{}/products", seg(&org)))
            .await?;
        let ctx = web.context(session, Some(&org), None).await?;
        let markup = register_body(&ctx, &products, &form, Some(&error));
        Ok::<_, WebError>(Page::new(ctx, "Register a Device CA", markup))
    };
    match page.await {
        Ok(page) => (StatusCode::UNPROCESSABLE_ENTITY, page).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn delete(
    State(web): State<WebState>,
    Path((org, serial)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let base = api_path(&org);
    let result = web
        .delete(&posted.session, &format!("{base}/{}", seg(&serial)))
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("Device CA {serial} unregistered."),
        web.secure_cookies,
    )
}
