//! Rules of DESIGN.md and ARCHITECTURE.md that hold across the workspace and that neither the
//! compiler nor clippy checks, read off the source text: sans-IO cores, one error enum per
//! library that keeps its causes, private modules, no silenced lints, files a reader can hold.
//! A rule with a justified exception names it here, with the reason.

use std::path::{Path, PathBuf};

/// The libraries: their `src/` must follow the library rules.
const LIBRARIES: [&str; 5] = [
    "nerveshub-fwup",
    "nerveshub-proto",
    "nerveshub-pki",
    "nerveshub-client",
    "nerveshub-server",
];

/// The sans-IO cores: no network and no clock (fwup may open files and block devices).
const CORES: [&str; 3] = ["nerveshub-fwup", "nerveshub-proto", "nerveshub-pki"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ is in the workspace")
        .to_owned()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `crate_dir/sub` as (path relative to the workspace, text).
fn files(crate_dir: &str, sub: &str) -> Vec<(String, String)> {
    let root = workspace();
    let mut paths = Vec::new();
    collect(&root.join(crate_dir).join(sub), &mut paths);
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

/// The lines of `text` before its first `#[cfg(test)]` module: the code a library ships.
/// Unit tests come last in our files, so this is a fair cut.
fn shipped(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

fn is_test_file(name: &str) -> bool {
    name.ends_with("/tests.rs") || name.contains("/tests/") || name.ends_with("_tests.rs")
}

/// Fails with every finding at once.
fn report(rule: &str, findings: Vec<String>) {
    assert!(findings.is_empty(), "{rule}:\n  {}", findings.join("\n  "));
}

#[test]
fn the_cores_read_no_clock_and_open_no_socket() {
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "Utc::now",
        "OffsetDateTime::now",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "tokio::",
    ];
    let mut findings = Vec::new();
    for core in CORES {
        for (name, text) in files(core, "src") {
            for (line_no, line) in shipped(&text) {
                for needle in forbidden {
                    if line.contains(needle) {
                        findings.push(format!("{name}:{line_no}: {needle}"));
                    }
                }
            }
        }
        let manifest = std::fs::read_to_string(workspace().join(core).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        for runtime in ["tokio", "reqwest", "hyper", "async-std"] {
            if dependencies.lines().any(|line| {
                line.trim_start().starts_with(&format!("{runtime} "))
                    || line.trim_start().starts_with(&format!("{runtime}."))
            }) {
                findings.push(format!("{core}/Cargo.toml: depends on {runtime}"));
            }
        }
    }
    report(
        "the sans-IO cores must take time and I/O from their caller",
        findings,
    );
}

#[test]
fn libraries_do_not_use_anyhow() {
    let mut findings = Vec::new();
    for library in LIBRARIES {
        for (name, text) in files(library, "src") {
            if text.contains("anyhow") {
                findings.push(name);
            }
        }
        let manifest =
            std::fs::read_to_string(workspace().join(library).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        if dependencies.contains("anyhow") {
            findings.push(format!("{library}/Cargo.toml"));
        }
    }
    report(
        "anyhow is for binaries; libraries return their typed error",
        findings,
    );
}

#[test]
fn libraries_silence_no_lints_in_shipped_code() {
    let silenced = [
        "allow(dead_code",
        "allow(unused",
        "allow(clippy::cast_",
        "expect(dead_code",
        "expect(unused",
    ];
    let mut findings = Vec::new();
    for library in LIBRARIES {
        for (name, text) in files(library, "src") {
            if is_test_file(&name) {
                continue;
            }
            for (line_no, line) in shipped(&text) {
                for needle in silenced {
                    if line.contains(needle) {
                        findings.push(format!("{name}:{line_no}: {}", line.trim()));
                    }
                }
            }
        }
    }
    report(
        "dead code is deleted and casts are checked, not silenced",
        findings,
    );
}

/// One path to each item: modules are private and the crate root re-exports what callers
/// use. The fuzz targets' entry points live in one hidden `fuzzing` module.
#[test]
fn library_modules_are_private() {
    let mut findings = Vec::new();
    for library in LIBRARIES {
        let name = format!("{library}/src/lib.rs");
        let text = std::fs::read_to_string(workspace().join(&name)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("pub mod ") {
                continue;
            }
            let hidden_fuzzing = matches!(line.trim(), "pub mod fuzzing;" | "pub mod fuzzing {")
                && i > 0
                && lines[i - 1].trim() == "#[doc(hidden)]";
            if !hidden_fuzzing {
                findings.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    report(
        "library modules are private (re-export at the root)",
        findings,
    );
}

/// A public error enum can grow a variant without breaking its callers.
#[test]
fn public_error_enums_are_non_exhaustive() {
    let mut findings = Vec::new();
    for library in LIBRARIES {
        for (name, text) in files(library, "src") {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.trim_start().strip_prefix("pub enum ") else {
                    continue;
                };
                let enum_name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !enum_name.ends_with("Error") {
                    continue;
                }
                let attributes = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let l = l.trim_start();
                        l.starts_with("#[")
                            || l.starts_with("///")
                            || l.starts_with(')')
                            || l.starts_with("//")
                    })
                    .any(|l| l.contains("non_exhaustive"));
                if !attributes {
                    findings.push(format!("{name}:{}: {enum_name}", i + 1));
                }
            }
        }
    }
    report("public error enums are #[non_exhaustive]", findings);
}

/// An error turned into a string loses its kind and its source chain. A `map_err` that must
/// make text (a foreign callback's `Result<_, String>`) says why with `tidy: text` on its line
/// or the line before.
#[test]
fn errors_keep_their_source() {
    let mut findings = Vec::new();
    for library in LIBRARIES {
        for (name, text) in files(library, "src") {
            if is_test_file(&name) || name.ends_with("fuzzing.rs") || name.contains("/fuzzing/") {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            for (line_no, line) in shipped(&text) {
                let stringified = (line.contains("map_err(|e| ")
                    || line.contains("map_err(|err| "))
                    && (line.contains("e.to_string()")
                        || line.contains("err.to_string()")
                        || line.contains("format!(\"{e}\")"));
                let justified = line.contains("tidy: text")
                    || (line_no >= 2 && lines[line_no - 2].contains("tidy: text"));
                if stringified && !justified {
                    findings.push(format!("{name}:{line_no}: {}", line.trim()));
                }
            }
        }
    }
    report(
        "errors keep their source (#[source]/#[from]), not its text",
        findings,
    );
}

/// Files a reader can hold: about 800 lines at most. Generated data and recorded fixtures
/// are not code and are not counted.
#[test]
fn files_stay_readable() {
    const LIMIT: usize = 850;
    let mut findings = Vec::new();
    for member in LIBRARIES
        .iter()
        .copied()
        .chain(["examples", "nerveshub-test-support"])
    {
        for sub in ["src", "tests", "benches"] {
            for (name, text) in files(member, sub) {
                let lines = text.lines().count();
                if lines > LIMIT {
                    findings.push(format!("{name}: {lines} lines"));
                }
            }
        }
    }
    report("files over ~800 lines are split by what they do", findings);
}
