//! The benchmark archive shared by the `verify` and `apply` benches: 256 MiB of
//! pseudorandom data and 256 MiB of zeros, both deflated, the input C fwup 1.16 was
//! measured on (research/fwup.md §7). Task `complete` writes the random resource at 0 and
//! the zeros right after it (a 512 MiB image).
//!
//! It is generated once into the system temp directory
//! (`$TMPDIR/nerveshub-bench/verify-512m.fw`) and reused by later runs; delete it to
//! regenerate.
#![allow(dead_code)] // each bench uses its own part

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use blake2::digest::Digest as _;
use zip::write::SimpleFileOptions;

/// Size of each of the two resources.
pub(crate) const HALF: usize = 256 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// Deterministic pseudorandom bytes (xorshift64*), so every run benches the same archive.
fn random_chunk(state: &mut u64, out: &mut [u8]) {
    for word in out.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let value = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        word.copy_from_slice(&value[..word.len()]);
    }
}

/// The path of the benchmark archive, generated on first use.
pub(crate) fn bench_archive() -> PathBuf {
    let dir = std::env::temp_dir().join("nerveshub-bench");
    let path = dir.join("verify-512m.fw");
    if path.exists() {
        return path;
    }
    fs::create_dir_all(&dir).unwrap();

    // Hash both resources first: meta.conf, which declares the hashes, comes first.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; CHUNK];
    let mut random_hash = blake2::Blake2b256::new();
    for _ in 0..HALF / CHUNK {
        random_chunk(&mut state, &mut chunk);
        random_hash.update(&chunk);
    }
    let mut zero_hash = blake2::Blake2b256::new();
    let zeros = vec![0u8; CHUNK];
    for _ in 0..HALF / CHUNK {
        zero_hash.update(&zeros);
    }
    let hex = |digest: &[u8]| {
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let meta_conf = format!(
        "meta-product=\"verify benchmark\"\nmeta-version=1.0.0\n\
         file-resource \"random.bin\" {{\nlength={HALF}\nblake2b-256={}\n}}\n\
         file-resource \"zeros.bin\" {{\nlength={HALF}\nblake2b-256={}\n}}\n\
         task \"complete\" {{\non-resource \"random.bin\" {{\nfunlist={{2,raw_write,0}}\n}}\n\
         on-resource \"zeros.bin\" {{\nfunlist={{2,raw_write,524288}}\n}}\n}}\n",
        hex(&random_hash.finalize()),
        hex(&zero_hash.finalize()),
    );

    let partial = dir.join("verify-512m.fw.partial");
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(&partial).unwrap()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6));
    zip.start_file("meta.conf", options).unwrap();
    zip.write_all(meta_conf.as_bytes()).unwrap();
    zip.start_file("data/random.bin", options).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..HALF / CHUNK {
        random_chunk(&mut state, &mut chunk);
        zip.write_all(&chunk).unwrap();
    }
    zip.start_file("data/zeros.bin", options).unwrap();
    for _ in 0..HALF / CHUNK {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
    fs::rename(&partial, &path).unwrap();
    path
}
