//! Encrypted writes: `raw_write(block, "cipher=aes-cbc-plain" | "cipher=aes-xts-plain64",
//! "secret=…")` as dm-crypt's plain mode lays sectors out, checked by decrypting the image
//! back here with RustCrypto's `cbc`/`xts-mode` directly (sector n = IV/tweak n, counted from
//! the write's offset); and, where the kernel has device-mapper, by the kernel itself:
//! `cryptsetup open --type plain` on a loop device over the image.

use std::path::Path;

use aes::Aes256;
use aes::cipher::{BlockModeDecrypt, KeyInit, KeyIvInit};
use nerveshub_fwup::{ApplyOptions, CreateOptions, MemoryTarget, create};

const CBC_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const XTS_KEY: &str = "2718281828459045235360287471352662497757247093699959574966967627\
                       3141592653589793238462643383279502884197169399375105820974944592";
const AT: u64 = 16; // blocks

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/delta")
}

fn plaintext() -> Vec<u8> {
    std::fs::read(dir().join("target.bin")).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn create_archive(conf: &str) -> Vec<u8> {
    let options = CreateOptions {
        creation_time: 1_700_000_000,
        working_dir: dir(),
        ..CreateOptions::default()
    };
    create(
        conf.as_bytes(),
        &dir().join("fwup.conf"),
        Vec::new(),
        &options,
    )
    .unwrap()
}

fn apply(archive: &[u8], task: &str, device: &mut MemoryTarget) {
    nerveshub_fwup::apply(archive, device, &ApplyOptions::new(task), &mut ()).unwrap();
}

/// The written range, decrypted sector by sector with the crates directly.
fn decrypt(cipher: &str, image: &[u8], len: usize) -> Vec<u8> {
    let at = (AT * 512) as usize;
    let mut data = image[at..at + len.next_multiple_of(512)].to_vec();
    for (lba, sector) in data.chunks_exact_mut(512).enumerate() {
        if cipher == "aes-cbc-plain" {
            let mut iv = [0u8; 16];
            iv[..4].copy_from_slice(&(lba as u32).to_le_bytes());
            let key: [u8; 32] = hex(CBC_KEY).try_into().unwrap();
            let mut dec = cbc::Decryptor::<Aes256>::new(&key.into(), &iv.into());
            let (blocks, _) = aes::Block::slice_as_chunks_mut(sector);
            dec.decrypt_blocks(blocks);
        } else {
            let key = hex(&XTS_KEY.replace(' ', ""));
            let xts = xts_mode::Xts128::new(
                Aes256::new_from_slice(&key[..32]).unwrap(),
                Aes256::new_from_slice(&key[32..]).unwrap(),
            );
            xts.decrypt_sector(sector, xts_mode::get_tweak_default(lba as u128));
        }
    }
    data
}

fn secret(cipher: &str) -> String {
    if cipher == "aes-cbc-plain" {
        CBC_KEY.to_owned()
    } else {
        XTS_KEY.replace(' ', "")
    }
}

/// The image task `complete` writes: the plaintext, encrypted with `cipher`, at block [`AT`].
fn encrypted_image(cipher: &str) -> Vec<u8> {
    let conf = format!(
        "file-resource rootfs.img {{ host-path = \"target.bin\" }}\n\
         task complete {{\n on-resource rootfs.img {{ raw_write({AT}, \"cipher={cipher}\", \"secret={}\") }}\n}}\n",
        secret(cipher)
    );
    let mut device = MemoryTarget::new();
    apply(&create_archive(&conf), "complete", &mut device);
    device.into_bytes()
}

#[test]
fn encrypted_raw_writes_decrypt_back_sector_by_sector() {
    let plain = plaintext();
    for cipher in ["aes-cbc-plain", "aes-xts-plain64"] {
        let image = encrypted_image(cipher);
        let at = (AT * 512) as usize;
        assert!(
            image[at..at + 512] != plain[..512],
            "{cipher}: written in the clear"
        );
        let back = decrypt(cipher, &image, plain.len());
        assert!(back[..plain.len()] == plain[..], "{cipher}: decrypts back");
        assert!(
            back[plain.len()..].iter().all(|b| *b == 0),
            "{cipher}: last sector zero padded"
        );
    }
}

/// dm-crypt's own reading of what was written: the image is attached as a loop device
/// starting at the write's offset (so the kernel numbers sectors as fwup did), opened with
/// `cryptsetup open --type plain` and the key file, and the mapped device must read back the
/// plaintext. Needs root, a loop device, device-mapper and `cryptsetup`; it says which is
/// missing and returns otherwise — the machines this project builds on have no
/// device-mapper, so there it never runs (a kernel feature no install step can add).
#[test]
fn cryptsetup_plain_mode_reads_back_what_was_written() {
    use std::process::Command;
    let missing = if !Path::new("/dev/mapper/control").exists() {
        Some("no device-mapper (/dev/mapper/control)")
    } else if Command::new("cryptsetup")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("no cryptsetup")
    } else {
        None
    };
    if let Some(why) = missing {
        println!("skipped: {why}; dm-crypt cannot read the image back here");
        return;
    }
    let plain = plaintext();
    for (cipher, key_bits) in [("aes-cbc-plain", "256"), ("aes-xts-plain64", "512")] {
        let device = encrypted_image(cipher);
        let work = tempfile::tempdir().unwrap();
        let image = work.path().join("disk.img");
        let key_file = work.path().join("key");
        std::fs::write(&image, device).unwrap();
        std::fs::write(&key_file, hex(&secret(cipher))).unwrap();
        let attach = Command::new("losetup")
            .args(["-f", "--show", "--offset", &(AT * 512).to_string()])
            .arg(&image)
            .output()
            .unwrap();
        if !attach.status.success() {
            println!("skipped: no loop device ({attach:?})");
            return;
        }
        let loop_dev = String::from_utf8(attach.stdout).unwrap().trim().to_owned();
        let name = format!("nerveshub-fwup-test-{}", std::process::id());
        let opened = Command::new("cryptsetup")
            .args([
                "open",
                "--type",
                "plain",
                "--cipher",
                cipher,
                "--key-size",
                key_bits,
            ])
            .arg("--key-file")
            .arg(&key_file)
            .args([&loop_dev, &name])
            .status()
            .unwrap();
        let back = opened
            .success()
            .then(|| std::fs::read(format!("/dev/mapper/{name}")));
        let _ = Command::new("cryptsetup").args(["close", &name]).status();
        let _ = Command::new("losetup").args(["-d", &loop_dev]).status();
        let back = back
            .unwrap_or_else(|| panic!("{cipher}: cryptsetup open failed: {opened}"))
            .unwrap();
        assert!(
            back[..plain.len()] == plain[..],
            "{cipher}: dm-crypt reads the plaintext back"
        );
    }
}

#[test]
fn a_bad_secret_fails_with_fwups_message() {
    let conf = "file-resource rootfs.img { host-path = \"target.bin\" }\n\
         task complete {\n on-resource rootfs.img { raw_write(16, \"cipher=aes-xts-plain64\", \"secret=abcd\") }\n}\n";
    let err = nerveshub_fwup::apply(
        &create_archive(conf)[..],
        MemoryTarget::new(),
        &ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "raw_write: aes-xts-plain64 requires a hex-encoded 512-bit key"
    );
}

/// fwup's `delta-source-raw-options`: the delta's source range is encrypted; it is read
/// through the same cipher (sectors numbered from the source's start) before patching.
#[test]
fn delta_against_an_encrypted_source() {
    let cipher = "aes-xts-plain64";
    let options = format!("cipher={cipher},secret={}", secret(cipher));
    let full = create_archive(&format!(
        "file-resource source.bin {{ host-path = \"source.bin\" }}\n\
         task complete {{\n on-resource source.bin {{ raw_write({AT}, \"cipher={cipher}\", \"secret={}\") }}\n}}\n",
        secret(cipher)
    ));
    let mut device = MemoryTarget::new();
    apply(&full, "complete", &mut device);

    let conf = format!(
        "file-resource rootfs.img {{ host-path = \"target.bin\" }}\n\
         task upgrade {{\n on-resource rootfs.img {{\n delta-source-raw-offset = {AT}\n delta-source-raw-count = 192\n delta-source-raw-options = \"{options}\"\n raw_write(1024)\n }}\n}}\n"
    );
    let archive = patch_entry(
        &create_archive(&conf),
        &std::fs::read(dir().join("target.vcdiff")).unwrap(),
    );
    apply(&archive, "upgrade", &mut device);
    let image = device.into_bytes();
    let plain = plaintext();
    assert!(image[1024 * 512..1024 * 512 + plain.len()] == plain[..]);
}

/// Replaces the data of `data/rootfs.img` by `patch` (how delta firmware is made).
fn patch_entry(archive: &[u8], patch: &[u8]) -> Vec<u8> {
    use std::io::{Cursor, Read, Write};
    let mut input = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..input.len() {
        let mut entry = input.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let options =
            zip::write::SimpleFileOptions::default().compression_method(entry.compression());
        out.start_file(name.as_str(), options).unwrap();
        if name == "data/rootfs.img" {
            out.write_all(patch).unwrap();
        } else {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.write_all(&bytes).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}
