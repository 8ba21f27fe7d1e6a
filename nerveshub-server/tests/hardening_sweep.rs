//! Issue 25, item 9: objects a crash left in the firmware store (written, but their row never
//! committed) and unfinished local temp files are swept at start once old enough; referenced
//! objects and young ones stay.

mod common;
mod firmware_support;

use std::time::{Duration, SystemTime};

use firmware_support::*;
use nerveshub_server::{Config, RunningServer};
use object_store::ObjectStoreExt as _;
use reqwest::StatusCode;

fn backdate(path: &std::path::Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn unreferenced_objects_are_swept_at_start() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage.clone()).await;
        let label = fw.label();
        let f = fw.org_with_product("acme", "demo", Some("fwup-key")).await;
        let firmware = make_firmware(&full_meta("demo", "1.0.0"), 64 * 1024, 1);
        let (status, body, _) = fw.upload(&f.manage, "acme", "demo", firmware).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let referenced = fw.stored_objects().await;
        assert_eq!(referenced.len(), 1, "{label}");

        let data_dir = fw.ts.data_dir.path().to_owned();
        let mut config = Config::new(&data_dir);
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        config.database_url = fw.database_url.clone();
        // The first server still runs: on PostgreSQL the second is a second node, on the
        // same (so shared) local directory.
        config.storage = nerveshub_server::StorageConfig::Local {
            dir: None,
            shared: true,
        };
        let hour = Duration::from_secs(3600);
        match &storage {
            TestStorage::Local => {
                let root = data_dir.join("firmware");
                let dir = root.join("1/1");
                std::fs::create_dir_all(&dir).unwrap();
                for name in ["old-orphan.fw", "young-orphan.fw", "old.fw#1"] {
                    std::fs::write(dir.join(name), b"left by a crash").unwrap();
                }
                backdate(&dir.join("old-orphan.fw"), 2 * hour);
                backdate(&dir.join("old.fw#1"), 2 * hour);
                // Old too, but referenced: only its row keeps it.
                backdate(&root.join(&referenced[0]), 2 * hour);
            }
            TestStorage::S3(s3) => {
                let prefix = fw.s3_prefix.clone().unwrap();
                let client = s3_client(s3);
                client
                    .put(
                        &object_store::path::Path::from(format!(
                            "{prefix}/firmware/1/1/old-orphan.fw"
                        )),
                        b"left by a crash".to_vec().into(),
                    )
                    .await
                    .unwrap();
                config.storage = nerveshub_server::StorageConfig::S3 {
                    bucket: s3.bucket.clone(),
                    prefix: prefix.clone(),
                    options: vec![
                        ("aws_endpoint".into(), s3.endpoint.clone()),
                        ("aws_allow_http".into(), "true".into()),
                        ("aws_region".into(), "us-east-1".into()),
                    ],
                };
                // S3 objects cannot be backdated: every unreferenced object counts as old.
                config.orphan_min_age = Duration::ZERO;
            }
        }

        // A second server on the same data starts and sweeps.
        let second = RunningServer::start(config).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let expected: Vec<String> = match &storage {
            TestStorage::Local => {
                let mut keys = vec![referenced[0].clone(), "1/1/young-orphan.fw".to_owned()];
                keys.sort();
                keys
            }
            TestStorage::S3(_) => referenced.clone(),
        };
        loop {
            let mut now = fw.stored_objects().await;
            now.sort();
            if now == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: stored {now:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let TestStorage::Local = storage {
            assert!(
                !data_dir.join("firmware/1/1/old.fw#1").exists(),
                "{label}: the stale temp file stayed"
            );
        }
        second.shutdown().await;
        fw.ts.stop().await;
    }
}
