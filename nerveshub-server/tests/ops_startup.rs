//! First start in the right order: every listener is bound before the first admin is made,
//! so a port in use fails the start without swallowing the one-time password; and a lost
//! password is reset offline with `reset_password`.

mod common;

use nerveshub_server::{Config, RunningServer, ServerError};
use reqwest::StatusCode;
use serde_json::json;

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.device_addr = "127.0.0.1:0".parse().unwrap();
    config
}

#[tokio::test]
async fn a_port_in_use_fails_the_start_before_the_first_admin_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for field in ["api", "device", "metrics"] {
        let mut busy = config(dir.path());
        let addr = taken.local_addr().unwrap();
        match field {
            "api" => busy.api_addr = addr,
            "device" => busy.device_addr = addr,
            _ => busy.metrics_addr = Some(addr),
        }
        let err = RunningServer::start(busy).await.unwrap_err();
        assert!(
            matches!(&err, ServerError::Io { context, .. } if context.contains(&addr.to_string())),
            "{field}: {err}"
        );
        // Nothing was created: no admin whose password went to a failed start.
        assert!(!dir.path().join("admin-token").exists(), "{field}");
        assert!(!dir.path().join("nerveshub.db").exists(), "{field}");
    }
    drop(taken);

    let server = RunningServer::start(config(dir.path())).await.unwrap();
    let admin = server
        .first_admin()
        .expect("the first successful start makes the admin");
    assert_eq!(admin.email, "admin@localhost");
    assert!(dir.path().join("admin-token").exists());
    server.shutdown().await;
}

#[tokio::test]
async fn reset_password_works_offline_on_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = RunningServer::start(config(dir.path())).await.unwrap();
    let old = server.first_admin().unwrap().password.clone();
    server.shutdown().await;

    let new = nerveshub_server::reset_password(&config(dir.path()), " Admin@Localhost ")
        .await
        .unwrap();
    assert_ne!(new, old);
    assert!(new.len() >= 16, "{new}");
    let err = nerveshub_server::reset_password(&config(dir.path()), "nobody@example.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nobody@example.com"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = nerveshub_server::reset_password(&config(empty.path()), "admin@localhost")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no database"), "{err}");
    assert!(!empty.path().join("nerveshub.db").exists());

    // The new password signs in; the old one no longer does.
    let server = RunningServer::start(config(dir.path())).await.unwrap();
    assert!(server.first_admin().is_none());
    let http = reqwest::Client::new();
    let sign_in = |password: String| {
        http.post(format!("http://{}/api/users/auth", server.api_addr()))
            .json(&json!({"email": "admin@localhost", "password": password, "note": "t"}))
            .send()
    };
    assert_eq!(sign_in(new).await.unwrap().status(), StatusCode::OK);
    assert_ne!(sign_in(old).await.unwrap().status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn timestamps_have_three_fraction_digits() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db.clone()).await;
        let f = ts.org_fixture("acme").await;
        let (status, body) = ts.get(&f.admin, "/orgs/acme/audit_logs").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entries = body["data"].as_array().unwrap();
        assert!(!entries.is_empty());
        for entry in entries {
            let at = entry["inserted_at"].as_str().unwrap();
            assert_eq!(at.len(), 24, "{}: {at}", db.name());
            assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
        }
        ts.stop().await;
    }
}
