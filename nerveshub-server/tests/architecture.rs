//! Rules of ARCHITECTURE.md that the compiler does not check, checked on the source text.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `src/` file as (path relative to `src/`, text).
fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            (name, text)
        })
        .collect()
}

/// HTTP status codes are chosen by `api/` (the management API and, in
/// `api/device_answers.rs`, the device endpoint's answers), `error.rs`, the web UI, and the
/// listener and operations layers that answer before or beside any handler. `device/poll.rs`
/// is the one exception left, named in ARCHITECTURE.md.
#[test]
fn only_the_boundary_modules_know_status_codes() {
    let allowed = |name: &str| {
        ["api/", "web/", "listener", "observability/"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || ["error.rs", "device_endpoint.rs", "device/poll.rs"].contains(&name)
    };
    let offenders: Vec<String> = src_files()
        .into_iter()
        .filter(|(name, text)| !allowed(name) && text.contains("StatusCode"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        offenders.is_empty(),
        "status codes outside api/: {offenders:?}"
    );
}

/// A write to Device CAs or device certificates runs in a `TrustTx`, whose commit applies
/// the trust change: every file that calls one of those writers opens one, and nothing
/// applies a change any other way.
#[test]
fn trust_writes_go_through_a_trust_transaction() {
    const WRITERS: [&str; 6] = [
        "insert_device_certificate(",
        "delete_device_certificate(",
        "delete_device_certificates(",
        "insert_ca_certificate(",
        "delete_ca_certificate(",
        "insert_session_certificate(",
    ];
    for (name, text) in src_files() {
        if name.starts_with("db/") {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        if WRITERS.iter().any(|w| code.contains(w)) {
            assert!(
                code.contains("begin_trust_change("),
                "{name} writes certificates without a TrustTx"
            );
        }
        assert!(
            !code.contains("apply_committed(")
                || name == "device/mod.rs"
                || name == "device/trust.rs",
            "{name} applies a trust change outside TrustTx::commit"
        );
    }
}

/// Hex text has one encoder and decoder (`src/hex.rs`) outside `db/`.
#[test]
fn one_hex_helper() {
    for (name, text) in src_files() {
        if name == "hex.rs" || name.starts_with("db/") {
            continue;
        }
        for own in ["fn hex_upper", "fn hex_lower", "fn decode_hex", "fn hex("] {
            assert!(!text.contains(own), "{name} has its own hex helper ({own})");
        }
    }
}
