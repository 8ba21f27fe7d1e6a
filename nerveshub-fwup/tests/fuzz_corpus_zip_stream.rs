//! Replays the committed seed corpus of the `zip_stream` fuzz target on stable Rust, so a
//! machine without nightly still runs every seed through the same call as the target.

use std::path::Path;

#[test]
fn zip_stream_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/zip_stream");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        nerveshub_fwup::fuzzing::fuzz_zip_stream(&data);
        count += 1;
    }
    assert!(
        count > 0,
        "the zip_stream corpus in {} is empty",
        dir.display()
    );
}
