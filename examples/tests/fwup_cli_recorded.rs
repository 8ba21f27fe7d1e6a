//! Replays the command sequences recorded from C fwup 1.16.0 in
//! `nerveshub-fwup/testdata/fwup116-cli` (`expected.json`, inputs in `cases/`) against
//! `fwup-rs`, step by step in a scratch copy, and compares exit status, stdout, stderr, the
//! created meta.conf and the image (sha256 and size).
//!
//! They cover issue 22's create-time and output items: fwup's create-time validations with
//! their messages and lines (MBR offsets past 2³² − 1, zero-length `raw_memset`/`trim`,
//! overlapping GPT partitions and EBRs, unknown references, bad values), sections left
//! open at the end of a file (accepted, as libconfuse does), `host-path` relative to the
//! including file, `NOW`/`SOURCE_DATE_EPOCH` creation dates, an existing image's size as
//! the soft end for MBR `expand` and the GPT backup header, `require-execute("")`, the
//! erase-line escape of the progress-bar mode, `--enable-trim` on a regular file and
//! `--metadata-key` of a missing key.
//!
//! The progress bar's byte counts and the elapsed time depend on read sizes and the clock,
//! so they are masked on both sides; everything else is compared byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest as _;

fn set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nerveshub-fwup/testdata/fwup116-cli")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Masks `] <n> <unit> in / <n> <unit> out` of the progress bar and the elapsed time.
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("] ") {
        let (head, tail) = rest.split_at(at + 2);
        out.push_str(head);
        match tail.find("     \u{8}") {
            Some(end) if tail[..end].contains(" in / ") => {
                out.push_str("<counts>");
                rest = &tail[end..];
            }
            _ => rest = tail,
        }
    }
    out.push_str(rest);
    match out.find("Elapsed time: ") {
        Some(at) => {
            let end = out[at..].find('\n').map_or(out.len(), |e| at + e);
            format!("{}Elapsed time: <t>{}", &out[..at], &out[end..])
        }
        None => out,
    }
}

fn image_id(path: &Path) -> Value {
    match fs::read(path) {
        Ok(bytes) => Value::String(format!(
            "{}  {}",
            hex(&sha2::Sha256::digest(&bytes)),
            bytes.len()
        )),
        Err(_) => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn meta_conf_of(archive: &Path) -> String {
    let bytes = fs::read(archive).unwrap();
    let reader = nerveshub_fwup::ArchiveReader::open(&bytes[..]).unwrap();
    String::from_utf8_lossy(reader.head().meta_conf_bytes()).into_owned()
}

#[test]
fn fwup_rs_matches_the_recorded_sequences() {
    let expected: Value =
        serde_json::from_str(&fs::read_to_string(set().join("expected.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut steps_run = 0;
    for case in expected["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&set().join("cases"), &dir.path().join("cases"));
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            if let Some(file) = step["make_file"].as_str() {
                let f = fs::File::create(dir.path().join(file)).unwrap();
                f.set_len(step["size"].as_u64().unwrap()).unwrap();
                continue;
            }
            let argv: Vec<&str> = step["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwup-rs"));
            cmd.args(&argv)
                .current_dir(dir.path())
                .env_clear()
                .env("LC_ALL", "C")
                .env("HOME", "/nonexistent")
                .env("PATH", "/usr/bin:/bin");
            for (key, value) in step["env"].as_object().unwrap() {
                cmd.env(key, value.as_str().unwrap());
            }
            let output = cmd.output().unwrap();
            steps_run += 1;
            let id = format!("{name} step {i} {argv:?}");
            let mut check = |what: &str, got: String, want: String| {
                if got != want {
                    failures.push(format!("{id}: {what}\n  got:  {got:?}\n  want: {want:?}"));
                }
            };
            check(
                "exit status",
                output.status.code().unwrap_or(-1).to_string(),
                step["rc"].to_string(),
            );
            check(
                "stdout",
                mask(&String::from_utf8_lossy(&output.stdout)),
                mask(step["stdout"].as_str().unwrap()),
            );
            check(
                "stderr",
                String::from_utf8_lossy(&output.stderr).into_owned(),
                step["stderr"].as_str().unwrap().to_owned(),
            );
            if let Some(want) = step["meta_conf"].as_str() {
                let out = argv[argv.iter().position(|a| *a == "-o").unwrap() + 1];
                check(
                    "meta.conf",
                    meta_conf_of(&dir.path().join(out)),
                    want.to_owned(),
                );
            }
            if argv.contains(&"-a") {
                let dest = argv[argv.iter().position(|a| *a == "-d").unwrap() + 1];
                check(
                    "image",
                    image_id(&dir.path().join(dest)).to_string(),
                    step["image"].to_string(),
                );
            }
        }
    }
    assert!(steps_run > 40, "only {steps_run} recorded steps ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn masking_keeps_everything_but_counts_and_time() {
    let bar = "\r  0% [    ]\r 99% [==] 1.49 KB in / 1.00 KB out     \u{8}\u{8}\nSuccess!\nElapsed time: 0.001 s\n";
    assert_eq!(
        mask(bar),
        "\r  0% [    ]\r 99% [==] <counts>     \u{8}\u{8}\nSuccess!\nElapsed time: <t>\n"
    );
}

/// `--sparse-check` on the test's own temporary directory: a 4096-byte hole is kept by
/// every file system Linux runs tests on, a 100-byte one by none; the test file is removed
/// either way, as fwup removes it.
#[test]
fn sparse_check_reports_as_fwup() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .arg("--sparse-check")
            .arg(&probe)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "Sparse files supported\n"
    );
    assert!(ok.status.success());
    let small = run(&["--sparse-check-size", "100"]);
    assert_eq!(small.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&small.stdout),
        "fwup: Hole of 100 bytes not created on filesystem\n"
    );
    assert!(!probe.exists(), "the probe file is left behind");
    let missing = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .args(["--sparse-check", "/nonexistent/dir/probe"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&missing.stdout),
        "fwup: Couldn't create sparse test file: /nonexistent/dir/probe\n"
    );
}

/// UBI is the one fwup feature left out: an archive using it is created, and applying it
/// fails with a message naming UBI (and writes nothing through it).
#[test]
fn ubi_fails_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("ubi.conf"),
        "file-resource r { contents = \"x\" }\n\
         task complete {\n on-resource r { ubi_volume_write(\"/dev/ubi0_1\") }\n}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert!(
        run(&["-c", "-f", "ubi.conf", "-o", "ubi.fw"])
            .status
            .success()
    );
    let apply = run(&[
        "-a", "-q", "--unsafe", "-d", "out.img", "-t", "complete", "-i", "ubi.fw",
    ]);
    assert_eq!(apply.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&apply.stdout),
        "fwup: ubi_volume_write: UBI is not supported by this version of fwup-rs\n"
    );
}

/// Deliberate difference (ARCHITECTURE.md): a well-formed private key whose public half is
/// not its seed's is refused, where fwup signs with it and makes archives no key verifies.
#[test]
fn a_private_key_with_a_foreign_public_half_is_refused() {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nerveshub-fwup/testdata/fixtures");
    let good = fs::read_to_string(fixtures.join("keys/fwup-key.priv")).unwrap();
    let good = good.trim();
    // The 70th base64 character lies in the public half (bytes 32..64): change it.
    let mut bad: Vec<char> = good.chars().collect();
    bad[70] = if bad[70] == 'A' { 'B' } else { 'A' };
    let bad: String = bad.into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.conf"), "meta-product = \"k\"\n").unwrap();
    let create = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(["-c", "-f", "c.conf", "-o", "out.fw", "--private-key", key])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert!(create(good).status.success());
    let refused = create(&bad);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "fwup: Error decoding private key\n"
    );
}
