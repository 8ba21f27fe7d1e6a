//! Tests of the MBR writer against fwup's recorded images and synthetic layouts.
use super::*;
use crate::apply::MemoryTarget;
use crate::metaconf::{Mbr, MbrOsii, MbrPartition};
use crate::partition::test_support::{blocks, image, meta};

fn mbr_named(group: &str, name: &str) -> Mbr {
    meta(group)
        .mbrs()
        .iter()
        .find(|m| m.name() == name)
        .unwrap()
        .clone()
}

fn part(title: &str, offset: &str, count: i64, t: i64) -> MbrPartition {
    MbrPartition {
        title: title.to_string(),
        block_offset: Some(offset.to_string()),
        block_count: count,
        partition_type: t,
        boot: false,
        expand: false,
    }
}

fn mbr(partitions: Vec<MbrPartition>) -> Mbr {
    Mbr {
        name: "m".to_string(),
        bootstrap_code: None,
        bootstrap_code_host_path: None,
        include_osip: false,
        osip_major: 1,
        osip_minor: 0,
        osip_num_pointers: 1,
        signature: None,
        partitions,
        osiis: Vec::new(),
    }
}

fn written(m: &Mbr, size: Option<u64>) -> Result<MemoryTarget> {
    let mut t = match size {
        Some(s) => MemoryTarget::with_size(s).unwrap(),
        None => MemoryTarget::new(),
    };
    write_mbr(&mut t, m)?;
    Ok(t)
}

#[test]
fn boot_fat_mbr_matches_fwup() {
    let t = written(&mbr_named("boot_fat", "mbr-main"), None).unwrap();
    assert_eq!(
        t.as_bytes(),
        blocks(&image("boot_fat--apply-complete"), 0, 1)
    );
}

#[test]
fn ab_mbrs_match_fwup_and_give_partition_offsets() {
    for (img, name, offset) in [
        ("ab--step1-complete", "mbr-a", 1024),
        ("ab--step2-upgrade", "mbr-b", 2048),
        ("ab--step3-upgrade", "mbr-a", 1024),
    ] {
        let recorded = image(img);
        let t = written(&mbr_named("ab", name), None).unwrap();
        assert_eq!(t.as_bytes(), blocks(&recorded, 0, 1), "{img}");
        let mut r = MemoryTarget::from_bytes(recorded);
        assert_eq!(partition_offset(&mut r, 1).unwrap(), Some(offset));
        assert_eq!(partition_offset(&mut r, 0).unwrap(), Some(64));
        assert_eq!(partition_offset(&mut r, 2).unwrap(), Some(0));
        assert_eq!(partition_offset(&mut r, 4).unwrap(), None);
    }
    // A blank destination has no MBR signature.
    assert_eq!(partition_offset(&mut MemoryTarget::new(), 1).unwrap(), None);
}

#[test]
fn chs_and_entry_layout() {
    // Partition 0: 63 + 255*63 = start of cylinder 1 head 1.
    let mut m = mbr(vec![part("0", "16128", 100, 0x83)]);
    m.partitions[0].boot = true;
    m.signature = Some("0xdeadbeef".to_string());
    let t = written(&m, None).unwrap();
    let b = t.as_bytes();
    assert_eq!(&b[440..446], &[0xef, 0xbe, 0xad, 0xde, 0, 0]);
    let e = &b[446..462];
    // 16128 = cylinder 1, head 1, sector 1; 16227 = cylinder 1, head 2, sector 37.
    assert_eq!(
        e,
        &[
            0x80, 1, 1, 1, 0x83, 2, 37, 1, 0x00, 0x3f, 0, 0, 100, 0, 0, 0
        ]
    );
    assert_eq!(&b[462..510], &[0u8; 48][..]);
    assert_eq!(&b[510..], &[0x55, 0xaa]);
}

#[test]
fn chs_is_zero_past_1023_cylinders() {
    let limit = 63 * 255 * 1023;
    let m = mbr(vec![part("0", &(limit + 1).to_string(), 10, 0x83)]);
    let t = written(&m, None).unwrap();
    assert_eq!(&t.as_bytes()[446..454], &[0, 0, 0, 0, 0x83, 0, 0, 0]);
    // The last LBA that still has CHS: cylinder 1023 → high bits in the sector byte.
    let m = mbr(vec![part("0", &limit.to_string(), 1, 0x83)]);
    let t = written(&m, None).unwrap();
    assert_eq!(&t.as_bytes()[447..450], &[0, 0xc1, 0xff]);
}

#[test]
fn expand_uses_the_device_size() {
    let mut m = mbr(vec![part("0", "64", 64, 0xc), part("1", "128", 100, 0x83)]);
    m.partitions[1].expand = true;
    // Unknown size: stays as given.
    let t = written(&m, None).unwrap();
    assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &100u32.to_le_bytes());
    // 1 MiB device: 2048 blocks, partition 1 grows to 2048 - 128.
    let t = written(&m, Some(1 << 20)).unwrap();
    assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &1920u32.to_le_bytes());
    // A device smaller than the partition does not shrink it.
    let t = written(&m, Some(100 * 512)).unwrap();
    assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &100u32.to_le_bytes());
}

#[test]
fn extended_partition_with_logical_partitions() {
    let m = mbr(vec![
        part("0", "64", 64, 0xc),
        part("3", "1000", 0, 0x0f),
        part("4", "1010", 100, 0x83),
        part("5", "1200", 50, 0x83),
    ]);
    let t = written(&m, Some(4096 * 512)).unwrap();
    let b = t.as_bytes();
    // The extended partition grows to the end of the device.
    let ext = &b[446 + 48..446 + 64];
    assert_eq!(ext[4], 0x0f);
    assert_eq!(&ext[8..16], &[0xe8, 3, 0, 0, 0x18, 0x0c, 0, 0]);
    // EBR of partition 4 at block 1000: relative start 10, link to the next EBR at +1.
    let ebr = &b[1000 * 512..1001 * 512];
    assert_eq!(&ebr[..446], &[0u8; 446][..]);
    assert_eq!(ebr[446 + 4], 0x83);
    assert_eq!(&ebr[446 + 8..446 + 16], &[10, 0, 0, 0, 100, 0, 0, 0]);
    assert_eq!(ebr[462 + 4], 0x0f);
    assert_eq!(&ebr[462 + 8..462 + 16], &[1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&ebr[478..510], &[0u8; 32][..]);
    assert_eq!(&ebr[510..], &[0x55, 0xaa]);
    // EBR of partition 5 at block 1001: relative start 199, no next link.
    let ebr = &b[1001 * 512..1002 * 512];
    assert_eq!(&ebr[446 + 8..446 + 16], &[199, 0, 0, 0, 50, 0, 0, 0]);
    assert_eq!(&ebr[462..510], &[0u8; 48][..]);
}

#[test]
fn logical_partitions_need_an_extended_partition_3() {
    let m = mbr(vec![part("0", "64", 64, 0xc), part("4", "1010", 100, 0x83)]);
    let e = written(&m, None).unwrap_err().to_string();
    assert!(
        e.contains("partition 3 must have extended partition type"),
        "{e}"
    );
    let m = mbr(vec![part("1", "64", 64, 0x5)]);
    let e = written(&m, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "only partition 3 may be specified as the extended partition"
    );
}

#[test]
fn overlap_is_rejected() {
    let m = mbr(vec![part("0", "64", 64, 0xc), part("1", "100", 64, 0x83)]);
    assert_eq!(
        written(&m, None).unwrap_err().to_string(),
        "partitions 0 (blocks 64 to 128) and 1 (blocks 100 to 164) overlap"
    );
    // Unused (type 0) and empty partitions do not count.
    let m = mbr(vec![part("0", "64", 64, 0xc), part("1", "100", 64, 0)]);
    assert!(written(&m, None).is_ok());
    // Logical partitions outside the extended one.
    let m = mbr(vec![
        part("3", "1000", 10, 0x05),
        part("4", "2000", 100, 0x83),
    ]);
    assert!(written(&m, None).is_ok(), "extended grows to cover 2100");
    let m = mbr(vec![
        part("0", "64", 64, 0xc),
        part("3", "1000", 10, 0x05),
        part("4", "500", 100, 0x83),
    ]);
    let e = written(&m, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "partition 3, the extended partition, is expected to contain partition 4"
    );
}

#[test]
fn bad_sections_are_refused_with_fwups_messages() {
    let cases: Vec<(Mbr, &str)> = vec![
        (
            mbr(vec![part("12", "64", 1, 0x83)]),
            "partition must be numbered 0 through 11",
        ),
        (
            mbr(vec![part("0", "64", 1, -1)]),
            "partition 0's type must be between 0 and 255",
        ),
        (
            mbr(vec![part("0", "64", i64::from(i32::MAX), 0x83)]),
            "partition 0's block-count must be specified and less than 2^31 - 1",
        ),
        (
            mbr(vec![part("0", "", 1, 0x83)]),
            "partition 0's block_offset is required",
        ),
        (
            mbr(vec![part("0", "4294967295", 1, 0x83)]),
            "partition 0's block_offset must be positive and less than 2^32 - 1: '4294967295'",
        ),
        (
            mbr(vec![part("0", "12abc", 1, 0x83)]),
            "error parsing partition 0's block offset",
        ),
        (
            mbr(vec![part("0", "1", 1, 0x83), part("0x0", "9", 1, 0x83)]),
            "invalid or duplicate partition number found for 0",
        ),
    ];
    for (m, msg) in cases {
        assert_eq!(written(&m, None).unwrap_err().to_string(), msg);
    }
}

#[test]
fn bootstrap_code_and_osip() {
    let mut m = mbr(vec![part("0", "64", 64, 0xc)]);
    m.bootstrap_code = Some("a5".repeat(440));
    let t = written(&m, None).unwrap();
    assert_eq!(&t.as_bytes()[..440], &[0xa5; 440][..]);
    m.bootstrap_code = Some("a5".repeat(439));
    assert!(written(&m, None).is_err());
    m.bootstrap_code = Some(format!("{}zz", "a5".repeat(439)));
    assert!(written(&m, None).is_err());

    let mut m = mbr(vec![part("0", "64", 64, 0xc)]);
    m.include_osip = true;
    assert_eq!(
        written(&m, None).unwrap_err().to_string(),
        "need to specify one or more osii"
    );
    m.osiis.push(MbrOsii {
        title: "1".to_string(),
        os_major: 2,
        os_minor: 3,
        start_block_offset: 0x1000,
        ddr_load_address: 0x0110_0000,
        entry_point: 0x0110_1000,
        image_size_blocks: 0x20,
        attribute: 0xf,
    });
    let t = written(&m, None).unwrap();
    let b = t.as_bytes();
    assert_eq!(&b[..4], b"$OS$");
    // reserved, minor 0, major 1; pointers 1, images 2, header size 32 + 2 * 24.
    assert_eq!(&b[4..7], &[0, 0, 1]);
    assert_eq!(&b[8..12], &[1, 2, 80, 0]);
    // Descriptor 0 unused (zeros), descriptor 1 set.
    assert_eq!(&b[32..56], &[0u8; 24][..]);
    assert_eq!(&b[56..60], &[3, 0, 2, 0]);
    assert_eq!(&b[60..64], &0x1000u32.to_le_bytes());
    assert_eq!(b[76], 0xf);
    // The XOR of the header (checksum included) is zero.
    assert_eq!(b[..80].iter().fold(0, |a, x| a ^ x), 0);
    m.bootstrap_code = Some("00".repeat(440));
    assert!(written(&m, None).is_err());
}

#[test]
fn strtoul_is_c_like() {
    let v = |s: &str| {
        let p = strtoul(s);
        (p.value, p.complete, p.overflow)
    };
    assert_eq!(v("0x10"), (16, true, false));
    assert_eq!(v("010"), (8, true, false));
    assert_eq!(v(" 12"), (12, true, false));
    assert_eq!(v("0x"), (0, false, false));
    assert_eq!(v(""), (0, true, false));
    assert_eq!(v("abc"), (0, false, false));
    assert_eq!(v("-1"), (u64::MAX, true, false));
    assert_eq!(v("99999999999999999999"), (u64::MAX, true, true));
    assert_eq!(section_index("4294967295"), -1);
}
