//! Users, API tokens, orgs and memberships.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::auth::Role;

#[derive(Debug, Clone, FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) server_admin: i64,
}

impl UserRow {
    pub(crate) fn is_server_admin(&self) -> bool {
        self.server_admin != 0
    }
}

/// The user an API token belongs to.
#[derive(Debug, Clone)]
pub(crate) struct TokenOwner {
    pub(crate) user: UserRow,
    /// The token's row id.
    pub(crate) token_id: i64,
}

/// One of a user's API tokens as listed (never its hash).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct TokenRow {
    pub(crate) id: i64,
    pub(crate) note: String,
    pub(crate) inserted_at: i64,
    pub(crate) last_used: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct OrgRow {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// A user's place in an org.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) org: OrgRow,
    pub(crate) role: Role,
}

pub(crate) async fn insert_user(
    conn: &mut AnyConnection,
    name: &str,
    email: &str,
    password_hash: &str,
    server_admin: bool,
) -> Result<UserRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (name, email, password_hash, server_admin, inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(name)
    .bind(email)
    .bind(password_hash)
    .bind(i64::from(server_admin))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(UserRow {
        id,
        name: name.to_owned(),
        email: email.to_owned(),
        password_hash: password_hash.to_owned(),
        server_admin: i64::from(server_admin),
    })
}

/// Stores a new API token of `user_id` (its hash only) and returns the token's row.
pub(crate) async fn insert_token(
    conn: &mut AnyConnection,
    user_id: i64,
    token_hash: &str,
    note: &str,
) -> Result<TokenRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO user_tokens (user_id, token_hash, note, inserted_at) VALUES ($1, $2, $3, $4)
         RETURNING id",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(note)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(TokenRow {
        id,
        note: note.to_owned(),
        inserted_at: now,
        last_used: None,
    })
}

/// Deletes `user_id`'s token `id`; false when the user has no such token (another user's
/// token included).
pub(crate) async fn delete_token(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM user_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn insert_org(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<OrgRow, sqlx::Error> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO orgs (name, inserted_at, updated_at) VALUES ($1, $2, $2) RETURNING id",
    )
    .bind(name)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(OrgRow {
        id,
        name: name.to_owned(),
    })
}

pub(crate) async fn insert_member(
    conn: &mut AnyConnection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO org_users (org_id, user_id, role, inserted_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn update_member_role(
    conn: &mut AnyConnection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE org_users SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4",
    )
    .bind(role.as_str())
    .bind(now_ms())
    .bind(org_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn delete_member(
    conn: &mut AnyConnection,
    org_id: i64,
    user_id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM org_users WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How many admins `org_id` has, read inside the caller's transaction.
pub(crate) async fn count_admins(
    conn: &mut AnyConnection,
    org_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM org_users WHERE org_id = $1 AND role = 'admin'")
        .bind(org_id)
        .fetch_one(&mut *conn)
        .await
}

/// `user_id`'s role in `org_id`, read inside the caller's transaction.
pub(crate) async fn member_role(
    conn: &mut AnyConnection,
    org_id: i64,
    user_id: i64,
) -> Result<Option<Role>, sqlx::Error> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM org_users WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(role.as_deref().map(role_of))
}

fn role_of(text: &str) -> Role {
    // The column has a CHECK constraint; anything else would be a corrupted row, which must
    // not grant more than read access.
    text.parse().unwrap_or(Role::View)
}

impl Db {
    pub(crate) async fn user_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await
    }

    pub(crate) async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, email, password_hash, server_admin FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(self.pool())
        .await
    }

    /// The owner of the token whose hash is `token_hash`, marking the token used.
    pub(crate) async fn token_owner(
        &self,
        token_hash: &str,
    ) -> Result<Option<TokenOwner>, sqlx::Error> {
        let row: Option<(i64, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.password_hash, u.server_admin, t.id
             FROM user_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        if row.is_some() {
            sqlx::query("UPDATE user_tokens SET last_used = $1 WHERE token_hash = $2")
                .bind(self.now_ms())
                .bind(token_hash)
                .execute(self.pool())
                .await?;
        }
        Ok(row.map(
            |(id, name, email, password_hash, server_admin, token_id)| TokenOwner {
                user: UserRow {
                    id,
                    name,
                    email,
                    password_hash,
                    server_admin,
                },
                token_id,
            },
        ))
    }

    /// `user_id`'s API tokens, newest first.
    pub(crate) async fn user_tokens(&self, user_id: i64) -> Result<Vec<TokenRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, note, inserted_at, last_used FROM user_tokens WHERE user_id = $1
             ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await
    }

    /// The org named `name`.
    pub(crate) async fn org_by_name(&self, name: &str) -> Result<Option<OrgRow>, sqlx::Error> {
        sqlx::query_as("SELECT id, name FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
    }

    /// The orgs `user_id` belongs to, by name.
    pub(crate) async fn orgs_of(&self, user_id: i64) -> Result<Vec<Membership>, sqlx::Error> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT o.id, o.name, m.role FROM org_users m JOIN orgs o ON o.id = m.org_id
             WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, role)| Membership {
                org: OrgRow { id, name },
                role: role_of(&role),
            })
            .collect())
    }

    /// `user_id`'s membership of the org named `org`, if both exist.
    pub(crate) async fn membership(
        &self,
        user_id: i64,
        org: &str,
    ) -> Result<Option<Membership>, sqlx::Error> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT o.id, o.name, m.role FROM org_users m JOIN orgs o ON o.id = m.org_id
             WHERE m.user_id = $1 AND o.name = $2",
        )
        .bind(user_id)
        .bind(org)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id, name, role)| Membership {
            org: OrgRow { id, name },
            role: role_of(&role),
        }))
    }

    /// The members of `org_id` with their roles, by email.
    pub(crate) async fn members(&self, org_id: i64) -> Result<Vec<(UserRow, Role)>, sqlx::Error> {
        let rows: Vec<(i64, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.password_hash, u.server_admin, m.role
             FROM org_users m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.email",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, email, password_hash, server_admin, role)| {
                (
                    UserRow {
                        id,
                        name,
                        email,
                        password_hash,
                        server_admin,
                    },
                    role_of(&role),
                )
            })
            .collect())
    }

    /// One member of `org_id` by email.
    pub(crate) async fn member(
        &self,
        org_id: i64,
        email: &str,
    ) -> Result<Option<(UserRow, Role)>, sqlx::Error> {
        Ok(self
            .members(org_id)
            .await?
            .into_iter()
            .find(|(user, _)| user.email == email))
    }
}
