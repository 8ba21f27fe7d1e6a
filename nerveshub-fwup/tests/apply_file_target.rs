//! `FileTarget`: fwup's open semantics (create, never truncate, `--max-size`) and the
//! background writer keeping every access in order.

use std::path::Path;

use nerveshub_fwup::Error;
use nerveshub_fwup::apply::{ApplyOptions, FileTarget, Target, apply};

#[test]
fn queued_writes_are_seen_in_order_by_reads_and_small_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let mut target = FileTarget::open(&path).unwrap();
    for i in 0..20u8 {
        target
            .write_at(u64::from(i) * 131_072, &vec![i; 131_072])
            .unwrap();
    }
    target.write_at(5, b"small").unwrap();
    target.write_at(0, &vec![0xab; 131_072]).unwrap();
    let mut buf = [0u8; 8];
    target.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [0xab; 8]);
    target.read_at(19 * 131_072 + 100, &mut buf).unwrap();
    assert_eq!(buf, [19; 8]);
    // Past the end of a regular file reads as zeros.
    target.read_at(20 * 131_072, &mut buf).unwrap();
    assert_eq!(buf, [0; 8]);
    target.sync().unwrap();
    drop(target);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 20 * 131_072);
}

#[test]
fn apply_into_a_file_keeps_existing_bytes_and_honours_max_size() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures");
    let fw = std::fs::read(fixtures.join("fw/simple.fw")).unwrap();
    let rootfs = std::fs::read(fixtures.join("data/rootfs.img")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.img");
    std::fs::write(&path, vec![0x11u8; 300_000]).unwrap();

    let mut target = FileTarget::open(&path).unwrap();
    apply(
        &fw[..],
        &mut target,
        &ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap();
    target.sync().unwrap();
    drop(target);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 300_000);
    assert!(bytes[..131_072].iter().all(|b| *b == 0x11));
    assert_eq!(&bytes[131_072..196_608], rootfs.as_slice());
    assert!(bytes[196_608..].iter().all(|b| *b == 0x11));

    let small = dir.path().join("small.img");
    let target = FileTarget::open(&small).unwrap().with_max_size(51_200);
    let err = apply(&fw[..], target, &ApplyOptions::new("complete"), &mut ()).unwrap_err();
    assert!(matches!(err, Error::PastEndOfMedia { size: 51_200, .. }));
    assert_eq!(std::fs::metadata(&small).unwrap().len(), 0);
}
