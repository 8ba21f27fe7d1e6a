//! Fixture access shared by the integration tests: the C fwup 1.16 set copied into
//! `testdata/fixtures/`.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::Read;
use std::path::{Path, PathBuf};

/// The fixture set's folder.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
}

/// A path inside the fixture set.
pub(crate) fn fixture_path(path: &str) -> PathBuf {
    fixtures().join(path)
}

/// The bytes of a fixture file.
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture_path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A recorded apply result, decompressed (`images/<name>.img.gz`).
pub(crate) fn image(name: &str) -> Vec<u8> {
    let gz = std::fs::File::open(fixture_path(&format!("images/{name}.img.gz"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}
