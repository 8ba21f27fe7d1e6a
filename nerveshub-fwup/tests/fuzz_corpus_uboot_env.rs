//! Replays the committed seed corpus of the `uboot_env` fuzz target on stable Rust, so a
//! machine without nightly still runs every seed through the same call as the target.

use std::path::Path;

#[test]
fn uboot_env_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/uboot_env");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        nerveshub_fwup::fuzzing::fuzz_uboot_env(&data);
        count += 1;
    }
    assert!(
        count > 0,
        "the uboot_env corpus in {} is empty",
        dir.display()
    );
}

#[test]
fn recorded_environments_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/uboot_env");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let env = nerveshub_fwup::parse_uboot_env(&read("ab-step1-primary.bin"), true).unwrap();
    assert_eq!(env.get("active"), Some("a"));
    let env = nerveshub_fwup::parse_uboot_env(&read("boot_fat-plain.bin"), false).unwrap();
    assert_eq!(env.get("bootcmd"), Some("run fwup_boot"));
}
