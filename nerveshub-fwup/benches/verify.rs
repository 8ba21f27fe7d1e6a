//! Throughput of [`nerveshub_fwup::verify`] on the input C fwup 1.16 was measured on
//! (research/fwup.md §7): an archive holding 256 MiB of random data and 256 MiB of zeros,
//! both deflated. fwup verifies it in about 1.2 s on the 2-core reference machine.
//!
//! The archive comes from `benches/common` (generated once, then reused).
//! `stream-read-only` reads the same archive without hashing (inflate and CRC-32 alone). Run with `cargo bench -p nerveshub-fwup --bench verify`.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::time::Duration;

use common::{HALF, bench_archive};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nerveshub_fwup::{ArchiveReader, Variables, verify};

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
