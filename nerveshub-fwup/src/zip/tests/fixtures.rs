//! The fixture archives made by C fwup 1.16.0 (and the corrupt/handmade ones derived from
//! them), checked against `expected/*/zip-entries.txt`, a walk of their local headers.

use super::{assert_readers_agree, fixture, fixtures_dir, seek_all, stream_all, stream_entries};
use crate::zip::{CompressionMethod, ZipSeekReader, ZipStreamReader};
use crate::{Error, ZipError};

/// Corrupt fixtures that are nonetheless well-formed ZIP archives (their damage is at the
/// fwup layer).
const VALID_CORRUPT: &[&str] = &[
    "data-before-meta",
    "data-modified-repacked",
    "duplicate-entry",
    "extra-entry",
    "meta-modified",
    "missing-resource",
    "signature-63-bytes",
    "signature-after-meta",
    "signature-zeroed",
];

/// `(path relative to the fixtures, expected/ group)` of every well-formed archive.
fn valid_fixtures() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["fw", "handmade"] {
        let mut names: Vec<String> = std::fs::read_dir(fixtures_dir().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".fw"))
            .collect();
        names.sort();
        for name in names {
            let stem = name.trim_end_matches(".fw");
            let group = if dir == "fw" {
                stem.to_owned()
            } else {
                format!("{dir}--{stem}")
            };
            out.push((format!("{dir}/{name}"), group));
        }
    }
    for stem in VALID_CORRUPT {
        out.push((format!("corrupt/{stem}.fw"), format!("corrupt--{stem}")));
    }
    assert!(out.len() >= 35, "fixtures missing: {}", out.len());
    out
}

/// One `local …` line of zip-entries.txt.
#[derive(Debug)]
struct LocalLine {
    name: String,
    flags: u16,
    method: u16,
    csize: u64,
    usize: u64,
    descriptor_usize: Option<u64>,
}

/// The local lines and the central directory offset of a zip-entries.txt.
fn parse_zip_entries(text: &str) -> (Vec<LocalLine>, Option<u64>) {
    let mut locals = Vec::new();
    let mut cd_offset = None;
    for line in text.lines() {
        let (head, descriptor) = match line.split_once(" | ") {
            Some((h, d)) => (h, Some(d)),
            None => (line, None),
        };
        let field = |text: &str, key: &str| -> Option<String> {
            text.split_whitespace()
                .find_map(|t| t.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
        };
        let num = |text: &str, key: &str| -> u64 {
            let v = field(text, key).unwrap();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        };
        if head.starts_with("local ") {
            locals.push(LocalLine {
                name: field(head, "name").unwrap(),
                flags: num(head, "flags") as u16,
                method: num(head, "method") as u16,
                csize: num(head, "csize"),
                usize: num(head, "usize"),
                descriptor_usize: descriptor.map(|d| num(d, "usize")),
            });
        } else if head.starts_with("end-of-central-directory ") {
            cd_offset = Some(num(head, "cd_offset"));
        }
    }
    (locals, cd_offset)
}

#[test]
fn every_valid_fixture_matches_its_local_header_walk() {
    for (path, group) in valid_fixtures() {
        let bytes = fixture(&path);
        let walked = stream_all(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        // multi-assert-fail (left behind by a failed create) has no listing.
        let listing = std::fs::read_to_string(
            fixtures_dir().join(format!("expected/{group}/zip-entries.txt")),
        )
        .unwrap_or_default();
        let (locals, cd_offset) = parse_zip_entries(&listing);
        if locals.is_empty() {
            assert_eq!(group, "multi-assert-fail");
            assert_eq!(walked.len(), 1, "{path}");
            assert_eq!(walked[0].info.name, "meta.conf");
            assert_readers_agree(&walked, &seek_all(&bytes).unwrap());
            continue;
        }
        assert_eq!(walked.len(), locals.len(), "{path}");
        for (w, l) in walked.iter().zip(&locals) {
            let bit3 = l.flags & 8 != 0;
            let claimed = |v: u64| if bit3 { (v != 0).then_some(v) } else { Some(v) };
            assert_eq!(w.info.name, l.name, "{path}");
            assert_eq!(
                w.info.method,
                CompressionMethod::from_u16(l.method),
                "{path}"
            );
            assert_eq!(
                w.info.compressed_size,
                claimed(l.csize),
                "{path} {}",
                l.name
            );
            assert_eq!(
                w.info.uncompressed_size,
                claimed(l.usize),
                "{path} {}",
                l.name
            );
            let size = l.descriptor_usize.unwrap_or(l.usize);
            assert_eq!(w.data.len() as u64, size, "{path} {}", l.name);
            assert_eq!(w.info.is_dir, l.name.ends_with('/'));
        }

        // The walk stops exactly at the central directory.
        let mut reader = ZipStreamReader::new(&bytes[..]);
        while reader.next_entry().unwrap().is_some() {}
        assert_eq!(Some(reader.position()), cd_offset, "{path}");

        let seeked = seek_all(&bytes).unwrap_or_else(|e| panic!("{path} (seekable): {e}"));
        assert_readers_agree(&walked, &seeked);
    }
}

#[test]
fn fixture_contents_match_the_inputs() {
    let data = |name: &str| fixture(&format!("data/{name}"));
    let expected_meta = |group: &str| fixture(&format!("expected/{group}/meta.conf"));
    for (archive, group, resources) in [
        ("fw/simple.fw", "simple", &["rootfs.img"][..]),
        ("fw/simple-signed.fw", "simple-signed", &["rootfs.img"][..]),
        (
            "handmade/all-stored.fw",
            "handmade--all-stored",
            &["rootfs.img"][..],
        ),
        (
            "handmade/infozip.fw",
            "handmade--infozip",
            &["rootfs.img"][..],
        ),
        (
            "fw/multi.fw",
            "multi",
            &["boot.bin", "kernel.img", "rootfs.squashfs", "unused.bin"][..],
        ),
        ("fw/boot_fat.fw", "boot_fat", &["u-boot.bin", "zImage"][..]),
        (
            "fw/empty_resource.fw",
            "empty_resource",
            &["empty_resource.bin"][..],
        ),
    ] {
        let walked = stream_all(&fixture(archive)).unwrap();
        let meta = walked.iter().find(|w| w.info.name == "meta.conf").unwrap();
        assert_eq!(meta.data, expected_meta(group), "{archive}");
        for r in resources {
            let entry = walked
                .iter()
                .find(|w| w.info.name == format!("data/{r}"))
                .unwrap_or_else(|| panic!("{archive}: no data/{r}"));
            assert_eq!(entry.data, data(r), "{archive}: data/{r}");
        }
        if let Some(sig) = walked.iter().find(|w| w.info.name == "meta.conf.ed25519") {
            assert_eq!(sig.data.len(), 64);
        }
    }
}

#[test]
fn timestamps_come_from_ut_or_dos_fields() {
    let walked = stream_all(&fixture("fw/simple-signed.fw")).unwrap();
    // meta.conf has a UT mtime (SOURCE_DATE_EPOCH); data entries only DOS 1980-01-01.
    assert_eq!(walked[1].info.modified, Some(1_700_000_000));
    assert_eq!(walked[0].info.modified, Some(315_532_800));
    assert_eq!(walked[2].info.modified, Some(315_532_800));
    let walked = stream_all(&fixture("handmade/infozip.fw")).unwrap();
    // DOS 2026-11-26 09:07:38, read as UTC.
    assert_eq!(walked[0].info.modified, Some(1_795_684_058));
    let walked = stream_all(&fixture("handmade/all-stored.fw")).unwrap();
    assert_eq!(walked[0].info.modified, Some(1_577_836_800));
}

#[test]
fn directory_entries_are_flagged() {
    let walked = stream_all(&fixture("handmade/directory-entry.fw")).unwrap();
    let dirs: Vec<_> = walked.iter().filter(|w| w.info.is_dir).collect();
    assert_eq!(dirs.len(), 1);
    assert_eq!(dirs[0].info.name, "data/");
    assert!(dirs[0].data.is_empty());
}

#[test]
fn data_byte_flip_fails_the_crc_or_the_inflate() {
    let bytes = fixture("corrupt/data-byte-flip.fw");
    let err = stream_entries(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::BadCrc { ref entry, .. }) | Error::Zip(ZipError::Decompress { ref entry }) if entry == "data/rootfs.img"),
        "{err:?}"
    );
    let err = seek_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Zip(ZipError::BadCrc { .. }) | Error::Zip(ZipError::Decompress { .. })
        ),
        "{err:?}"
    );
    // Skipping the entry unread still checks it.
    let mut reader = ZipStreamReader::new(&bytes[..]);
    for _ in 0..3 {
        reader.next_entry().unwrap().unwrap();
    }
    assert!(matches!(
        reader.next_entry(),
        Err(Error::Zip(ZipError::BadCrc { .. }) | Error::Zip(ZipError::Decompress { .. }))
    ));
    // The reader is unusable afterwards.
    assert!(matches!(
        reader.next_entry(),
        Err(Error::Zip(ZipError::Malformed(_)))
    ));
}

#[test]
fn truncated_half_is_truncated() {
    let bytes = fixture("corrupt/truncated-half.fw");
    let err = stream_entries(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::Truncated { .. })),
        "{err:?}"
    );
    // No end record, but it starts like a ZIP.
    let err = ZipSeekReader::new(std::io::Cursor::new(&bytes)).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::MissingEndOfCentralDirectory)),
        "{err:?}"
    );
}

#[test]
fn truncated_in_meta_fails_on_the_second_header() {
    let bytes = fixture("corrupt/truncated-in-meta.fw");
    let mut reader = ZipStreamReader::new(&bytes[..]);
    let first = reader.next_entry().unwrap().unwrap();
    assert_eq!(first.name, "meta.conf.ed25519");
    let err = reader.next_entry().unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::Truncated { .. })),
        "{err:?}"
    );
}

#[test]
fn no_central_directory_reads_entries_then_fails_finish() {
    let bytes = fixture("corrupt/no-central-directory.fw");
    let walked = stream_entries(&bytes).unwrap();
    let names: Vec<_> = walked.iter().map(|w| w.info.name.as_str()).collect();
    assert_eq!(names, ["meta.conf.ed25519", "meta.conf", "data/rootfs.img"]);
    assert_eq!(walked[2].data, fixture("data/rootfs.img"));
    let mut reader = ZipStreamReader::new(&bytes[..]);
    while reader.next_entry().unwrap().is_some() {}
    assert_eq!(reader.position(), bytes.len() as u64);
    assert!(matches!(
        reader.finish(),
        Err(Error::Zip(ZipError::MissingEndOfCentralDirectory))
    ));
    // finish() without walking first walks the entries itself.
    assert!(matches!(
        ZipStreamReader::new(&bytes[..]).finish(),
        Err(Error::Zip(ZipError::MissingEndOfCentralDirectory))
    ));
    assert!(matches!(
        ZipSeekReader::new(std::io::Cursor::new(&bytes)),
        Err(Error::Zip(ZipError::MissingEndOfCentralDirectory))
    ));
}

#[test]
fn garbage_and_empty_files_are_not_zips() {
    for path in ["corrupt/not-a-zip.fw", "corrupt/empty-file.fw"] {
        let bytes = fixture(path);
        let mut reader = ZipStreamReader::new(&bytes[..]);
        assert!(
            matches!(reader.next_entry(), Err(Error::Zip(ZipError::NotAZip))),
            "{path}"
        );
        assert!(
            matches!(
                ZipSeekReader::new(std::io::Cursor::new(&bytes)),
                Err(Error::Zip(ZipError::NotAZip))
            ),
            "{path}"
        );
    }
}

#[test]
fn truncating_a_fixture_anywhere_gives_an_error_not_a_panic() {
    let bytes = fixture("fw/empty_resource.fw");
    for cut in 0..bytes.len() {
        let part = &bytes[..cut];
        assert!(stream_all(part).is_err(), "cut at {cut}");
        crate::zip::fuzz_zip_stream(part);
    }
}
