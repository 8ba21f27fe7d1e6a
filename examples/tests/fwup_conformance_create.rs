//! Replays every `-c` and `-S` command recorded from C fwup 1.16.0 against `fwup-rs`, in a
//! scratch copy of the fixture set, and runs `-g`.
//!
//! For each case: the exit status equals fwup's; on success the archive's meta.conf equals
//! fwup's byte for byte (`expected/<group>/meta.conf`) and the ZIP layout matches
//! `expected/<group>/zip-entries.txt` (entry order, names, methods, flags, version needed,
//! the stored 64-byte signature first); on failure no output file is left (fwup leaves one;
//! fwup-rs deliberately does not).
//!
//! git does not keep the holes of `data/sparse.img`, so the scratch copy gets a sparse
//! `data/sparse.img` rebuilt with the layout MANIFEST.md gives (data 8192, hole 1 MiB,
//! data 4096, hole 64 KiB).

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use nerveshub_fwup::{ArchiveReader, PublicKey, SignatureStatus, Variables};

/// Copies the fixture set (without `expected/`) into `dest`, keeping holes.
fn scratch_copy(dest: &Path) {
    let src = common::fixtures();
    for entry in fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "expected" {
            continue;
        }
        let status = Command::new("cp")
            .args(["-a", "--sparse=always"])
            .arg(entry.path())
            .arg(dest)
            .status()
            .unwrap();
        assert!(status.success());
    }
    // Rebuild data/sparse.img with real holes: the data runs are what the dense copy holds
    // at those offsets.
    let path = dest.join("data/sparse.img");
    let dense = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let mut f = fs::File::create(&path).unwrap();
    let (a, hole1, b, hole2) = (8192u64, 1_048_576u64, 4096u64, 65_536u64);
    f.write_all(&dense[..8192]).unwrap();
    f.seek(SeekFrom::Start(a + hole1)).unwrap();
    let start = usize::try_from(a + hole1).unwrap();
    f.write_all(&dense[start..start + 4096]).unwrap();
    f.set_len(a + hole1 + b + hole2).unwrap();
}

/// One local header of a `zip-entries.txt` walk: name, version needed, flags, method.
fn expected_entries(text: &str) -> Vec<(String, u16, u16, u16, u64)> {
    text.lines()
        .filter(|l| l.starts_with("local "))
        .map(|l| {
            let field = |key: &str| -> String {
                let start = l.find(&format!(" {key}=")).unwrap() + key.len() + 2;
                l[start..].split(' ').next().unwrap().to_owned()
            };
            let hex = |s: String| u16::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            let usize_: u64 = l.rsplit("usize=").next().unwrap().trim().parse().unwrap();
            (
                field("name"),
                field("version_needed").parse().unwrap(),
                hex(field("flags")),
                field("method").parse().unwrap(),
                usize_,
            )
        })
        .collect()
}

/// Walks our archive's local headers front to back.
fn actual_entries(bytes: &[u8]) -> Vec<(String, u16, u16, u16, u64)> {
    let le16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes[pos..].starts_with(b"PK\x03\x04") {
        let flags = le16(pos + 6);
        let method = le16(pos + 8);
        let name_len = usize::from(le16(pos + 26));
        let extra_len = usize::from(le16(pos + 28));
        let name = String::from_utf8(bytes[pos + 30..pos + 30 + name_len].to_vec()).unwrap();
        let data = pos + 30 + name_len + extra_len;
        assert_eq!(flags & 8, 8, "{name}: data descriptor flag");
        // Find the descriptor: its compressed size must point back at it.
        let mut d = data;
        let (csize, usize_) = loop {
            if bytes[d..].starts_with(b"PK\x07\x08") {
                let csize = le32(d + 8) as usize;
                if data + csize == d {
                    break (csize, u64::from(le32(d + 12)));
                }
            }
            d += 1;
        };
        out.push((name, le16(pos + 4), flags, method, usize_));
        pos = data + csize + 16;
    }
    out
}

#[test]
fn create_and_sign_match_c_fwup() {
    let (base_env, cases) = common::load_cases();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    scratch_copy(root);
    let expected = common::fixtures().join("expected");
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in &cases {
        if !matches!(case.mode(), Some("-c" | "-S")) {
            continue;
        }
        let out_arg = &case.argv[case.argv.iter().position(|a| a == "-o").unwrap() + 1];
        let out_path = root.join(&case.cwd).join(out_arg);
        let _ = fs::remove_file(&out_path);
        let output = case.run(root, &base_env);
        ran += 1;
        let rc = output.status.code().unwrap_or(-1);
        if rc != case.rc {
            failures.push(format!(
                "{}: exit {rc}, fwup {}: {}",
                case.id,
                case.rc,
                String::from_utf8_lossy(&output.stdout)
            ));
            continue;
        }
        if rc != 0 {
            if out_path.exists() {
                failures.push(format!("{}: failed but left {}", case.id, out_arg));
            }
            if output.stdout != case.stdout {
                failures.push(format!(
                    "{}: stdout {:?}, fwup {:?}",
                    case.id,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&case.stdout)
                ));
            }
            continue;
        }
        let bytes = fs::read(&out_path).unwrap();
        let want_meta = fs::read(expected.join(case.group()).join("meta.conf")).unwrap();
        match ArchiveReader::open(&bytes[..]) {
            Ok(reader) if reader.head().meta_conf_bytes() == want_meta => {}
            Ok(_) => failures.push(format!("{}: meta.conf differs", case.id)),
            // bigmeta: fwup creates a meta.conf that no reader accepts; the layout check
            // below still compares its size with fwup's.
            Err(nerveshub_fwup::Error::Archive(nerveshub_fwup::ArchiveError::BadMetaConfSize(
                _,
            ))) if want_meta.len() >= 50_000 => {}
            Err(e) => failures.push(format!("{}: unreadable: {e}", case.id)),
        }
        let walk = fs::read_to_string(expected.join(case.group()).join("zip-entries.txt")).unwrap();
        let (want, got) = (expected_entries(&walk), actual_entries(&bytes));
        if want != got {
            failures.push(format!("{}: layout {got:?}, fwup {want:?}", case.id));
        }
        if case.group() != "bigmeta" {
            let vars = Variables::new();
            if let Err(e) = nerveshub_fwup::verify(&bytes[..], &[], &vars) {
                failures.push(format!("{}: does not verify: {e}", case.id));
            }
        }
    }
    assert_eq!(ran, 19, "recorded -c/-S cases");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn generated_keys_sign_archives_that_verify() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap()
    };
    let out = run(&["-g", "-o", "k"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Firmware signing keys created and saved to 'k.pub' and 'k.priv'\n\n\
         Distribute 'k.pub' with your system so that firmware updates can be\n\
         authenticated. Keep 'k.priv' in a safe location.\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.join("k.priv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(fs::read(dir.join("k.pub")).unwrap().len(), 44);
    assert_eq!(fs::read(dir.join("k.priv")).unwrap().len(), 88);
    // Refuses to overwrite.
    let again = run(&["-g", "-o", "k"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("fwup: Couldn't create 'k.pub'"));

    fs::write(dir.join("data.bin"), vec![7u8; 10_000]).unwrap();
    fs::write(
        dir.join("fw.conf"),
        "file-resource d { host-path = \"data.bin\" }\ntask complete { on-resource d { raw_write(0) } }\n",
    )
    .unwrap();
    let made = run(&["-c", "-f", "fw.conf", "-o", "a.fw", "-s", "k.priv"]);
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let resigned = run(&["-S", "-s", "k.priv", "-i", "a.fw", "-o", "b.fw"]);
    assert_eq!(resigned.status.code(), Some(0), "{resigned:?}");
    let key =
        PublicKey::from_file_contents(&fs::read(dir.join("k.pub")).unwrap(), "k.pub").unwrap();
    for name in ["a.fw", "b.fw"] {
        let mut bytes = Vec::new();
        fs::File::open(dir.join(name))
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let verified = nerveshub_fwup::verify(&bytes[..], &[key], &Variables::new()).unwrap();
        assert!(
            matches!(verified.signature(), SignatureStatus::Verified { .. }),
            "{name}"
        );
    }
}
