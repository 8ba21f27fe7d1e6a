//! Tests of the FAT volume: each operation on fresh volumes, and the `boot_fat` fixture.

use crate::FatError;
use std::io::Read as _;

use super::*;
use crate::apply::target::MemoryTarget;
use nerveshub_test_support::skip_or_fail;

const BASE: u64 = 256 * SS;
const COUNT: u64 = 2048;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/testdata/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn recorded_image() -> Vec<u8> {
    let gz = fixture("images/boot_fat--apply-complete.img.gz");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn fresh() -> MemoryTarget {
    let mut t = MemoryTarget::new();
    mkfs(&mut t, BASE, COUNT).unwrap();
    t
}

fn sector(img: &[u8], s: u64) -> &[u8] {
    let at = (BASE + s * SS) as usize;
    &img[at..at + SS as usize]
}

#[test]
fn mkfs_boot_sector_matches_fwup() {
    let t = fresh();
    let ours = t.as_bytes();
    let theirs = recorded_image();
    assert_eq!(sector(ours, 0), sector(&theirs, 0));
    // The last sector was set to 0xFF first (fwup grows the image that way).
    assert_eq!(ours.len() as u64, BASE + COUNT * SS);
    assert!(sector(ours, COUNT - 1).iter().all(|&b| b == 0xFF));
    // FAT12 with 7-sector FATs: media bytes, then zeros.
    assert_eq!(&sector(ours, 1)[..4], &[0xF8, 0xFF, 0xFF, 0]);
    assert_eq!(&sector(ours, 8)[..4], &[0xF8, 0xFF, 0xFF, 0]);
    let mut t = t;
    let v = Volume::mount(&mut t, BASE).unwrap();
    assert_eq!(v.fat_type(), FatType::Fat12);
    assert_eq!(v.n_fatent, 2001 + 2);
}

#[test]
fn mkfs_picks_fat16_and_fat32_by_size() {
    for (count, kind) in [
        (8192u64, FatType::Fat16),
        (65536, FatType::Fat16),
        (140_000, FatType::Fat32),
    ] {
        let mut t = MemoryTarget::new();
        mkfs(&mut t, 0, count).unwrap();
        let v = Volume::mount(&mut t, 0).unwrap();
        assert_eq!(v.fat_type(), kind, "{count} blocks");
    }
    let mut t = MemoryTarget::new();
    assert!(mkfs(&mut t, 0, 100).is_err());
}

#[test]
fn files_are_written_read_and_listed() {
    let mut t = fresh();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    v.setlabel("BootFS").unwrap();
    v.mkdir("boot").unwrap();
    v.mkdir("boot").unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut f = v.create("boot/Long File Name.txt").unwrap();
    v.pwrite(&mut f, 0, &data[..1000]).unwrap();
    v.pwrite(&mut f, 1000, &data[1000..]).unwrap();
    assert_eq!(
        v.read_file("boot/long file name.TXT", usize::MAX).unwrap(),
        data
    );
    assert_eq!(v.label().unwrap().as_deref(), Some("BOOTFS"));
    let root = v.list(0).unwrap();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].name, "boot");
    let boot = v.dir_cluster("boot").unwrap();
    let entries = v.list(boot).unwrap();
    assert_eq!(entries[0].name, "Long File Name.txt");
    assert_eq!(entries[0].size, 5000);
    assert_eq!(&entries[0].short, b"LONGFI~1TXT");
}

#[test]
fn holes_are_zero_filled() {
    let mut t = fresh();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    let mut f = v.create("sparse").unwrap();
    v.pwrite(&mut f, 0, b"abc").unwrap();
    v.pwrite(&mut f, 1500, b"xyz").unwrap();
    v.pwrite(&mut f, 3000, &[]).unwrap();
    let got = v.read_file("sparse", usize::MAX).unwrap();
    assert_eq!(got.len(), 3000);
    assert_eq!(&got[..3], b"abc");
    assert!(got[3..1500].iter().all(|&b| b == 0));
    assert_eq!(&got[1500..1503], b"xyz");
    assert!(got[1503..].iter().all(|&b| b == 0));
}

#[test]
fn mv_rm_touch_attrib_and_cp() {
    let mut t = fresh();
    {
        let mut v = Volume::mount(&mut t, BASE).unwrap();
        let mut f = v.create("a.txt").unwrap();
        v.pwrite(&mut f, 0, b"hello").unwrap();
        v.touch("b.txt").unwrap();
        assert!(matches!(
            v.mv("a.txt", "b.txt", false),
            Err(Error::Fat(FatError { reason: EXIST, .. }))
        ));
        v.mv("a.txt", "b.txt", true).unwrap();
        assert!(v.stat("a.txt").unwrap().is_none());
        assert_eq!(v.read_file("b.txt", 100).unwrap(), b"hello");
        v.rm("missing", false).unwrap();
        v.rm("no/such/dir", false).unwrap();
        assert!(v.rm("missing", true).is_err());
        v.attrib("b.txt", AM_RDO | AM_HID).unwrap();
        assert_eq!(
            v.stat("b.txt").unwrap().unwrap().attr,
            AM_ARC | AM_RDO | AM_HID
        );
        assert!(v.rm("b.txt", true).is_err());
        v.attrib("b.txt", 0).unwrap();
    }
    cp(&mut t, BASE, "b.txt", BASE, "c copy.txt").unwrap();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    assert_eq!(v.read_file("C COPY.TXT", 100).unwrap(), b"hello");
    v.rm("b.txt", true).unwrap();
    v.mkdir("d").unwrap();
    v.touch("d/x").unwrap();
    assert!(v.rm("d", false).is_err());
    v.rm("d/x", true).unwrap();
    v.rm("d", true).unwrap();
    let names: Vec<String> = v.list(0).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["c copy.txt"]);
}

#[test]
fn truncating_reuses_the_freed_clusters() {
    let mut t = fresh();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    let mut f = v.create("f").unwrap();
    v.pwrite(&mut f, 0, &[1u8; 2048]).unwrap();
    let first = v.stat("f").unwrap().unwrap().cluster;
    let mut f = v.create("f").unwrap();
    v.pwrite(&mut f, 0, &[2u8; 100]).unwrap();
    assert_eq!(v.stat("f").unwrap().unwrap().cluster, first);
}

#[test]
fn a_full_root_directory_is_refused() {
    let mut t = fresh();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    for i in 0..512 {
        v.touch(&format!("F{i}")).unwrap();
    }
    assert!(matches!(
        v.touch("one-more"),
        Err(Error::Fat(FatError { reason: DENIED, .. }))
    ));
}

#[test]
fn subdirectories_grow_by_clusters() {
    let mut t = fresh();
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    v.mkdir("d").unwrap();
    for i in 0..40 {
        v.touch(&format!("d/file{i:02}")).unwrap();
    }
    let d = v.dir_cluster("d").unwrap();
    assert_eq!(v.list(d).unwrap().len(), 40);
    assert!(v.stat("d/file39").unwrap().is_some());
}

#[test]
fn garbage_is_not_a_filesystem() {
    let mut t = MemoryTarget::from_bytes(vec![0xA5; 4096]);
    assert!(Volume::mount(&mut t, 0).is_err());
    let mut t = MemoryTarget::new();
    assert!(Volume::mount(&mut t, 0).is_err());
}

/// Applies `fw/boot_fat.fw` task `complete` with the engine.
fn apply_boot_fat() -> Vec<u8> {
    let fw = fixture("fw/boot_fat.fw");
    let mut out = MemoryTarget::new();
    crate::apply::apply(
        &fw[..],
        &mut out,
        &crate::apply::ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap();
    out.into_bytes()
}

/// Sector (inside the volume) of cluster `c` of the 2048-block fixture volume.
fn cluster_sector(c: u64) -> u64 {
    47 + c - 2
}

/// A path, its entry and its contents.
type FileInfo = (String, Entry, Vec<u8>);

/// Everything the directory reader sees of a volume: label, and per path the entry and
/// the file's contents.
fn tree(img: &[u8]) -> (Option<String>, Vec<FileInfo>) {
    let mut t = MemoryTarget::from_bytes(img.to_vec());
    let mut v = Volume::mount(&mut t, BASE).unwrap();
    let label = v.label().unwrap();
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), 0u32)];
    while let Some((prefix, dir)) = todo.pop() {
        for e in v.list(dir).unwrap() {
            let path = format!("{prefix}{}", e.name);
            if e.is_dir() {
                todo.push((format!("{path}/"), e.cluster));
                out.push((path, e, Vec::new()));
            } else {
                let data = v.read_file(&path, usize::MAX).unwrap();
                out.push((path, e, data));
            }
        }
    }
    (label, out)
}

/// The `boot_fat` task's image equals fwup's byte for byte, including the slack after the
/// end of `u-boot.bin` and `zImage` in their last sectors: FatFs leaves the stale contents
/// of its sector buffer there (the last sector a write ended in the middle of), so this
/// holds only because data reaches `fat_write` in fwup's chunks — ending where fwup's
/// 16 KiB reads of the archive end (u-boot.bin at byte 15426, in sector 30; zImage at
/// 44481, in sector 86).
#[test]
fn boot_fat_complete_matches_fwup_including_file_slack() {
    let ours = apply_boot_fat();
    let theirs = recorded_image();
    assert_eq!(ours.len(), theirs.len());
    let uboot = fixture("data/u-boot.bin");
    let zimage = fixture("data/zImage");
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        panic!("byte {i:#x} differs from fwup's image");
    }
    // (volume sector, first slack byte, the file, the sector fwup's buffer held)
    let slack = [
        (cluster_sector(42), 20000 % 512, &uboot, 30usize),
        (cluster_sector(140), 50000 % 512, &zimage, 86),
    ];
    for &(s, from, file, held) in &slack {
        let sect = sector(&theirs, s);
        let buffered = &file[held * 512..held * 512 + 512];
        assert_eq!(
            &sect[from..],
            &buffered[from..],
            "fwup's slack is its stale buffer"
        );
    }
    let volume = |img: &[u8]| img[BASE as usize..(BASE + COUNT * SS) as usize].to_vec();
    check_with_dosfstools("boot-fat-fwup", &volume(&theirs), &[]);
    check_with_dosfstools("boot-fat-ours", &volume(&ours), &[("u-boot.bin", &uboot)]);
    let (label, files) = tree(&theirs);
    assert_eq!(label.as_deref(), Some("BOOTFS"));
    assert_eq!(tree(&ours), (label, files.clone()));
    let summary: Vec<(&str, u8, u32)> = files
        .iter()
        .map(|(p, e, _)| (p.as_str(), e.attr, e.size))
        .collect();
    assert_eq!(
        summary,
        [
            ("boot", AM_DIR, 0),
            ("zImage", AM_ARC, 50000),
            ("u-boot.bin", AM_ARC | AM_RDO | AM_HID, 20000),
            ("empty.txt", AM_ARC, 41),
            ("boot/config.txt", AM_ARC, 41),
            ("boot/zImage.copy", AM_ARC, 50000),
        ]
    );
    let content = |p: &str| &files.iter().find(|f| f.0 == p).unwrap().2;
    assert_eq!(content("u-boot.bin"), &uboot);
    assert_eq!(content("boot/zImage.copy"), &zimage);
    assert_eq!(
        content("empty.txt"),
        b"console=ttyS0,115200\nroot=/dev/mmcblk0p2\n"
    );
}

/// Writes `image` to a temporary file and runs `fsck.fat -n` and `mtype` on it. Without
/// dosfstools/mtools the check prints `skipped: …`, unless `NERVESHUB_CI=1` (then it fails).
fn check_with_dosfstools(what: &str, volume: &[u8], files: &[(&str, &[u8])]) {
    let path =
        std::env::temp_dir().join(format!("nerveshub-fat-{}-{what}.img", std::process::id()));
    std::fs::write(&path, volume).unwrap();
    let fsck = std::process::Command::new("fsck.fat")
        .arg("-n")
        .arg(&path)
        .output();
    let result = match fsck {
        Err(e) => {
            skip_or_fail(format!(
                "fsck.fat not available ({e}; Debian package dosfstools)"
            ));
            None
        }
        Ok(out) => Some(out),
    };
    if let Some(out) = result {
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // FatFs's f_setlabel leaves the boot sector's label alone, as in fwup's images
        // (the recorded boot_fat image gets the same remark): nothing else may be reported.
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.is_empty()
                    || l.starts_with("fsck.fat ")
                    || l.starts_with("There is no label in boot sector, but there is volume label")
                    || l.contains("Auto-copying volume label from root directory")
                    || l == &"Leaving filesystem unchanged."
                    || l.contains(" files, "))
            })
            .collect();
        assert!(
            problems.is_empty() && out.status.code().is_some_and(|c| c <= 1),
            "{what}: fsck.fat -n failed:\n{text}"
        );
        for (name, data) in files {
            match std::process::Command::new("mtype")
                .arg("-i")
                .arg(&path)
                .arg(format!("::{name}"))
                .env("MTOOLS_SKIP_CHECK", "1")
                .output()
            {
                Err(e) => {
                    skip_or_fail(format!("mtype not available ({e}; Debian package mtools)"));
                    break;
                }
                Ok(out) => assert_eq!(&out.stdout, data, "{what}: mtype ::{name}"),
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn written_volumes_pass_fsck_and_mtools() {
    for (what, count) in [("fat12", 2048u64), ("fat16", 8192), ("fat32", 140_000)] {
        let mut t = MemoryTarget::new();
        mkfs(&mut t, 0, count).unwrap();
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut v = Volume::mount(&mut t, 0).unwrap();
            v.setlabel("vol").unwrap();
            v.mkdir("boot").unwrap();
            v.mkdir("boot/Nested Dir").unwrap();
            let mut f = v.create("boot/Nested Dir/kernel.img").unwrap();
            v.pwrite(&mut f, 0, &big[..33_333]).unwrap();
            v.pwrite(&mut f, 33_333, &big[33_333..]).unwrap();
            for i in 0..30 {
                v.touch(&format!("boot/file number {i}.txt")).unwrap();
            }
            let mut f = v.create("tmp.bin").unwrap();
            v.pwrite(&mut f, 0, b"temporary").unwrap();
            v.mv("tmp.bin", "Config.TXT", false).unwrap();
            v.rm("boot/file number 3.txt", true).unwrap();
            v.attrib("Config.TXT", AM_HID).unwrap();
            v.mv("boot/Nested Dir", "nested", false).unwrap();
        }
        cp(&mut t, 0, "nested/kernel.img", 0, "boot/kernel copy.img").unwrap();
        check_with_dosfstools(
            what,
            t.as_bytes(),
            &[
                ("nested/kernel.img", &big),
                ("boot/kernel copy.img", &big),
                ("Config.TXT", b"temporary"),
            ],
        );
    }
}

mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 6] = [
        "a.txt",
        "Long Name.bin",
        "UPPER.TXT",
        "dir/x",
        "dir/Mixed Case.Data",
        "Ünïcode ½.txt",
    ];

    fn content(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + seed * 7) as u8).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random writes, moves, copies, touches and removals read back as a model says,
        /// and the volume stays clean for fsck.fat.
        #[test]
        fn random_operations_match_a_model(
            ops in prop::collection::vec((0u8..6, 0usize..6, 0usize..6, 0usize..3000), 1..30)
        ) {
            let mut t = fresh();
            let mut model: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
            Volume::mount(&mut t, BASE).unwrap().mkdir("dir").unwrap();
            for (op, a, b, len) in ops {
                let (na, nb) = (NAMES[a], NAMES[b]);
                match op {
                    0 => {
                        let data = content(a, len);
                        let mut v = Volume::mount(&mut t, BASE).unwrap();
                        let mut f = v.create(na).unwrap();
                        let cut = len / 3;
                        v.pwrite(&mut f, 0, &data[..cut]).unwrap();
                        v.pwrite(&mut f, cut as u64, &data[cut..]).unwrap();
                        model.insert(na, data);
                    }
                    1 => {
                        Volume::mount(&mut t, BASE).unwrap().rm(na, false).unwrap();
                        model.remove(na);
                    }
                    2 | 3 => {
                        let force = op == 3;
                        let result = Volume::mount(&mut t, BASE).unwrap().mv(na, nb, force);
                        // fat_mv! removes the destination first, as fwup does (even when
                        // it is the source).
                        if force {
                            model.remove(nb);
                        }
                        let expect_ok =
                            model.contains_key(na) && (a == b || !model.contains_key(nb));
                        prop_assert_eq!(result.is_ok(), expect_ok, "mv {} {}", na, nb);
                        if expect_ok && a != b {
                            let data = model.remove(na).unwrap_or_default();
                            model.insert(nb, data);
                        }
                    }
                    4 if a != b => {
                        let result = cp(&mut t, BASE, na, BASE, nb);
                        prop_assert_eq!(result.is_ok(), model.contains_key(na));
                        if let Some(data) = model.get(na).cloned() {
                            model.insert(nb, data);
                        }
                    }
                    _ => {
                        Volume::mount(&mut t, BASE).unwrap().touch(na).unwrap();
                        model.entry(na).or_default();
                    }
                }
            }
            let mut v = Volume::mount(&mut t, BASE).unwrap();
            for name in NAMES {
                let got = v.read_file(name, usize::MAX).ok();
                prop_assert_eq!(got.as_ref(), model.get(name), "{}", name);
            }
            let in_root = model.keys().filter(|k| !k.starts_with("dir/")).count();
            prop_assert_eq!(v.list(0).unwrap().len(), in_root + 1);
            // mtools matches non-ASCII names by locale: those are read back above only.
            let files: Vec<(&str, &[u8])> = model
                .iter()
                .filter(|(k, _)| k.is_ascii())
                .map(|(k, v)| (*k, v.as_slice()))
                .collect();
            let volume = &t.as_bytes()[BASE as usize..(BASE + COUNT * SS) as usize];
            check_with_dosfstools("random-ops", volume, &files);
        }

        /// FAT operations on corrupted volumes fail or succeed but never panic and never
        /// touch the bytes before the volume.
        #[test]
        fn corrupt_volumes_never_panic_or_escape(
            flips in prop::collection::vec((0usize..(48 * 512), any::<u8>()), 1..24),
            far in prop::collection::vec((0usize..(COUNT as usize * 512), any::<u8>()), 0..8),
        ) {
            let mut image = recorded_image();
            image.truncate((BASE + COUNT * SS) as usize);
            for (at, byte) in flips.iter().chain(&far) {
                image[BASE as usize + at] = *byte;
            }
            let mut t = MemoryTarget::with_size(image.len() as u64).unwrap();
            t.write_at(0, &image).unwrap();
            let guard = image[..BASE as usize].to_vec();
            if let Ok(mut v) = Volume::mount(&mut t, BASE) {
                let _ = v.list(0);
                let _ = v.read_file("boot/config.txt", 1 << 20);
                let _ = v.mkdir("boot/new");
                let _ = v.touch("boot/zz top.txt");
                if let Ok(mut f) = v.create("zImage") {
                    let _ = v.pwrite(&mut f, 0, &[7u8; 3000]);
                }
                let _ = v.mv("u-boot.bin", "boot/u-boot.old", true);
                let _ = v.rm("empty.txt", true);
                let _ = v.attrib("boot", AM_HID);
                let _ = v.setlabel("X");
            }
            let _ = cp(&mut t, BASE, "boot/zImage.copy", BASE, "again");
            prop_assert_eq!(&t.as_bytes()[..BASE as usize], &guard[..]);
        }
    }
}

/// Around the FAT12/16/32 boundaries `f_mkfs` either refuses the size or makes a volume
/// that fsck.fat accepts and the code here mounts with the FAT type of its cluster count.
#[test]
fn mkfs_sizes_around_the_type_boundaries() {
    let mut made = Vec::new();
    for count in [
        127u64, 128, 129, 1000, 4084, 4096, 4100, 4150, 4200, 5000, 65_000, 65_600, 66_000, 66_100,
        66_700, 70_000,
    ] {
        let mut t = MemoryTarget::new();
        match mkfs(&mut t, 0, count) {
            Err(Error::Fat(FatError { reason, .. })) => assert_eq!(reason, MKFS_ABORTED, "{count}"),
            Err(e) => panic!("{count}: {e}"),
            Ok(()) => {
                let kind = Volume::mount(&mut t, 0).unwrap().fat_type();
                made.push((count, kind));
                check_with_dosfstools(&format!("mkfs-{count}"), t.as_bytes(), &[]);
            }
        }
    }
    println!("{made:?}");
    assert!(made.contains(&(128, FatType::Fat12)));
    assert!(made.contains(&(70_000, FatType::Fat32)));
}

#[test]
fn absurd_mkfs_sizes_are_refused_without_panicking() {
    for count in [
        u64::from(u32::MAX),
        1 << 31,
        (1 << 32) + 2048,
        u64::MAX / 512,
    ] {
        // A fixed-size target: the 0xFF sector written first fails past its end.
        let mut t = MemoryTarget::with_size(1 << 20).unwrap();
        assert!(mkfs(&mut t, 0, count).is_err(), "{count}");
    }
    let mut t = MemoryTarget::with_size(1 << 20).unwrap();
    assert!(mkfs(&mut t, u64::MAX - 1024, 2048).is_err());
}
