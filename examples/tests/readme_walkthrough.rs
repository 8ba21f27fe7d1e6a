//! The README's simulated-device walkthrough, run as written: the `sh` blocks between the
//! `readme-test: begin` and `readme-test: end` markers are joined into one bash script and run
//! in a temporary directory holding a copy of `examples/firmware`, with this package's
//! binaries first on PATH (as `cargo install --path examples` would put them) and the
//! README's ports 4000/4001 replaced by free ones. It must end with the device on 2.0.0.
#![cfg(unix)]
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole walkthrough may take this long (it has its own shorter waits inside).
const LIMIT: Duration = Duration::from_secs(400);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `sh` blocks between the markers, in order.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let begin = readme
        .find("<!-- readme-test: begin")
        .expect("README has the readme-test: begin marker");
    let end = readme[begin..]
        .find("<!-- readme-test: end")
        .map(|i| begin + i)
        .expect("README has the readme-test: end marker");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme[begin..end].lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "unterminated sh block in the walkthrough"
    );
    blocks
}

#[test]
fn readme_blocks_are_found() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = walkthrough_blocks(&readme);
    assert!(blocks.len() >= 5, "{blocks:#?}");
    assert!(blocks[0].contains("examples/firmware/build.sh"));
    assert!(blocks.iter().any(|b| b.contains("/updates")));
}

#[test]
fn readme_walkthrough_updates_a_simulated_device_from_v1_to_v2() {
    let missing: Vec<&str> = ["bash", "curl", "jq", "timeout"]
        .into_iter()
        .filter(|t| !nerveshub_test_support::on_path(t))
        .collect();
    if !missing.is_empty() {
        nerveshub_test_support::skip_or_fail(format!("the README walkthrough needs {missing:?}"));
        return;
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (api, device) = (free_port(), free_port());
    let body = walkthrough_blocks(&readme)
        .join("\n")
        .replace("127.0.0.1:4000", &format!("127.0.0.1:{api}"))
        .replace("localhost:4001", &format!("localhost:{device}"));
    // Background processes are stopped whatever happens.
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nset -x\n{body}"
    );

    let root = tempfile::tempdir().unwrap();
    let firmware = root.path().join("examples/firmware");
    std::fs::create_dir_all(&firmware).unwrap();
    for file in ["fwup.conf", "build.sh"] {
        std::fs::copy(
            repo().join("examples/firmware").join(file),
            firmware.join(file),
        )
        .unwrap();
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_nerveshub-server"))
        .parent()
        .unwrap()
        .to_owned();
    for bin in [
        env!("CARGO_BIN_EXE_nerveshub-device"),
        env!("CARGO_BIN_EXE_fwup-rs"),
    ] {
        assert_eq!(Path::new(bin).parent(), Some(bin_dir.as_path()));
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .args(["-c", &script])
        .current_dir(root.path())
        .env("PATH", path)
        .env("NERVESHUB_API_ADDR", format!("127.0.0.1:{api}"))
        .env("NERVESHUB_DEVICE_ADDR", format!("127.0.0.1:{device}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "NERVESHUB_DATABASE_URL",
        "NERVESHUB_DATA_DIR",
        "NERVESHUB_CONFIG",
        "NERVESHUB_STORAGE",
        "NERVESHUB_DEVICE_URL",
        "NERVESHUB_LOG_FORMAT",
        "NERVESHUB_METRICS_ADDR",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap().unwrap_or_default();
    let stderr = err.join().unwrap().unwrap_or_default();
    let scratch = root.path().join("scratch");
    let log = |name: &str| std::fs::read_to_string(scratch.join(name)).unwrap_or_default();
    let (server_log, device_log) = (log("server.log"), log("device.log"));
    let report = format!(
        "--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server.log\n{server_log}\n--- device.log\n{device_log}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the walkthrough failed ({status:?}):\n{report}"
    );

    // It ended where the README says: the update completed and the device runs 2.0.0.
    assert!(stdout.contains(r#""status": "completed""#), "{report}");
    assert!(stdout.contains(r#""version": "2.0.0""#), "{report}");
    assert!(device_log.contains("2.0.0"), "{report}");
    // Everything it wrote is in scratch/.
    let mut top: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["examples", "scratch"], "{report}");
    // Logs written to files carry no colour codes, and the download's signed query string
    // never reaches the access log, which does show the download.
    assert!(!server_log.contains('\u{1b}'), "{server_log}");
    assert!(!device_log.contains('\u{1b}'), "{device_log}");
    assert!(server_log.contains("/firmware/"), "{server_log}");
    assert!(!server_log.contains("signature="), "{server_log}");
}
