//! Delta and encrypted apply (issue 22): throughput of [`nerveshub_fwup::apply`] on
//!
//! * `delta-raw`: a 64 MiB target made from a 64 MiB pseudorandom source (a few edits, an
//!   insertion, a new 1 MiB tail) by `xdelta3 -e -A -S`, decoded against the source in a
//!   memory destination and written to it;
//! * `xts` / `cbc`: 64 MiB of pseudorandom data `raw_write`n with `aes-xts-plain64` /
//!   `aes-cbc-plain` into a memory destination.
//!
//! Needs `xdelta3` on `PATH` for the delta case (skipped with a message otherwise). Run with
//! `cargo bench -p nerveshub-fwup --bench apply_delta_crypto`.

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nerveshub_fwup::{ApplyOptions, CreateOptions, MemoryTarget, apply, create};

const LEN: usize = 64 << 20;

fn pseudorandom(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn make_archive(dir: &Path, conf: &str) -> Vec<u8> {
    let options = CreateOptions {
        creation_time: 1_700_000_000,
        working_dir: dir.to_owned(),
        compression_level: 1,
        ..CreateOptions::default()
    };
    create(
        conf.as_bytes(),
        &dir.join("fwup.conf"),
        Vec::new(),
        &options,
    )
    .unwrap()
}

fn with_patch(archive: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut input = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..input.len() {
        let mut entry = input.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let options =
            zip::write::SimpleFileOptions::default().compression_method(entry.compression());
        out.start_file(name.as_str(), options).unwrap();
        if name == "data/rootfs.img" {
            out.write_all(patch).unwrap();
        } else {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.write_all(&bytes).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let source = pseudorandom(LEN, 1);
    let mut target = source.clone();
    target[4096..4106].copy_from_slice(b"CHANGED!!!");
    target.splice(20 << 20..20 << 20, b"inserted ".repeat(1000));
    target.truncate(LEN - (1 << 20));
    target.extend_from_slice(&pseudorandom(1 << 20, 2));
    std::fs::write(dir.path().join("source.bin"), &source).unwrap();
    std::fs::write(dir.path().join("rootfs.img"), &target).unwrap();

    let mut group = c.benchmark_group("apply-delta-crypto");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(target.len() as u64));

    let patch_path = dir.path().join("rootfs.vcdiff");
    let made = Command::new("xdelta3")
        .args(["-e", "-A", "-S", "-f", "-s"])
        .arg(dir.path().join("source.bin"))
        .arg(dir.path().join("rootfs.img"))
        .arg(&patch_path)
        .status();
    if made.is_ok_and(|s| s.success()) {
        let blocks = LEN / 512;
        let conf = format!(
            "file-resource rootfs.img {{ host-path = \"rootfs.img\" }}\n\
             task upgrade {{\n on-resource rootfs.img {{\n delta-source-raw-offset = 0\n delta-source-raw-count = {blocks}\n raw_write({blocks})\n }}\n}}\n"
        );
        let archive = with_patch(
            &make_archive(dir.path(), &conf),
            &std::fs::read(&patch_path).unwrap(),
        );
        let options = ApplyOptions::new("upgrade");
        group.bench_function("delta-raw", |b| {
            b.iter_batched(
                || MemoryTarget::from_bytes(source.clone()),
                |mut device| apply(&archive[..], &mut device, &options, &mut ()).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    } else {
        skipped("delta-raw needs xdelta3 on PATH");
    }

    for (name, cipher, secret) in [
        ("xts", "aes-xts-plain64", "ab".repeat(64)),
        ("cbc", "aes-cbc-plain", "cd".repeat(32)),
    ] {
        let conf = format!(
            "file-resource rootfs.img {{ host-path = \"rootfs.img\" }}\n\
             task complete {{\n on-resource rootfs.img {{ raw_write(0, \"cipher={cipher}\", \"secret={secret}\") }}\n}}\n"
        );
        let archive = make_archive(dir.path(), &conf);
        let options = ApplyOptions::new("complete");
        group.bench_function(name, |b| {
            b.iter(|| apply(&archive[..], MemoryTarget::new(), &options, &mut ()).unwrap())
        });
    }
    group.finish();
}

#[allow(clippy::print_stderr)] // the `skipped:` line is the benchmark's report
fn skipped(why: &str) {
    eprintln!("skipped: {why}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
