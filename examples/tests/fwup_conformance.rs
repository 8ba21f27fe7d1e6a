//! Replays every `-m`, `-l` and `-V` command recorded from the real C fwup 1.16.0
//! (`nerveshub-fwup/testdata/fixtures/expected/results.json`) against `fwup-rs`.
//!
//! For every case the exit status must equal fwup's. On success stdout must equal fwup's
//! byte for byte (for `--framing`, the packets). On failure fwup-rs must print an error on
//! stdout starting with `fwup: ` (an `ER` packet when framing); for `-m` and `-l` the text
//! must also be fwup's exactly, except where fwup's words come from libarchive's internals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nerveshub-fwup/testdata/fixtures")
}

fn mode_of(argv: &[String]) -> Option<&'static str> {
    argv.iter().skip(1).find_map(|a| match a.as_str() {
        "-m" => Some("-m"),
        "-l" => Some("-l"),
        "-V" => Some("-V"),
        "-a" | "-c" | "-S" | "-g" => Some("other"),
        _ => None,
    })
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex in results.json"))
        .collect()
}

#[test]
fn read_modes_match_c_fwup() {
    let root = fixtures();
    let results: Value =
        serde_json::from_slice(&std::fs::read(root.join("expected/results.json")).unwrap())
            .unwrap();
    let base_env = results["base_env"].as_object().unwrap();
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in results["results"].as_array().unwrap() {
        let argv: Vec<String> = case["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let Some(mode) = mode_of(&argv).filter(|m| *m != "other") else {
            continue;
        };
        let id = case["id"].as_str().unwrap();
        let cwd = root.join(case["cwd"].as_str().unwrap_or("."));
        let mut command = Command::new(env!("CARGO_BIN_EXE_fwup-rs"));
        command
            .args(&argv[1..])
            .current_dir(&cwd)
            .env_clear()
            .stdin(Stdio::null());
        for (key, value) in base_env {
            command.env(key, value.as_str().unwrap());
        }
        if let Some(env) = case["env"].as_object() {
            for (key, value) in env {
                command.env(key, value.as_str().unwrap());
            }
        }
        let output = command.output().unwrap();
        ran += 1;

        let want_rc = case["rc"].as_i64().unwrap();
        let got_rc = i64::from(output.status.code().unwrap_or(-1));
        let want_out = match case["stdout_hex"].as_str() {
            Some(hex) => hex_decode(hex),
            None => case["stdout_text"].as_str().unwrap().as_bytes().to_vec(),
        };
        let framing = argv.iter().any(|a| a == "--framing");
        let got = &output.stdout;
        let problem = if got_rc != want_rc {
            Some(format!("exit {got_rc}, fwup exit {want_rc}"))
        } else if want_rc == 0 && *got != want_out {
            Some("stdout differs from fwup's".to_owned())
        } else if want_rc != 0 && framing && got.get(4..6) != Some(b"ER") {
            Some("no ER packet".to_owned())
        } else if want_rc != 0 && !framing && !got.starts_with(b"fwup: ") {
            Some("error does not start with 'fwup: '".to_owned())
        } else if want_rc != 0 && mode != "-V" && *got != want_out && !libarchive_wording(&want_out)
        {
            Some("error text differs from fwup's".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{id} ({}): {problem}\n    got:  {:?}\n    want: {:?}",
                argv[1..].join(" "),
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(&want_out)
            ));
        }
    }
    assert!(ran >= 260, "only {ran} recorded -m/-l/-V cases found");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases differ from C fwup:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Messages whose words come from libarchive's internals and change between its versions.
fn libarchive_wording(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    ["ZIP bad CRC", "ZIP decompression failed", "Truncated ZIP"]
        .iter()
        .any(|m| text.contains(m))
}

#[test]
fn version_prints_the_implemented_fwup_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"1.16.0\n");
}

#[test]
fn no_arguments_prints_usage_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"));
}
