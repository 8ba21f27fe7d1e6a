//! Hand-built archives for the layouts the fixtures do not cover.

use std::io::{Cursor, Read};

use super::builder::{Spec, build, central_directory_offset};
use super::{assert_readers_agree, seek_all, stream_all, stream_entries};
use crate::zip::{
    CompressionMethod, MAX_NAME_LEN, ZipSeekReader, ZipStreamReader, dos_to_unix,
    io_error_into_crate,
};
use crate::{Error, ZipError};

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn check_round_trip(specs: &[Spec], zip64_end: bool) {
    let archive = build(specs, zip64_end);
    let streamed = stream_all(&archive).unwrap();
    let seeked = seek_all(&archive).unwrap();
    assert_eq!(streamed.len(), specs.len());
    for (w, s) in streamed.iter().zip(specs) {
        assert_eq!(w.info.name, s.name);
        assert_eq!(w.data, s.data, "{}", s.name);
    }
    assert_readers_agree(&streamed, &seeked);
}

#[test]
fn data_descriptor_variants_round_trip() {
    let text = b"hello hello hello hello fwup".repeat(50);
    let random = pseudo_random(70_000, 7);
    for deflate in [false, true] {
        for sig in [false, true] {
            for zip64 in [false, true] {
                for sizes in [false, true] {
                    // Stored entries of unknown size are found by their descriptor signature.
                    if !deflate && !sizes && !sig {
                        continue;
                    }
                    let specs: Vec<Spec> = [&text[..], &random[..], &[][..]]
                        .iter()
                        .enumerate()
                        .map(|(i, data)| Spec {
                            descriptor_sig: sig,
                            zip64,
                            sizes_in_header: sizes,
                            ..Spec::fwup(&format!("data/e{i}"), data, deflate)
                        })
                        .collect();
                    check_round_trip(&specs, zip64);
                }
            }
        }
    }
}

#[test]
fn stored_entries_of_unknown_length_are_found_by_scanning() {
    // Data containing descriptor signatures that are not the descriptor (wrong CRC, and one
    // with a plausible CRC but wrong size) must not end the entry early.
    let mut data = pseudo_random(300_000, 3);
    data[1000..1004].copy_from_slice(b"PK\x07\x08");
    data[299_990..299_994].copy_from_slice(b"PK\x07\x08");
    let mut tail = b"PK\x07\x08".to_vec();
    tail.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(&tail);
    let spec = Spec {
        sizes_in_header: false,
        ..Spec::fwup("scan.bin", &data, false)
    };
    let next = Spec::fwup("next.txt", b"after", true);
    let archive = build(&[spec.clone(), next.clone()], false);
    let walked = stream_all(&archive).unwrap();
    assert_eq!(walked[0].data, data);
    assert_eq!(walked[0].info.compressed_size, None);
    assert_eq!(walked[1].data, b"after");

    // Without a central directory the descriptor is followed by the end of input.
    let cut = central_directory_offset(&archive);
    let walked = stream_entries(&archive[..cut]).unwrap();
    assert_eq!(walked[1].data, b"after");
    let only = build(&[spec], false);
    let cut = central_directory_offset(&only);
    assert_eq!(stream_entries(&only[..cut]).unwrap()[0].data, data);
}

#[test]
fn stored_scan_without_descriptor_is_truncated() {
    let spec = Spec {
        sizes_in_header: false,
        ..Spec::fwup("x.bin", b"some stored bytes", false)
    };
    let archive = build(&[spec], false);
    // Cut just before the descriptor.
    let cut = 30 + "x.bin".len() + b"some stored bytes".len();
    let err = stream_entries(&archive[..cut]).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::Truncated { .. })),
        "{err:?}"
    );
}

#[test]
fn zip64_end_records_are_followed() {
    let specs = [
        Spec::new("a.txt", b"alpha", true),
        Spec {
            zip64: true,
            ..Spec::new("b.bin", &pseudo_random(5000, 1), false)
        },
        Spec {
            zip64: true,
            ..Spec::fwup("c.bin", &pseudo_random(5000, 2), true)
        },
    ];
    check_round_trip(&specs, true);
    let archive = build(&specs, true);
    let reader = ZipSeekReader::new(Cursor::new(&archive)).unwrap();
    assert_eq!(reader.entries()[1].compressed_size, Some(5000));
}

#[test]
fn empty_archive_has_no_entries() {
    let archive = build(&[], false);
    assert_eq!(archive.len(), 22);
    let mut reader = ZipStreamReader::new(&archive[..]);
    assert!(reader.next_entry().unwrap().is_none());
    assert!(reader.next_entry().unwrap().is_none());
    reader.finish().unwrap();
    assert!(
        ZipSeekReader::new(Cursor::new(&archive))
            .unwrap()
            .entries()
            .is_empty()
    );
}

#[test]
fn encrypted_entries_are_refused() {
    let spec = Spec {
        extra_flags: 1,
        ..Spec::new("secret", b"xxxx", false)
    };
    let archive = build(&[spec], false);
    let err = ZipStreamReader::new(&archive[..]).next_entry().unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::Unsupported { ref entry, .. }) if entry == "secret"),
        "{err:?}"
    );
    let mut seek = ZipSeekReader::new(Cursor::new(&archive)).unwrap();
    assert_eq!(seek.entries().len(), 1);
    assert!(matches!(
        seek.open(0),
        Err(Error::Zip(ZipError::Unsupported { .. }))
    ));
}

#[test]
fn unknown_methods_are_listed_refused_on_read_and_skipped() {
    let odd = Spec {
        method_override: Some(12),
        ..Spec::new("odd.bz2", b"not really bzip2", false)
    };
    let archive = build(&[odd, Spec::new("next", b"fine", true)], false);
    let mut reader = ZipStreamReader::new(&archive[..]);
    let info = reader.next_entry().unwrap().unwrap();
    assert_eq!(info.method, CompressionMethod::Other(12));
    let mut buf = [0u8; 64];
    assert!(matches!(
        reader.read(&mut buf),
        Err(Error::Zip(ZipError::Unsupported { .. }))
    ));
    let next = reader.next_entry().unwrap().unwrap();
    assert_eq!(next.name, "next");
    assert_eq!(reader.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"fine");
    assert_eq!(reader.read(&mut buf).unwrap(), 0);
    assert!(reader.next_entry().unwrap().is_none());
    reader.finish().unwrap();

    let mut seek = ZipSeekReader::new(Cursor::new(&archive)).unwrap();
    assert!(matches!(
        seek.open(0),
        Err(Error::Zip(ZipError::Unsupported { .. }))
    ));
    assert!(seek.open(2).is_err());

    // With bit 3 the entry cannot be skipped.
    let odd = Spec {
        method_override: Some(12),
        sizes_in_header: false,
        ..Spec::fwup("odd.bz2", b"data", false)
    };
    let archive = build(&[odd], false);
    let mut reader = ZipStreamReader::new(&archive[..]);
    reader.next_entry().unwrap().unwrap();
    assert!(matches!(
        reader.next_entry(),
        Err(Error::Zip(ZipError::Unsupported { .. }))
    ));
}

#[test]
fn long_names_are_refused() {
    let ok = "n".repeat(MAX_NAME_LEN);
    let archive = build(&[Spec::new(&ok, b"x", false)], false);
    assert_eq!(stream_all(&archive).unwrap()[0].info.name, ok);
    let long = "n".repeat(MAX_NAME_LEN + 1);
    let archive = build(&[Spec::new(&long, b"x", false)], false);
    assert!(matches!(
        ZipStreamReader::new(&archive[..]).next_entry(),
        Err(Error::Zip(ZipError::EntryNameTooLong { len: 513 }))
    ));
    assert!(matches!(
        ZipSeekReader::new(Cursor::new(&archive)),
        Err(Error::Zip(ZipError::EntryNameTooLong { len: 513 }))
    ));
}

#[test]
fn wrong_crc_and_sizes_are_caught() {
    // CRC in the local header (no bit 3) corrupted.
    let mut archive = build(&[Spec::new("a", b"abcdef", false)], false);
    archive[14] ^= 1;
    assert!(matches!(
        stream_all(&archive),
        Err(Error::Zip(ZipError::BadCrc { .. }))
    ));
    // ...and in the central directory.
    let mut archive = build(&[Spec::new("a", b"abcdef", false)], false);
    let cd = central_directory_offset(&archive);
    archive[cd + 16] ^= 1;
    assert!(matches!(
        seek_all(&archive),
        Err(Error::Zip(ZipError::BadCrc { .. }))
    ));
    // Uncompressed size in a data descriptor that does not match the data.
    let mut archive = build(&[Spec::fwup("a", b"abcdef", true)], false);
    let cd = central_directory_offset(&archive);
    archive[cd - 1] ^= 1; // high byte of the descriptor's usize
    let err = stream_all(&archive).unwrap_err();
    assert!(matches!(err, Error::Zip(ZipError::Malformed(_))), "{err:?}");
    // Local header claims a different uncompressed size than the data has (fwup style).
    let mut archive = build(&[Spec::fwup("a", b"abcdef", true)], false);
    archive[22] = 7;
    let err = stream_all(&archive).unwrap_err();
    assert!(matches!(err, Error::Zip(ZipError::Malformed(_))), "{err:?}");
    // A deflate stream longer than the compressed size the header gives.
    let mut archive = build(&[Spec::new("a", &b"abc".repeat(100), true)], false);
    archive[18] -= 1;
    let err = stream_all(&archive).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::Decompress { .. })),
        "{err:?}"
    );
    // Garbage instead of deflate data.
    let mut archive = build(&[Spec::fwup("a", b"abcdef", true)], false);
    archive[31] = 0xff;
    archive[32] = 0xff;
    let err = stream_entries(&archive).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Zip(ZipError::Decompress { .. }) | Error::Zip(ZipError::BadCrc { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn unexpected_records_between_entries_are_malformed() {
    let mut archive = build(&[Spec::new("a", b"abc", false)], false);
    let insert_at = 30 + 1 + 3;
    archive.splice(insert_at..insert_at, *b"JUNK");
    let err = stream_entries(&archive).unwrap_err();
    assert!(matches!(err, Error::Zip(ZipError::Malformed(_))), "{err:?}");
}

#[test]
fn large_stored_entry_reads_directly_into_big_buffers() {
    let data = pseudo_random(1 << 20, 9);
    let archive = build(&[Spec::new("big", &data, false)], false);
    let mut reader = ZipStreamReader::new(&archive[..]);
    reader.next_entry().unwrap().unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 600 * 1024];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, data);
    assert!(reader.next_entry().unwrap().is_none());
    reader.finish().unwrap();
}

#[test]
fn partially_read_entries_are_finished_by_next_entry() {
    let a = pseudo_random(100_000, 4);
    let archive = build(
        &[Spec::fwup("a", &a, true), Spec::fwup("b", b"second", true)],
        false,
    );
    let mut reader = ZipStreamReader::new(&archive[..]);
    reader.next_entry().unwrap().unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(reader.read(&mut buf).unwrap(), 100);
    assert_eq!(&buf[..], &a[..100]);
    assert_eq!(reader.read(&mut []).unwrap(), 0);
    let b = reader.next_entry().unwrap().unwrap();
    assert_eq!(b.name, "b");
    let mut data = Vec::new();
    reader.entry_reader().read_to_end(&mut data).unwrap();
    assert_eq!(data, b"second");
    reader.finish().unwrap();
}

#[test]
fn io_read_adapters_carry_crate_errors() {
    let mut archive = build(&[Spec::new("a", b"abcdef", false)], false);
    archive[14] ^= 1;
    let mut reader = ZipStreamReader::new(&archive[..]);
    reader.next_entry().unwrap().unwrap();
    let err = reader
        .entry_reader()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        io_error_into_crate(err),
        Error::Zip(ZipError::BadCrc { .. })
    ));

    let cd = central_directory_offset(&archive);
    archive[cd + 16] ^= 1;
    let mut seek = ZipSeekReader::new(Cursor::new(&archive)).unwrap();
    let err = seek
        .open(0)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        io_error_into_crate(err),
        Error::Zip(ZipError::BadCrc { .. })
    ));
}

#[test]
fn position_counts_consumed_bytes() {
    let archive = build(&[Spec::fwup("a", b"abc", true)], false);
    let mut reader = ZipStreamReader::new(&archive[..]);
    assert_eq!(reader.position(), 0);
    reader.next_entry().unwrap().unwrap();
    assert_eq!(reader.position(), 31);
    assert!(reader.next_entry().unwrap().is_none());
    assert_eq!(
        reader.position() as usize,
        central_directory_offset(&archive)
    );
}

#[test]
fn dos_dates() {
    assert_eq!(dos_to_unix(0x0021, 0), Some(315_532_800));
    assert_eq!(dos_to_unix(0x5021, 0), Some(1_577_836_800));
    assert_eq!(dos_to_unix(0, 0), None);
    assert_eq!(dos_to_unix(0x0021, 24 << 11), None);
    // Leap day 2024-02-29 23:59:58.
    let date = ((2024 - 1980) << 9) | (2 << 5) | 29;
    let time = (23 << 11) | (59 << 5) | 29;
    assert_eq!(dos_to_unix(date, time), Some(1_709_251_198));
}
