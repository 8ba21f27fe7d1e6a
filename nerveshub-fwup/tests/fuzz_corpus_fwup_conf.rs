//! Replays the committed seed corpus of the `fwup_conf` fuzz target on stable Rust, so a
//! machine without nightly still runs every seed through the same call as the target.

use std::path::Path;

#[test]
fn fwup_conf_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fwup_conf");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        nerveshub_fwup::fuzzing::fuzz_fwup_conf(&data);
        count += 1;
    }
    assert!(
        count > 0,
        "the fwup_conf corpus in {} is empty",
        dir.display()
    );
}

proptest::proptest! {
    /// Token soup of fwup.conf syntax: never panics.
    #[test]
    fn token_soup_never_panics(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "define(", "define!(", "define-eval(", "define-eval!(", "include(", ")", "(",
                "{", "}", ",", "=", "+=", "\"", "'", "${A}", "${A:-x}", "\\${B}", "A", "1",
                "0x10", "-", "*", "/", "^", "K", "file-resource", "task", "on-resource",
                "on-init", "raw_write", "fat_write", "gpt", "partition", "boot", "true",
                "contents", "host-path", "mbr", "\n", " ", "#", "//", "/*", "*/",
            ]),
            0..40,
        )
    ) {
        nerveshub_fwup::fuzzing::fuzz_fwup_conf(parts.concat().as_bytes());
    }
}
