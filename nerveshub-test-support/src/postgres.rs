//! A fresh PostgreSQL database per test, made on the server `NERVESHUB_TEST_DATABASE_URL`
//! names and dropped by [`TestDatabase::drop_database`] when the test is done with it.

use sqlx::Connection as _;

use crate::skip::unique_name;

/// A database this test made on a PostgreSQL server (named by [`unique_name`]). Nothing drops
/// it on `Drop` (that would need a runtime inside a destructor): call
/// [`TestDatabase::drop_database`] once every connection user (server, node) has stopped.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates database `<prefix>_<unique suffix>` through `admin_url` (a URL of any database
    /// on the server the test user may create databases on). Panics when that fails.
    pub async fn create(admin_url: &str, prefix: &str) -> TestDatabase {
        let name = unique_name(prefix);
        admin_execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        TestDatabase {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin URL it was made through.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The URL of this database: the admin URL with its database replaced (its query kept).
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// Drops the database, closing whatever connections are still open to it.
    pub async fn drop_database(self) {
        admin_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

/// `url` with its database name replaced by `name` (the query string is kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = base[scheme_end..]
        .find('/')
        .map_or(base, |slash| &base[..scheme_end + slash]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs `sql` (e.g. `CREATE DATABASE`) on its own connection to `admin_url`; panics with the
/// statement and the error when that fails.
pub async fn admin_execute(admin_url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to NERVESHUB_TEST_DATABASE_URL: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(with_database("postgres://h/", "x"), "postgres://h/x");
    }
}
