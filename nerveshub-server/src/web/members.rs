//! An org's members and their roles (admins only, as the API's `/orgs/{org}/users`).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::backend::{WebState, seg};
use super::page::{Page, WebError, form_outcome, text};
use super::session::{NoFields, Posted, Session};
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/orgs/{org}/members", get(list).post(add))
        .route("/orgs/{org}/members/{email}/role", post(change_role))
        .route("/orgs/{org}/members/{email}/remove", post(remove))
}

const ROLES: [Role; 3] = [Role::Admin, Role::Manage, Role::View];

/// A role picker named `role`, with `selected` chosen.
fn role_select(id: &str, selected: &str) -> Markup {
    html! {
        select id=(id) name="role" aria-describedby="member-role-help" {
            @for role in ROLES {
                option value=(role.as_str()) selected[role.as_str() == selected] { (role.as_str()) }
            }
        }
    }
}

async fn list(
    State(web): State<WebState>,
    session: Session,
    Path(org): Path<String>,
) -> Result<Page, WebError> {
    let members = web
        .get(&session, &format!("/orgs/{}/users", seg(&org)))
        .await?;
    let ctx = web.context(&session, Some(&org), None).await?;
    let base = format!("{}/members", ctx.org_path());
    // The API answered, so the user may manage members (an org admin or a server admin).
    let body = html! {
        @let members = members.as_array().cloned().unwrap_or_default();
        table {
            thead { tr { th { "Email" } th { "Name" } th { "Role" } th { "Actions" } } }
            tbody {
                @for (i, member) in members.iter().enumerate() {
                    @let email = text(&member["email"]);
                    @let role = text(&member["role"]);
                    @let path = format!("{base}/{}", seg(&email));
                    tr {
                        td { (email) }
                        td { (text(&member["name"])) }
                        td { span class={"badge role-" (role)} { (role) } }
                        td { div.row-actions {
                            form.inline method="post" action={(path) "/role"} {
                                (ctx.csrf_field())
                                label.visually-hidden for={"role-" (i)} { "Role of " (email) }
                                (role_select(&format!("role-{i}"), &role))
                                " "
                                button type="submit" { "Change role" }
                            }
                            (ctx.button(&format!("{path}/remove"), "Remove", "danger",
                                Some(&format!("Really remove {email} from {org}?"))))
                        } }
                    }
                }
            }
        }
        section.card {
            h2 { "Add a member" }
            p.help { "The person needs an account on this server first; add them by its email." }
            form method="post" action=(base) {
                (ctx.csrf_field())
                label for="member-email" { "Email" }
                input #member-email type="email" name="email" required maxlength="320";
                label for="member-role" { "Role" }
                (role_select("member-role", "view"))
                dl.facts #member-role-help {
                    dt { "view" } dd { "sees everything in the org" }
                    dt { "manage" } dd { "also changes devices, firmware, deployments, product settings, signing keys and CAs" }
                    dt { "admin" } dd { "also manages members, and creates and deletes products" }
                }
                button.primary type="submit" { "Add member" }
            }
        }
    };
    Ok(Page::new(ctx, format!("Members of {org}"), body))
}

#[derive(Deserialize)]
struct NewMember {
    email: String,
    role: String,
}

async fn add(
    State(web): State<WebState>,
    Path(org): Path<String>,
    posted: Posted<NewMember>,
) -> Response {
    let email = posted.form.email.trim().to_owned();
    let base = format!("/orgs/{}/members", seg(&org));
    let result = web
        .post(
            &posted.session,
            &format!("/orgs/{}/users", seg(&org)),
            &json!({"email": email, "role": posted.form.role}),
        )
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("{email} added as {}.", posted.form.role),
        web.secure_cookies,
    )
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(web): State<WebState>,
    Path((org, email)): Path<(String, String)>,
    posted: Posted<RoleForm>,
) -> Response {
    let base = format!("/orgs/{}/members", seg(&org));
    let result = web
        .put(
            &posted.session,
            &format!("/orgs/{}/users/{}", seg(&org), seg(&email)),
            &json!({"role": posted.form.role}),
        )
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("{email} is now {}.", posted.form.role),
        web.secure_cookies,
    )
}

async fn remove(
    State(web): State<WebState>,
    Path((org, email)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Response {
    let base = format!("/orgs/{}/members", seg(&org));
    let result = web
        .delete(
            &posted.session,
            &format!("/orgs/{}/users/{}", seg(&org), seg(&email)),
        )
        .await;
    form_outcome(
        result,
        &base,
        &base,
        &format!("{email} removed from {org}."),
        web.secure_cookies,
    )
}
