//! Internal server errors on the management API, caused by a real database failure (a table
//! dropped under a running server), on SQLite and PostgreSQL: the client gets the generic
//! body only, and one log line names the method, the path and the database's own error.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use serde_json::json;

/// Everything the server logs in this test binary (the subscriber is process-wide: the
/// server's tasks run on the runtime's worker threads).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter("nerveshub_server=info")
            .init();
        captured
    })
}

fn log_lines() -> Vec<String> {
    let bytes = logs().0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Drops `table` from the server's database, behind its back.
async fn drop_table(ts: &common::TestServer, table: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = ts.database_url().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            ts.data_dir.path().join("nerveshub.db").display()
        )
    });
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_is_logged_with_its_cause_and_hidden_from_the_client() {
    logs();
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let (status, _) = ts.get(&ts.admin_token, "/users/me/certificates").await;
        assert_eq!(status, StatusCode::OK);
        drop_table(&ts, "user_certificates").await;

        let (status, body) = ts.get(&ts.admin_token, "/users/me/certificates").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        // The client learns nothing of the cause.
        assert_eq!(body, json!({"errors": {"detail": "Internal Server Error"}}));

        // One line, with the request and the whole chain down to the database's words
        // (SQLite: "no such table: user_certificates"; PostgreSQL: relation … does not exist).
        let failed: Vec<String> = log_lines()
            .into_iter()
            .filter(|line| line.contains("request failed") && line.contains("user_certificates"))
            .collect();
        assert_eq!(failed.len(), 1, "{} {failed:#?}", ts.db.name());
        let line = &failed[0];
        for part in [
            "method=GET",
            "path=/api/users/me/certificates status=500",
            "error=database: ",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
        assert!(
            line.contains("no such table") || line.contains("does not exist"),
            "{line}"
        );
        // Logged in the request's span: the line carries its request id too.
        assert!(line.contains("request_id="), "{line}");

        ts.stop().await;
        logs().0.lock().unwrap().clear();
    }
}
