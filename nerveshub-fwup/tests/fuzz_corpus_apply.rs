//! Replays the committed seed corpus of the `apply` fuzz target on stable Rust, plus
//! truncations and byte flips of every seed, through the same call as the target.

use std::path::Path;

use nerveshub_fwup::fuzzing::fuzz_apply;

#[test]
fn apply_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/apply");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_apply(&data);
        for cut in [
            data.len() / 3,
            data.len() / 2,
            data.len().saturating_sub(30),
        ] {
            fuzz_apply(&data[..cut]);
        }
        let mut flipped = data.clone();
        for i in (0..flipped.len()).step_by(997) {
            flipped[i] ^= 0x40;
        }
        fuzz_apply(&flipped);
        count += 1;
    }
    assert!(count > 0, "the apply corpus in {} is empty", dir.display());
}
