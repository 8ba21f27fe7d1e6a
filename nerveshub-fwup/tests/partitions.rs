//! The public U-Boot environment API as a device client uses it: read `nerves_fw_*`-style
//! variables from an image, change one, write it back the way fwup would.

use std::io::Read;
use std::path::{Path, PathBuf};

use nerveshub_fwup::{
    Error, MemoryTarget, MetaConf, Target, UbootEnv, UbootEnvError, UbootEnvLocation, Variables,
    encode_uboot_env, parse_uboot_env, read_uboot_env, write_uboot_env,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
}

fn image(name: &str) -> Vec<u8> {
    let gz = std::fs::File::open(fixtures().join(format!("images/{name}.img.gz"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The ab fixture's environment: 16 blocks at block 16, redundant copy at block 32.
const AB: UbootEnvLocation = UbootEnvLocation {
    offset: 16 * 512,
    size: 16 * 512,
    redundant_offset: Some(32 * 512),
};

#[test]
fn location_from_meta_conf() {
    let text = std::fs::read(fixtures().join("expected/ab/meta.conf")).unwrap();
    let meta = MetaConf::parse(&text, &Variables::new()).unwrap();
    let section = &meta.uboot_environments()[0];
    assert_eq!(UbootEnvLocation::from_section(section).unwrap(), AB);
}

#[test]
fn a_client_reads_and_switches_the_active_slot() {
    let mut t = MemoryTarget::from_bytes(image("ab--step1-complete"));
    let mut env = read_uboot_env(&mut t, &AB).unwrap();
    assert_eq!(env.get("active"), Some("a"));
    env.set("active", "b");
    write_uboot_env(&mut t, &AB, &env).unwrap();
    // The same bytes fwup wrote for its upgrade to slot b.
    assert_eq!(
        &t.as_bytes()[16 * 512..48 * 512],
        &image("ab--step2-upgrade")[16 * 512..48 * 512]
    );
    assert_eq!(
        read_uboot_env(&mut t, &AB).unwrap().get("active"),
        Some("b")
    );
}

#[test]
fn a_plain_environment_on_a_fixed_size_target() {
    let loc = UbootEnvLocation {
        offset: 4096,
        size: 1024,
        redundant_offset: None,
    };
    let mut t = MemoryTarget::with_size(8192).unwrap();
    assert!(matches!(
        read_uboot_env(&mut t, &loc),
        Err(Error::UbootEnv(UbootEnvError::Crc { block: 8, .. }))
    ));
    let mut env = UbootEnv::new();
    env.set("nerves_fw_active", "a");
    env.set("a.nerves_fw_version", "1.2.3");
    write_uboot_env(&mut t, &loc, &env).unwrap();
    let mut raw = vec![0u8; 1024];
    t.read_at(4096, &mut raw).unwrap();
    assert_eq!(&raw[4..24], b"a.nerves_fw_version=");
    let back = parse_uboot_env(&raw, false).unwrap();
    assert_eq!(back, env);
    assert_eq!(encode_uboot_env(&back, 1024, None).unwrap(), raw);
    // Past the end of a fixed-size target.
    let far = UbootEnvLocation {
        offset: 8192,
        ..loc
    };
    assert!(write_uboot_env(&mut t, &far, &env).is_err());
}
