//! Skipping a test whose tool or service is missing, except on CI; unique names.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether this is a CI run (`NERVESHUB_CI=1`), where a missing tool or service fails a test
/// instead of skipping it.
pub fn ci() -> bool {
    std::env::var("NERVESHUB_CI").is_ok_and(|v| v == "1")
}

/// Reports that a test cannot run here because of `why` (what is missing, and how to get it):
/// prints `skipped: <why>` and returns, so the caller can return early and pass. Under
/// `NERVESHUB_CI=1` it panics instead: on CI every test must really run.
#[allow(
    clippy::print_stderr,
    reason = "the `skipped:` line is the test's report"
)]
pub fn skip_or_fail(why: impl Display) {
    assert!(!ci(), "NERVESHUB_CI=1 but this test cannot run: {why}");
    eprintln!("skipped: {why}");
}

/// The path of executable `tool` in a `PATH` directory, if there is one.
pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|path| is_executable(path))
}

/// Whether executable `tool` is in a `PATH` directory.
pub fn on_path(tool: &str) -> bool {
    find_on_path(tool).is_some()
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// `<prefix>_<pid>_<counter>_<nanoseconds>`: a name no other test of this process, nor another
/// test process, uses (for databases, S3 prefixes, temporary files). Only ASCII letters,
/// digits and `_` when `prefix` has only those, so it is a valid SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let (a, b) = (unique_name("nhtest"), unique_name("nhtest"));
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("nhtest_{}_", std::process::id())),
            "{a}"
        );
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn finds_sh_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("no-such-tool-nerveshub"));
    }
}
