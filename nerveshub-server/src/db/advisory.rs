//! PostgreSQL advisory locks, on one dedicated connection (the orchestrator election in
//! [`crate::cluster::election`]). A session lock lives as long as the connection that took
//! it, so these take a `PgConnection`, never a pooled one.
//!
//! Locks use the two-key form `(namespace, key)`: other users of the database lock with
//! their own namespaces (or the one-key form, a separate key space) without colliding.

#[cfg(feature = "postgres")]
pub(crate) use with_postgres::*;
#[cfg(not(feature = "postgres"))]
pub(crate) use without_postgres::*;

#[cfg(feature = "postgres")]
mod with_postgres {
    pub(crate) use sqlx::PgConnection;

    /// Takes the lock `(namespace, key)` for this session if no other session holds it.
    pub(crate) async fn try_lock(
        conn: &mut PgConnection,
        namespace: i32,
        key: i32,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(namespace)
            .bind(key)
            .fetch_one(conn)
            .await
    }

    /// Releases the lock `(namespace, key)` once; false when this session did not hold it.
    pub(crate) async fn unlock(
        conn: &mut PgConnection,
        namespace: i32,
        key: i32,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_advisory_unlock($1, $2)")
            .bind(namespace)
            .bind(key)
            .fetch_one(conn)
            .await
    }

    /// Releases every advisory lock this session holds.
    pub(crate) async fn unlock_all(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Proves the session is alive (and so still holds its locks).
    pub(crate) async fn ping(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(conn).await?;
        Ok(())
    }

    /// Test-only: this session's backend process id, for [`terminate`].
    #[cfg(test)]
    pub(crate) async fn backend_pid(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
    }

    /// Test-only: ends another session as a database restart or a network cut would.
    #[cfg(test)]
    pub(crate) async fn terminate(conn: &mut PgConnection, pid: i32) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(conn)
            .await
    }
}

/// Built without PostgreSQL (crate feature `postgres`) there is no session to hold a lock:
/// the connection type has no values, so opening one fails and nothing else is reachable.
#[cfg(not(feature = "postgres"))]
mod without_postgres {
    /// Stands in for sqlx's `PgConnection`; has no values.
    #[derive(Debug)]
    pub(crate) enum PgConnection {}

    impl PgConnection {
        /// Always refused: this build has no PostgreSQL driver.
        pub(crate) async fn connect(_url: &str) -> Result<PgConnection, sqlx::Error> {
            Err(sqlx::Error::Configuration(
                "orchestrator elections need PostgreSQL: this server was built without the `postgres` feature".into(),
            ))
        }
    }

    pub(crate) async fn try_lock(
        conn: &mut PgConnection,
        _namespace: i32,
        _key: i32,
    ) -> Result<bool, sqlx::Error> {
        match *conn {}
    }

    pub(crate) async fn unlock(
        conn: &mut PgConnection,
        _namespace: i32,
        _key: i32,
    ) -> Result<bool, sqlx::Error> {
        match *conn {}
    }

    pub(crate) async fn unlock_all(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        match *conn {}
    }

    pub(crate) async fn ping(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        match *conn {}
    }
}
