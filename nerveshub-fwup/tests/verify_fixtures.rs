//! Public-API tests: every fixture archive made or derived from C fwup 1.16 gets the verdict
//! fwup gave it (testdata/fixtures/expected/*/verify*.stdout), as a typed result.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nerveshub_fwup::{
    ArchiveError, ArchiveReader, Error, MetaConfError, PublicKey, SignatureError, SignatureStatus,
    Variables, ZipError, verify,
};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures")
        .join(path)
}

fn key(name: &str) -> PublicKey {
    let path = fixture(&format!("keys/{name}.pub"));
    PublicKey::from_file_contents(&std::fs::read(path).unwrap(), name).unwrap()
}

fn verify_file(path: &str, keys: &[PublicKey]) -> nerveshub_fwup::Result<SignatureStatus> {
    let file = File::open(fixture(path)).unwrap();
    verify(file, keys, &Variables::new()).map(|v| v.signature())
}

#[test]
fn valid_archives_verify_without_keys() {
    let unsigned = [
        "fw/simple.fw",
        "fw/simple-fast.fw",
        "fw/multi.fw",
        "fw/boot_fat.fw",
        "fw/ab.fw",
        "fw/empty.fw",
        "fw/empty_resource.fw",
        "fw/vars.fw",
        "fw/vars-cwd-configs.fw",
        "fw/sparse.fw",
        "fw/gpt.fw",
        "fw/unsafe.fw",
        "handmade/future-unknown-keys.fw",
        "handmade/unknown-function.fw",
    ];
    for path in unsigned {
        assert_eq!(
            verify_file(path, &[]).unwrap_or_else(|e| panic!("{path}: {e}")),
            SignatureStatus::Unsigned,
            "{path}"
        );
    }
    let signed = [
        "fw/simple-signed.fw",
        "fw/simple-signed-after.fw",
        "fw/simple-resigned-other.fw",
        "fw/multi-signed.fw",
        "fw/ab-signed.fw",
        "handmade/all-stored.fw",
        "handmade/directory-entry.fw",
        "handmade/infozip.fw",
        "handmade/repacked-unmodified.fw",
        // fwup -V without a key does not look at the signature, so these pass too.
        "corrupt/meta-modified.fw",
        "corrupt/signature-zeroed.fw",
    ];
    for path in signed {
        assert_eq!(
            verify_file(path, &[]).unwrap_or_else(|e| panic!("{path}: {e}")),
            SignatureStatus::Unverified,
            "{path}"
        );
    }
}

#[test]
fn signatures_check_against_any_given_key() {
    let fwup_key = key("fwup-key");
    let other_key = key("other-key");
    assert_eq!(
        verify_file("fw/simple-signed.fw", &[fwup_key]).unwrap(),
        SignatureStatus::Verified { key_index: 0 }
    );
    assert_eq!(
        verify_file("fw/simple-resigned-other.fw", &[fwup_key, other_key]).unwrap(),
        SignatureStatus::Verified { key_index: 1 }
    );
    let wrong_key_cases = [
        ("fw/simple-resigned-other.fw", fwup_key), // signed with other-key
        ("handmade/infozip.fw", other_key),        // signed with fwup-key
        ("corrupt/meta-modified.fw", fwup_key),    // meta.conf changed after signing
        ("corrupt/signature-zeroed.fw", fwup_key),
    ];
    for (path, wrong) in wrong_key_cases {
        assert!(
            matches!(
                verify_file(path, &[wrong]),
                Err(Error::Signature(SignatureError::Bad))
            ),
            "{path}"
        );
    }
    for path in [
        "fw/simple.fw",
        "corrupt/signature-after-meta.fw",
        "handmade/uuid-override.fw",
    ] {
        assert!(
            matches!(
                verify_file(path, &[fwup_key]),
                Err(Error::Signature(SignatureError::Missing))
            ),
            "{path}"
        );
    }
}

#[test]
fn every_corruption_is_its_own_error() {
    let check = |path: &str, ok: fn(&Error) -> bool| {
        let err = verify_file(path, &[]).expect_err(path);
        assert!(ok(&err), "{path}: unexpected error {err:?}");
    };
    check("fw/bigmeta.fw", |e| {
        matches!(e, Error::Archive(ArchiveError::BadMetaConfSize(50_000)))
    });
    check("corrupt/data-before-meta.fw", |e| {
        matches!(e, Error::Archive(ArchiveError::MetaConfNotFirst))
    });
    check("corrupt/data-byte-flip.fw", |e| {
        matches!(
            e,
            Error::Zip(ZipError::BadCrc { .. }) | Error::Zip(ZipError::Decompress { .. })
        )
    });
    check(
        "corrupt/data-modified-repacked.fw",
        |e| matches!(e, Error::Archive(ArchiveError::ResourceHashMismatch(name)) if name == "rootfs.img"),
    );
    check(
        "corrupt/duplicate-entry.fw",
        |e| matches!(e, Error::Archive(ArchiveError::DuplicateResource(name)) if name == "rootfs.img"),
    );
    check("corrupt/empty-file.fw", |e| {
        matches!(e, Error::Zip(ZipError::NotAZip))
    });
    check("corrupt/not-a-zip.fw", |e| {
        matches!(e, Error::Zip(ZipError::NotAZip))
    });
    check(
        "corrupt/extra-entry.fw",
        |e| matches!(e, Error::Archive(ArchiveError::UnknownResource(name)) if name == "unexpected.bin"),
    );
    check(
        "corrupt/missing-resource.fw",
        |e| matches!(e, Error::Archive(ArchiveError::MissingResource(name)) if name == "rootfs.img"),
    );
    check("corrupt/no-central-directory.fw", |e| {
        matches!(e, Error::Zip(ZipError::MissingEndOfCentralDirectory))
    });
    check("corrupt/signature-63-bytes.fw", |e| {
        matches!(e, Error::Archive(ArchiveError::BadSignatureSize(63)))
    });
    check(
        "corrupt/signature-after-meta.fw",
        |e| matches!(e, Error::Archive(ArchiveError::UnknownResource(name)) if name == "/meta.conf.ed25519"),
    );
    check("corrupt/truncated-half.fw", |e| {
        matches!(e, Error::Zip(ZipError::Truncated { .. }))
    });
    check("corrupt/truncated-in-meta.fw", |e| {
        matches!(e, Error::Archive(ArchiveError::NothingAfterSignature))
    });
    check("handmade/future-unknown-section.fw", |e| {
        matches!(e, Error::MetaConf(MetaConfError::Syntax { .. }))
    });
    check("handmade/require-future-version.fw", |e| {
        matches!(e, Error::MetaConf(MetaConfError::RequiresNewerFwup { .. }))
    });
    check("handmade/uuid-override.fw", |e| {
        matches!(e, Error::MetaConf(MetaConfError::ReservedMetadata))
    });
}

#[test]
fn errors_read_like_fwups_messages() {
    let err = verify_file("corrupt/duplicate-entry.fw", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Processing rootfs.img twice. Archive is corrupt."
    );
    let err = verify_file("fw/simple.fw", &[key("fwup-key")]).unwrap_err();
    assert_eq!(err.to_string(), "Expecting signed firmware archive.");
}

#[test]
fn metadata_matches_fwup_m_output() {
    for group in ["simple", "multi", "ab", "empty", "vars", "sparse", "gpt"] {
        let archive = match group {
            "simple" => "fw/simple.fw".to_owned(),
            other => format!("fw/{other}.fw"),
        };
        let head = ArchiveReader::open(File::open(fixture(&archive)).unwrap())
            .unwrap()
            .into_head();
        let meta_conf = head.parse(&Variables::new()).unwrap();
        let want =
            std::fs::read_to_string(fixture(&format!("expected/{group}/metadata.stdout"))).unwrap();
        assert_eq!(
            head.firmware_info(&meta_conf).to_fwup_text(),
            want,
            "{group}"
        );
        let mut stored = Vec::new();
        File::open(fixture(&format!("expected/{group}/meta.conf")))
            .unwrap()
            .read_to_end(&mut stored)
            .unwrap();
        assert_eq!(head.meta_conf_bytes(), stored, "{group}");
    }
}

#[test]
fn apply_time_variables_come_from_the_caller() {
    let head = ArchiveReader::open(File::open(fixture("fw/vars.fw")).unwrap())
        .unwrap()
        .into_head();
    let mut vars = Variables::new();
    vars.set("APPLY_TIME_VAR", "set-at-read");
    let meta_conf = head.parse(&vars).unwrap();
    let want = std::fs::read_to_string(fixture("expected/vars/metadata-with-env.stdout")).unwrap();
    assert_eq!(head.firmware_info(&meta_conf).to_fwup_text(), want);
}
