//! Version requirements with Elixir's `Version.match?/2` semantics, as NervesHub stores them
//! in a deployment's `conditions.version`: `~>`, `==`, `!=`, `>`, `>=`, `<`, `<=` (a bare
//! version means `==`), combined with `and` / `or` (`and` binds tighter), pre-releases
//! allowed (Elixir's default `allow_pre: true`).
//!
//! Elixir's rules kept here, because a requirement that matches differently would move devices
//! to other releases than NervesHub does:
//! - only `~>` takes a partial version (`~> 2.0`); every other operator needs `x.y.z`;
//! - `~> x.y` means `>= x.y.0 and < (x+1).0.0-0`, `~> x.y.z` means `>= x.y.z and < x.(y+1).0-0`:
//!   the upper bound excludes the next series' pre-releases;
//! - comparison is SemVer precedence (build metadata ignored).

use std::cmp::Ordering;

use semver::{BuildMetadata, Prerelease, Version};

/// A parsed requirement; [`Requirement::matches`] is Elixir's `Version.match?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    /// Alternatives (`or`), each a conjunction (`and`) of comparisons.
    any_of: Vec<Vec<Comparison>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparison {
    op: Op,
    version: Version,
}

/// Why a requirement could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version requirement: {0}")]
pub(crate) struct InvalidRequirement(String);

/// The longest requirement accepted (they are typed by people).
const MAX_REQUIREMENT_LEN: usize = 1024;

impl Requirement {
    /// Parses an Elixir requirement such as `~> 2.0 and != 2.1.3 or >= 3.0.0-rc.1`.
    pub(crate) fn parse(text: &str) -> Result<Requirement, InvalidRequirement> {
        if text.len() > MAX_REQUIREMENT_LEN {
            return Err(InvalidRequirement("too long".into()));
        }
        let tokens: Vec<&str> = text.split_whitespace().collect();
        if tokens.is_empty() {
            return Err(InvalidRequirement("empty".into()));
        }
        let mut any_of = vec![Vec::new()];
        let mut i = 0;
        loop {
            // One clause: [op] version
            let (op, version_text) = match tokens.get(i) {
                Some(&t) if is_operator(t) => {
                    let v = tokens
                        .get(i + 1)
                        .ok_or_else(|| InvalidRequirement(format!("{t} needs a version")))?;
                    i += 2;
                    (t, *v)
                }
                Some(&t) => {
                    // Operators may be written without a space: `>=1.0.0`.
                    let split = ["~>", "==", "!=", ">=", "<=", ">", "<"]
                        .iter()
                        .find_map(|op| t.strip_prefix(op).map(|rest| (*op, rest)));
                    i += 1;
                    match split {
                        Some((op, rest)) if !rest.is_empty() => (op, rest),
                        Some((op, _)) => {
                            return Err(InvalidRequirement(format!("{op} needs a version")));
                        }
                        None => ("==", t),
                    }
                }
                None => return Err(InvalidRequirement("ends with a connective".into())),
            };
            let clause = any_of.last_mut().expect("never empty");
            clause.extend(comparisons(op, version_text)?);
            match tokens.get(i) {
                None => break,
                Some(&"and") => i += 1,
                Some(&"or") => {
                    any_of.push(Vec::new());
                    i += 1;
                }
                Some(other) => {
                    return Err(InvalidRequirement(format!("unexpected {other:?}")));
                }
            }
        }
        Ok(Requirement { any_of })
    }

    /// Whether `version` satisfies the requirement.
    pub(crate) fn matches(&self, version: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.holds(version)))
    }
}

fn is_operator(token: &str) -> bool {
    matches!(token, "~>" | "==" | "!=" | ">" | ">=" | "<" | "<=")
}

/// The comparisons one `op version` clause stands for.
fn comparisons(op: &str, text: &str) -> Result<Vec<Comparison>, InvalidRequirement> {
    let simple = |op| -> Result<Vec<Comparison>, InvalidRequirement> {
        Ok(vec![Comparison {
            op,
            version: parse_version(text)
                .ok_or_else(|| InvalidRequirement(format!("{text:?} is not a version")))?,
        }])
    };
    match op {
        "==" => simple(Op::Eq),
        "!=" => simple(Op::Ne),
        ">" => simple(Op::Gt),
        ">=" => simple(Op::Ge),
        "<" => simple(Op::Lt),
        "<=" => simple(Op::Le),
        "~>" => approximately(text),
        _ => Err(InvalidRequirement(format!("unknown operator {op}"))),
    }
}

/// `~> x.y[.z][-pre]`.
fn approximately(text: &str) -> Result<Vec<Comparison>, InvalidRequirement> {
    let bad = || InvalidRequirement(format!("{text:?} is not a version for ~>"));
    if let Some(full) = parse_version(text) {
        let upper = Version {
            major: full.major,
            minor: full.minor.checked_add(1).ok_or_else(bad)?,
            patch: 0,
            pre: Prerelease::new("0").map_err(|_| bad())?,
            build: BuildMetadata::EMPTY,
        };
        return Ok(vec![
            Comparison {
                op: Op::Ge,
                version: full,
            },
            Comparison {
                op: Op::Lt,
                version: upper,
            },
        ]);
    }
    // x.y, possibly with a pre-release: `~> 2.0-beta` is `>= 2.0.0-beta and < 3.0.0-0`.
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    let (major, minor) = core.split_once('.').ok_or_else(bad)?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
    };
    let (major, minor) = (
        number(major).ok_or_else(bad)?,
        number(minor).ok_or_else(bad)?,
    );
    let lower = Version {
        major,
        minor,
        patch: 0,
        pre: match pre {
            Some(p) => Prerelease::new(p).map_err(|_| bad())?,
            None => Prerelease::EMPTY,
        },
        build: BuildMetadata::EMPTY,
    };
    let upper = Version {
        major: major.checked_add(1).ok_or_else(bad)?,
        minor: 0,
        patch: 0,
        pre: Prerelease::new("0").map_err(|_| bad())?,
        build: BuildMetadata::EMPTY,
    };
    Ok(vec![
        Comparison {
            op: Op::Ge,
            version: lower,
        },
        Comparison {
            op: Op::Lt,
            version: upper,
        },
    ])
}

impl Comparison {
    fn holds(&self, version: &Version) -> bool {
        let order = precedence(version, &self.version);
        match self.op {
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
        }
    }
}

/// A strict SemVer 2.0 version (what Elixir's `Version.parse` accepts), or `None`.
pub(crate) fn parse_version(text: &str) -> Option<Version> {
    Version::parse(text.trim()).ok()
}

/// SemVer precedence: build metadata does not count.
pub(crate) fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// Whether the version text `version` satisfies the requirement text `requirement`; an empty
/// requirement matches anything, a version that is not SemVer matches only the empty one.
pub(crate) fn matches(requirement: &str, version: Option<&str>) -> bool {
    if requirement.trim().is_empty() {
        return true;
    }
    let (Ok(req), Some(version)) = (
        Requirement::parse(requirement),
        version.and_then(parse_version),
    ) else {
        return false;
    };
    req.matches(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(req: &str, version: &str) -> bool {
        Requirement::parse(req)
            .unwrap()
            .matches(&parse_version(version).unwrap())
    }

    /// Cases checked against Elixir's `Version.match?/2` documentation and implementation.
    #[test]
    fn elixir_match_table() {
        let table: &[(&str, &str, bool)] = &[
            ("1.0.0", "1.0.0", true),
            ("== 1.0.0", "1.0.0", true),
            ("== 1.0.0", "1.0.1", false),
            ("!= 1.0.0", "1.0.1", true),
            (">= 1.0.0", "1.0.0", true),
            (">= 1.0.0", "0.9.9", false),
            ("> 1.0.0", "1.0.0", false),
            ("< 1.0.0", "1.0.0-rc.1", true),
            ("<= 1.0.0", "1.0.0+build.7", true),
            ("== 1.0.0", "1.0.0+build.7", true),
            ("~> 2.0", "2.0.0", true),
            ("~> 2.0", "2.9.9", true),
            ("~> 2.0", "3.0.0", false),
            ("~> 2.0", "3.0.0-rc.0", false),
            ("~> 2.0", "2.0.0-rc.1", false),
            ("~> 2.0", "1.9.9", false),
            ("~> 2.1.2", "2.1.2", true),
            ("~> 2.1.2", "2.1.9", true),
            ("~> 2.1.2", "2.2.0", false),
            ("~> 2.1.2", "2.2.0-dev", false),
            ("~> 2.1.2", "2.1.1", false),
            ("~> 2.1-beta", "2.1.0-beta", true),
            ("~> 2.1-beta", "2.5.0", true),
            ("~> 2.1.3-dev", "2.1.3-dev.1", true),
            ("~> 2.1.3-dev", "2.1.2", false),
            ("~> 0.1", "0.9.0", true),
            ("~> 0.1.0", "0.2.0", false),
            // Pre-releases are allowed (allow_pre: true).
            (">= 1.0.0-rc.1", "1.0.0-rc.2", true),
            (">= 1.0.0", "1.1.0-rc.1", true),
            ("> 1.0.0-alpha", "1.0.0-alpha.1", true),
            ("< 1.0.0-beta", "1.0.0-alpha.beta", true),
            // and binds tighter than or.
            (">= 1.0.0 and < 2.0.0", "1.5.0", true),
            (">= 1.0.0 and < 2.0.0", "2.0.0", false),
            ("== 1.0.0 or == 2.0.0", "2.0.0", true),
            ("== 3.0.0 or >= 1.0.0 and < 2.0.0", "1.2.0", true),
            ("== 3.0.0 or >= 1.0.0 and < 2.0.0", "2.2.0", false),
            ("~> 1.0 and != 1.2.3 or == 5.0.0", "1.2.3", false),
            ("~> 1.0 and != 1.2.3 or == 5.0.0", "5.0.0", true),
            (">=1.0.0", "1.0.0", true),
        ];
        for (req, version, expected) in table {
            assert_eq!(m(req, version), *expected, "{version} against {req}");
        }
    }

    #[test]
    fn invalid_requirements_are_refused() {
        for req in [
            "",
            ">= 1.0",
            "== 1",
            "~> 2",
            "~> x.y",
            ">=",
            "1.0.0 and",
            "1.0.0 or or 2.0.0",
            "1.0.0 2.0.0",
            "~> 01.2",
            "=> 1.0.0",
            ">= 1.0.0 nand 2.0.0",
        ] {
            assert!(
                Requirement::parse(req).is_err(),
                "{req:?} should be refused"
            );
        }
        assert!(Requirement::parse(&"1.0.0 or ".repeat(200)).is_err());
    }

    #[test]
    fn empty_requirement_matches_anything_and_non_semver_nothing_else() {
        assert!(matches("", Some("whatever")));
        assert!(matches("  ", None));
        assert!(!matches(">= 1.0.0", Some("1.0")));
        assert!(!matches(">= 1.0.0", None));
        assert!(!matches("not a requirement", Some("1.0.0")));
        assert!(matches("~> 1.0", Some("1.4.0")));
    }

    proptest::proptest! {
        /// Any text: parsing never panics.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,64}") {
            let _ = Requirement::parse(&text);
        }

        /// `~> a.b.c` is exactly `>= a.b.c and < a.(b+1).0` for release versions, and `==`
        /// agrees with precedence equality.
        #[test]
        fn approximate_is_a_range(a in 0u64..5, b in 0u64..5, c in 0u64..5,
                                  x in 0u64..6, y in 0u64..6, z in 0u64..6) {
            let version = Version::new(x, y, z);
            let req = format!("~> {a}.{b}.{c}");
            let expected = (x, y, z) >= (a, b, c) && (x, y) < (a, b + 1) && x == a;
            proptest::prop_assert_eq!(m(&req, &version.to_string()), expected);
            let eq = format!("== {a}.{b}.{c}");
            proptest::prop_assert_eq!(m(&eq, &version.to_string()), (a, b, c) == (x, y, z));
            let both = format!(">= {a}.{b}.{c} and < {x}.{y}.{z}");
            proptest::prop_assert_eq!(
                m(&both, &version.to_string()),
                false,
                "a version is never below itself"
            );
        }
    }
}
