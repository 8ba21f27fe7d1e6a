//! `/api/orgs` and org membership.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Access, Api, Body, Endpoint, Success, check_name, created, data, no_content};
use crate::auth::{Caller, Role};
use crate::db::{self, Actor, Audit, OnUnique};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get("/orgs", "The orgs the caller belongs to")
            .tag("orgs")
            .ok(Success::List("Org")),
        list,
    )
    .route(
        Endpoint::post("/orgs", "Create an org; the caller becomes its admin")
            .tag("orgs")
            .access(Access::User)
            .body("OrgCreate")
            .ok(Success::Object(201, "Org")),
        create,
    )
    .route(
        Endpoint::get("/orgs/{org}/users", "The org's members")
            .tag("org users")
            .access(Access::OrgAdminOrServerAdmin)
            .ok(Success::List("Member")),
        members,
    )
    .route(
        Endpoint::post("/orgs/{org}/users", "Add an existing user to the org")
            .tag("org users")
            .access(Access::OrgAdminOrServerAdmin)
            .body("MemberCreate")
            .ok(Success::Object(201, "Member")),
        add_member,
    )
    .route(
        Endpoint::get("/orgs/{org}/users/{email}", "One member")
            .tag("org users")
            .access(Access::OrgAdminOrServerAdmin)
            .ok(Success::Object(200, "Member")),
        member,
    )
    .route(
        Endpoint::put("/orgs/{org}/users/{email}", "Change a member's role")
            .tag("org users")
            .access(Access::OrgAdminOrServerAdmin)
            .body("MemberUpdate")
            .ok(Success::Object(200, "Member"))
            .errors(&[409]),
        update_member,
    )
    .route(
        Endpoint::delete("/orgs/{org}/users/{email}", "Remove a member")
            .tag("org users")
            .access(Access::OrgAdminOrServerAdmin)
            .ok(Success::NoContent)
            .errors(&[409]),
        remove_member,
    )
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let orgs = state.db.orgs_of(caller.user.id).await?;
    let orgs: Vec<_> = orgs
        .iter()
        .map(|m| json!({"name": m.org.name, "role": m.role.as_str()}))
        .collect();
    Ok(axum::response::IntoResponse::into_response(data(orgs)))
}

#[derive(Deserialize)]
struct NewOrg {
    name: String,
}

/// Org names appear in every API path: letters, digits, `-`, `_` and `.` only.
fn check_org_name(name: &str) -> Result<(), ApiError> {
    check_name("name", name)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::invalid(
            "name",
            "has invalid format (letters, digits, '-', '_' and '.' only)",
        ));
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewOrg>,
) -> Result<Response, ApiError> {
    check_org_name(&new.name)?;
    let mut tx = state.db.begin().await?;
    let org = db::insert_org(&mut tx, &new.name)
        .await
        .on_unique(|| ApiError::invalid("name", "has already been taken"))?;
    db::insert_member(&mut tx, org.id, caller.user.id, Role::Admin).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(org.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org",
            resource_id: &org.name,
            action: "create",
            description: format!("{} created org {}", caller.user.email, org.name),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created(json!({"name": org.name, "role": "admin"})))
}

fn member_json(user: &db::UserRow, role: Role) -> serde_json::Value {
    json!({"name": user.name, "email": user.email, "role": role.as_str()})
}

/// Whether the caller is still an admin of the org, checked under the org's row lock (an
/// admin demoted a moment ago by another admin may not act on the decision they lost).
async fn still_admin(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    org_id: i64,
) -> Result<(), ApiError> {
    if caller.user.is_server_admin()
        || db::member_role(conn, org_id, caller.user.id).await? == Some(Role::Admin)
    {
        return Ok(());
    }
    Err(ApiError::Forbidden)
}

async fn members(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let org_row = caller.membership()?.org;
    let members = state.db.members(org_row.id).await?;
    let members: Vec<_> = members.iter().map(|(u, r)| member_json(u, *r)).collect();
    Ok(axum::response::IntoResponse::into_response(data(members)))
}

#[derive(Deserialize)]
struct NewMember {
    email: String,
    role: String,
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    role.parse()
        .map_err(|()| ApiError::invalid("role", "is invalid (admin, manage or view)"))
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(new): Body<NewMember>,
) -> Result<Response, ApiError> {
    let org_row = caller.membership()?.org;
    let role = parse_role(&new.role)?;
    let email = new.email.trim().to_lowercase();
    // Only looked up, but bounded like every other string field.
    if email.len() > super::users::MAX_EMAIL_BYTES {
        return Err(ApiError::invalid("email", "no user has this email"));
    }
    let user = state
        .db
        .user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::invalid("email", "no user has this email"))?;
    let mut tx = state.db.begin().await?;
    db::insert_member(&mut tx, org_row.id, user.id, role)
        .await
        .on_unique(|| ApiError::invalid("email", "is already a member of this org"))?;
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(org_row.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org_user",
            resource_id: &email,
            action: "create",
            description: format!("{} added {email} to {} as {role}", caller.user.email, org),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created(member_json(&user, role)))
}

async fn member(
    State(state): State<AppState>,
    caller: Caller,
    Path((_, email)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org_row = caller.membership()?.org;
    let (user, role) = state
        .db
        .member(org_row.id, &email.to_lowercase())
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    Ok(axum::response::IntoResponse::into_response(data(
        member_json(&user, role),
    )))
}

#[derive(Deserialize)]
struct MemberUpdate {
    role: String,
}

async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, email)): Path<(String, String)>,
    Body(update): Body<MemberUpdate>,
) -> Result<Response, ApiError> {
    let org_row = caller.membership()?.org;
    let role = parse_role(&update.role)?;
    let (user, _) = state
        .db
        .member(org_row.id, &email.to_lowercase())
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    let mut tx = state.db.begin().await?;
    // With the org row locked, two admins demoting each other run one after the other, and
    // the second sees that it would leave no admin.
    db::lock_row(&mut tx, db::Lockable::Org, org_row.id).await?;
    still_admin(&mut tx, &caller, org_row.id).await?;
    let old_role = db::member_role(&mut tx, org_row.id, user.id)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    db::update_member_role(&mut tx, org_row.id, user.id, role).await?;
    if old_role == Role::Admin
        && role != Role::Admin
        && db::count_admins(&mut tx, org_row.id).await? == 0
    {
        return Err(ApiError::Conflict(
            "an org must keep at least one admin".into(),
        ));
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(org_row.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org_user",
            resource_id: &user.email,
            action: "update",
            description: format!(
                "{} changed {}'s role in {org} from {old_role} to {role}",
                caller.user.email, user.email
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::response::IntoResponse::into_response(data(
        member_json(&user, role),
    )))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, email)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let org_row = caller.membership()?.org;
    let (user, _) = state
        .db
        .member(org_row.id, &email.to_lowercase())
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    let mut tx = state.db.begin().await?;
    db::lock_row(&mut tx, db::Lockable::Org, org_row.id).await?;
    still_admin(&mut tx, &caller, org_row.id).await?;
    if !db::delete_member(&mut tx, org_row.id, user.id).await? {
        return Err(ApiError::NotFound("member"));
    }
    if db::count_admins(&mut tx, org_row.id).await? == 0 {
        return Err(ApiError::Conflict(
            "an org must keep at least one admin".into(),
        ));
    }
    db::audit(
        &mut tx,
        Audit {
            org_id: Some(org_row.id),
            actor: Actor::User(caller.user.id),
            resource_type: "org_user",
            resource_id: &user.email,
            action: "delete",
            description: format!("{} removed {} from {org}", caller.user.email, user.email),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(no_content())
}
