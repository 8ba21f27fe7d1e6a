//! Unix seconds to a UTC calendar date and time, for `meta-creation-date` and ZIP DOS times,
//! and back for fwup's `NOW` variable.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) hour: i64,
    pub(crate) minute: i64,
    pub(crate) second: i64,
}

impl CivilTime {
    /// The UTC calendar time of `unix` seconds (proleptic Gregorian calendar).
    pub(crate) fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
        }
    }
}

#[cfg(feature = "create")]
/// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(feature = "create")]
/// glibc `strptime(s, "%Y-%m-%dT%H:%M:%SZ")` followed by `timegm`, as fwup reads its
/// `NOW` variable: spaces may precede each number, `%Y` takes up to 4 digits and the other
/// fields up to 2 within their ranges (seconds up to 61), the separators must match, and
/// anything after the `Z` is ignored. `None` when glibc's strptime fails.
pub(crate) fn parse_now(s: &str) -> Option<i64> {
    let mut rest = s.as_bytes();
    let year = strptime_number(&mut rest, 4, 0, 9999)?;
    let mut fields = [0i64; 5];
    for (slot, (sep, min, max)) in fields.iter_mut().zip([
        (b'-', 1, 12),
        (b'-', 1, 31),
        (b'T', 0, 23),
        (b':', 0, 59),
        (b':', 0, 61),
    ]) {
        let [first, tail @ ..] = rest else {
            return None;
        };
        if *first != sep {
            return None;
        }
        rest = tail;
        *slot = strptime_number(&mut rest, 2, min, max)?;
    }
    if rest.first() != Some(&b'Z') {
        return None;
    }
    let [month, day, hour, minute, second] = fields;
    // timegm normalises an out-of-range day (Feb 31 is Mar 3) the way this sum does.
    let days = days_from_civil(year, month, 1) + day - 1;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(feature = "create")]
/// One numeric strptime field: optional leading white space, 1 to `max_digits` digits,
/// within `min..=max`.
fn strptime_number(rest: &mut &[u8], max_digits: usize, min: i64, max: i64) -> Option<i64> {
    while let [b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r', tail @ ..] = *rest {
        *rest = tail;
    }
    let digits = rest
        .iter()
        .take(max_digits)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let value = rest[..digits]
        .iter()
        .fold(0i64, |v, b| v * 10 + i64::from(b - b'0'));
    *rest = &rest[digits..];
    (min..=max).contains(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = CivilTime::from_unix(1_700_000_000);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2023, 11, 14, 22, 13, 20)
        );
        let leap = CivilTime::from_unix(951_782_400);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        let before = CivilTime::from_unix(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.second),
            (1969, 12, 31, 59)
        );
    }

    #[cfg(feature = "create")]
    #[test]
    fn now_is_read_as_fwup_reads_it() {
        assert_eq!(parse_now("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_now("2020-1-2T3:4:5Zjunk"),
            parse_now("2020-01-02T03:04:05Z")
        );
        assert_eq!(parse_now(" 2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_now("bogus"), None);
        assert_eq!(parse_now("2020-13-01T00:00:00Z"), None);
        assert_eq!(parse_now("2020-01-01T00:00:00"), None);
    }

    #[cfg(feature = "create")]
    proptest::proptest! {
        /// `NOW` text is untrusted input: any string parses or is refused without panic,
        /// and every date fwup prints reads back as itself.
        #[test]
        fn now_parses_what_fwup_prints(unix in 0i64..253_402_300_799, junk in ".{0,40}") {
            let _ = parse_now(&junk);
            let t = CivilTime::from_unix(unix);
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year, t.month, t.day, t.hour, t.minute, t.second
            );
            proptest::prop_assert_eq!(parse_now(&text), Some(unix));
        }
    }
}
