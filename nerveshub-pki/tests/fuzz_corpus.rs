//! Replays the committed seed corpus of the `pki_*` fuzz targets (fuzz/corpus/pki_*/) through
//! the same entry points the targets call, on stable Rust, so a corpus input that panics fails
//! `cargo test`. `seed_corpus_generation` builds the seeds afresh and replays them too; with
//! `NERVESHUB_PKI_WRITE_CORPUS=1` it also writes them into the committed corpus.

use std::path::{Path, PathBuf};

use nerveshub_pki::fuzzing;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            run(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

#[test]
fn replay_pki_cert_corpus() {
    replay("pki_cert", fuzzing::parse_certificate);
}

#[test]
fn replay_pki_chain_corpus() {
    replay("pki_chain", fuzzing::verify_chain);
}

/// Builds the seeds from freshly generated chains into a temporary directory and replays
/// them. To refresh the committed corpus: `NERVESHUB_PKI_WRITE_CORPUS=1 cargo test -p
/// nerveshub-pki --test fuzz_corpus seed_corpus_generation`.
#[cfg(feature = "gen")]
#[test]
fn seed_corpus_generation() {
    use nerveshub_pki::{CertOptions, DeviceCa, ProofPlacement, UnixTime};
    use std::time::Duration;

    let scratch = tempfile::tempdir().unwrap();
    let write_committed = std::env::var_os("NERVESHUB_PKI_WRITE_CORPUS").is_some();
    let out_dir = |target: &str| {
        if write_committed {
            corpus_dir(target)
        } else {
            scratch.path().join(target)
        }
    };
    let t = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(s));
    let (from, until, now) = (1_700_000_000, 4_000_000_000, 1_800_000_000);
    let opts = |cn: &str| CertOptions::new(cn, t(from), t(until));
    let ca = DeviceCa::generate(&opts("Seed CA").path_len(1)).unwrap();
    let inter = ca.issue_intermediate(&opts("Seed Intermediate")).unwrap();
    let (dev, _) = ca.issue_device(&opts("seed-device")).unwrap();
    let (dev2, _) = inter.issue_device(&opts("seed-device-2")).unwrap();
    let (old, _) = ca
        .issue_device(&CertOptions::new("seed-old", t(from), t(from + 1000)))
        .unwrap();
    let (ed, _) = DeviceCa::generate(
        &opts("Seed Ed25519 CA").algorithm(nerveshub_pki::KeyAlgorithm::Ed25519),
    )
    .unwrap()
    .issue_device(&opts("seed-ed25519"))
    .unwrap();
    let proof = ca
        .verification_certificate("token", ProofPlacement::SanUri, t(from), t(until))
        .unwrap();

    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = out_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    write("pki_cert", "device.der", dev.der());
    write("pki_cert", "ca.der", ca.certificate().der());
    write("pki_cert", "ed25519.der", ed.der());
    write("pki_cert", "proof.der", proof.der());
    write(
        "pki_cert",
        "chain.pem",
        format!("{}{}", dev2.to_pem(), inter.certificate().to_pem()).as_bytes(),
    );
    write("pki_cert", "garbage", b"\x30\x82\x01\x00not a certificate");

    let ca_der: &[u8] = ca.certificate().der();
    let j = fuzzing::join_chain_input;
    write("pki_chain", "valid", &j(now, 1, &[ca_der, dev.der()]));
    write(
        "pki_chain",
        "valid-with-signer",
        &j(now, 1, &[ca_der, dev.der(), ca_der]),
    );
    write(
        "pki_chain",
        "intermediate",
        &j(now, 0, &[ca_der, dev2.der(), inter.certificate().der()]),
    );
    write("pki_chain", "expired", &j(now, 1, &[ca_der, old.der()]));
    write(
        "pki_chain",
        "known-expired",
        &j(now, 3, &[ca_der, old.der()]),
    );
    write("pki_chain", "proof", &j(now, 1, &[ca_der, proof.der()]));
    write("pki_chain", "unknown", &j(now, 1, &[ca_der, ed.der()]));
    write("pki_chain", "short", &[0, 0, 0, 0]);

    for (target, run) in [
        ("pki_cert", fuzzing::parse_certificate as fn(&[u8])),
        ("pki_chain", fuzzing::verify_chain),
    ] {
        for entry in std::fs::read_dir(out_dir(target)).unwrap() {
            run(&std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
}
