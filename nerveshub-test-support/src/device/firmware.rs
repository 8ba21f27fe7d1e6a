//! A/B firmware built in the test with nerveshub-fwup's create, laid out like a Nerves
//! system: a U-Boot environment at block 16 (16 blocks), slot a at block 2048, slot b at
//! block 10240, `complete` writing slot a and `upgrade.a`/`upgrade.b` writing the inactive
//! slot and switching `nerves_fw_active` in `on-finish`.

use std::path::Path;

use nerveshub_fwup::{CreateOptions, PrivateKey, Variables};

/// Byte offset of slot a's data.
pub const SLOT_A: u64 = 2048 * 512;
/// Byte offset of slot b's data.
pub const SLOT_B: u64 = 10240 * 512;
/// Size of the root file system written to a slot.
pub const ROOTFS_LEN: usize = 1_536_000;

const CONF: &str = r#"
meta-product = "demo"
meta-description = "nerveshub-client test firmware"
meta-version = "${VERSION}"
meta-platform = "host"
meta-architecture = "x86_64"
meta-author = "nerveshub-rs"

file-resource rootfs.img {
    host-path = "${ROOTFS}"
}

uboot-environment uboot-env {
    block-offset = 16
    block-count = 16
}

task complete {
    on-init {
        uboot_clearenv(uboot-env)
        uboot_setenv(uboot-env, "nerves_fw_active", "a")
        uboot_setenv(uboot-env, "nerves_fw_validated", "1")
        uboot_setenv(uboot-env, "a.nerves_fw_uuid", "\${FWUP_META_UUID}")
        uboot_setenv(uboot-env, "a.nerves_fw_version", "${VERSION}")
        uboot_setenv(uboot-env, "a.nerves_fw_product", "demo")
        uboot_setenv(uboot-env, "a.nerves_fw_platform", "host")
        uboot_setenv(uboot-env, "a.nerves_fw_architecture", "x86_64")
        uboot_setenv(uboot-env, "a.nerves_fw_author", "nerveshub-rs")
    }
    on-resource rootfs.img { raw_write(2048) }
}

task upgrade.a {
    require-uboot-variable(uboot-env, "nerves_fw_active", "b")
    on-resource rootfs.img { raw_write(2048) }
    on-finish {
        uboot_setenv(uboot-env, "a.nerves_fw_uuid", "\${FWUP_META_UUID}")
        uboot_setenv(uboot-env, "a.nerves_fw_version", "${VERSION}")
        uboot_setenv(uboot-env, "a.nerves_fw_product", "demo")
        uboot_setenv(uboot-env, "a.nerves_fw_platform", "host")
        uboot_setenv(uboot-env, "a.nerves_fw_architecture", "x86_64")
        uboot_setenv(uboot-env, "nerves_fw_validated", "0")
        uboot_setenv(uboot-env, "nerves_fw_active", "a")
    }
}

task upgrade.b {
    require-uboot-variable(uboot-env, "nerves_fw_active", "a")
    on-resource rootfs.img { raw_write(10240) }
    on-finish {
        uboot_setenv(uboot-env, "b.nerves_fw_uuid", "\${FWUP_META_UUID}")
        uboot_setenv(uboot-env, "b.nerves_fw_version", "${VERSION}")
        uboot_setenv(uboot-env, "b.nerves_fw_product", "demo")
        uboot_setenv(uboot-env, "b.nerves_fw_platform", "host")
        uboot_setenv(uboot-env, "b.nerves_fw_architecture", "x86_64")
        uboot_setenv(uboot-env, "nerves_fw_validated", "0")
        uboot_setenv(uboot-env, "nerves_fw_active", "b")
    }
}
"#;

/// Root file system bytes for a version: incompressible, different per version.
pub fn rootfs(version: &str) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ version.bytes().fold(0, |h, b| h * 31 + u64::from(b));
    (0..ROOTFS_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A signing key from a fixed seed.
pub fn signing_key(seed: u8) -> PrivateKey {
    PrivateKey::from_seed(&[seed; 32])
}

/// Builds the firmware for `version`, signed with `key`, in `dir`.
pub fn build(dir: &Path, version: &str, key: &PrivateKey) -> Vec<u8> {
    let rootfs_path = dir.join(format!("rootfs-{version}.img"));
    std::fs::write(&rootfs_path, rootfs(version)).unwrap();
    let conf_path = dir.join("fwup.conf");
    std::fs::write(&conf_path, CONF).unwrap();
    let mut env = Variables::new();
    env.set("VERSION", version);
    env.set("ROOTFS", rootfs_path.to_str().unwrap());
    let options = CreateOptions {
        compression_level: 1,
        signing_key: Some(key.clone()),
        env,
        creation_time: 1_700_000_000,
        working_dir: dir.to_owned(),
    };
    nerveshub_fwup::create(CONF.as_bytes(), &conf_path, Vec::new(), &options).unwrap()
}

/// Applies task `complete` of `fw` to a new image at `image` (what `provision` does).
pub fn provision(image: &Path, fw: &[u8]) {
    let target = nerveshub_fwup::FileTarget::open(image).unwrap();
    nerveshub_fwup::apply(
        fw,
        target,
        &nerveshub_fwup::ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap();
}

/// The bytes of a slot in the image.
pub fn slot(image: &Path, offset: u64) -> Vec<u8> {
    let data = std::fs::read(image).unwrap();
    let start = usize::try_from(offset).unwrap();
    data.get(start..start + ROOTFS_LEN)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}
