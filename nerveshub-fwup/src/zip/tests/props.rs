//! Property tests: archives written by the `zip` crate (seekable writer: sizes in the local
//! headers; streaming writer: bit 3 and data descriptors) and by our own test writer read
//! back identically by both readers; arbitrary and mutated bytes never panic.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use proptest::prelude::*;

use super::builder::{Spec, build};
use super::{assert_readers_agree, fixture, seek_all, stream_all};
use crate::zip::fuzz_zip_stream;

/// Entry contents: random bytes or something compressible.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (proptest::collection::vec(any::<u8>(), 1..8), 0usize..20_000).prop_map(|(unit, len)| unit
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()),
    ]
}

/// Unique names mapped to (contents, deflate).
fn entries() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, bool)>> {
    proptest::collection::btree_map(
        "[a-zA-Z0-9_.-]{1,12}(/[a-zA-Z0-9_.-]{1,12}){0,2}",
        (contents(), any::<bool>()),
        0..6,
    )
}

fn zip_options(deflate: bool) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    })
}

fn check(archive: &[u8], expected: &BTreeMap<String, (Vec<u8>, bool)>) {
    let streamed = stream_all(archive).unwrap();
    let seeked = seek_all(archive).unwrap();
    assert_eq!(streamed.len(), expected.len());
    for (w, (name, (data, _))) in streamed.iter().zip(expected) {
        assert_eq!(&w.info.name, name);
        assert_eq!(&w.data, data);
    }
    assert_readers_agree(&streamed, &seeked);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn zip_crate_seekable_writer_round_trips(entries in entries()) {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, (data, deflate)) in &entries {
            w.start_file(name.as_str(), zip_options(*deflate)).unwrap();
            w.write_all(data).unwrap();
        }
        let archive = w.finish().unwrap().into_inner();
        check(&archive, &entries);
    }

    #[test]
    fn zip_crate_streaming_writer_round_trips(entries in entries()) {
        let mut w = zip::ZipWriter::new_stream(Vec::new());
        for (name, (data, deflate)) in &entries {
            w.start_file(name.as_str(), zip_options(*deflate)).unwrap();
            w.write_all(data).unwrap();
        }
        let archive = w.finish().unwrap().into_inner();
        check(&archive, &entries);
    }

    #[test]
    fn own_writer_with_data_descriptors_round_trips(
        entries in entries(),
        flags in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()), 6),
        zip64_end in any::<bool>(),
    ) {
        let specs: Vec<Spec> = entries
            .iter()
            .zip(&flags)
            .map(|((name, (data, deflate)), &(bit3, sig, zip64, sizes))| Spec {
                bit3,
                // Stored entries without sizes need the signature to be found.
                descriptor_sig: sig || (!deflate && !sizes),
                zip64,
                sizes_in_header: sizes,
                mtime: zip64.then_some(1_700_000_000),
                ..Spec::new(name, data, *deflate)
            })
            .collect();
        let archive = build(&specs, zip64_end);
        check(&archive, &entries);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        fuzz_zip_stream(&bytes);
        let mut prefixed = b"PK\x03\x04".to_vec();
        prefixed.extend_from_slice(&bytes);
        fuzz_zip_stream(&prefixed);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let path = ["fw/empty_resource.fw", "corrupt/missing-resource.fw", "fw/empty.fw"][which];
        let mut bytes = fixture(path);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        fuzz_zip_stream(&bytes);
    }
}
