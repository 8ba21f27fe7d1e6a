//! Device authentication on the device endpoint, over real TLS on loopback: client
//! certificates (known, CA-signed, JITP, unknown CA, expired) and NH1 shared secrets
//! (product key, device key, stale, future, forged, deactivated), and no credentials.

mod common;
mod device_support;

use device_support::*;
use nerveshub_proto::Vsn;
use reqwest::StatusCode;

#[tokio::test]
async fn certificate_devices() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let params = join_params("11111111-1111-1111-1111-111111111111", "1.0.0");

        // A device whose certificate was uploaded through the API (its CA is not registered).
        let loose_ca = device_ca("Unregistered CA");
        let (known, known_key) = device_cert(&loose_ca, "known-1");
        create_device(&ts, &f, "known-1").await;
        add_device_certificate(&ts, &f, "known-1", &known).await;
        let mut device = connect_cert(&ts, &known, &known_key).await.device();
        ok_response(&device.join_device(&params).await);
        device.close().await;

        // A registered device presenting a certificate its org's CA signed: accepted, and the
        // certificate is recorded on this first connection.
        let ca = device_ca("Acme Device CA");
        register_ca(&ts, &f, &ca, false).await;
        create_device(&ts, &f, "signed-1").await;
        let (signed, signed_key) = device_cert(&ca, "signed-1");
        let mut device = connect_cert(&ts, &signed, &signed_key).await.device();
        ok_response(&device.join_device(&params).await);
        let (status, certs) = ts
            .get(
                &f.view,
                &format!("{}/certificates", device_path(&f.org, "signed-1")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{certs}");
        assert_eq!(certs["data"].as_array().unwrap().len(), 1, "{certs}");
        assert_eq!(certs["data"][0]["serial"], signed.serial());
        device.close().await;
        // Known now: a second connection is recognised by fingerprint.
        let mut device = connect_cert(&ts, &signed, &signed_key).await.device();
        ok_response(&device.join_device(&params).await);
        device.close().await;

        // The same CA without JITP does not create unknown devices.
        let (stranger, stranger_key) = device_cert(&ca, "not-registered");
        assert!(
            connect_cert(&ts, &stranger, &stranger_key)
                .await
                .is_refused()
        );
        let (status, _) = ts
            .get(&f.view, &device_path(&f.org, "not-registered"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A CA with a JITP profile creates the device on its first connection.
        let jitp_ca = device_ca("Acme JITP CA");
        register_ca(&ts, &f, &jitp_ca, true).await;
        let (fresh, fresh_key) = device_cert(&jitp_ca, "jitp-1");
        let mut device = connect_cert(&ts, &fresh, &fresh_key).await.device();
        ok_response(&device.join_device(&params).await);
        let made = device_json(&ts, &f, "jitp-1").await;
        assert_eq!(made["tags"], serde_json::json!(["jitp"]), "{made}");
        assert_eq!(made["description"], "made by JITP", "{made}");
        device.close().await;

        // A CA nobody registered: refused in the TLS handshake.
        let unknown = device_ca("Unknown CA");
        let (cert, key) = device_cert(&unknown, "jitp-2");
        let refused = connect_cert(&ts, &cert, &key).await;
        assert!(refused.is_refused(), "{refused:?}");

        // An expired certificate of a device never seen, even from the JITP CA: refused, and
        // no device is made.
        let (expired, expired_key) = expired_device_cert(&jitp_ca, "jitp-expired");
        let refused = connect_cert(&ts, &expired, &expired_key).await;
        assert!(refused.is_refused(), "{refused:?}");
        let (status, _) = ts.get(&f.view, &device_path(&f.org, "jitp-expired")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Another org's CA cannot claim this org's device.
        let g = org_with_product(&ts, "globex").await;
        let globex_ca = device_ca("Globex CA");
        register_ca(&ts, &g, &globex_ca, true).await;
        let (claim, claim_key) = device_cert(&globex_ca, "signed-1");
        assert!(connect_cert(&ts, &claim, &claim_key).await.is_refused());

        ts.stop().await;
    }
}

#[tokio::test]
async fn shared_secret_devices() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let params = join_params("22222222-2222-2222-2222-222222222222", "1.0.0");
        let (pkey, psecret) = product_secret(&ts, &f).await;
        assert!(pkey.starts_with("nhp_"));

        // A product key registers the device its token names, on both serializers.
        for (identifier, vsn) in [("auto-1", Vsn::V2Json), ("auto-2", Vsn::V3MsgPack)] {
            let headers = nh1(&pkey, &psecret, identifier, 0);
            let mut device = connect_nh1(&ts, &headers, vsn).await.device();
            ok_response(&device.join_device(&params).await);
            device.close().await;
            let made = device_json(&ts, &f, identifier).await;
            assert_eq!(made["identifier"], identifier);
        }

        // A device key must name its own device.
        create_device(&ts, &f, "keyed-1").await;
        let (dkey, dsecret) = device_secret(&ts, &f, "keyed-1").await;
        assert!(dkey.starts_with("nhd_"));
        let mut device = connect_nh1(&ts, &nh1(&dkey, &dsecret, "keyed-1", 0), Vsn::V2Json)
            .await
            .device();
        ok_response(&device.join_device(&params).await);
        device.close().await;
        let other = connect_nh1(&ts, &nh1(&dkey, &dsecret, "auto-1", 0), Vsn::V2Json).await;
        assert!(
            matches!(other, Connect::Refused { status: 401, .. }),
            "{other:?}"
        );

        // Stale (older than 90 s), future (more than 60 s ahead), forged: refused with a bare
        // 401 that still carries Date.
        for headers in [
            nh1(&pkey, &psecret, "auto-1", -120),
            nh1(&pkey, &psecret, "auto-1", 300),
            nh1(&pkey, "not-the-secret", "auto-1", 0),
            nh1(&dkey, &dsecret, "keyed-1", -120),
        ] {
            match connect_nh1(&ts, &headers, Vsn::V2Json).await {
                Connect::Refused { status, headers } => {
                    assert_eq!(status, 401);
                    assert!(headers.contains_key("date"));
                    assert!(!headers.contains_key("nh-connection-error-reason"));
                }
                other => panic!("expected 401, got {other:?}"),
            }
        }
        // A token naming a device of another product is refused, not moved.
        let g = org_with_product(&ts, "globex").await;
        let (gkey, gsecret) = product_secret(&ts, &g).await;
        let taken = connect_nh1(&ts, &nh1(&gkey, &gsecret, "auto-1", 0), Vsn::V2Json).await;
        assert!(
            matches!(taken, Connect::Refused { status: 401, .. }),
            "{taken:?}"
        );

        // A deactivated key is refused.
        let (status, body) = ts
            .delete(
                &f.manage,
                &format!("/orgs/{}/products/{PRODUCT}/shared_secrets/{pkey}", f.org),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let gone = connect_nh1(&ts, &nh1(&pkey, &psecret, "auto-1", 0), Vsn::V2Json).await;
        assert!(
            matches!(gone, Connect::Refused { status: 401, .. }),
            "{gone:?}"
        );

        ts.stop().await;
    }
}

#[tokio::test]
async fn no_credentials_are_refused_with_a_reason() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let ca = server_ca(&ts);
        for path in ["/socket/websocket", "/device-socket/websocket"] {
            for tls12 in [true, false] {
                let tls = tls_client(&ca, None, tls12);
                match connect(ts.server.device_addr(), tls, path, Vsn::V2Json, &[]).await {
                    Connect::Refused { status, headers } => {
                        assert_eq!(status, 401);
                        assert_eq!(
                            headers["nh-connection-error-reason"],
                            "no certificate pair or shared secrets connection settings were provided"
                        );
                        assert!(headers.contains_key("date"), "{headers:?}");
                    }
                    other => panic!("expected 401, got {other:?}"),
                }
            }
        }
        ts.stop().await;
    }
}
