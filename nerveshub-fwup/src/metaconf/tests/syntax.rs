//! Lexer and value-conversion tests: escapes, comments, words, variables, integers,
//! booleans, versions.

use super::super::lexer::TokKind;
use super::super::values::{
    VersionCheck, check_required_version, funlist_argc, parse_bool, parse_long,
};
use super::*;

// ---- lexer ---------------------------------------------------------------------------------

#[test]
fn double_quoted_escapes() {
    assert_eq!(misc(r#""a\nb""#).unwrap(), "a\nb");
    assert_eq!(
        misc(r#""\t\r\b\f\a\e\v""#).unwrap(),
        "\t\r\u{8}\u{c}\u{7}\u{1b}\u{b}"
    );
    assert_eq!(misc(r#""q\"q\\""#).unwrap(), "q\"q\\");
    assert_eq!(misc(r#""\101\60\01a""#).unwrap(), "A0\u{1}a");
    assert_eq!(misc(r#""\x41\x4a\x4Bz\xg""#).unwrap(), "AJKzxg");
    assert_eq!(misc(r#""\q\$\{""#).unwrap(), "q${");
    assert_eq!(misc("\"one\\\ntwo\"").unwrap(), "onetwo");
    assert_eq!(misc("\"raw\nnewline\"").unwrap(), "raw\nnewline");
    // A NUL ends the C string.
    assert_eq!(misc(r#""ab\0cd""#).unwrap(), "ab");
    assert_eq!(misc(r#""ab\x00cd""#).unwrap(), "ab");
}

#[test]
fn bad_escapes_are_errors() {
    assert_eq!(
        syntax_err("meta-misc = \"\\8\"\n"),
        (1, "bad escape sequence '\\8'".into())
    );
    assert_eq!(
        syntax_err("\nmeta-misc = \"\\0129\"\n"),
        (2, "bad escape sequence '\\0129'".into())
    );
    assert_eq!(
        syntax_err("meta-misc = \"\\777\"\n"),
        (1, "invalid octal number '\\777'".into())
    );
}

#[test]
fn single_quoted_strings() {
    assert_eq!(misc(r"'a\'b\\c\nd ${X}'").unwrap(), r"a'b\c\nd ${X}");
    assert_eq!(misc("'one\\\ntwo'").unwrap(), "onetwo");
    assert_eq!(
        syntax_err("meta-misc = 'open\n\n"),
        (3, "unterminated string constant".into())
    );
}

#[test]
fn unterminated_double_quote_ends_input() {
    // libconfuse has no end-of-file rule inside "…": the input just ends.
    assert_eq!(
        syntax_err("meta-misc = \"open\n\n"),
        (3, "premature end of file".into())
    );
    assert!(parse("meta-product = x\n\"dangling").is_ok());
}

#[test]
fn comments() {
    let conf = parse(
        "# hash comment\n// slash comment\n/* block\n comment */ meta-product = a # trailing\n\
         meta-version = b // trailing\nmeta-author = /* inline */ c\n#### many\n//// many\n",
    )
    .unwrap();
    let m = conf.metadata();
    assert_eq!(m.product.as_deref(), Some("a"));
    assert_eq!(m.version.as_deref(), Some("b"));
    assert_eq!(m.author.as_deref(), Some("c"));
    // Comments only start at a token: `//` inside a word is part of it.
    assert_eq!(misc("http://x/y").unwrap(), "http://x/y");
    assert_eq!(misc("a#b").unwrap(), "a");
    // An unterminated block comment runs to the end.
    assert!(parse("meta-product = a /* never closed\nmeta-version = b").is_ok());
    // Line numbers count the lines inside block comments.
    assert_eq!(syntax_err("/*\n\n*/ }").0, 3);
}

#[test]
fn words() {
    assert_eq!(
        tokens("a.b-c/d:e!f$g a*b x+y + z\r\n"),
        vec![
            (TokKind::Str, "a.b-c/d:e!f$g".into()),
            (TokKind::Str, "a".into()),
            (TokKind::Str, "b".into()),
            (TokKind::Str, "x".into()),
            (TokKind::Str, "y".into()),
            (TokKind::Str, "z".into()),
        ]
    );
    assert_eq!(
        tokens("a+=b={c,}(d)"),
        vec![
            (TokKind::Str, "a".into()),
            (TokKind::PlusEquals, "+=".into()),
            (TokKind::Str, "b".into()),
            (TokKind::Equals, "=".into()),
            (TokKind::LBrace, "{".into()),
            (TokKind::Str, "c".into()),
            (TokKind::Comma, ",".into()),
            (TokKind::RBrace, "}".into()),
            (TokKind::LParen, "(".into()),
            (TokKind::Str, "d".into()),
            (TokKind::RParen, ")".into()),
        ]
    );
}

#[test]
fn variables() {
    let vars = [("A", "alpha"), ("EMPTY", ""), ("SP", "with space")];
    assert_eq!(misc_with("${A}", &vars).unwrap(), "alpha");
    assert_eq!(misc_with("${SP}", &vars).unwrap(), "with space");
    assert_eq!(misc_with("${UNSET}", &vars).unwrap(), "");
    assert_eq!(
        misc_with("${UNSET:-fall back}", &vars).unwrap(),
        "fall back"
    );
    assert_eq!(misc_with("${A:-ignored}", &vars).unwrap(), "alpha");
    assert_eq!(misc_with("${EMPTY:-ignored}", &vars).unwrap(), "");
    assert_eq!(misc_with("${A:x}", &vars).unwrap(), "");
    assert_eq!(
        misc_with(r#""<${A}|${UNSET}|${UNSET:-d}|\${A}>""#, &vars).unwrap(),
        "<alpha||d|${A}>"
    );
    // `${A}b` is two tokens: `meta-misc = alpha` then an unknown option `b` → error.
    assert!(parse_with("meta-misc = ${A}b\n", &vars).is_err());
    // A word may contain a `$` that starts no substitution; `${` inside a word is not one.
    assert_eq!(misc_with("a$b", &vars).unwrap(), "a$b");
    assert!(parse_with("meta-misc = a${A}\n", &vars).is_err());
    // Substituted text is not scanned again.
    assert_eq!(
        misc_with("${Q}", &[("Q", "\"x\" { }")]).unwrap(),
        "\"x\" { }"
    );
}

#[test]
fn quoted_titles_and_values() {
    let conf = parse(
        "file-resource \"with space\" {\n}\nfile-resource 'single' {\n}\nfile-resource bare {\n}\n",
    )
    .unwrap();
    let names: Vec<_> = conf.resources().iter().map(Resource::name).collect();
    assert_eq!(names, ["with space", "single", "bare"]);
}

// ---- values --------------------------------------------------------------------------------

#[test]
fn integers_like_strtol() {
    assert_eq!(parse_long("10"), Ok(10));
    assert_eq!(parse_long("0x1f"), Ok(31));
    assert_eq!(parse_long("0X1F"), Ok(31));
    assert_eq!(parse_long("010"), Ok(8));
    assert_eq!(parse_long("-12"), Ok(-12));
    assert_eq!(parse_long("+12"), Ok(12));
    assert_eq!(parse_long(" 7"), Ok(7));
    assert_eq!(parse_long(""), Ok(0));
    assert_eq!(parse_long("0"), Ok(0));
    assert_eq!(parse_long("-9223372036854775808"), Ok(i64::MIN));
    assert!(parse_long("9223372036854775808").is_err());
    assert!(parse_long("99999999999999999999999").is_err());
    assert!(parse_long("08").is_err());
    assert!(parse_long("0x").is_err());
    assert!(parse_long("12k").is_err());
    assert!(parse_long(" ").is_err());
    assert!(parse_long("-").is_err());

    let conf = parse("block-cache-size-mb = 0x10\n").unwrap();
    assert_eq!(conf.block_cache_size_mb(), 16);
    assert_eq!(parse("").unwrap().block_cache_size_mb(), 8);
    assert_eq!(
        syntax_err("\nblock-cache-size-mb = 12k\n"),
        (
            2,
            "invalid integer value for option 'block-cache-size-mb'".into()
        )
    );
    assert_eq!(
        syntax_err("block-cache-size-mb = 99999999999999999999\n"),
        (
            1,
            "integer value for option 'block-cache-size-mb' is out of range".into()
        )
    );
}

#[test]
fn booleans() {
    for t in ["true", "TRUE", "yes", "Yes", "on", "ON"] {
        assert_eq!(parse_bool(t), Some(true), "{t}");
    }
    for f in ["false", "False", "no", "NO", "off", "oFf"] {
        assert_eq!(parse_bool(f), Some(false), "{f}");
    }
    assert_eq!(parse_bool("1"), None);
    assert_eq!(parse_bool(""), None);
    let conf = parse("task t {\nverify-on-the-fly = YES\nrequire-unmounted-destination = on\n}\n")
        .unwrap();
    assert!(conf.tasks()[0].verify_on_the_fly());
    assert!(conf.tasks()[0].require_unmounted_destination());
    assert_eq!(
        syntax_err("task t {\nverify-on-the-fly = 1\n}\n"),
        (
            2,
            "invalid boolean value for option 'verify-on-the-fly'".into()
        )
    );
}

#[test]
fn funlist_argc_like_strtoul() {
    assert_eq!(funlist_argc("2"), 2);
    assert_eq!(funlist_argc("0x3"), 3);
    assert_eq!(funlist_argc("2abc"), 2);
    assert_eq!(funlist_argc("abc"), 0);
    assert_eq!(funlist_argc("-1"), -1);
    assert_eq!(funlist_argc("4294967298"), 2);
    assert_eq!(funlist_argc("99999999999999999999999"), -1);
}

#[test]
fn semver_like_fwup() {
    use VersionCheck::*;
    assert_eq!(check_required_version("0", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.16.0", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.16", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.16.0-rc.1", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.16.0+build", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.15.9", "1.16.0"), Satisfied);
    assert_eq!(check_required_version("1.16.1", "1.16.0"), TooNew);
    assert_eq!(check_required_version("1.17", "1.16.0"), TooNew);
    assert_eq!(check_required_version("2", "1.16.0"), TooNew);
    assert_eq!(check_required_version("99.0.0", "1.16.0"), TooNew);
    assert_eq!(check_required_version("1.x.0", "1.16.0"), Invalid);
    assert_eq!(check_required_version("1.0 ", "1.16.0"), Invalid);
}
