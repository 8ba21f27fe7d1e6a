//! Shared test helpers: time, and the OpenSSL CLI (skipped when missing unless NERVESHUB_CI=1).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nerveshub_pki::UnixTime;

pub fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970"),
    )
}

pub fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

pub fn days_from(t: UnixTime, days: i64) -> UnixTime {
    let secs = t.as_secs() as i64 + days * 86_400;
    at(secs.max(0) as u64)
}

/// The openssl binary, or `None` after printing `skipped: <why>`; with NERVESHUB_CI=1 a missing
/// binary fails the test instead.
pub fn openssl() -> Option<PathBuf> {
    let bin =
        std::env::var_os("OPENSSL_BIN").map_or_else(|| PathBuf::from("openssl"), PathBuf::from);
    match Command::new(&bin).arg("version").output() {
        Ok(out) if out.status.success() => Some(bin),
        other => {
            nerveshub_test_support::skip_or_fail(format!(
                "openssl binary not usable ({other:?}; Debian package `openssl`)"
            ));
            None
        }
    }
}

/// Runs tests/openssl/make-chains.sh into `dir`.
pub fn make_openssl_chains(openssl: &Path, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openssl/make-chains.sh");
    let bin_dir = openssl.parent().filter(|p| !p.as_os_str().is_empty());
    let mut cmd = Command::new("sh");
    cmd.arg(&script).arg(dir);
    if let Some(bin_dir) = bin_dir {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).expect("PATH"));
    }
    let out = cmd.output().expect("run make-chains.sh");
    assert!(
        out.status.success(),
        "make-chains.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
