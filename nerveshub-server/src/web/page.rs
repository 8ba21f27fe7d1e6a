//! The page shell (header, navigation, flash message), errors as pages, and the small
//! building blocks every page uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::backend::seg;
use super::session;
use crate::auth::Role;
use crate::db::UserRow;

/// Who is looking, and where.
#[derive(Debug, Clone)]
pub(crate) struct PageContext {
    pub(crate) user: UserRow,
    pub(crate) csrf: String,
    pub(crate) org: Option<String>,
    pub(crate) product: Option<String>,
    /// The user's role in `org`: used only to leave out buttons the API would refuse.
    pub(crate) role: Option<Role>,
    pub(crate) flash: Option<Flash>,
}

impl PageContext {
    /// Whether the user's role in the page's org is at least `needed`.
    pub(crate) fn can(&self, needed: Role) -> bool {
        self.role.is_some_and(|role| role >= needed)
    }

    /// `/orgs/<org>` (or `/orgs` outside an org).
    pub(crate) fn org_path(&self) -> String {
        match &self.org {
            Some(org) => format!("/orgs/{}", seg(org)),
            None => "/orgs".to_owned(),
        }
    }

    /// `/orgs/<org>/products/<product>` (the org's path outside a product).
    pub(crate) fn product_path(&self) -> String {
        match &self.product {
            Some(product) => format!("{}/products/{}", self.org_path(), seg(product)),
            None => self.org_path(),
        }
    }

    /// The hidden field every form carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="_csrf" value=(self.csrf); }
    }

    /// A one-button form posting to `action` (a change: reboot, delete, …), asking first when
    /// `confirm` is given (with JavaScript).
    pub(crate) fn button(
        &self,
        action: &str,
        label: &str,
        class: &str,
        confirm: Option<&str>,
    ) -> Markup {
        html! {
            form.inline method="post" action=(action) data-confirm=[confirm] {
                (self.csrf_field())
                button type="submit" class=(class) { (label) }
            }
        }
    }
}

/// A message for the next page, left by a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

impl Flash {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Flash {
            ok: true,
            text: text.into(),
        }
    }

    pub(crate) fn error(text: impl Into<String>) -> Self {
        Flash {
            ok: false,
            text: text.into(),
        }
    }

    pub(crate) fn encode(&self) -> String {
        let text: String = self.text.chars().take(500).collect();
        let kind = if self.ok { "ok" } else { "error" };
        percent_encoding::utf8_percent_encode(
            &format!("{kind}:{text}"),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
    }

    pub(crate) fn decode(value: &str) -> Option<Self> {
        let text = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?;
        let (kind, text) = text.split_once(':')?;
        Some(Flash {
            ok: kind == "ok",
            text: text.to_owned(),
        })
    }
}

/// A page that could not be shown as asked.
#[derive(Debug)]
pub(crate) enum WebError {
    /// No live session: to the sign-in page, coming back to `next` afterwards.
    SignIn { next: String },
    /// Refused (by the API or the form checks): shown with the same status.
    Refused {
        status: StatusCode,
        messages: Vec<String>,
    },
    /// A fault of the server, logged with its cause; the page says only that.
    Internal(crate::InternalError),
}

impl WebError {
    /// A fault caused by `source` while doing `context`.
    pub(crate) fn internal(
        context: &'static str,
        source: impl Into<crate::error::BoxError>,
    ) -> Self {
        WebError::Internal(crate::InternalError::caused(context, source))
    }

    /// A broken invariant of our own (an API answer without what it always holds).
    pub(crate) fn bug(context: &'static str) -> Self {
        WebError::Internal(crate::InternalError::broken(context))
    }

    pub(crate) fn not_found(what: &str) -> Self {
        WebError::Refused {
            status: StatusCode::NOT_FOUND,
            messages: vec![format!("{what} was not found.")],
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        WebError::Refused {
            status: StatusCode::BAD_REQUEST,
            messages: vec![message.into()],
        }
    }

    /// The refusal's messages in one line.
    pub(crate) fn message(&self) -> String {
        match self {
            WebError::SignIn { .. } => "Please sign in again.".to_owned(),
            WebError::Refused { messages, .. } => messages.join(" "),
            WebError::Internal(_) => "Something went wrong on the server.".to_owned(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn { next } => {
                let next = safe_next(&next);
                let target = format!(
                    "/login?next={}",
                    percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                );
                Redirect::to(&target).into_response()
            }
            WebError::Refused { status, messages } => {
                let title = status.canonical_reason().unwrap_or("Refused");
                (
                    status,
                    bare_page(
                        title,
                        html! {
                            h1 { (status.as_u16()) " " (title) }
                            @for message in &messages { p.error { (message) } }
                            p { a href="/orgs" { "Back to your organizations" } }
                        },
                    ),
                )
                    .into_response()
            }
            WebError::Internal(cause) => {
                let mut response = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    bare_page(
                        "Server error",
                        html! {
                            h1 { "Server error" }
                            p { "Something went wrong on the server; it has been logged." }
                        },
                    ),
                )
                    .into_response();
                // Logged once, with method, path and the source chain, by the error layer.
                crate::observability::attach_cause(&mut response, cause);
                response
            }
        }
    }
}

/// A redirect target from a `next` parameter: a path on this site only.
pub(crate) fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/orgs"
    }
}

/// After a form: back to `to` with `flash`, the POST-redirect-GET every form follows.
pub(crate) fn redirect_with(to: &str, flash: Flash, secure: bool) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::flash_cookie(&flash, secure)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The answer to a form whose change went to the API: success to `to` with `done`; a
/// refusal for a role or org (403/404) as its error page; any other refusal (a bad value, a
/// conflict) back to `back` with the API's message.
pub(crate) fn form_outcome<T>(
    result: Result<T, WebError>,
    to: &str,
    back: &str,
    done: &str,
    secure: bool,
) -> Response {
    match result {
        Ok(_) => redirect_with(to, Flash::ok(done), secure),
        Err(WebError::Refused { status, messages })
            if status != StatusCode::FORBIDDEN && status != StatusCode::NOT_FOUND =>
        {
            redirect_with(back, Flash::error(messages.join(" ")), secure)
        }
        Err(error) => error.into_response(),
    }
}

/// A full page in the shell: header, navigation for the context's org and product, flash.
pub(crate) struct Page {
    pub(crate) ctx: PageContext,
    pub(crate) title: String,
    pub(crate) body: Markup,
}

impl Page {
    pub(crate) fn new(ctx: PageContext, title: impl Into<String>, body: Markup) -> Self {
        Page {
            ctx,
            title: title.into(),
            body,
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let had_flash = self.ctx.flash.is_some();
        let markup = shell(&self.ctx, &self.title, self.body);
        let mut response = markup.into_response();
        if had_flash {
            // Shown once: the next page must not show it again.
            if let Ok(cookie) = HeaderValue::from_str(&session::clear_flash_cookie(false)) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        response
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx: no inline styles or eval, which the content security policy forbids.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
            title { (title) " · NervesHub" }
            link rel="stylesheet" href=(assets::path("app.css"));
            script src=(assets::path("htmx.min.js")) defer {}
            script src=(assets::path("htmx-ext-sse.min.js")) defer {}
            script src=(assets::path("app.js")) defer {}
        }
    }
}

/// A page outside the shell (sign-in, errors).
pub(crate) fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main.narrow { (body) }
            }
        }
    }
}

fn shell(ctx: &PageContext, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/orgs" { "NervesHub" }
                    nav.crumbs aria-label="Breadcrumb" {
                        @if let Some(org) = &ctx.org {
                            a href=(ctx.org_path()) { (org) }
                            @if let Some(product) = &ctx.product {
                                span.sep aria-hidden="true" { "/" }
                                a href=(ctx.product_path()) { (product) }
                            }
                        }
                    }
                    div.account {
                        span.who { (ctx.user.email) }
                        a href="/account/tokens" { "API tokens" }
                        form.inline method="post" action="/logout" {
                            (ctx.csrf_field())
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                div.layout {
                    @if ctx.org.is_some() {
                        nav.side aria-label="Sections" { (side_nav(ctx)) }
                    }
                    main #main {
                        @if let Some(flash) = &ctx.flash {
                            p class=(if flash.ok { "flash ok" } else { "flash error" }) role="status" { (flash.text) }
                        }
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

fn side_nav(ctx: &PageContext) -> Markup {
    let org = ctx.org_path();
    html! {
        @if ctx.product.is_some() {
            @let product = ctx.product_path();
            h2 { "Product" }
            ul {
                li { a href={(product) "/devices"} { "Devices" } }
                li { a href={(product) "/firmwares"} { "Firmware" } }
                li { a href={(product) "/deployments"} { "Deployments" } }
                li { a href={(product) "/shared_secrets"} { "Shared secrets" } }
            }
        }
        h2 { "Organization" }
        ul {
            li { a href=(org) { "Products" } }
            li { a href={(org) "/keys"} { "Signing keys" } }
            li { a href={(org) "/ca_certificates"} { "Device CAs" } }
            @if ctx.can(Role::Admin) {
                li { a href={(org) "/members"} { "Members" } }
            }
            li { a href={(org) "/audit"} { "Audit log" } }
        }
    }
}

/// A Unix-millisecond or RFC 3339 time from the API as a short UTC text.
pub(crate) fn when(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text
            .get(..19)
            .map(|t| format!("{} UTC", t.replace('T', " ")))
            .unwrap_or_else(|| text.clone()),
        serde_json::Value::Number(ms) => ms
            .as_i64()
            .and_then(crate::time::iso8601_ms)
            .map(|t| when(&serde_json::Value::String(t)))
            .unwrap_or_default(),
        _ => "—".to_owned(),
    }
}

/// A JSON list of strings as `a, b, c` (empty for anything else).
pub(crate) fn comma_list(value: &serde_json::Value) -> String {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A JSON value as display text (`—` for null).
pub(crate) fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_round_trips() {
        let flash = Flash::error("name: has already been taken; é");
        assert_eq!(Flash::decode(&flash.encode()), Some(flash));
        assert_eq!(Flash::decode("garbage"), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/orgs/acme"), "/orgs/acme");
        assert_eq!(safe_next("//evil.example/"), "/orgs");
        assert_eq!(safe_next("https://evil.example/"), "/orgs");
        assert_eq!(safe_next("/\\evil.example"), "/orgs");
    }

    #[test]
    fn times_are_short() {
        assert_eq!(
            when(&serde_json::json!("2026-12-04T15:00:01.123Z")),
            "2026-12-04 15:00:01 UTC"
        );
        assert_eq!(when(&serde_json::Value::Null), "—");
    }
}
