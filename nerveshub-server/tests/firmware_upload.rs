//! Firmware upload, list, show and delete, on SQLite and PostgreSQL, local storage and S3,
//! with the fwup fixture archives (made by C fwup 1.16).

mod common;
mod firmware_support;

use firmware_support::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// The first message of a 422 answer's `field`.
fn error_of(body: &Value, field: &str) -> String {
    body["errors"][field][0]
        .as_str()
        .unwrap_or_else(|| panic!("no error for {field} in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_firmware_is_accepted_checksummed_and_stored() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let acme = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let bytes = fixture_bytes("fw/simple-signed.fw");

        // view may read but not upload; strangers see nothing.
        let (status, _, _) = fw.upload(&acme.view, "acme", SIMPLE, bytes.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let (status, _, _) = fw
            .upload(&acme.outsider, "acme", SIMPLE, bytes.clone())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");

        let (status, body, location) = fw.upload(&acme.manage, "acme", SIMPLE, bytes.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let data = &body["data"];
        assert_eq!(data["uuid"], SIMPLE_UUID, "{label}");
        assert_eq!(data["product"], SIMPLE);
        assert_eq!(data["version"], "1.2.3");
        assert_eq!(data["platform"], "x86_64");
        assert_eq!(data["architecture"], "x86_64");
        assert_eq!(data["author"], "fwup-rs fixtures");
        assert_eq!(data["description"], "Single raw_write resource");
        assert_eq!(data["vcs_identifier"], "0123abcd");
        assert_eq!(data["misc"], "misc, with \"quotes\" and = signs");
        assert_eq!(data["tool"], "fwup");
        assert_eq!(data["size"], bytes.len() as u64);
        let checksum = sha256_upper(&bytes);
        assert_eq!(data["checksum"], checksum.as_str());
        // Under 1 MiB: one piece, the whole file.
        assert_eq!(data["partials_checksums"], serde_json::json!([checksum]));
        assert_eq!(
            location.as_deref(),
            Some(
                format!("/api/orgs/acme/products/Fixture%20Simple/firmwares/{SIMPLE_UUID}")
                    .as_str()
            )
        );

        let path = format!("{}/{SIMPLE_UUID}", firmwares_path("acme", SIMPLE));
        let (status, shown) = fw.ts.get(&acme.view, &path).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["data"], body["data"]);
        let (status, _) = fw.ts.get(&acme.outsider, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = fw
            .ts
            .get(
                &acme.view,
                &format!(
                    "{}/00000000-0000-0000-0000-000000000000",
                    firmwares_path("acme", SIMPLE)
                ),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        fw.assert_stored(&acme, SIMPLE, &[SIMPLE_UUID]).await;
        let objects = fw.stored_objects().await;
        assert_eq!(
            fw.stored_bytes(&objects[0]).await,
            bytes,
            "{label}: stored bytes"
        );

        // Over 1 MiB: a piece per MiB, the last one short.
        let big = make_firmware(&full_meta(SIMPLE, "2.0.0-rc.1+build.5"), 2_500_000, 1);
        let big_uuid = uuid_of(&big);
        let (status, body, _) = fw.upload(&acme.admin, "acme", SIMPLE, big.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        assert_eq!(body["data"]["uuid"], big_uuid.as_str());
        assert_eq!(body["data"]["version"], "2.0.0-rc.1+build.5");
        let pieces: Vec<String> = big.chunks(1024 * 1024).map(sha256_upper).collect();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            body["data"]["partials_checksums"],
            serde_json::json!(pieces)
        );
        assert_eq!(body["data"]["checksum"], sha256_upper(&big).as_str());
        assert_eq!(body["data"]["size"], big.len() as u64);
        fw.assert_stored(&acme, SIMPLE, &[SIMPLE_UUID, &big_uuid])
            .await;

        let mut conn = fw.database().await;
        let audited: Vec<(String, String)> = sqlx::query_as(
            "SELECT resource_id, action FROM audit_logs WHERE resource_type = 'firmware' ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            audited,
            [
                (SIMPLE_UUID.to_owned(), "create".to_owned()),
                (big_uuid.clone(), "create".to_owned())
            ],
            "{label}"
        );
        drop(conn);
        fw.ts.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_say_why_and_leave_nothing() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();

        // No signing key registered at all.
        let bare = fw.org_with_product("bare", SIMPLE, None).await;
        let (status, body, _) = fw
            .upload(
                &bare.manage,
                "bare",
                SIMPLE,
                fixture_bytes("fw/simple-signed.fw"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {body}");
        assert!(
            error_of(&body, "firmware").starts_with("no_public_keys"),
            "{body}"
        );
        fw.assert_stored(&bare, SIMPLE, &[]).await;

        let acme = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let refused: &[(&str, &str, &str)] = &[
            (
                "fw/simple.fw",
                "firmware",
                "invalid_signature: the firmware is not signed",
            ),
            (
                "fw/simple-resigned-other.fw",
                "firmware",
                "invalid_signature: the firmware's signature matches none",
            ),
            ("corrupt/meta-modified.fw", "firmware", "invalid_signature"),
            (
                "corrupt/signature-zeroed.fw",
                "firmware",
                "invalid_signature",
            ),
            (
                "corrupt/data-byte-flip.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            (
                "corrupt/data-modified-repacked.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            (
                "corrupt/truncated-half.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            (
                "corrupt/not-a-zip.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            (
                "corrupt/empty-file.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            (
                "corrupt/extra-entry.fw",
                "firmware",
                "is not a valid fwup archive",
            ),
            // Signed with the registered key, but for another product (and without
            // meta-platform and meta-architecture).
            ("fw/multi-signed.fw", "product", "product_mismatch"),
            ("fw/multi-signed.fw", "platform", "can't be blank"),
            ("fw/ab-signed.fw", "architecture", "can't be blank"),
        ];
        let mut made = vec![
            (
                make_firmware(&full_meta(SIMPLE, "1.2"), 1000, 2),
                "version",
                "must be a SemVer version",
            ),
            (
                make_firmware(&full_meta("Another Product", "1.0.0"), 1000, 3),
                "product",
                "product_mismatch",
            ),
        ];
        let mut no_platform = full_meta(SIMPLE, "1.0.0");
        no_platform.retain(|(key, _)| *key != "meta-platform");
        made.push((
            make_firmware(&no_platform, 1000, 4),
            "platform",
            "can't be blank",
        ));
        let uploads = refused
            .iter()
            .map(|(file, field, message)| (file.to_string(), fixture_bytes(file), *field, *message))
            .chain(
                made.into_iter().map(|(bytes, field, message)| {
                    (format!("made ({field})"), bytes, field, message)
                }),
            );
        for (file, bytes, field, message) in uploads {
            let (status, body, _) = fw.upload(&acme.manage, "acme", SIMPLE, bytes).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{label} {file}: {body}"
            );
            let error = error_of(&body, field);
            assert!(error.starts_with(message), "{label} {file}: {error}");
        }
        fw.assert_stored(&acme, SIMPLE, &[]).await;

        // The first signed upload is kept; the same uuid again (the same file, or the one
        // signed after creation, which is byte-identical) is refused.
        let (status, body, _) = fw
            .upload(
                &acme.manage,
                "acme",
                SIMPLE,
                fixture_bytes("fw/simple-signed.fw"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        for file in ["fw/simple-signed.fw", "fw/simple-signed-after.fw"] {
            let (status, body, _) = fw
                .upload(&acme.manage, "acme", SIMPLE, fixture_bytes(file))
                .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{label} {file}: {body}"
            );
            assert!(
                error_of(&body, "uuid").starts_with("has already been taken"),
                "{body}"
            );
        }

        // A form without the `firmware` field, and a body that is not a form.
        let form = Form::new().text("ttl", "3600");
        let (status, body, _) = fw.upload_form(&acme.manage, "acme", SIMPLE, form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            error_of(&body, "firmware").starts_with("can't be blank"),
            "{body}"
        );
        let (status, body) = fw
            .ts
            .post(
                &acme.manage,
                &firmwares_path("acme", SIMPLE),
                serde_json::json!({"firmware": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        // Two firmware fields.
        let form = Form::new()
            .part(
                "firmware",
                Part::bytes(fixture_bytes("fw/simple.fw")).file_name("a.fw"),
            )
            .part(
                "firmware",
                Part::bytes(fixture_bytes("fw/simple.fw")).file_name("b.fw"),
            );
        let (status, body, _) = fw.upload_form(&acme.manage, "acme", SIMPLE, form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        fw.assert_stored(&acme, SIMPLE, &[SIMPLE_UUID]).await;
        fw.ts.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_uploads_are_cut_off_while_streaming() {
    for (db, storage) in matrix().await {
        let fw =
            FwServer::start_with(db, storage, |config| config.max_firmware_size = 40_000).await;
        let label = fw.label();
        let acme = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let bytes = fixture_bytes("fw/simple-signed.fw");
        assert!(bytes.len() > 40_000);

        // A Content-Length far over the limit is refused from the headers; one within the
        // form's overhead is cut off as the firmware streams in.
        for file in ["fw/multi-signed.fw", "fw/simple-signed.fw"] {
            let (status, body, _) = fw
                .upload(&acme.manage, "acme", SIMPLE, fixture_bytes(file))
                .await;
            assert_eq!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{label} {file}: {body}"
            );
            assert!(
                body["errors"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("limit of 40000 bytes"),
                "{body}"
            );
        }

        // Streamed without a length (chunked), it is cut off once past the limit.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(4096).map(|c| Ok(c.to_vec())).collect();
        let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
        let form = Form::new().part("firmware", Part::stream(stream).file_name("big.fw"));
        let (status, body, _) = fw.upload_form(&acme.manage, "acme", SIMPLE, form).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{label}: {body}");

        // Streamed, but within the limit: accepted.
        let small = make_firmware(&full_meta(SIMPLE, "1.0.0"), 30_000, 5);
        assert!(small.len() < 40_000);
        let small_uuid = uuid_of(&small);
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            small.chunks(4096).map(|c| Ok(c.to_vec())).collect();
        let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
        let form = Form::new().part("firmware", Part::stream(stream).file_name("small.fw"));
        let (status, body, _) = fw.upload_form(&acme.manage, "acme", SIMPLE, form).await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        assert_eq!(body["data"]["uuid"], small_uuid.as_str());
        fw.assert_stored(&acme, SIMPLE, &[&small_uuid]).await;
        fw.ts.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_object_unless_an_update_refers_to_it() {
    for (db, storage) in matrix().await {
        let fw = FwServer::start(db, storage).await;
        let label = fw.label();
        let acme = fw.org_with_product("acme", SIMPLE, Some("fwup-key")).await;
        let (status, body, _) = fw
            .upload(
                &acme.manage,
                "acme",
                SIMPLE,
                fixture_bytes("fw/simple-signed.fw"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        let path = format!("{}/{SIMPLE_UUID}", firmwares_path("acme", SIMPLE));

        // A device update refers to the firmware: deleting it is refused.
        let mut conn = fw.database().await;
        let now = 1_700_000_000_000_i64;
        let product_id: i64 = sqlx::query_scalar("SELECT id FROM products WHERE name = $1")
            .bind(SIMPLE)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let (firmware_id, org_id): (i64, i64) =
            sqlx::query_as("SELECT id, org_id FROM firmwares WHERE uuid = $1")
                .bind(SIMPLE_UUID)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let device_id: i64 = sqlx::query_scalar(
            "INSERT INTO devices (org_id, product_id, identifier, inserted_at, updated_at) VALUES ($1, $2, 'dev-1', $3, $3) RETURNING id",
        )
        .bind(org_id)
        .bind(product_id)
        .bind(now)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO device_updates (device_id, firmware_id, status, inserted_at, updated_at) VALUES ($1, $2, 'requested', $3, $3)",
        )
        .bind(device_id)
        .bind(firmware_id)
        .bind(now)
        .execute(&mut conn)
        .await
        .unwrap();

        let (status, body) = fw.ts.delete(&acme.manage, &path).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        assert!(
            body["errors"]["detail"]
                .as_str()
                .unwrap()
                .contains("device updates"),
            "{body}"
        );
        fw.assert_stored(&acme, SIMPLE, &[SIMPLE_UUID]).await;

        sqlx::query("DELETE FROM device_updates WHERE firmware_id = $1")
            .bind(firmware_id)
            .execute(&mut conn)
            .await
            .unwrap();
        drop(conn);

        let (status, _) = fw.ts.delete(&acme.view, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}");
        let (status, _) = fw.ts.delete(&acme.outsider, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}");
        let (status, body) = fw.ts.delete(&acme.manage, &path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{label}: {body}");
        let (status, _) = fw.ts.get(&acme.view, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = fw.ts.delete(&acme.manage, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        fw.assert_stored(&acme, SIMPLE, &[]).await;

        // Deleted, it can be uploaded again.
        let (status, body, _) = fw
            .upload(
                &acme.manage,
                "acme",
                SIMPLE,
                fixture_bytes("fw/simple-signed.fw"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        fw.assert_stored(&acme, SIMPLE, &[SIMPLE_UUID]).await;
        fw.ts.stop().await;
    }
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::iter(items)
}
