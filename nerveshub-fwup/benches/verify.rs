//! Throughput of [`nerveshub_fwup::verify`] on the input C fwup 1.16 was measured on
//! (research/fwup.md §7): an archive holding 256 MiB of random data and 256 MiB of zeros,
//! both deflated. fwup verifies it in about 1.2 s on the 2-core reference machine.
//!
//! The archive is generated once into the system temp directory
//! (`$TMPDIR/nerveshub-bench/verify-512m.fw`) and reused by later runs; delete it to
//! regenerate. `stream-read-only` reads the same archive without hashing (inflate and
//! CRC-32 alone). Run with `cargo bench -p nerveshub-fwup --bench verify`.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use blake2::digest::Digest as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nerveshub_fwup::{ArchiveReader, Variables, verify};
use zip::write::SimpleFileOptions;

const HALF: usize = 256 * 1024 * 1024;
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

fn bench_archive() -> PathBuf {
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

fn verify_512m(c: &mut Criterion) {
    let path = bench_archive();
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(2 * HALF as u64));
    group.bench_function("256MiB-random+256MiB-zeros", |b| {
        b.iter(|| {
            let file = BufReader::new(File::open(&path).unwrap());
            verify(file, &[], &Variables::new()).unwrap()
        })
    });
    // The same archive read to the end without hashing: inflate + CRC-32 alone, to show how
    // much of verify's time BLAKE2b takes.
    group.bench_function("stream-read-only", |b| {
        b.iter(|| {
            let mut reader = ArchiveReader::open(File::open(&path).unwrap()).unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            while let Some(mut entry) = reader.next_resource().unwrap() {
                while entry.read_chunk(&mut buf).unwrap() != 0 {}
            }
            reader.finish().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, verify_512m);
criterion_main!(benches);
