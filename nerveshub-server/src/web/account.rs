//! Signing in and out.
//!
//! The sign-in form is protected against login CSRF (a page elsewhere signing the browser in
//! to the attacker's account) by a double-submit token: a random `nh_login` cookie the form
//! repeats in a hidden field. A site on another origin can neither read the cookie nor set it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::backend::WebState;
use super::page::{WebError, bare_page, safe_next};
use super::session::{self, NoFields, Posted, Session};
use crate::db::{self, Actor, Audit};
use crate::error::ApiError;

const LOGIN_COOKIE: &str = "nh_login";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

async fn home(session: Result<Session, WebError>) -> Redirect {
    match session {
        Ok(_) => Redirect::to("/orgs"),
        Err(_) => Redirect::to("/login"),
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(web): State<WebState>,
    session: Result<Session, WebError>,
    Query(query): Query<NextQuery>,
) -> Result<Response, WebError> {
    let next = safe_next(query.next.as_deref().unwrap_or("/orgs")).to_owned();
    if session.is_ok() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_form(&web, &next, None, StatusCode::OK)
}

/// The sign-in form with a fresh login token (and `error`, after a failed attempt).
fn login_form(
    web: &WebState,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let token = session::new_secret()?;
    let body = bare_page(
        "Sign in",
        html! {
            h1.brand-title { "NervesHub" }
            form.card method="post" action="/login" {
                h2 { "Sign in" }
                @if let Some(error) = error {
                    p.flash.error role="alert" { (error) }
                }
                input type="hidden" name="_login" value=(token);
                input type="hidden" name="next" value=(next);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
        },
    );
    let mut response = (status, body).into_response();
    let cookie = session::set_cookie(LOGIN_COOKIE, &token, 3600, web.secure_cookies);
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(rename = "_login", default)]
    login_token: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let next = safe_next(&form.next).to_owned();
    let cookie = session::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if cookie.is_empty() || !session::same_token(cookie, &form.login_token) {
        return login_form(
            &web,
            &next,
            Some("The sign-in form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user =
        match crate::auth::check_password_sign_in(&web.app, peer.ip(), &form.email, &form.password)
            .await
        {
            Ok(user) => user,
            Err(ApiError::TooManyRequests(secs)) => {
                let message = format!("Too many sign-in attempts. Try again in {secs} seconds.");
                return login_form(&web, &next, Some(&message), StatusCode::TOO_MANY_REQUESTS);
            }
            Err(ApiError::Unauthorized) => {
                return login_form(
                    &web,
                    &next,
                    Some("The email or password is wrong."),
                    StatusCode::UNAUTHORIZED,
                );
            }
            Err(other) => return Err(WebError::internal("sign-in", other)),
        };
    let secret = session::new_secret()?;
    let internal = |e: sqlx::Error| WebError::internal("session", e);
    // The session and its audit row commit together.
    let mut tx = web.app.db.begin().await.map_err(internal)?;
    db::web_sessions::create_web_session(
        &mut tx,
        user.id,
        &session::secret_hash(&secret),
        web.app.clock.now_ms(),
    )
    .await
    .map_err(internal)?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::User(user.id),
            resource_type: "web_session",
            resource_id: &user.email,
            action: "create",
            description: format!("{} signed in to the web interface", user.email),
        },
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    for cookie in [
        session::session_cookie(&secret, web.secure_cookies),
        session::set_cookie(LOGIN_COOKIE, "", 0, web.secure_cookies),
    ] {
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    Ok(response)
}

async fn logout(
    State(web): State<WebState>,
    posted: Posted<NoFields>,
) -> Result<Response, WebError> {
    web.app
        .db
        .delete_web_session(&posted.session.secret_hash)
        .await
        .map_err(|e| WebError::internal("session", e))?;
    let mut response = Redirect::to("/login").into_response();
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", 0, web.secure_cookies);
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
