//! Tests of the ZIP readers: the fixture archives made by C fwup (and derived from them),
//! hand-built archives for the rarer layouts, and property tests against the `zip` crate.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use super::{EntryInfo, ZipSeekReader, ZipStreamReader};
use crate::Result;

mod builder;
mod fixtures;
mod props;
mod synthetic;

/// One entry as a reader returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walked {
    info: EntryInfo,
    data: Vec<u8>,
}

/// Read all data of the streaming reader's current entry with an odd-sized buffer.
fn read_stream_entry<R: Read>(reader: &mut ZipStreamReader<R>) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 7919];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(data);
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// Every entry through the streaming reader, without `finish`.
fn stream_entries(bytes: &[u8]) -> Result<Vec<Walked>> {
    let mut reader = ZipStreamReader::new(bytes);
    let mut out = Vec::new();
    while let Some(info) = reader.next_entry()? {
        let data = read_stream_entry(&mut reader)?;
        out.push(Walked { info, data });
    }
    Ok(out)
}

/// Every entry through the streaming reader, then `finish`.
fn stream_all(bytes: &[u8]) -> Result<Vec<Walked>> {
    let mut reader = ZipStreamReader::new(bytes);
    let mut out = Vec::new();
    while let Some(info) = reader.next_entry()? {
        let data = read_stream_entry(&mut reader)?;
        out.push(Walked { info, data });
    }
    reader.finish()?;
    Ok(out)
}

/// Every entry through the seekable reader.
fn seek_all(bytes: &[u8]) -> Result<Vec<Walked>> {
    let mut reader = ZipSeekReader::new(Cursor::new(bytes))?;
    let infos = reader.entries().to_vec();
    let mut out = Vec::new();
    for (index, info) in infos.into_iter().enumerate() {
        let mut entry = reader.open(index)?;
        let mut data = Vec::new();
        let mut buf = vec![0u8; 5003];
        loop {
            let n = entry.read_checked(&mut buf)?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        out.push(Walked { info, data });
    }
    Ok(out)
}

/// The two readers agree: same names, methods, times, directory flags, data, and sizes
/// wherever the streaming reader knows them.
fn assert_readers_agree(streamed: &[Walked], seeked: &[Walked]) {
    assert_eq!(streamed.len(), seeked.len());
    for (s, k) in streamed.iter().zip(seeked) {
        assert_eq!(s.info.name, k.info.name);
        assert_eq!(s.info.method, k.info.method);
        assert_eq!(s.info.modified, k.info.modified, "{}", s.info.name);
        assert_eq!(s.info.is_dir, k.info.is_dir);
        assert_eq!(s.data, k.data, "{}", s.info.name);
        assert_eq!(k.info.uncompressed_size, Some(k.data.len() as u64));
        if let Some(size) = s.info.uncompressed_size {
            assert_eq!(Some(size), k.info.uncompressed_size, "{}", s.info.name);
        }
        if let Some(size) = s.info.compressed_size {
            assert_eq!(Some(size), k.info.compressed_size, "{}", s.info.name);
        }
    }
}

/// The fixture directory inside this crate.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
}

/// A fixture file's bytes.
fn fixture(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
