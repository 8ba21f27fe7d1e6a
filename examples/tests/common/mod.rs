//! Shared by the conformance tests: the commands recorded from C fwup 1.16.0
//! (`nerveshub-fwup/testdata/fixtures/expected/results.json`) and a way to replay them
//! against `fwup-rs`.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The fixture set recorded from C fwup.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nerveshub-fwup/testdata/fixtures")
}

/// One recorded fwup command and what fwup did.
pub(crate) struct Case {
    /// The group/name id, e.g. `simple/verify-key`.
    pub(crate) id: String,
    /// fwup's argv, `argv[0]` being `fwup`.
    pub(crate) argv: Vec<String>,
    /// Extra environment variables of this command.
    pub(crate) env: Vec<(String, String)>,
    /// Working directory relative to the fixture set.
    pub(crate) cwd: String,
    /// fwup's exit status.
    pub(crate) rc: i32,
    /// fwup's stdout bytes.
    pub(crate) stdout: Vec<u8>,
    /// The whole JSON record, for fields only some tests need.
    pub(crate) raw: Value,
}

impl Case {
    /// The fwup mode flag of this command (`-m`, `-l`, `-V`, `-a`, `-c`, `-S`, `-g`).
    pub(crate) fn mode(&self) -> Option<&str> {
        self.argv
            .iter()
            .skip(1)
            .map(String::as_str)
            .find(|a| matches!(*a, "-m" | "-l" | "-V" | "-a" | "-c" | "-S" | "-g"))
    }

    /// Whether the command used `--framing`.
    pub(crate) fn framing(&self) -> bool {
        self.argv.iter().any(|a| a == "--framing")
    }

    /// The group this case belongs to (`simple`, `corrupt--extra-entry`, …).
    pub(crate) fn group(&self) -> &str {
        self.id.split('/').next().unwrap_or_default()
    }

    /// Runs `fwup-rs` with this case's arguments, in `set_root` (a fixture set, or a scratch
    /// copy of one for commands that write), with the recorded environment and nothing else.
    pub(crate) fn run(&self, set_root: &Path, base_env: &[(String, String)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fwup-rs"));
        command
            .args(&self.argv[1..])
            .current_dir(set_root.join(&self.cwd))
            .env_clear()
            .stdin(Stdio::null());
        for (key, value) in base_env.iter().chain(&self.env) {
            command.env(key, value);
        }
        command.output().expect("run fwup-rs")
    }
}

/// The base environment and every recorded case.
pub(crate) fn load_cases() -> (Vec<(String, String)>, Vec<Case>) {
    let results: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("expected/results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let pairs = |value: &Value| -> Vec<(String, String)> {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let base_env = pairs(&results["base_env"]);
    let cases = results["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|case| Case {
            id: case["id"].as_str().unwrap_or_default().to_owned(),
            argv: case["argv"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            env: pairs(&case["env"]),
            cwd: case["cwd"].as_str().unwrap_or(".").to_owned(),
            rc: case["rc"].as_i64().unwrap_or(-1) as i32,
            stdout: match case["stdout_hex"].as_str() {
                Some(hex) => hex_decode(hex),
                None => case["stdout_text"]
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec(),
            },
            raw: case.clone(),
        })
        .collect();
    (base_env, cases)
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .filter_map(|i| text.get(i..i + 2))
        .map(|pair| u8::from_str_radix(pair, 16).expect("hex in results.json"))
        .collect()
}
