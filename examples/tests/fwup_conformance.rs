//! Replays every `-m`, `-l` and `-V` command recorded from the real C fwup 1.16.0
//! (`nerveshub-fwup/testdata/fixtures/expected/results.json`) against `fwup-rs`.
//!
//! For every case the exit status must equal fwup's. On success stdout must equal fwup's
//! byte for byte (for `--framing`, the packets). On failure fwup-rs must print an error on
//! stdout starting with `fwup: ` (an `ER` packet when framing); for `-m` and `-l` the text
//! must also be fwup's exactly, except where fwup's words come from libarchive's internals.

mod common;

use std::process::Command;

#[test]
fn read_modes_match_c_fwup() {
    let root = common::fixtures();
    let (base_env, cases) = common::load_cases();
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let Some(mode) = case.mode().filter(|m| matches!(*m, "-m" | "-l" | "-V")) else {
            continue;
        };
        // Read modes write nothing, so they run in the committed fixture set itself.
        let output = case.run(&root, &base_env);
        ran += 1;

        let got_rc = output.status.code().unwrap_or(-1);
        let got = &output.stdout;
        let want = &case.stdout;
        let problem = if got_rc != case.rc {
            Some(format!("exit {got_rc}, fwup exit {}", case.rc))
        } else if case.rc == 0 && got != want {
            Some("stdout differs from fwup's".to_owned())
        } else if case.rc != 0 && case.framing() && got.get(4..6) != Some(b"ER") {
            Some("no ER packet".to_owned())
        } else if case.rc != 0 && !case.framing() && !got.starts_with(b"fwup: ") {
            Some("error does not start with 'fwup: '".to_owned())
        } else if case.rc != 0 && mode != "-V" && got != want && !libarchive_wording(want) {
            Some("error text differs from fwup's".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{} ({}): {problem}\n    got:  {:?}\n    want: {:?}",
                case.id,
                case.argv[1..].join(" "),
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(want)
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
