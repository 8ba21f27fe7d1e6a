//! Quoting, property tests, and the fwup fixture set.

use crate::MetaConfError;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

// ---- quoting -------------------------------------------------------------------------------

#[test]
fn quote_value_like_cfgprint() {
    assert_eq!(quote_value("1.2.3"), "1.2.3");
    assert_eq!(quote_value("x86_64"), "x86_64");
    assert_eq!(quote_value("7.0.1-rc.2"), "\"7.0.1-rc.2\"");
    assert_eq!(quote_value(""), "\"\"");
    assert_eq!(quote_value("a \"b\" \\c"), r#""a \"b\" \\c""#);
    assert_eq!(quote_value("line\nbreak"), "\"line\nbreak\"");
    assert!(matches!(quote_value("bare"), Cow::Borrowed(_)));
}

proptest! {
    #[test]
    fn quote_value_round_trips(s in "[^\\x00]{0,40}") {
        // `$` starts substitution in a double-quoted string unless escaped; cfgprint does
        // not escape it, so `${` would not round-trip in fwup either.
        prop_assume!(!s.contains("${"));
        let text = format!("meta-misc = {}\n", quote_value(&s));
        let conf = MetaConf::parse(text.as_bytes(), &Variables::new()).unwrap();
        prop_assert_eq!(conf.metadata().misc.as_deref(), Some(s.as_str()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = MetaConf::parse(&bytes, &Variables::new());
    }

    #[test]
    fn config_like_bytes_never_panic(s in "[a-z{}()=+,\"'$#/*\\\\ \n0-9-]{0,200}") {
        let _ = MetaConf::parse(s.as_bytes(), &Variables::new());
    }
}

// ---- fixtures ------------------------------------------------------------------------------

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

#[test]
fn every_fixture_meta_conf_parses_and_lists_like_fwup() {
    let expected = testdata().join("fixtures/expected");
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&expected)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = std::fs::read(dir.join("meta.conf")) else {
            continue;
        };
        let group = dir.file_name().unwrap().to_string_lossy().into_owned();
        let rc = std::fs::read_to_string(dir.join("list.rc"))
            .map(|s| s.trim().to_string())
            .ok();
        let vars: Variables = [
            ("FWUP_META_UUID".to_string(), "uuid".to_string()),
            ("FWUP_META_NICKNAME".to_string(), "nick".to_string()),
        ]
        .into_iter()
        .collect();
        let result = MetaConf::parse(&text, &vars);
        let stdout = std::fs::read_to_string(dir.join("list.stdout")).unwrap_or_default();
        // Failures of the container (size, entry order, signature entry) are not meta.conf's.
        let meta_conf_failure =
            stdout.contains("parsing meta.conf") || stdout.contains("isn't allowed");
        if rc.as_deref() == Some("1") && !meta_conf_failure {
            assert!(result.is_ok(), "{group}: {result:?}");
            continue;
        }
        if rc.as_deref() == Some("1") {
            assert!(result.is_err(), "{group}: fwup fails, we parsed");
            continue;
        }
        let conf = result.unwrap_or_else(|e| panic!("{group}: {e}"));
        if let Ok(list) = std::fs::read_to_string(dir.join("list.stdout")) {
            let mut names: Vec<_> = conf.tasks().iter().map(Task::name).collect();
            names.sort_unstable();
            let expected: Vec<_> = list.lines().collect();
            assert_eq!(names, expected, "{group}");
        }
        for r in conf.resources() {
            assert!(r.blake2b_256().is_some(), "{group}: {}", r.name());
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} fixture meta.conf files checked"
    );
}

#[test]
fn fixture_details() {
    let read = |g: &str| {
        std::fs::read(
            testdata()
                .join("fixtures/expected")
                .join(g)
                .join("meta.conf"),
        )
        .unwrap()
    };
    let vars: Variables = [("FWUP_META_UUID".to_string(), "U".to_string())]
        .into_iter()
        .collect();

    let simple = MetaConf::parse(&read("simple"), &vars).unwrap();
    let m = simple.metadata();
    assert_eq!(m.product.as_deref(), Some("Fixture Simple"));
    assert_eq!(m.misc.as_deref(), Some("misc, with \"quotes\" and = signs"));
    assert_eq!(m.vcs_identifier.as_deref(), Some("0123abcd"));
    let rootfs = simple.resource("rootfs.img").unwrap();
    assert_eq!(rootfs.length_runs(), [65536]);
    assert_eq!(
        simple.tasks()[0]
            .on_resource("rootfs.img")
            .unwrap()
            .functions()[0]
            .args(),
        ["256"]
    );

    let sparse = MetaConf::parse(&read("sparse"), &vars).unwrap();
    let s = sparse.resource("sparse.img").unwrap();
    assert_eq!(s.length_runs(), [8192, 1_048_576, 4096, 65536]);
    assert_eq!((s.data_len(), s.total_len()), (12288, 1_126_400));

    let empty = MetaConf::parse(&read("empty_resource"), &vars).unwrap();
    assert_eq!(empty.resources()[0].data_len(), 0);
    assert!(empty.resources()[0].length_runs().is_empty());

    let ab = MetaConf::parse(&read("ab"), &vars).unwrap();
    assert_eq!(
        ab.metadata().misc.as_deref(),
        Some("fw uuid at apply time: U")
    );
    let init = ab.tasks()[0].on_init();
    assert_eq!(init[3].args(), ["env", "fw_uuid", "U"]);
    assert_eq!(ab.tasks()[1].requirements()[0].args(), ["1", "2048"]);
    assert_eq!(ab.uboot_environments()[0].block_offset_redund(), Some("32"));

    let vars_group = MetaConf::parse(&read("vars"), &Variables::new()).unwrap();
    assert!(vars_group.resource("/extra-at-root.txt").is_some());
    assert_eq!(vars_group.metadata().misc.as_deref(), Some("deferred:  "));

    let boot = MetaConf::parse(&read("boot_fat"), &vars).unwrap();
    assert_eq!(boot.mbrs()[0].signature(), Some("0x12345678"));
    assert_eq!(boot.mbrs()[0].partitions()[0].partition_type(), 12);
    let finish = boot.tasks()[0].on_finish();
    assert!(finish.iter().any(|f| f.name() == "fat_mv!"));

    let gpt = MetaConf::parse(&read("gpt"), &vars).unwrap();
    assert_eq!(gpt.gpts()[0].partitions()[1].flags(), "0x8000000000000000");
}

#[test]
fn handmade_variants_match_fwup_verdicts() {
    let dir = testdata().join("metaconf");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".conf")
            .map(str::to_string)
        else {
            continue;
        };
        let expected = testdata().join("fixtures/expected").join(&stem);
        let rc = std::fs::read_to_string(expected.join("list.rc")).unwrap();
        let stdout = std::fs::read_to_string(expected.join("list.stdout")).unwrap();
        let stderr = std::fs::read_to_string(expected.join("list.stderr")).unwrap();
        let result = MetaConf::parse(&std::fs::read(&path).unwrap(), &Variables::new());
        match rc.trim() {
            "0" => {
                let conf = result.unwrap_or_else(|e| panic!("{stem}: {e}"));
                let mut names: Vec<_> = conf.tasks().iter().map(Task::name).collect();
                names.sort_unstable();
                assert_eq!(names, stdout.lines().collect::<Vec<_>>(), "{stem}");
            }
            _ => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{stem}: fwup fails, we parsed"));
                match &err {
                    Error::MetaConf(MetaConfError::Syntax { line, message }) => {
                        // fwup: `[buf]:21: premature end of file` on stderr.
                        let diag = format!("[buf]:{line}: {message}");
                        assert!(stderr.contains(&diag), "{stem}: {diag:?} not in {stderr:?}");
                    }
                    Error::MetaConf(MetaConfError::RequiresNewerFwup { .. })
                    | Error::MetaConf(MetaConfError::ReservedMetadata) => {
                        let text = err.to_string();
                        assert!(
                            stdout.contains(&text) || stderr.contains(&text),
                            "{stem}: {text:?}"
                        );
                    }
                    other => panic!("{stem}: unexpected error {other:?}"),
                }
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 9);
}

#[test]
fn pathological_inputs_stay_linear() {
    // Each input is about 50 kB (fwup's meta.conf limit); a quadratic scan or unbounded
    // recursion would make this test hang or overflow the stack.
    let n = 25_000;
    let inputs: Vec<Vec<u8>> = vec![
        "${".repeat(n).into_bytes(),
        "\"${".repeat(n).into_bytes(),
        "a{".repeat(n).into_bytes(),
        "{".repeat(2 * n).into_bytes(),
        "task t {\n".repeat(n / 5).into_bytes(),
        format!("meta-misc = {{{}}}\n", "a,".repeat(n)).into_bytes(),
        format!(
            "task t {{\non-init {{\nfunlist = {{{}}}\n}}\n}}\n",
            "1,x,".repeat(n / 2)
        )
        .into_bytes(),
        format!("future x {{\n{}", "a { ".repeat(n / 2)).into_bytes(),
        format!("future x {{\n{}", "a = { ".repeat(n / 3)).into_bytes(),
        "/*".repeat(n).into_bytes(),
        "'\\".repeat(n).into_bytes(),
        "\"\\0".repeat(n).into_bytes(),
        (0..n)
            .map(|i| format!("task t{i} {{\n}}\n"))
            .collect::<String>()
            .into_bytes(),
    ];
    for input in inputs {
        let _ = MetaConf::parse(&input, &Variables::new());
    }
}
