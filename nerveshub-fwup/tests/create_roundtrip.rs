//! Creating archives with the library: round trips through the streaming reader and
//! `verify`, the fwup.conf language (include file stack, define, define-eval, variables,
//! `FWUP_SIZE_*`), failures that leave no output, and keys.

use nerveshub_fwup::{
    ArchiveReader, CreateError, CreateOptions, Error, PreparedFirmware, PrivateKey, PublicKey,
    SignatureStatus, Variables, create, create_file, sign, verify,
};
use std::fs;
use std::path::Path;

use proptest::prelude::*;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/fixtures"))
}

fn options() -> CreateOptions {
    CreateOptions {
        creation_time: 1_700_000_000,
        ..CreateOptions::default()
    }
}

/// Every resource's data as the streaming reader returns it.
fn read_all(bytes: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut reader = ArchiveReader::open(bytes).unwrap();
    let meta = reader.head().meta_conf_bytes().to_vec();
    let mut entries = Vec::new();
    while let Some(mut entry) = reader.next_resource().unwrap() {
        let name = entry.name().to_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.push((name, data));
    }
    reader.finish().unwrap();
    (meta, entries)
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// create → stream-read → verify, signed and unsigned, at every compression level.
    #[test]
    fn create_stream_read_verify(
        files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20_000), 0..4),
        // `$` would start a substitution.
        texts in prop::collection::vec("[ -#%-~]{0,60}", 0..3),
        version in "[0-9a-z.+-]{1,12}",
        level in 1u32..=9,
        seed in prop::option::of(any::<[u8; 32]>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!("meta-version = {}\n", quoted(&version));
        let mut want = Vec::new();
        for (i, data) in files.iter().enumerate() {
            fs::write(dir.path().join(format!("f{i}.bin")), data).unwrap();
            conf.push_str(&format!("file-resource f{i}.bin {{ host-path = \"f{i}.bin\" }}\n"));
            want.push((format!("f{i}.bin"), data.clone()));
        }
        for (i, text) in texts.iter().enumerate() {
            conf.push_str(&format!("file-resource \"/t{i}\" {{ contents = {} }}\n", quoted(text)));
            want.push((format!("/t{i}"), text.as_bytes().to_vec()));
        }
        conf.push_str("task complete { on-init { info(\"hi\") } }\n");
        let config = dir.path().join("fw.conf");
        let key = seed.map(|s| PrivateKey::from_seed(&s));
        let opts = CreateOptions {
            compression_level: level,
            signing_key: key.clone(),
            ..options()
        };
        let prepared = PreparedFirmware::prepare(conf.as_bytes(), &config, &opts).unwrap();
        let bytes = prepared.write(Vec::new(), &opts).unwrap();
        let (meta, entries) = read_all(&bytes);
        prop_assert_eq!(meta, prepared.meta_conf().as_bytes().to_vec());
        prop_assert_eq!(entries, want);
        let keys: Vec<PublicKey> = key.iter().map(PrivateKey::public_key).collect();
        let verified = verify(&bytes[..], &keys, &Variables::new()).unwrap();
        match &key {
            Some(_) => {
                let good = matches!(verified.signature(), SignatureStatus::Verified { .. });
                prop_assert!(good);
            }
            None => prop_assert_eq!(verified.signature(), SignatureStatus::Unsigned),
        }
        // Re-signing keeps meta.conf and every entry.
        let other = PrivateKey::from_seed(&[9; 32]);
        let resigned = sign(&bytes[..], Vec::new(), &other, 1).unwrap();
        prop_assert_eq!(read_all(&resigned), read_all(&bytes));
        let verified = verify(&resigned[..], &[other.public_key()], &Variables::new()).unwrap();
        let good = matches!(verified.signature(), SignatureStatus::Verified { .. });
        prop_assert!(good);
    }
}

#[test]
fn fixture_key_gives_fwups_signature() {
    let key = PrivateKey::from_file_contents(
        &fs::read(fixtures().join("keys/fwup-key.priv")).unwrap(),
        "fwup-key.priv",
    )
    .unwrap();
    let public = fs::read_to_string(fixtures().join("keys/fwup-key.pub")).unwrap();
    assert_eq!(key.public_key().to_base64(), public.trim());
    assert_eq!(
        key.to_base64(),
        fs::read_to_string(fixtures().join("keys/fwup-key.priv"))
            .unwrap()
            .trim()
    );
    // Ed25519 is deterministic: fwup's signature of the simple meta.conf is ours.
    let signed = fs::read(fixtures().join("fw/simple-signed.fw")).unwrap();
    let head = ArchiveReader::open(&signed[..]).unwrap().into_head();
    assert_eq!(
        Some(&key.sign(head.meta_conf_bytes())),
        head.signature(),
        "signature differs from fwup's"
    );
    // Debug never shows the secret.
    let debug = format!("{key:?}");
    assert!(!debug.contains(&key.to_base64()[..20]));
    // Raw 64-byte keys load too; garbage does not.
    let raw = base64_decode(&key.to_base64());
    assert!(PrivateKey::from_file_contents(&raw, "raw").is_ok());
    let err = PrivateKey::from_file_contents(b"nope", "x.priv").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error reading or decoding private key from file 'x.priv'"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn config_language_include_define_eval_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("conf/inc/deeper")).unwrap();
    fs::write(d.join("payload.bin"), vec![1u8; 1000]).unwrap();
    // Includes are relative to the including file, nested.
    fs::write(
        d.join("conf/inc/a.conf"),
        "define(FROM_A, a)\ninclude(\"deeper/b.conf\")\n",
    )
    .unwrap();
    fs::write(
        d.join("conf/inc/deeper/b.conf"),
        "define(FROM_B, \"b b\")\n",
    )
    .unwrap();
    let conf = r#"
include("inc/a.conf")
define(KEEP, first)
define(KEEP, second)
define!(OVER, one)
define!(OVER, two)
define(ENV_WINS, config)
meta-product = "${FROM_A}-${FROM_B}-${KEEP}-${OVER}-${ENV_WINS}-${MISSING:-dflt}-[${MISSING}]"
meta-misc = "\${LATER} ${FWUP_META_UUID}"
file-resource payload.bin { host-path = "../payload.bin" }
define-eval(N, "(${FWUP_SIZE_payload_bin} + 24) / 2 ^ 2")
meta-version = ${N}
task t { on-resource payload.bin { raw_write(${N}) } }
"#;
    let config = d.join("conf/fw.conf");
    let mut env = Variables::new();
    env.set("ENV_WINS", "env");
    let opts = CreateOptions {
        env,
        // FWUP_SIZE_* stats relative to the working directory, like fwup.
        working_dir: d.join("conf"),
        ..options()
    };
    let prepared = PreparedFirmware::prepare(conf.as_bytes(), &config, &opts).unwrap();
    assert_eq!(
        prepared.meta_conf(),
        "meta-product=\"a-b b-first-two-env-dflt-[]\"\n\
         meta-version=256\n\
         meta-misc=\"${LATER} ${FWUP_META_UUID}\"\n\
         file-resource \"payload.bin\" {\n\
         length=1000\n\
         blake2b-256=c4c86a3e5ff7bc5a9a23cd0ebd7b1dc9b35dd1b0c2ef8f5b24a0d9b3fca0a12e\n\
         }\n\
         task \"t\" {\n\
         on-resource \"payload.bin\" {\n\
         funlist={2,raw_write,256}\n\
         }\n\
         }\n"
        .replace(
            "c4c86a3e5ff7bc5a9a23cd0ebd7b1dc9b35dd1b0c2ef8f5b24a0d9b3fca0a12e",
            prepared.conf().resources()[0].blake2b_256_hex().unwrap()
        )
    );
}

#[test]
fn failed_create_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("big.bin"), vec![0u8; 2048]).unwrap();
    fs::write(
        d.join("fw.conf"),
        "file-resource big.bin { host-path = \"big.bin\" assert-size-lte = 1 }\n",
    )
    .unwrap();
    let out = d.join("out.fw");
    let err = create_file(&d.join("fw.conf"), &out, &options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file size assertion failed on 'big.bin'. Size is 2048 bytes. It must be <= 512 bytes (1 blocks)"
    );
    assert!(!out.exists());
    assert_eq!(
        fs::read_dir(d).unwrap().count(),
        2,
        "no temporary file left"
    );

    // An existing output is kept when a create fails.
    fs::write(&out, b"old").unwrap();
    assert!(create_file(&d.join("fw.conf"), &out, &options()).is_err());
    assert_eq!(fs::read(&out).unwrap(), b"old");
}

#[test]
fn config_errors() {
    let cases: &[(&str, &str)] = &[
        ("bogus = 1\n", "no such option 'bogus'"),
        ("file-resource x { }\n", "host-path or contents must be set"),
        (
            "file-resource x { contents = \"a\" host-path = \"b\" }\n",
            "only one of host-path or contents",
        ),
        (
            "task t { on-resource nope { raw_write(0) } }\n",
            "unknown resource: nope",
        ),
        ("define-eval(X, \"1 / 0\")\n", "error evaluating '1 / 0'"),
        (
            "include(\"missing.conf\")\n",
            "Cannot include 'missing.conf': File not found",
        ),
        ("define(X)\n", "'define' requires 2 parameters"),
        (
            "task t { on-init { raw_write(0) } }\n",
            "raw_write only usable in on-resource",
        ),
        (
            "task t { on-init { mbr_write() } }\n",
            "mbr_write requires an mbr",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (conf, want) in cases {
        let err = create(
            conf.as_bytes(),
            &dir.path().join("c.conf"),
            Vec::new(),
            &options(),
        )
        .unwrap_err();
        let Error::Create(CreateError::ConfigSyntax { message, .. }) = &err else {
            panic!("{conf}: {err:?}");
        };
        assert!(message.contains(want), "{conf}: {message}");
    }
    // A missing host path fails with fwup's message.
    let err = create(
        b"file-resource x { host-path = \"nope.bin\" }\n",
        &dir.path().join("c.conf"),
        Vec::new(),
        &options(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "can't open path 'nope.bin' in file-resource 'x'"
    );
}

#[test]
fn host_paths_concatenate_and_fat_write_gets_its_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("a"), b"hello ").unwrap();
    fs::write(d.join("b"), b"world").unwrap();
    let conf = "file-resource ab { host-path = \"a;b\" }\n\
                task t { on-resource ab { fat_write(0) } }\n";
    let config = d.join("fw.conf");
    let bytes = create(conf.as_bytes(), &config, Vec::new(), &options()).unwrap();
    let (meta, entries) = read_all(&bytes);
    let meta = String::from_utf8(meta).unwrap();
    assert!(meta.contains("length=11\n"), "{meta}");
    assert!(meta.contains("funlist={3,fat_write,0,ab}"), "{meta}");
    assert_eq!(entries, vec![("ab".to_owned(), b"hello world".to_vec())]);
}

#[test]
fn sparse_maps_hold_at_most_256_runs_and_verify() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 300 data blocks separated by holes: more runs than fwup's map holds.
    let mut f = fs::File::create(d.join("holes.img")).unwrap();
    for i in 0..300u64 {
        f.seek(SeekFrom::Start(i * 3 * 4096)).unwrap();
        f.write_all(&[u8::try_from(i % 250).unwrap() + 1; 4096])
            .unwrap();
    }
    f.set_len(300 * 3 * 4096 + 8192).unwrap();
    drop(f);
    let conf = "file-resource h { host-path = \"holes.img\" skip-holes = true }\n\
                file-resource dense { host-path = \"holes.img\" }\n";
    let config = d.join("fw.conf");
    let opts = options();
    let prepared = PreparedFirmware::prepare(conf.as_bytes(), &config, &opts).unwrap();
    let sparse = &prepared.conf().resources()[0];
    let dense = &prepared.conf().resources()[1];
    assert!(
        sparse.length_runs().len() <= 256,
        "{}",
        sparse.length_runs().len()
    );
    assert_eq!(sparse.total_len(), 300 * 3 * 4096 + 8192);
    assert_eq!(dense.length_runs(), [300 * 3 * 4096 + 8192]);
    let bytes = prepared.write(Vec::new(), &opts).unwrap();
    verify(&bytes[..], &[], &Variables::new()).unwrap();
    let (_, entries) = read_all(&bytes);
    assert_eq!(entries[0].1.len() as u64, sparse.data_len());
}
