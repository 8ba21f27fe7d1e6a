//! Replays the committed seed corpus of the `client_*` fuzz targets (`fuzz/corpus/client_*/`)
//! through the same entry points the targets call, on stable, so the corpus keeps passing.
//! The one target parses the external fwup's packets (feature `fwup-process`).
#![cfg(feature = "fwup-process")]

use std::path::PathBuf;

type Target = fn(&[u8]) -> Result<(), String>;

fn replay(name: &str, target: Target) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if let Err(e) = target(&data) {
            panic!("{}: {e}", f.display());
        }
    }
}

#[test]
fn client_fwup_packet_corpus() {
    replay("client_fwup_packet", nerveshub_client::fuzzing::fwup_packet);
}
