//! The signed-in user's API tokens (`/api/users/me/tokens`): listed, made with a note (the
//! token shown once, on the page the POST renders), revoked.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::backend::{WebState, seg};
use super::page::{Page, WebError, form_outcome, text, when};
use super::session::{NoFields, Posted, Session};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/account/tokens", get(list).post(create))
        .route("/account/tokens/{id}/revoke", post(revoke))
}

/// `text` in a `pre` with a Copy button (app.js copies the element named by `data-copy`).
pub(super) fn copyable(id: &str, text: &str) -> Markup {
    html! {
        div.copyable {
            pre id=(id) { (text) }
            button type="button" data-copy=(id) aria-label="Copy to the clipboard" { "Copy" }
        }
    }
}

/// The page that shows a new secret this once.
pub(super) fn shown_once(what: &str, id: &str, secret: &str, usage: Markup) -> Markup {
    html! {
        section.secret role="alert" {
            h2 { "Your new " (what) }
            p { strong { "Copy it now: it will not be shown again." } " Only a hash or an encrypted form is kept on the server." }
            (copyable(id, secret))
            (usage)
        }
    }
}

async fn list(State(web): State<WebState>, session: Session) -> Result<Page, WebError> {
    let tokens = web.get(&session, "/users/me/tokens").await?;
    let ctx = web.context(&session, None, None).await?;
    let body = html! {
        p.help { "Tokens let scripts and command-line tools use the management API (" code { "/api" } ") as you, with your roles in each org. Revoke any you no longer use." }
        @let tokens = tokens.as_array().cloned().unwrap_or_default();
        @if tokens.is_empty() {
            p.empty { "You have no API tokens." }
        } @else {
            table {
                thead { tr { th { "Note" } th { "Created" } th { "Last used" } th { "Actions" } } }
                tbody {
                    @for token in &tokens {
                        @let id = text(&token["id"]);
                        @let note = token["note"].as_str().filter(|n| !n.is_empty()).unwrap_or("(no note)").to_owned();
                        tr {
                            td { (note) @if token["current"] == true { " " span.badge { "this session" } } }
                            td { (when(&token["inserted_at"])) }
                            td { @if token["last_used"].is_null() { "never" } @else { (when(&token["last_used"])) } }
                            td { (ctx.button(&format!("/account/tokens/{}/revoke", seg(&id)), "Revoke", "danger",
                                Some(&format!("Really revoke the token “{note}”? Whatever uses it stops working."))))
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Create a token" }
            form method="post" action="/account/tokens" {
                (ctx.csrf_field())
                label for="token-note" { "Note" }
                input #token-note name="note" maxlength="255" aria-describedby="token-note-help";
                p.help #token-note-help { "What the token is for, e.g. “CI uploads”." }
                button.primary type="submit" { "Create token" }
            }
        }
    };
    Ok(Page::new(ctx, "API tokens", body))
}

#[derive(Deserialize)]
struct NewToken {
    #[serde(default)]
    note: String,
}

async fn create(State(web): State<WebState>, posted: Posted<NewToken>) -> Response {
    let session = &posted.session;
    let note = posted.form.note.trim();
    let made = match web
        .post(session, "/users/me/tokens", &json!({"note": note}))
        .await
    {
        Ok(made) => made,
        Err(error) => {
            return form_outcome::<()>(Err(error), "", "/account/tokens", "", web.secure_cookies);
        }
    };
    let Some(token) = made["token"].as_str() else {
        return WebError::bug("the new token's answer has no token").into_response();
    };
    let ctx = match web.context(session, None, None).await {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let usage = html! {
        p { "Use it as a bearer token:" }
        (copyable("token-usage", &format!("curl -H \"Authorization: Bearer {token}\" https://<this server>/api/users/me")))
    };
    let body = html! {
        (shown_once("API token", "new-token", token, usage))
        p { a href="/account/tokens" { "Back to your tokens" } }
    };
    Page::new(ctx, "API token created", body).into_response()
}

async fn revoke(
    State(web): State<WebState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let result = web
        .delete(&posted.session, &format!("/users/me/tokens/{}", seg(&id)))
        .await;
    form_outcome(
        result,
        "/account/tokens",
        "/account/tokens",
        "Token revoked.",
        web.secure_cookies,
    )
}
