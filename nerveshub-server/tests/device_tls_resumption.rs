//! TLS session resumption on the device endpoint, on SQLite and PostgreSQL: a device that
//! reconnects resumes its session (TLS 1.2 by session ID, as nerves_hub_link does, and TLS 1.3
//! by ticket), and a resumed session — which skips the TLS layer's certificate check — still
//! cannot authenticate with a certificate removed since the session began.

mod common;
mod device_support;

use device_support::*;
use reqwest::StatusCode;

#[tokio::test]
async fn reconnects_resume_and_removed_certificates_are_refused_all_the_same() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let params = join_params("11111111-1111-1111-1111-111111111111", "1.0.0");
        // Certificates trusted only because they are stored (their CA is not registered):
        // a full handshake with one of them fails in TLS once it is removed.
        let loose_ca = device_ca("Unregistered CA");
        for (identifier, tls12_only) in [("tls12-device", true), ("tls13-device", false)] {
            let (cert, key) = device_cert(&loose_ca, identifier);
            create_device(&ts, &f, identifier).await;
            add_device_certificate(&ts, &f, identifier, &cert).await;
            // One client configuration per device, as a device keeps its session cache.
            let tls = tls_client(&server_ca(&ts), Some((&cert, &key)), tls12_only);
            let connect = || {
                connect(
                    ts.server.device_addr(),
                    tls.clone(),
                    "/socket/websocket",
                    nerveshub_proto::Vsn::V2Json,
                    &[],
                )
            };

            let mut device = connect().await.device();
            assert!(
                !device.tls_resumed(),
                "{identifier}: the first handshake is full"
            );
            ok_response(&device.join_device(&params).await);
            device.close().await;

            let mut device = connect().await.device();
            assert!(device.tls_resumed(), "{identifier}: a reconnect resumes");
            ok_response(&device.join_device(&params).await);
            device.close().await;

            let (status, body) = ts
                .delete(
                    &f.manage,
                    &format!(
                        "{}/certificates/{}",
                        device_path(&f.org, identifier),
                        cert.serial()
                    ),
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            // Only a resumed session gets past TLS now (a full handshake fails on the unknown
            // issuer): the upgrade must refuse it.
            match connect().await {
                Connect::Refused { status, .. } => assert_eq!(status, 401, "{identifier}"),
                Connect::Failed(e) => {
                    panic!("{identifier}: the session was not resumed, nothing was tested: {e}")
                }
                Connect::Upgraded(device) => {
                    panic!(
                        "{identifier}: a removed certificate connected (resumed: {})",
                        device.tls_resumed()
                    )
                }
            }
        }
        ts.stop().await;
    }
}
