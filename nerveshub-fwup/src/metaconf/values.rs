//! Value conversions exactly as fwup's C code does them: `strtol(…, 0)` for libconfuse
//! integers, `strtoul` for funlist argument counts, libconfuse booleans, and the
//! `semver.c` comparison behind `require-fwup-version`.

use std::cmp::Ordering;

/// Result of a C `strto*` call: the value, how many bytes were used, and whether it
/// overflowed.
struct Parsed {
    /// Magnitude (saturated at `u64::MAX` on overflow).
    magnitude: u64,
    /// Was a `-` sign given?
    negative: bool,
    /// Bytes consumed (0 when no digits were found).
    consumed: usize,
    /// The digits did not fit into 64 bits.
    overflow: bool,
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The common part of `strtol`/`strtoul` with base 0 (or a fixed base 10).
fn strto(s: &[u8], base0: bool) -> Parsed {
    let mut i = s.iter().take_while(|&&b| is_c_space(b)).count();
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let mut radix = 10u32;
    if base0 && s.get(i) == Some(&b'0') {
        if matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut magnitude = 0u64;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&b| char::from(b).to_digit(radix)) {
        match magnitude
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => magnitude = m,
            None => {
                overflow = true;
                magnitude = u64::MAX;
            }
        }
        i += 1;
    }
    let consumed = if i == start { 0 } else { i };
    Parsed {
        magnitude,
        negative,
        consumed,
        overflow,
    }
}

/// Why a libconfuse integer option value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Trailing garbage (`invalid integer value for option '…'`).
    Invalid,
    /// Does not fit a C `long` (`integer value for option '…' is out of range`).
    OutOfRange,
}

/// libconfuse's integer parsing: `strtol(value, &end, 0)` on a 64-bit `long`, and the
/// whole string must be used. Like C, an empty string is 0.
pub(crate) fn parse_long(s: &str) -> Result<i64, IntError> {
    let bytes = s.as_bytes();
    let p = strto(bytes, true);
    // With no digits strtol consumes nothing; then any non-empty input is garbage.
    if p.consumed < bytes.len() {
        return Err(IntError::Invalid);
    }
    if p.overflow {
        return Err(IntError::OutOfRange);
    }
    if p.negative {
        if p.magnitude > 1u64 << 63 {
            return Err(IntError::OutOfRange);
        }
        Ok(0i64.wrapping_sub_unsigned(p.magnitude))
    } else {
        i64::try_from(p.magnitude).map_err(|_| IntError::OutOfRange)
    }
}

/// Result of C `strtoul(s, &end, 0)` on a 64-bit `unsigned long` (also `strtoull`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CUlong {
    /// The value as C returns it: negated modulo 2⁶⁴ after a `-`, `u64::MAX` on overflow.
    pub(crate) value: u64,
    #[cfg(any(feature = "create", feature = "apply"))]
    /// The whole string was used (`*endptr == '\0'`).
    pub(crate) complete: bool,
    #[cfg(any(feature = "create", feature = "apply"))]
    /// The digits did not fit (`errno == ERANGE`).
    pub(crate) overflow: bool,
}

/// C `strtoul(s, &end, 0)`: fwup reads section titles, GPT flags, block offsets and funlist
/// argument counts this way.
pub(crate) fn strtoul(s: &str) -> CUlong {
    let p = strto(s.as_bytes(), true);
    let value = if p.overflow {
        u64::MAX
    } else if p.negative {
        p.magnitude.wrapping_neg()
    } else {
        p.magnitude
    };
    CUlong {
        value,
        #[cfg(any(feature = "create", feature = "apply"))]
        complete: if p.consumed > 0 {
            p.consumed == s.len()
        } else {
            s.is_empty()
        },
        #[cfg(any(feature = "create", feature = "apply"))]
        overflow: p.overflow,
    }
}

#[cfg(feature = "create")]
/// `(int) strtol(s, NULL, 0)`: a prefix is enough (no digits gives 0), overflow saturates
/// at the 64-bit `long` limits, and the result is truncated to a C `int` (how fwup reads
/// `raw_memset`'s fill value and `require-partition-offset`'s partition number).
pub(crate) fn strtol_int(s: &str) -> i32 {
    let p = strto(s.as_bytes(), true);
    let long = if p.negative {
        if p.overflow || p.magnitude > 1u64 << 63 {
            i64::MIN
        } else {
            0i64.wrapping_sub_unsigned(p.magnitude)
        }
    } else {
        i64::try_from(p.magnitude).unwrap_or(i64::MAX)
    };
    // Truncation to `int` is the point here.

    long as i32
}

/// `(int) strtoul(s, NULL, 0)` as fwup uses it to read the argument count of a funlist
/// entry: a prefix is enough, a `-` negates modulo 2⁶⁴, overflow saturates, and the result
/// is truncated to a C `int`.
pub(crate) fn funlist_argc(s: &str) -> i32 {
    // Truncation to `int` is the point here.

    strtoul(s).value as u32 as i32
}

/// libconfuse booleans: true/yes/on and false/no/off, in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 3] = ["true", "on", "yes"];
    const FALSE: [&str; 3] = ["false", "off", "no"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

/// A version as fwup's bundled `semver.c` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    major: i32,
    minor: i32,
    patch: i32,
    prerelease: Option<String>,
}

/// C `strtol(s, &end, 10)` truncated to `int`, returning the value and bytes used.
fn strtol10_int(s: &[u8]) -> (i32, usize) {
    let p = strto(s, false);
    let value = if p.overflow {
        if p.negative { i64::MIN } else { i64::MAX }
    } else if p.negative {
        0i64.wrapping_sub_unsigned(p.magnitude)
    } else {
        i64::try_from(p.magnitude).unwrap_or(i64::MAX)
    };
    let truncated = value as i32;
    (truncated, p.consumed)
}

/// `semver_parse`: lenient (`1`, `1.2` and `1.2.3.4` are accepted), characters limited to
/// ASCII letters, digits and `.-+`, at most 255 bytes.
fn parse_semver(s: &str) -> Option<SemVer> {
    if s.len() > 255
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
    {
        return None;
    }
    let without_meta = s.split_once('+').map_or(s, |(v, _)| v);
    let (version, prerelease) = match without_meta.split_once('-') {
        Some((v, pre)) => (v, Some(pre.to_string())),
        None => (without_meta, None),
    };
    let mut parts = [0i32; 3];
    for (index, slice) in version.split('.').take(4).enumerate() {
        if slice.len() > 50 {
            return None;
        }
        let (value, consumed) = strtol10_int(slice.as_bytes());
        // semver.c accepts the slice when strtol stopped at its end (an empty slice is 0).
        if consumed != slice.len() && !(consumed == 0 && slice.is_empty()) {
            return None;
        }
        if let Some(part) = parts.get_mut(index) {
            *part = value;
        }
    }
    Some(SemVer {
        major: parts[0],
        minor: parts[1],
        patch: parts[2],
        prerelease,
    })
}

/// semver.c's prerelease ordering: none sorts after any prerelease; dot-separated parts
/// compare numerically when both are numbers, numbers before words, words bytewise.
fn compare_prerelease(x: Option<&str>, y: Option<&str>) -> Ordering {
    let (x, y) = match (x, y) {
        (None, None) => return Ordering::Equal,
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        (Some(x), Some(y)) => (x, y),
    };
    let mut xs = x.split('.');
    let mut ys = y.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => {
                let (an, ac) = strtol10_int(a.as_bytes());
                let (bn, bc) = strtol10_int(b.as_bytes());
                let a_num = ac == a.len();
                let b_num = bc == b.len();
                let ord = match (a_num, b_num) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (true, true) => an.cmp(&bn),
                    (false, false) => a.as_bytes().cmp(b.as_bytes()),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// Outcome of checking `require-fwup-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionCheck {
    /// This fwup is new enough.
    Satisfied,
    /// The archive wants a newer fwup.
    TooNew,
    /// The value is not a version semver.c accepts.
    Invalid,
}

/// `semver_lte(required, implemented)` as fwup's `require-fwup-version` validator uses it.
pub(crate) fn check_required_version(required: &str, implemented: &str) -> VersionCheck {
    let (Some(req), Some(cur)) = (parse_semver(required), parse_semver(implemented)) else {
        return VersionCheck::Invalid;
    };
    let ord = (req.major, req.minor, req.patch)
        .cmp(&(cur.major, cur.minor, cur.patch))
        .then_with(|| compare_prerelease(req.prerelease.as_deref(), cur.prerelease.as_deref()));
    if ord == Ordering::Greater {
        VersionCheck::TooNew
    } else {
        VersionCheck::Satisfied
    }
}
