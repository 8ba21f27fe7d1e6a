//! Trust changes reach the device endpoint from the write that makes them, without reading
//! every certificate again: a JITP fleet's first connections, certificates uploaded and
//! removed through the API, and a deleted device — no full reload, and each change in effect
//! at once.

mod common;
mod device_support;

use device_support::*;

#[tokio::test]
async fn writes_change_trust_without_a_full_reload() {
    for db in common::databases().await {
        let ts = common::TestServer::start(db).await;
        let f = org_with_product(&ts, "acme").await;
        let params = join_params("11111111-1111-1111-1111-111111111111", "1.0.0");
        let reloads = ts.server.trust_reloads();

        // A registered JITP CA is trusted at once; its devices are made on first connection
        // and known from then on.
        let ca = device_ca("Acme JITP CA");
        register_ca(&ts, &f, &ca, true).await;
        for n in 0..5 {
            let (cert, key) = device_cert(&ca, &format!("jitp-{n}"));
            let mut device = connect_cert(&ts, &cert, &key).await.device();
            ok_response(&device.join_device(&params).await);
            device.close().await;
            // The second connection finds the certificate known.
            let mut device = connect_cert(&ts, &cert, &key).await.device();
            ok_response(&device.join_device(&params).await);
            device.close().await;
        }

        // A certificate of an unregistered CA: trusted once uploaded, refused once removed.
        let loose = device_ca("Unregistered CA");
        let (cert, key) = device_cert(&loose, "known-1");
        assert!(connect_cert(&ts, &cert, &key).await.is_refused());
        create_device(&ts, &f, "known-1").await;
        add_device_certificate(&ts, &f, "known-1", &cert).await;
        let mut device = connect_cert(&ts, &cert, &key).await.device();
        ok_response(&device.join_device(&params).await);
        device.close().await;
        let (status, body) = ts.delete(&f.manage, &device_path(&f.org, "known-1")).await;
        assert!(status.is_success(), "{status} {body}");
        assert!(connect_cert(&ts, &cert, &key).await.is_refused());

        assert_eq!(
            ts.server.trust_reloads(),
            reloads,
            "{}: a write read the whole trust store again",
            ts.db.name()
        );
        ts.stop().await;
    }
}
