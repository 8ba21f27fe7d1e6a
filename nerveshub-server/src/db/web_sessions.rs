//! Web UI sessions: a row per signed-in browser, found by the SHA-256 of the cookie's secret.

use sqlx::AnyConnection;

use super::{Db, UserRow};

/// A session ends this long after its last request.
pub(crate) const IDLE_MS: i64 = 12 * 60 * 60 * 1000;
/// A session ends this long after sign-in, however busy.
pub(crate) const ABSOLUTE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `last_seen` is written at most this often per session, so a page's polling is not a write
/// per request.
const TOUCH_MS: i64 = 60 * 1000;

#[derive(sqlx::FromRow)]
struct SessionUser {
    id: i64,
    name: String,
    email: String,
    password_hash: String,
    server_admin: i64,
    inserted_at: i64,
    last_seen: i64,
}

/// Records a new session for `user_id` and sweeps the ones that have ended, in the caller's
/// transaction (which also writes the sign-in's audit row).
pub(crate) async fn create_web_session(
    conn: &mut AnyConnection,
    user_id: i64,
    secret_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM web_sessions WHERE last_seen < $1 OR inserted_at < $2")
        .bind(now - IDLE_MS)
        .bind(now - ABSOLUTE_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO web_sessions (secret_hash, user_id, inserted_at, last_seen)
         VALUES ($1, $2, $3, $3)",
    )
    .bind(secret_hash)
    .bind(user_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Db {
    /// The user of a live session, touching it; `None` (and the row removed) when it has
    /// ended or never existed.
    pub(crate) async fn web_session_user(
        &self,
        secret_hash: &str,
        now: i64,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let row: Option<SessionUser> = sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.password_hash, u.server_admin,
                    s.inserted_at, s.last_seen
             FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if now - row.last_seen > IDLE_MS || now - row.inserted_at > ABSOLUTE_MS {
            self.delete_web_session(secret_hash).await?;
            return Ok(None);
        }
        if now - row.last_seen > TOUCH_MS {
            sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE secret_hash = $2")
                .bind(now)
                .bind(secret_hash)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(UserRow {
            id: row.id,
            name: row.name,
            email: row.email,
            password_hash: row.password_hash,
            server_admin: row.server_admin,
        }))
    }

    /// Ends a session (sign-out).
    pub(crate) async fn delete_web_session(&self, secret_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM web_sessions WHERE secret_hash = $1")
            .bind(secret_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{drop_test_database, insert_user, test_databases};

    #[tokio::test]
    async fn sessions_end_when_idle_or_old_and_on_sign_out() {
        let dir = tempfile::tempdir().unwrap();
        for (db, pg) in test_databases(dir.path(), "web_sessions").await {
            let mut conn = db.pool().acquire().await.unwrap();
            let user = insert_user(&mut conn, "A", "a@example.test", "x", false)
                .await
                .unwrap();
            let t0 = 1_000_000_000_000;
            create_web_session(&mut conn, user.id, "h1", t0)
                .await
                .unwrap();
            let found = db.web_session_user("h1", t0 + 1000).await.unwrap();
            assert_eq!(found.map(|u| u.id), Some(user.id));
            assert!(db.web_session_user("other", t0).await.unwrap().is_none());
            // Touched at t0 + 2 min, so still live 12 h after sign-in.
            assert!(
                db.web_session_user("h1", t0 + 120_000)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                db.web_session_user("h1", t0 + IDLE_MS + 1000)
                    .await
                    .unwrap()
                    .is_some()
            );
            // Idle for longer than IDLE_MS: gone, and stays gone.
            let late = t0 + 2 * IDLE_MS + 10_000;
            assert!(db.web_session_user("h1", late).await.unwrap().is_none());
            assert!(db.web_session_user("h1", t0).await.unwrap().is_none());

            // A busy session still ends ABSOLUTE_MS after sign-in.
            create_web_session(&mut conn, user.id, "h2", t0)
                .await
                .unwrap();
            let mut now = t0;
            while now < t0 + ABSOLUTE_MS {
                assert!(db.web_session_user("h2", now).await.unwrap().is_some());
                now += IDLE_MS / 2;
            }
            assert!(db.web_session_user("h2", now + 1).await.unwrap().is_none());

            create_web_session(&mut conn, user.id, "h3", t0)
                .await
                .unwrap();
            db.delete_web_session("h3").await.unwrap();
            assert!(db.web_session_user("h3", t0).await.unwrap().is_none());
            drop(conn);
            db.close().await;
            drop_test_database(pg).await;
        }
    }
}
