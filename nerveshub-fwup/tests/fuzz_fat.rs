//! Runs the FAT fuzzing entry point on stable Rust: the recorded `boot_fat` volume (whole,
//! truncated, with bytes flipped) and pseudo-random corruptions of a fresh volume.

use std::io::Read as _;
use std::path::Path;

use nerveshub_fwup::fuzzing::fuzz_fat;

/// The FAT volume of the recorded `boot_fat` image (blocks 256..2304).
fn recorded_volume() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures/images/boot_fat--apply-complete.img.gz");
    let gz = std::fs::read(path).unwrap();
    let mut image = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut image)
        .unwrap();
    image[256 * 512..2304 * 512].to_vec()
}

#[test]
fn fat_operations_on_arbitrary_volumes_never_panic() {
    let volume = recorded_volume();
    let mut input = vec![1u8];
    input.extend_from_slice(&volume);
    fuzz_fat(&input);
    for cut in [1, 512, 4096, 8000, 30_000] {
        fuzz_fat(&input[..cut]);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        // Copy mode: the recorded volume with bytes flipped in its first 24 KiB.
        let mut flipped = input.clone();
        for _ in 0..1 + round % 16 {
            let at = 1 + (next() % (24 * 1024)) as usize;
            flipped[at] ^= (next() % 255 + 1) as u8;
        }
        fuzz_fat(&flipped);
        // XOR mode: sparse random noise over a fresh volume's first sectors.
        let len = 1 + (next() % 30_000) as usize;
        let mut noise = vec![0u8; len];
        for _ in 0..1 + round % 8 {
            let at = (next() % len as u64) as usize;
            noise[at] = next() as u8;
        }
        noise[0] = 0;
        fuzz_fat(&noise);
    }
}

/// The committed seed corpus of the `fat` cargo-fuzz target, replayed on stable.
#[test]
fn fat_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fat");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        fuzz_fat(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "the fat corpus in {} is empty", dir.display());
}
