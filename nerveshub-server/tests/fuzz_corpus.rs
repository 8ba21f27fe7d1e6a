//! Replays the committed seed corpus of the `server_*` fuzz targets (`fuzz/corpus/server_*/`)
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
fn server_token_corpus() {
    replay("server_token", nerveshub_server::fuzzing::token);
}

#[test]
fn server_range_corpus() {
    replay("server_range", nerveshub_server::fuzzing::range);
}

#[test]
fn server_signed_url_corpus() {
    replay(
        "server_signed_url",
        nerveshub_server::fuzzing::signed_url_query,
    );
}

#[test]
fn server_web_request_corpus() {
    replay("server_web_request", nerveshub_server::fuzzing::web_request);
}

#[test]
fn server_poll_corpus() {
    replay("server_poll", nerveshub_server::fuzzing::poll_request);
}

#[test]
fn server_uri_corpus() {
    replay("server_uri", nerveshub_server::fuzzing::uri_component);
}

#[test]
fn server_http_heads_corpus() {
    replay("server_http_heads", nerveshub_server::fuzzing::http_heads);
}
