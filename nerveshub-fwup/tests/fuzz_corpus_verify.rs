//! Replays the committed seed corpus of the `verify` fuzz target on stable Rust, so a
//! machine without nightly still runs every seed through the same calls as the target.

use std::path::Path;

use nerveshub_fwup::{PublicKey, Variables, verify};

#[test]
fn verify_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/verify");
    let key = PublicKey::from_base64("Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA=").unwrap();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = verify(&data[..], &[], &Variables::new());
        let _ = verify(&data[..], &[key], &Variables::new());
        count += 1;
    }
    assert!(count > 0, "the verify corpus in {} is empty", dir.display());
}
