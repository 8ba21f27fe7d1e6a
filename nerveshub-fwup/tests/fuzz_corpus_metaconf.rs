//! Replays the committed seed corpus of the `metaconf` fuzz target on stable Rust, so a
//! machine without nightly still runs every seed through the same call as the target.

use std::path::Path;

use nerveshub_fwup::{MetaConf, Variables};

#[test]
fn metaconf_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/metaconf");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        // Ok or Err are both fine; only a panic fails.
        let _ = MetaConf::parse(&data, &Variables::new());
        count += 1;
    }
    assert!(
        count > 0,
        "the metaconf corpus in {} is empty",
        dir.display()
    );
}
