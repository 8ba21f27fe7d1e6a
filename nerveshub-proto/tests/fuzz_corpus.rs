//! Replays the committed seed corpus of the `proto_*` fuzz targets (`fuzz/corpus/proto_*/`)
//! through the same entry points the targets call, on stable, so the corpus keeps passing.

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
fn proto_frame_corpus() {
    replay("proto_frame", nerveshub_proto::fuzzing::frame);
}

#[test]
fn proto_session_corpus() {
    replay("proto_session", nerveshub_proto::fuzzing::session);
}

#[test]
fn proto_term_corpus() {
    replay("proto_term", nerveshub_proto::fuzzing::term);
}

/// The corpus files are meant to reach past the decoders: check that the frame seeds decode.
#[test]
fn frame_seeds_decode() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/proto_frame");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let decoded = if p.extension().is_some_and(|x| x == "json") {
            nerveshub_proto::Frame::from_json(&data)
        } else {
            nerveshub_proto::Frame::from_msgpack(&data)
        };
        assert!(decoded.is_ok(), "{}: {decoded:?}", p.display());
    }
}
