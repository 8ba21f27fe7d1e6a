//! The seekable reader agrees with the streaming reader on the fixtures, and reads
//! resources by name.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nerveshub_fwup::{ArchiveError, ArchiveReader, Error, SeekableArchive, ZipError};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures")
        .join(path)
}

#[test]
fn head_matches_the_streaming_reader() {
    for path in [
        "fw/simple.fw",
        "fw/simple-signed.fw",
        "fw/multi-signed.fw",
        "fw/vars.fw",
        "fw/empty.fw",
        "handmade/infozip.fw",
        "handmade/repacked-unmodified.fw",
        "handmade/directory-entry.fw",
    ] {
        let streamed = ArchiveReader::open(File::open(fixture(path)).unwrap())
            .unwrap()
            .into_head();
        let seekable = SeekableArchive::open(File::open(fixture(path)).unwrap()).unwrap();
        let head = seekable.head();
        assert_eq!(head.meta_conf_bytes(), streamed.meta_conf_bytes(), "{path}");
        assert_eq!(head.signature(), streamed.signature(), "{path}");
        assert_eq!(head.uuid(), streamed.uuid(), "{path}");
        assert_eq!(head.creation_time(), streamed.creation_time(), "{path}");
    }
}

#[test]
fn resources_open_by_name() {
    let mut archive = SeekableArchive::open(File::open(fixture("fw/multi.fw")).unwrap()).unwrap();
    let names = archive.resource_names();
    assert!(names.contains(&"rootfs.squashfs".to_owned()), "{names:?}");
    let mut resource = archive.open_resource("rootfs.squashfs").unwrap().unwrap();
    assert_eq!(resource.size(), Some(1_048_576));
    let mut data = Vec::new();
    resource.read_to_end(&mut data).unwrap();
    assert_eq!(
        data,
        std::fs::read(fixture("data/rootfs.squashfs")).unwrap()
    );
    assert!(archive.open_resource("no-such-resource").unwrap().is_none());

    let mut vars = SeekableArchive::open(File::open(fixture("fw/vars.fw")).unwrap()).unwrap();
    assert!(
        vars.resource_names()
            .contains(&"/extra-at-root.txt".to_owned())
    );
    let mut text = String::new();
    vars.open_resource("/extra-at-root.txt")
        .unwrap()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "stored at the archive root instead of data/\n");
}

#[test]
fn corrupt_archives_fail_with_typed_errors() {
    let open = |path: &str| SeekableArchive::open(File::open(fixture(path)).unwrap());
    assert!(matches!(
        open("corrupt/not-a-zip.fw"),
        Err(Error::Zip(ZipError::NotAZip))
    ));
    assert!(matches!(
        open("corrupt/no-central-directory.fw"),
        Err(Error::Zip(ZipError::MissingEndOfCentralDirectory))
    ));
    assert!(matches!(
        open("corrupt/data-before-meta.fw"),
        Err(Error::Archive(ArchiveError::MetaConfNotFirst))
    ));
    assert!(matches!(
        open("corrupt/signature-63-bytes.fw"),
        Err(Error::Archive(ArchiveError::BadSignatureSize(63)))
    ));
    assert!(matches!(
        open("fw/bigmeta.fw"),
        Err(Error::Archive(ArchiveError::BadMetaConfSize(50_000)))
    ));

    let mut flipped = open("corrupt/data-byte-flip.fw").unwrap();
    let mut resource = flipped.open_resource("rootfs.img").unwrap().unwrap();
    let err = std::io::copy(&mut resource, &mut std::io::sink()).unwrap_err();
    assert!(err.to_string().contains("CRC") || err.to_string().contains("decompression"));
}
