//! Throughput of [`nerveshub_fwup::apply`] on the archive C fwup 1.16 was measured
//! on (research/fwup.md §7): 256 MiB of random data and 256 MiB of zeros, both deflated,
//! written as a 512 MiB image. fwup applies it to an image file in about 2.1 s with about
//! 14 MB peak RSS on the 2-core reference machine.
//!
//! * `image-file`: into a regular file in the temp directory (rewritten each iteration,
//!   page cache warm), through `FileTarget` and its background writer.
//! * `discard`: into a target that drops every write: inflate, BLAKE2b and the block cache
//!   alone.
//!
//! The archive comes from `benches/common` (generated once, then reused). Run with
//! `cargo bench -p nerveshub-fwup --bench apply`.

mod common;

use std::fs::File;
use std::time::Duration;

use common::{HALF, bench_archive};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nerveshub_fwup::{ApplyOptions, FileTarget, Target, apply};

/// A destination that accepts and forgets everything.
struct Discard;

impl Target for Discard {
    fn read_at(&mut self, _offset: u64, buf: &mut [u8]) -> nerveshub_fwup::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> nerveshub_fwup::Result<()> {
        Ok(())
    }
    fn size(&self) -> Option<u64> {
        None
    }
    fn trim(&mut self, _offset: u64, _len: u64) -> nerveshub_fwup::Result<()> {
        Ok(())
    }
}

fn apply_512m(c: &mut Criterion) {
    let path = bench_archive();
    let out_dir = tempfile::tempdir().unwrap();
    let image = out_dir.path().join("out.img");
    let options = ApplyOptions::new("complete");
    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes(2 * HALF as u64));
    group.bench_function("image-file", |b| {
        b.iter(|| {
            let mut target = FileTarget::open(&image).unwrap();
            apply(File::open(&path).unwrap(), &mut target, &options, &mut ()).unwrap();
            target.sync().unwrap();
        })
    });
    group.bench_function("discard", |b| {
        b.iter(|| apply(File::open(&path).unwrap(), Discard, &options, &mut ()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, apply_512m);
criterion_main!(benches);
