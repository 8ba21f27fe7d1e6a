//! Delta resources: an archive whose entry is an xdelta3 patch (`testdata/delta`, made by
//! xdelta3 3.0.11 with `-A -S`) while meta.conf describes the patched result, applied
//! against a raw range of the destination and against a file in a FAT filesystem, as fwup
//! applies them. The archives are made as NervesHub makes delta firmware: a full archive from
//! this crate's create, its data entry then replaced by the patch.

use nerveshub_fwup::{
    ApplyError, ApplyOptions, CreateOptions, DeltaError, Error, MemoryTarget, Variables, create,
    fuzzing::fuzz_delta, verify,
};
use std::io::{Cursor, Read, Write};
use std::path::Path;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/delta")
            .join(name),
    )
    .unwrap()
}

/// Creates an archive from `conf` (host paths relative to `testdata/delta`).
fn create_archive(conf: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/delta");
    let options = CreateOptions {
        creation_time: 1_700_000_000,
        working_dir: dir.clone(),
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

/// Replaces the data of entry `data/<name>` by `patch`, keeping every other entry as it is.
fn with_patch(archive: &[u8], name: &str, patch: &[u8]) -> Vec<u8> {
    let mut input = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..input.len() {
        let mut entry = input.by_index(i).unwrap();
        let entry_name = entry.name().unwrap().into_owned();
        let options =
            zip::write::SimpleFileOptions::default().compression_method(entry.compression());
        out.start_file(entry_name.as_str(), options).unwrap();
        if entry_name == format!("data/{name}") {
            out.write_all(patch).unwrap();
        } else {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.write_all(&bytes).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

const SOURCE_AT: u64 = 64; // blocks
const OUT_AT: u64 = 1024; // blocks

fn raw_conf(with_source: bool) -> String {
    let source = if with_source {
        format!(
            "delta-source-raw-offset = {SOURCE_AT}\n delta-source-raw-count = {}\n",
            96 * 1024 / 512
        )
    } else {
        String::new()
    };
    format!(
        "file-resource rootfs.img {{ host-path = \"target.bin\" }}\n\
         task upgrade {{\n on-resource rootfs.img {{\n {source} raw_write({OUT_AT})\n }}\n}}\n"
    )
}

fn device_with_source() -> MemoryTarget {
    let mut image = vec![0u8; (SOURCE_AT * 512) as usize];
    image.extend_from_slice(&data("source.bin"));
    MemoryTarget::from_bytes(image)
}

#[test]
fn the_decoder_reproduces_xdelta3s_output() {
    let out = fuzz_delta(&data("target.vcdiff"), &data("source.bin"), 1 << 20).unwrap();
    assert!(out == data("target.bin"));
}

#[test]
fn raw_delta_applies_against_the_destination() {
    let full = create_archive(&raw_conf(true));
    let archive = with_patch(&full, "rootfs.img", &data("target.vcdiff"));
    assert!(archive.len() < full.len() / 4, "the patch is what travels");

    // -V accepts the delta archive (only the patch header can be checked without a source).
    verify(&archive[..], &[], &Variables::default()).unwrap();

    let mut device = device_with_source();
    nerveshub_fwup::apply(
        &archive[..],
        &mut device,
        &ApplyOptions::new("upgrade"),
        &mut (),
    )
    .unwrap();
    let image = device.into_bytes();
    let at = (OUT_AT * 512) as usize;
    let target = data("target.bin");
    assert!(image[at..at + target.len()] == target[..]);
    // raw_write pads the last partial block with zeros.
    let end = at + target.len();
    assert!(
        image[end..end.next_multiple_of(512)]
            .iter()
            .all(|b| *b == 0)
    );
}

#[test]
fn a_changed_source_is_caught() {
    let archive = with_patch(
        &create_archive(&raw_conf(true)),
        "rootfs.img",
        &data("target.vcdiff"),
    );
    let mut device = device_with_source();
    let mut bytes = device.into_bytes();
    bytes[(SOURCE_AT * 512) as usize + 5000] ^= 0xff;
    device = MemoryTarget::from_bytes(bytes);
    let err = nerveshub_fwup::apply(
        &archive[..],
        &mut device,
        &ApplyOptions::new("upgrade"),
        &mut (),
    )
    .unwrap_err();
    // xdelta3's window checksum sees it (or, failing that, the resource's BLAKE2b).
    assert!(
        matches!(
            err,
            Error::Delta(DeltaError::Malformed(_)) | Error::Apply(ApplyError::HashMismatch { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_patch_without_a_delta_source_fails_with_fwups_message() {
    let archive = with_patch(
        &create_archive(&raw_conf(false)),
        "rootfs.img",
        &data("target.vcdiff"),
    );
    let err = nerveshub_fwup::apply(
        &archive[..],
        device_with_source(),
        &ApplyOptions::new("upgrade"),
        &mut (),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "File 'rootfs.img' isn't expected size ({} vs 97000) and xdelta3 patch support not enabled on it. (Add delta-source-raw-offset / delta-source-raw-count or delta-source-fat-offset / delta-source-fat-path)",
            data("target.vcdiff").len()
        )
    );
}

#[test]
fn a_source_range_too_small_for_the_patch_is_refused() {
    let conf = raw_conf(true).replace("delta-source-raw-count = 192", "delta-source-raw-count = 8");
    let archive = with_patch(&create_archive(&conf), "rootfs.img", &data("target.vcdiff"));
    let err = nerveshub_fwup::apply(
        &archive[..],
        device_with_source(),
        &ApplyOptions::new("upgrade"),
        &mut (),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("outside of allowed byte range"),
        "{err}"
    );
}

#[test]
fn fat_delta_applies_against_a_file() {
    // First a full install writes the source as a FAT file …
    let complete = create_archive(
        "file-resource source.bin { host-path = \"source.bin\" }\n\
         task complete {\n on-init { fat_mkfs(0, 32768) }\n on-resource source.bin { fat_write(0, \"rootfs.img\") }\n}\n",
    );
    let mut device = MemoryTarget::new();
    nerveshub_fwup::apply(
        &complete[..],
        &mut device,
        &ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap();

    // … then the delta, decoded against that file, is written raw after the filesystem.
    let conf = format!(
        "file-resource rootfs.img {{ host-path = \"target.bin\" }}\n\
         task upgrade {{\n on-resource rootfs.img {{\n delta-source-fat-offset = 0\n delta-source-fat-path = \"rootfs.img\"\n raw_write({})\n }}\n}}\n",
        32768
    );
    let archive = with_patch(&create_archive(&conf), "rootfs.img", &data("target.vcdiff"));
    nerveshub_fwup::apply(
        &archive[..],
        &mut device,
        &ApplyOptions::new("upgrade"),
        &mut (),
    )
    .unwrap();
    let image = device.into_bytes();
    let at = 32768 * 512;
    let target = data("target.bin");
    assert!(image[at..at + target.len()] == target[..]);
}
