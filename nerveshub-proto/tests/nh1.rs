//! NH1 shared-secret headers through the public API: the published test vector
//! (research/nerves_hub_link.md §2.4), the salt bytes, header handling and the freshness rules.

use nerveshub_proto::{
    Error, NH1_ALG, NH1_HEADER_NAMES, Nh1Alg, Nh1Digest, Nh1Policy, SharedSecretHeaders, Term,
    nh1_derive_key, nh1_salt,
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn published_vector() {
    let (alg, key, secret, id, at) = (
        "NH1-HMAC-SHA256-1000-32",
        "nhp_abc123",
        b"s3cret-value",
        "my-device",
        1_787_120_842,
    );
    assert_eq!(
        hex(&nh1_derive_key(alg, key, "1787120842", secret).unwrap()),
        "7b3df9c32780d83f23b38b04128a43370094f282733587d1605c68fa8c6aea2e"
    );
    let payload = Term::Tuple(vec![
        Term::Binary(id.as_bytes().to_vec()),
        Term::Integer(1_787_120_842_000),
        Term::Integer(86_400),
    ]);
    assert_eq!(
        hex(&payload.encode()),
        "8368036d000000096d792d6465766963656e060010f5b318a0016200015180"
    );
    let h = SharedSecretHeaders::sign_with_alg(alg, key, secret, id, at).unwrap();
    assert_eq!(
        h.signature,
        "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ"
    );
    let ok = h.verify(secret, 1_787_120_842_000 + 30_000).unwrap();
    assert_eq!(
        (ok.identifier.as_str(), ok.signed_at_ms),
        ("my-device", 1_787_120_842_000)
    );
}

#[test]
fn salt_is_five_lines_with_the_alg_verbatim() {
    assert_eq!(
        nh1_salt("NH1-HMAC-sha256-1000-32", "nhd_k", "17"),
        "NH1:device-socket:shared-secret:connect\n\nx-nh-alg=NH1-HMAC-sha256-1000-32\nx-nh-key=nhd_k\nx-nh-time=17\n"
    );
    // Devices send lower-case sha256; the vector uses SHA256: different salts, different keys.
    let lower = nh1_derive_key("NH1-HMAC-sha256-1000-32", "k", "1", b"s").unwrap();
    let upper = nh1_derive_key("NH1-HMAC-SHA256-1000-32", "k", "1", b"s").unwrap();
    assert_ne!(lower, upper);
}

#[test]
fn headers_as_nerves_hub_link_sends_them() {
    let h = SharedSecretHeaders::sign("nhd_key", b"secret", "serial-1", 1_700_000_000);
    assert_eq!(h.alg, NH1_ALG);
    assert_eq!(h.time, "1700000000");
    assert!(h.signature.starts_with("SFMyNTY."));
    let pairs = h.pairs();
    assert_eq!(pairs.map(|(n, _)| n), NH1_HEADER_NAMES);
    let back = SharedSecretHeaders::from_lookup(|name| {
        pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    })
    .unwrap();
    assert_eq!(back, h);
    assert!(matches!(
        SharedSecretHeaders::from_lookup(|_| None),
        Err(Error::MissingHeader("x-nh-alg"))
    ));
}

#[test]
fn freshness_window() {
    let h = SharedSecretHeaders::sign("nhp_k", b"s", "d", 2_000_000_000);
    let at = 2_000_000_000_000u64;
    assert!(h.verify(b"s", at + 90_000).is_ok());
    assert!(matches!(
        h.verify(b"s", at + 90_001),
        Err(Error::Expired { signed_at_ms, now_ms })
            if signed_at_ms == at && now_ms == at + 90_001
    ));
    assert!(h.verify(b"s", at - 60_000).is_ok());
    assert!(matches!(
        h.verify(b"s", at - 60_001),
        Err(Error::SignedInFuture { signed_at_ms, now_ms })
            if signed_at_ms == at && now_ms == at - 60_001
    ));
    let lax = Nh1Policy {
        max_age_ms: 86_400_000,
        max_future_ms: 0,
    };
    assert!(h.verify_with(b"s", at + 3_600_000, lax).is_ok());
}

#[test]
fn alg_parsing() {
    assert_eq!(
        Nh1Alg::parse("NH1-HMAC-SHA512-2000-64").unwrap(),
        Nh1Alg {
            digest: Nh1Digest::Sha512,
            iterations: 2000,
            key_len: 64
        }
    );
    for bad in [
        "",
        "NH2-HMAC-sha256-1000-32",
        "NH1-HMAC-md5-1000-32",
        "NH1-HMAC-sha256-0-32",
        "NH1-HMAC-sha256-1000-0",
        "NH1-HMAC-sha256-1000-65",
        "NH1-HMAC-sha256-1000",
        "NH1-HMAC-sha256-1000-32-1",
        "NH1-HMAC-sha256-x-32",
    ] {
        assert!(
            matches!(Nh1Alg::parse(bad), Err(Error::UnsupportedAlg(_))),
            "{bad}"
        );
    }
    // Other digests sign and verify too.
    let h = SharedSecretHeaders::sign_with_alg("NH1-HMAC-sha384-10-48", "k", b"s", "d", 5).unwrap();
    assert!(h.verify(b"s", 5_000).is_ok());
    let mut t = h.clone();
    t.time = "5s".into();
    assert!(matches!(t.verify(b"s", 5_000), Err(Error::InvalidTime(_))));
}
