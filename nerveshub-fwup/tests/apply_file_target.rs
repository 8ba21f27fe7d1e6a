//! `FileTarget`: fwup's open semantics (create, never truncate, `--max-size`) and the
//! background writer keeping every access in order.
// The loop-device test says on stdout why it is skipped.
#![allow(clippy::print_stdout)]

use std::path::Path;

use nerveshub_fwup::{ApplyError, ApplyOptions, Error, FileTarget, Target, apply};

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
    assert!(matches!(
        err,
        Error::Apply(ApplyError::PastEndOfMedia { size: 51_200, .. })
    ));
    assert_eq!(std::fs::metadata(&small).unwrap().len(), 0);
}

/// An existing, non-empty image file: its length is the soft end that `expand` and the GPT
/// backup header go by, while writes may still go past it.
#[test]
fn an_existing_image_is_a_soft_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    assert_eq!(FileTarget::open(&path).unwrap().end_hint(), None);
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let mut target = FileTarget::open(&path).unwrap();
    assert_eq!(target.size(), None, "a soft end is no limit");
    assert_eq!(target.end_hint(), Some(4 << 20));
    target.write_at(4 << 20, &[1u8; 512]).unwrap();
    target.sync().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (4 << 20) + 512);
    let limited = FileTarget::open(&path).unwrap().with_max_size(1 << 20);
    assert_eq!(limited.end_hint(), Some(1 << 20), "--max-size wins");
}

/// Attaches a loop device over `backing`; `None` (after saying so) where this machine
/// has none or the test is not root. On CI a missing loop device is a failure.
fn loop_device(backing: &Path) -> Option<String> {
    let attach = std::process::Command::new("losetup")
        .args(["-f", "--show"])
        .arg(backing)
        .output();
    match attach {
        Ok(out) if out.status.success() => {
            Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
        }
        other => {
            nerveshub_test_support::skip_or_fail(format!("no loop device available ({other:?})"));
            None
        }
    }
}

/// A block device is opened with `O_DIRECT`, as fwup opens it: the kernel refuses any
/// request that is not whole, aligned blocks from an aligned buffer, so writes and reads of
/// odd offsets and lengths (and the writer thread's segment writes, verified) passing here
/// show every access is aligned. `trim` with discard reaches the device.
#[test]
fn block_devices_use_direct_aligned_io_and_discard() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk.img");
    std::fs::write(&backing, vec![0x55u8; 4 << 20]).unwrap();
    let Some(device) = loop_device(&backing) else {
        return;
    };
    let result = std::panic::catch_unwind(|| {
        let mut target = FileTarget::open(&device).unwrap();
        assert!(target.is_block_device());
        assert!(target.is_direct(), "{device} was not opened with O_DIRECT");
        assert_eq!(target.size(), Some(4 << 20));
        // Segment-sized writes go to the writer thread (verify-writes is on for devices).
        for i in 0..4u8 {
            target
                .write_at(u64::from(i) * 131_072, &vec![i + 1; 131_072])
                .unwrap();
        }
        // Odd offsets and lengths: read-modify-write of whole blocks underneath.
        target.write_at(1000, b"odd write").unwrap();
        let mut back = [0u8; 13];
        target.read_at(998, &mut back).unwrap();
        assert_eq!(&back, b"\x01\x01odd write\x01\x01");
        target.trim(1 << 20, 1 << 20).unwrap();
        target.sync().unwrap();
        target.trim_failures().to_vec()
    });
    let _ = std::process::Command::new("losetup")
        .args(["-d", &device])
        .status();
    let trim_failures = result.unwrap();
    let image = std::fs::read(&backing).unwrap();
    assert!(image[..1000].iter().all(|&b| b == 1));
    assert_eq!(&image[1000..1009], b"odd write");
    assert!(image[1009..131_072].iter().all(|&b| b == 1));
    assert!(image[3 * 131_072..4 * 131_072].iter().all(|&b| b == 4));
    if trim_failures.is_empty() {
        assert!(
            image[1 << 20..2 << 20].iter().all(|&b| b == 0),
            "a discarded range reads as zeros"
        );
    } else {
        println!("the loop device refused the discard: {trim_failures:?}");
    }
    assert!(image[2 << 20..].iter().all(|&b| b == 0x55));
}
