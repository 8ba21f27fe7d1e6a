//! Structure and schema tests: lists, sections, function calls, funlists, defines,
//! reserved metadata, every section type, defaults.

use super::super::lexer::{Lexer, TokKind};
use super::super::syntax::{self, IgnoreOutcome, Item, Value, replay_ignore};
use super::*;
use crate::MetaConfError;

// ---- structure -----------------------------------------------------------------------------

#[test]
fn lists_and_append() {
    let conf = parse(
        "file-resource r {\nlength = {1, 2,}\nlength += 3\nlength += {4, 5}\n}\n\
         file-resource s {\nlength = {1,2}\nlength = {}\n}\nfile-resource t {\nlength = 7\n}\n",
    )
    .unwrap();
    assert_eq!(conf.resource("r").unwrap().length_runs(), [1, 2, 3, 4, 5]);
    assert_eq!(conf.resource("r").unwrap().data_len(), 1 + 3 + 5);
    assert_eq!(conf.resource("r").unwrap().total_len(), 15);
    assert!(conf.resource("s").unwrap().length_runs().is_empty());
    assert_eq!(conf.resource("t").unwrap().length_runs(), [7]);
    assert_eq!(
        syntax_err("meta-misc = {a}\n"),
        (1, "unexpected token '{'".into())
    );
    assert_eq!(
        syntax_err("meta-misc += a\n"),
        (1, "attempt to append to non-list option 'meta-misc'".into())
    );
    assert_eq!(
        syntax_err("meta-misc = {a b}\n"),
        (1, "unexpected token 'b'".into())
    );
    assert_eq!(
        syntax_err("file-resource r {\nlength = -1\n}\n"),
        (2, "negative length for file-resource 'r'".into())
    );
}

#[test]
fn last_assignment_wins() {
    let conf = parse("meta-product = a\nmeta-product = b\n").unwrap();
    assert_eq!(conf.metadata().product.as_deref(), Some("b"));
}

#[test]
fn function_call_syntax_appends_to_funlist() {
    let conf = parse(
        "file-resource r {\n}\ntask t {\nrequire-uboot-variable(env, a, \"b c\")\non-init {\n\
         funlist = {2, info, hello}\nraw_memset(0, 8, 0xff)\nunknown_fn(1)\n}\n\
         on-init {\nfunlist += {1, fat_touch}\n}\non-resource r {\nraw_write(0,)\n}\n}\n",
    )
    .unwrap();
    let t = &conf.tasks()[0];
    assert_eq!(t.requirements().len(), 1);
    assert_eq!(t.requirements()[0].name(), "require-uboot-variable");
    assert_eq!(t.requirements()[0].args(), ["env", "a", "b c"]);
    let init: Vec<_> = t
        .on_init()
        .iter()
        .map(|f| (f.name(), f.args().to_vec()))
        .collect();
    assert_eq!(
        init,
        [
            ("info", vec!["hello".to_string()]),
            ("raw_memset", vec!["0".into(), "8".into(), "0xff".into()]),
            ("fat_touch", vec![]),
        ]
    );
    assert_eq!(t.on_resource("r").unwrap().functions()[0].args(), ["0"]);
    assert_eq!(
        syntax_err("task t {\non-init {\ninfo(1,2,3,4,5,6,7,8,9,10)\n}\n}\n"),
        (3, "Too many arguments passed to 'info'".into())
    );
}

#[test]
fn malformed_funlists() {
    for bad in [
        "{0, info}",
        "{11, a}",
        "{-1, a}",
        "{x, info}",
        "{3, info, a}",
        "{2}",
    ] {
        let text = format!("task t {{\non-init {{\nfunlist = {bad}\n}}\n}}\n");
        let (line, message) = syntax_err(&text);
        assert_eq!(line, 3, "{bad}");
        assert!(message.starts_with("Unexpected"), "{bad}: {message}");
    }
    let (_, message) = syntax_err("task t {\nreqlist = {5, x}\n}\n");
    assert_eq!(message, "Unexpected error with reqlist");
    // Unknown function names are kept.
    let conf =
        parse("task t {\non-error {\nfunlist = {1, future_fn, 2, raw_write, 0}\n}\n}\n").unwrap();
    assert_eq!(conf.tasks()[0].on_error()[0].name(), "future_fn");
}

#[test]
fn sections_and_titles() {
    assert_eq!(
        syntax_err("task a {\n}\ntask a {\n}\n"),
        (3, "found duplicate title 'a'".into())
    );
    // The same title in different section types is fine.
    assert!(parse("task a {\n}\nmbr a {\n}\n").is_ok());
    assert_eq!(
        syntax_err("task {\n}\n"),
        (1, "missing title for section 'task'".into())
    );
    assert_eq!(
        syntax_err("task t {\non-init x {\n}\n}\n"),
        (2, "missing opening brace for section 'on-init'".into())
    );
    assert_eq!(
        syntax_err("meta-product { }\n"),
        (1, "missing equal sign after option 'meta-product'".into())
    );
    assert_eq!(
        syntax_err("meta-product(a)\n"),
        (1, "missing equal sign after option 'meta-product'".into())
    );
    assert_eq!(
        syntax_err("task t {\n}\n}\n"),
        (3, "unexpected closing brace".into())
    );
    // libconfuse closes sections still open at the end of the input without complaint
    // (recorded from fwup 1.16: `fwup116-cli` case `unclosed-meta`).
    let open = parse("task t {\non-init {\nfunlist = {\"2\", \"info\", \"hi\"}\n").unwrap();
    assert_eq!(open.tasks()[0].name(), "t");
    assert_eq!(open.tasks()[0].on_init().len(), 1);
    assert_eq!(
        syntax_err("meta-product =\n"),
        (2, "premature end of file".into())
    );
    assert_eq!(syntax_err("= x\n"), (1, "unexpected token '='".into()));
    assert_eq!(
        syntax_err("task t x {\n}\n"),
        (1, "unexpected token 'x'".into())
    );
    let deep = "task t {\n".repeat(100);
    assert_eq!(syntax_err(&deep).1, "sections nested too deeply");
}

#[test]
fn unknown_options_are_ignored_unknown_sections_are_not() {
    let conf = parse(
        "future-option = 1\nfuture-list = {a, b}\nfuture-call(a, b)\nmeta-product = p\n\
         task t {\nfuture = x\non-init {\nfuture = y\nfunlist = {1, info}\n}\n}\n",
    )
    .unwrap();
    assert_eq!(conf.metadata().product.as_deref(), Some("p"));
    assert_eq!(conf.tasks()[0].on_init().len(), 1);

    // libconfuse's skipping of an unknown section eats one token too many.
    assert_eq!(
        syntax_err("future \"x\" {\nkey = 1\n}\n"),
        (4, "premature end of file".into())
    );
    assert_eq!(
        syntax_err("future x {\nkey = 1\n}\ntask y {\n}\n"),
        (4, "unexpected token 'y'".into())
    );
    assert_eq!(
        syntax_err("task t {\nfuture { }\n}\n"),
        (4, "premature end of file".into())
    );
}

#[test]
fn replay_recovers_in_odd_cases() {
    // `future { } } }`: the nested frame ends at the second `}`, the outer one at the third.
    let text = "future { } } }\nmeta-product = a\n";
    let vars = Variables::new();
    let mut lexer = Lexer::new(text.as_bytes());
    let mut toks = Vec::new();
    loop {
        let t = lexer.next_token(&vars).unwrap();
        let end = t.kind == TokKind::Eof;
        toks.push(t);
        if end {
            break;
        }
    }
    assert_eq!(replay_ignore(&toks, 0), IgnoreOutcome::Recovered);
    assert!(parse(text).is_err());
}

#[test]
fn define_sets_variables() {
    let conf = parse("define(A, first)\ndefine(A, second)\nmeta-product = ${A}\ndefine!(A, third)\nmeta-misc = \"${A}\"\n")
        .unwrap();
    assert_eq!(conf.metadata().product.as_deref(), Some("first"));
    assert_eq!(conf.metadata().misc.as_deref(), Some("third"));
    // `define` does not override a variable the caller set.
    let conf = parse_with("define(A, mine)\nmeta-product = ${A}\n", &[("A", "caller")]).unwrap();
    assert_eq!(conf.metadata().product.as_deref(), Some("caller"));
    assert_eq!(
        syntax_err("define(A)\n"),
        (1, "'define' requires 2 parameters".into())
    );
    assert!(parse("include(\"other.conf\")\n").is_err());
    assert!(parse("define-eval(A, \"1+1\")\n").is_err());
}

#[test]
fn reserved_metadata() {
    assert!(matches!(
        parse("meta-uuid = x\n"),
        Err(Error::MetaConf(MetaConfError::ReservedMetadata))
    ));
    assert!(matches!(
        parse("meta-nickname = x\n"),
        Err(Error::MetaConf(MetaConfError::ReservedMetadata))
    ));
    let vars = [("FWUP_META_UUID", "u"), ("FWUP_META_NICKNAME", "n")];
    assert!(matches!(
        parse_with("define!(FWUP_META_UUID, x)\n", &vars),
        Err(Error::MetaConf(MetaConfError::ReservedMetadata))
    ));
    assert!(matches!(
        parse_with("define!(FWUP_META_NICKNAME, x)\n", &vars),
        Err(Error::MetaConf(MetaConfError::ReservedMetadata))
    ));
    // Unset by the caller: `define` sets it, which changes it.
    assert!(matches!(
        parse("define(FWUP_META_UUID, x)\n"),
        Err(Error::MetaConf(MetaConfError::ReservedMetadata))
    ));
    // Setting to the same value, or `define` on a set variable, changes nothing.
    assert!(
        parse_with(
            "define(FWUP_META_UUID, x)\ndefine!(FWUP_META_NICKNAME, n)\n",
            &vars
        )
        .is_ok()
    );
    let conf = parse_with(
        "meta-misc = \"${FWUP_META_UUID}/${FWUP_META_NICKNAME}\"\n",
        &vars,
    )
    .unwrap();
    assert_eq!(conf.metadata().misc.as_deref(), Some("u/n"));
}

#[test]
fn require_fwup_version() {
    let conf = parse("require-fwup-version = \"1.0.0\"\n").unwrap();
    assert_eq!(conf.require_fwup_version(), Some("1.0.0"));
    assert_eq!(parse("").unwrap().require_fwup_version(), None);
    match parse("meta-product = a\nrequire-fwup-version = 1.99\n") {
        Err(Error::MetaConf(MetaConfError::RequiresNewerFwup {
            required,
            implemented,
        })) => {
            assert_eq!(required, "1.99");
            assert_eq!(implemented, crate::FWUP_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        syntax_err("require-fwup-version = \"1.0 beta\"\n"),
        (
            1,
            "Invalid version '1.0 beta' passed to require-fwup-version".into()
        )
    );
    // Reported before a later syntax error, as libconfuse reports in file order.
    assert!(matches!(
        parse("require-fwup-version = 9.0.0\n}\n"),
        Err(Error::MetaConf(MetaConfError::RequiresNewerFwup { .. }))
    ));
    assert_eq!(
        syntax_err("}\nrequire-fwup-version = 9.0.0\n").1,
        "unexpected closing brace"
    );
}

#[test]
fn every_section_type() {
    let conf = parse(
        r#"meta-creation-date = "2015-01-01T00:00:00Z"
meta-fwup-version = 0.9
file-resource r {
  length = {10, 20, 30}
  blake2b-256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
  sha256 = abc
  assert-size-lte = 4
  assert-size-gte = 1
  skip-holes = true
  host-path = /tmp/x
  contents = "inline"
}
file-resource bad-hash { blake2b-256 = 1234 }
file-resource upper-hash { blake2b-256 = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff" }
mbr m {
  bootstrap-code = 00ff
  signature = 0x12345678
  include-osip = yes
  osip-major = 2
  osip-minor = 3
  osip-num-pointers = 4
  partition 0 { block-offset = 63 block-count = 100 type = 0xc boot = true expand = false }
  partition 1 { block-offset = 200 expand = true }
  osii 0 { os-major = 1 os-minor = 2 start-block-offset = 3 ddr-load-address = 0x10 entry-point = 5 image-size-blocks = 6 attribute = 7 }
}
gpt g {
  guid = "b443fbeb-2c93-481b-88b3-0ecb0aeba911"
  partition 0 { block-offset = 64 block-count = 256 type = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" guid = "5278721d-0089-4768-85df-b8f1b97e6684" name = efi flags = 0x8000000000000000 boot = true expand = true }
}
uboot-environment env { block-offset = 16 block-count = 16 block-offset-redund = 32 }
task t {
  require-partition1-offset = 63
  on-resource r {
    verify-on-the-fly = true
    delta-source-raw-offset = 1
    delta-source-raw-count = 2
    delta-source-raw-options = "cipher=x"
    delta-source-fat-offset = 3
    delta-source-fat-path = "/a"
    funlist = {2, raw_write, 0}
  }
}
"#,
    )
    .unwrap();
    assert_eq!(
        conf.metadata().creation_date.as_deref(),
        Some("2015-01-01T00:00:00Z")
    );
    assert_eq!(conf.metadata().fwup_version.as_deref(), Some("0.9"));
    let r = conf.resource("r").unwrap();
    assert_eq!(r.data_len(), 40);
    assert_eq!(r.total_len(), 60);
    let hash = r.blake2b_256().unwrap();
    assert_eq!(hash[0], 0x00);
    assert_eq!(hash[31], 0xff);
    assert_eq!(r.sha256(), Some("abc"));
    assert_eq!(
        (r.assert_size_lte(), r.assert_size_gte()),
        (Some(4), Some(1))
    );
    assert!(r.skip_holes());
    assert_eq!(
        (r.host_path(), r.contents()),
        (Some("/tmp/x"), Some("inline"))
    );
    let bad = conf.resource("bad-hash").unwrap();
    assert_eq!(bad.blake2b_256(), None);
    assert_eq!(bad.blake2b_256_hex(), Some("1234"));
    assert_eq!(bad.assert_size_lte(), None);
    assert_eq!(conf.resource("upper-hash").unwrap().blake2b_256(), None);

    let m = &conf.mbrs()[0];
    assert_eq!(
        (m.name(), m.bootstrap_code(), m.signature()),
        ("m", Some("00ff"), Some("0x12345678"))
    );
    assert!(m.include_osip());
    assert_eq!(
        (m.osip_major(), m.osip_minor(), m.osip_num_pointers()),
        (2, 3, 4)
    );
    let p0 = &m.partitions()[0];
    assert_eq!(
        (
            p0.title(),
            p0.block_offset(),
            p0.block_count(),
            p0.partition_type()
        ),
        ("0", Some("63"), 100, 12)
    );
    assert!(p0.boot() && !p0.expand());
    let p1 = &m.partitions()[1];
    assert_eq!(
        (p1.block_count(), p1.partition_type(), p1.expand()),
        (i64::from(i32::MAX), -1, true)
    );
    let o = &m.osiis()[0];
    assert_eq!(
        [
            o.os_major(),
            o.os_minor(),
            o.start_block_offset(),
            o.ddr_load_address(),
            o.entry_point(),
            o.image_size_blocks(),
            o.attribute()
        ],
        [1, 2, 3, 16, 5, 6, 7]
    );
    assert_eq!(o.title(), "0");

    let g = &conf.gpts()[0];
    assert_eq!(
        (g.name(), g.guid()),
        ("g", Some("b443fbeb-2c93-481b-88b3-0ecb0aeba911"))
    );
    let gp = &g.partitions()[0];
    assert_eq!(
        (
            gp.title(),
            gp.block_offset(),
            gp.block_count(),
            gp.name(),
            gp.flags()
        ),
        ("0", Some("64"), 256, "efi", "0x8000000000000000")
    );
    assert_eq!(
        gp.partition_type(),
        Some("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
    );
    assert_eq!(gp.guid(), Some("5278721d-0089-4768-85df-b8f1b97e6684"));
    assert!(gp.boot() && gp.expand());

    let u = &conf.uboot_environments()[0];
    assert_eq!(
        (
            u.name(),
            u.block_offset(),
            u.block_count(),
            u.block_offset_redund()
        ),
        ("env", Some("16"), 16, Some("32"))
    );

    let t = &conf.tasks()[0];
    assert_eq!(t.require_partition1_offset(), Some(63));
    let onr = &t.on_resources()[0];
    assert_eq!(onr.resource(), "r");
    assert!(onr.verify_on_the_fly());
    assert_eq!(onr.delta_source_raw_offset(), Some("1"));
    assert_eq!(onr.delta_source_raw_count(), Some(2));
    assert_eq!(onr.delta_source_raw_options(), Some("cipher=x"));
    assert_eq!(onr.delta_source_fat_offset(), Some("3"));
    assert_eq!(onr.delta_source_fat_path(), Some("/a"));
    assert_eq!(onr.functions()[0].name(), "raw_write");
}

#[test]
fn defaults() {
    let conf =
        parse("task t {\n}\ngpt g {\npartition 0 {\n}\n}\nuboot-environment e {\n}\n").unwrap();
    let t = &conf.tasks()[0];
    assert_eq!(t.require_partition1_offset(), None);
    assert!(!t.require_unmounted_destination() && !t.verify_on_the_fly());
    assert!(t.on_init().is_empty() && t.on_finish().is_empty() && t.on_error().is_empty());
    assert!(t.requirements().is_empty() && t.on_resources().is_empty());
    let gp = &conf.gpts()[0].partitions()[0];
    assert_eq!((gp.flags(), gp.name(), gp.guid()), ("0", "", None));
    assert_eq!(
        conf.uboot_environments()[0].block_count(),
        i64::from(i32::MAX)
    );
    let empty = parse("# Empty file\n").unwrap();
    assert!(empty.resources().is_empty() && empty.tasks().is_empty());
    assert_eq!(empty.metadata(), &Metadata::default());
}

#[test]
fn tree_keeps_order_and_lines() {
    let mut hook = |_: &[&str], _: &syntax::Call, _: &mut Variables| Ok(syntax::HookAction::Keep);
    let doc = syntax::parse(
        b"a = 1\nb {\n c = {x,\ny}\n}\nf(1)\n",
        Variables::new(),
        &mut hook,
    );
    assert!(doc.error.is_none());
    let items = &doc.root.items;
    assert_eq!(items.len(), 3);
    let Item::Section(b) = &items[1] else {
        panic!()
    };
    let Item::Option(c) = &b.items[0] else {
        panic!()
    };
    let Value::List { items: values, .. } = &c.value else {
        panic!()
    };
    assert_eq!((values[0].line, values[1].line), (3, 4));
    assert!(matches!(&items[2], Item::Call(call) if call.args == ["1"] && call.close_line == 6));
}
