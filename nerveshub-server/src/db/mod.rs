//! All SQL lives here. One set of queries serves SQLite and PostgreSQL through sqlx's `Any`
//! driver: `$n` placeholders (sqlx-sqlite binds them by number), and only the types `Any`
//! carries the same way on both (`i64`, `String`, `Vec<u8>`): times are Unix milliseconds,
//! flags are 0/1, documents are JSON text, a device's tags are rows of `device_tags`.
//! `types.rs` turns columns into the types rows carry (`bool`, enums).

mod accounts;
pub(crate) mod advisory;
mod catalog;
mod certificates;
pub(crate) mod cluster;
mod connections;
pub(crate) mod deployments;
pub(crate) mod device_updates;
mod devices;
mod firmwares;
mod operations;
mod polls;
mod shared_secrets;
mod types;
mod user_certificates;
pub(crate) mod web_sessions;

use std::path::Path;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

use crate::clock::Clock;
use crate::error::ServerError;

pub(crate) use accounts::*;
pub(crate) use catalog::*;
pub(crate) use certificates::*;
pub(crate) use connections::*;
pub(crate) use deployments::DeploymentRow;
pub(crate) use devices::*;
pub(crate) use firmwares::*;
pub(crate) use operations::*;
pub(crate) use polls::record_device_poll;
pub(crate) use shared_secrets::*;
pub(crate) use types::{ConnectionStatus, Flag};
pub(crate) use user_certificates::*;

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The database: two connection pools over it and the engine behind it.
///
/// The management API, rollouts and maintenance use the API pool; the device endpoint uses
/// [`Db::for_devices`], a view of the same database whose queries go to the device pool. A
/// reconnect storm then waits for device connections only, and the API keeps answering. Both
/// pools run the same queries (`Db`'s methods); on SQLite writes still take turns on the one
/// write lock (WAL, `BEGIN IMMEDIATE` and the busy timeout), only the waiting for a pooled
/// connection is separate.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    /// The pool this view's queries use.
    pool: AnyPool,
    /// The device endpoint's pool (the same as `pool` in the device view).
    device_pool: AnyPool,
    backend: Backend,
    /// The time of day its queries write and compare with.
    clock: Clock,
}

/// How many connections each pool may open (`None` takes the backend's default), and how
/// long the device pool makes a caller wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSizes {
    pub(crate) api: Option<u32>,
    pub(crate) device: Option<u32>,
    pub(crate) device_acquire_timeout: std::time::Duration,
}

impl Default for PoolSizes {
    fn default() -> Self {
        PoolSizes {
            api: None,
            device: None,
            device_acquire_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl PoolSizes {
    /// The sizes a server's configuration asks for.
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        PoolSizes {
            api: config.api_db_connections,
            device: config.device_db_connections,
            device_acquire_timeout: config.device_db_acquire_timeout,
        }
    }

    /// (API, device) for `backend`. SQLite has one writer at a time, so more connections
    /// only queue on its lock; PostgreSQL runs transactions side by side.
    fn resolve(self, backend: Backend) -> (u32, u32) {
        let (api, device) = match backend {
            Backend::Sqlite => (4, 8),
            Backend::Postgres => (8, 16),
        };
        (
            self.api.unwrap_or(api).max(1),
            self.device.unwrap_or(device).max(1),
        )
    }
}

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

async fn open_pool(
    backend: Backend,
    options: AnyConnectOptions,
    size: u32,
    acquire_timeout: std::time::Duration,
) -> Result<AnyPool, sqlx::Error> {
    let pool = AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout);
    match backend {
        Backend::Sqlite => {
            pool.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; foreign keys are on in
                    // sqlx-sqlite by default, and its busy timeout is 5 s.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
        }
        Backend::Postgres => pool.connect_with(options).await,
    }
}

impl Db {
    /// Opens `url` (`postgres://…` or `sqlite://…`) with an API pool and a device pool of
    /// `sizes`, and brings its schema up to date (once, through the API pool, before the
    /// device pool opens).
    pub(crate) async fn connect(url: &str, sizes: PoolSizes) -> Result<Db, ServerError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(ServerError::Config(format!(
                "unsupported database URL scheme (expected postgres:// or sqlite:): {}",
                redact_url(url)
            )));
        };
        // Refused here, with the feature to turn on, rather than by sqlx's driver lookup.
        let migrator = match backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            #[cfg(feature = "postgres")]
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            #[cfg(not(feature = "sqlite"))]
            Backend::Sqlite => {
                return Err(ServerError::DatabaseNotCompiled {
                    backend: "SQLite",
                    feature: "sqlite",
                });
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => {
                return Err(ServerError::DatabaseNotCompiled {
                    backend: "PostgreSQL",
                    feature: "postgres",
                });
            }
        };
        let options: AnyConnectOptions = url.parse()?;
        let (api_size, device_size) = sizes.resolve(backend);
        let pool = open_pool(
            backend,
            options.clone(),
            api_size,
            std::time::Duration::from_secs(30),
        )
        .await?;
        migrator.run(&pool).await?;
        let device_pool =
            open_pool(backend, options, device_size, sizes.device_acquire_timeout).await?;
        Ok(Db {
            pool,
            device_pool,
            backend,
            clock: Clock::system(),
        })
    }

    /// The same database, reading the time from `clock` (the server's `Config::clock`).
    pub(crate) fn with_clock(self, clock: Clock) -> Db {
        Db { clock, ..self }
    }

    /// Now in Unix milliseconds, by [`Db::clock`].
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The device endpoint's view: the same database, its queries on the device pool.
    pub(crate) fn for_devices(&self) -> Db {
        Db {
            pool: self.device_pool.clone(),
            device_pool: self.device_pool.clone(),
            backend: self.backend,
            clock: self.clock.clone(),
        }
    }

    /// Takes every connection of the device pool and keeps them until the result is dropped:
    /// what a reconnect storm does to it, for tests that check the API does not wait behind
    /// devices.
    #[doc(hidden)]
    pub(crate) async fn hold_device_pool(
        &self,
    ) -> Result<Vec<sqlx::pool::PoolConnection<Any>>, sqlx::Error> {
        let max = self.device_pool.options().get_max_connections();
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(self.device_pool.acquire().await?);
        }
        Ok(held)
    }

    /// The SQLite database file `<dir>/nerveshub.db`, created if missing.
    pub(crate) fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", dir.join("nerveshub.db").display())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`,
    /// waiting up to the busy timeout): a deferred transaction that reads and then writes
    /// fails with "database is locked" when another writer committed in between, and that
    /// error cannot be waited out.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Closes both pools.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
        self.device_pool.close().await;
    }
}

/// The URL with any password replaced, for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Now by the system clock, in Unix milliseconds: the creation and change times the
/// transaction-level writes stamp rows with. Rules with lifetimes read [`Db::now_ms`] (the
/// server's clock) instead, or take the time from their caller.
pub(crate) fn now_ms() -> i64 {
    Clock::system().now_ms()
}

/// Whether `e` is a unique-constraint violation (a duplicate name, key, identifier…).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// What a caller does when a write hits a unique constraint (a name, key or identifier
/// already taken), in one place rather than a `match` at every insert.
pub(crate) trait OnUnique<T> {
    /// A unique violation becomes the error `taken` makes; any other error converts as usual.
    fn on_unique<E: From<sqlx::Error>>(self, taken: impl FnOnce() -> E) -> Result<T, E>;

    /// A unique violation becomes `Ok(None)`: the row exists already, which the caller
    /// handles (another writer won a race).
    fn unique_as_none(self) -> Result<Option<T>, sqlx::Error>;
}

impl<T> OnUnique<T> for Result<T, sqlx::Error> {
    fn on_unique<E: From<sqlx::Error>>(self, taken: impl FnOnce() -> E) -> Result<T, E> {
        self.map_err(|e| {
            if is_unique_violation(&e) {
                taken()
            } else {
                E::from(e)
            }
        })
    }

    fn unique_as_none(self) -> Result<Option<T>, sqlx::Error> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// SQL assembled only from `db/`'s constant fragments and numbered placeholders, never from
/// input (input is always bound).
pub(super) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// `$first, $first+1, …`: `count` numbered placeholders.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `e` is a foreign-key violation (a row still referenced elsewhere).
///
/// SQLite reports an `ON DELETE RESTRICT` refusal as SQLITE_CONSTRAINT_TRIGGER (1811), which
/// sqlx does not classify; it is recognised here by its code and message.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_foreign_key_violation()
                || (db.code().as_deref() == Some("1811")
                    && db.message().contains("FOREIGN KEY constraint failed"))
        }
        _ => false,
    }
}

/// Which rows [`lock_row`] can lock: the parents whose invariants span their children.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lockable {
    /// An org: its members (at least one admin).
    Org,
    /// A product: its devices and firmware (no delete while it has any).
    Product,
}

/// Locks one row until the caller's transaction ends, so a check on its children and the
/// change that depends on it cannot interleave with another transaction's.
///
/// PostgreSQL: `SELECT … FOR UPDATE`, which also blocks inserts of children (their foreign
/// key check takes `FOR KEY SHARE` on this row). SQLite has one writer at a time: a no-op
/// `UPDATE` as the transaction's first statement takes the write lock now, before anything
/// is read, so what the transaction reads next is current (a read-then-write transaction
/// would instead fail with "database is locked" when another writer committed in between).
/// Returns whether the row exists.
pub(crate) async fn lock_row(
    conn: &mut AnyConnection,
    row: Lockable,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let table = match row {
        Lockable::Org => "orgs",
        Lockable::Product => "products",
    };
    let sql = if conn.backend_name() == "PostgreSQL" {
        format!("SELECT id FROM {table} WHERE id = $1 FOR UPDATE")
    } else {
        format!("UPDATE {table} SET updated_at = updated_at WHERE id = $1 RETURNING id")
    };
    let found: Option<i64> = sqlx::query_scalar(trusted(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Actor {
    User(i64),
    Device(i64),
    System,
}

/// One audit-log row, written in the same transaction as the change it records.
#[derive(Debug)]
pub(crate) struct Audit<'a> {
    pub(crate) org_id: Option<i64>,
    pub(crate) actor: Actor,
    pub(crate) resource_type: &'a str,
    pub(crate) resource_id: &'a str,
    pub(crate) action: &'a str,
    pub(crate) description: String,
}

pub(crate) async fn audit(conn: &mut AnyConnection, entry: Audit<'_>) -> Result<(), sqlx::Error> {
    let (actor_type, actor_id) = match entry.actor {
        Actor::User(id) => ("user", Some(id)),
        Actor::Device(id) => ("device", Some(id)),
        Actor::System => ("system", None),
    };
    sqlx::query(
        "INSERT INTO audit_logs (org_id, actor_type, actor_id, resource_type, resource_id, action, description, inserted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.org_id)
    .bind(actor_type)
    .bind(actor_id)
    .bind(entry.resource_type)
    .bind(entry.resource_id)
    .bind(entry.action)
    .bind(entry.description)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An audit-log row as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) id: i64,
    pub(crate) actor_type: String,
    pub(crate) actor_id: Option<i64>,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
    pub(crate) action: String,
    pub(crate) description: String,
    pub(crate) inserted_at: i64,
}

impl Db {
    /// The newest `limit` audit-log rows of `org_id` that match `filter`, newest first.
    pub(crate) async fn org_audit_log(
        &self,
        org_id: i64,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        // Each condition holds when its parameter is NULL: one statement for every filter.
        sqlx::query_as(
            "SELECT id, actor_type, actor_id, resource_type, resource_id, action, description, inserted_at
             FROM audit_logs WHERE org_id = $1
               AND ($2 IS NULL OR resource_type = $2)
               AND ($3 IS NULL OR action = $3)
               AND ($4 IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(org_id)
        .bind(filter.resource_type.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

/// Which audit-log rows a listing shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    /// Only rows about this kind of resource (`device`, `firmware`…).
    pub(crate) resource_type: Option<String>,
    /// Only rows of this action (`create`, `delete`…).
    pub(crate) action: Option<String>,
    /// Only rows older than this entry (its id): the next page after it.
    pub(crate) before: Option<i64>,
}

/// The databases unit tests run on: SQLite in `dir` always, and a fresh PostgreSQL database
/// (named after `prefix`) too when `NERVESHUB_TEST_DATABASE_URL` is set (the test-support
/// crate's harness); pass each one's second half to [`drop_test_database`] at the end.
#[cfg(test)]
pub(crate) async fn test_databases(
    dir: &Path,
    prefix: &str,
) -> Vec<(Db, Option<nerveshub_test_support::postgres::TestDatabase>)> {
    use nerveshub_test_support::{TestDb, databases, postgres::TestDatabase};
    let mut dbs = Vec::new();
    for which in databases() {
        match which {
            TestDb::Sqlite => dbs.push((
                Db::connect(&Db::sqlite_url(dir), PoolSizes::default())
                    .await
                    .unwrap(),
                None,
            )),
            TestDb::Postgres(admin) => {
                let pg = TestDatabase::create(&admin, prefix).await;
                let db = Db::connect(&pg.url(), PoolSizes::default()).await.unwrap();
                dbs.push((db, Some(pg)));
            }
        }
    }
    dbs
}

/// Drops a PostgreSQL database [`test_databases`] made (nothing for SQLite's `None`).
#[cfg(test)]
pub(crate) async fn drop_test_database(pg: Option<nerveshub_test_support::postgres::TestDatabase>) {
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two dialects differ only in how an identity column and a byte column are spelled
    /// (and in the header comment naming the other file), and in data migrations marked as
    /// `-- dialect: begin` … `-- dialect: end` (reading JSON differs by engine).
    #[test]
    fn migrations_describe_the_same_schema() {
        let sqlite_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let postgres_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let names = |dir: &str| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(sqlite_dir), names(postgres_dir));
        let normalise = |text: String| {
            let mut in_dialect = false;
            text.lines()
                .filter(|l| {
                    if l.starts_with("-- dialect: begin") {
                        in_dialect = true;
                    } else if l.starts_with("-- dialect: end") {
                        in_dialect = false;
                        return false;
                    }
                    !in_dialect
                })
                .filter(|l| !l.starts_with("-- sqlite/") && !l.starts_with("-- postgres/"))
                .map(|l| {
                    l.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "IDENTITY")
                        .replace(
                            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                            "IDENTITY",
                        )
                        .replace(" BLOB ", " BYTES ")
                        .replace(" BYTEA ", " BYTES ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        for name in names(sqlite_dir) {
            let sqlite = std::fs::read_to_string(format!("{sqlite_dir}/{name}")).unwrap();
            let postgres = std::fs::read_to_string(format!("{postgres_dir}/{name}")).unwrap();
            assert_eq!(normalise(sqlite), normalise(postgres), "{name}");
        }
    }

    /// Two pools of the sizes asked for (or the backend's defaults); the device view's queries
    /// go to the device pool.
    #[tokio::test]
    async fn api_and_device_pools() {
        let dir = tempfile::tempdir().unwrap();
        let max = |db: &Db| db.pool().options().get_max_connections();
        let sizes = PoolSizes {
            api: Some(3),
            device: Some(5),
            ..PoolSizes::default()
        };
        let db = Db::connect(&Db::sqlite_url(dir.path()), sizes)
            .await
            .unwrap();
        assert_eq!((max(&db), max(&db.for_devices())), (3, 5));
        assert_eq!(max(&db.for_devices().for_devices()), 5);
        let held = db.hold_device_pool().await.unwrap();
        assert_eq!(held.len(), 5);
        // The API pool is untouched.
        db.ping().await.unwrap();
        drop(held);
        db.close().await;
        assert_eq!(PoolSizes::default().resolve(Backend::Sqlite), (4, 8));
        assert_eq!(PoolSizes::default().resolve(Backend::Postgres), (8, 16));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
