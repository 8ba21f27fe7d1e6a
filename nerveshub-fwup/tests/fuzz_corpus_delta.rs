//! Replays the committed seed corpus of the `delta` fuzz target on stable Rust, splitting
//! each input exactly as the target does, and checks the real xdelta3 seed decodes.

use std::path::Path;

fn run(data: &[u8]) -> Result<Vec<u8>, nerveshub_fwup::Error> {
    let (len, rest) = data.split_at(data.len().min(2));
    let len = len.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
    let (source, patch) = rest.split_at(rest.len().min(len));
    nerveshub_fwup::fuzzing::fuzz_delta(patch, source, 1 << 24)
}

#[test]
fn delta_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/delta");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = run(&data);
        match path.file_name().and_then(|n| n.to_str()) {
            Some("real-small") => assert_eq!(result.unwrap().len(), 3000 - 500 + 180 + 300),
            Some("hand-add-copy-run") => assert_eq!(result.unwrap(), b"abcSOURzzz"),
            Some("header-only") => assert_eq!(result.unwrap(), b""),
            Some("truncated-real" | "big-window-claim") => assert!(result.is_err()),
            _ => {}
        }
        count += 1;
    }
    assert!(
        count >= 5,
        "the delta corpus in {} is incomplete",
        dir.display()
    );
}
