//! Times as the API shows them: the database keeps Unix milliseconds, the API RFC 3339 in UTC
//! with exactly three fraction digits (`2026-11-26T12:00:00.000Z`), so every timestamp has
//! the same shape and sorts as text.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2026-11-26T12:00:00.123Z` for a Unix-millisecond time (`None` outside years 0–9999, which
/// the database never holds).
pub(crate) fn iso8601_ms(ms: i64) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&at.year()) {
        return None;
    }
    at.format(FORMAT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_three_fraction_digits() {
        assert_eq!(iso8601_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            iso8601_ms(1_764_158_400_123).as_deref(),
            Some("2025-11-26T12:00:00.123Z")
        );
        assert_eq!(
            iso8601_ms(1_764_158_400_100).as_deref(),
            Some("2025-11-26T12:00:00.100Z")
        );
        // Before the epoch, the fraction still counts forward from the second.
        assert_eq!(iso8601_ms(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
    }

    #[test]
    fn every_time_parses_back_as_rfc3339() {
        use time::format_description::well_known::Rfc3339;
        for ms in [0, 1, 999, 1_000, 1_764_158_400_123, 253_402_300_799_999] {
            let text = iso8601_ms(ms).unwrap();
            assert_eq!(text.len(), 24, "{text}");
            let back = OffsetDateTime::parse(&text, &Rfc3339).unwrap();
            assert_eq!(back.unix_timestamp_nanos(), i128::from(ms) * 1_000_000);
        }
        assert_eq!(iso8601_ms(253_402_300_800_000), None);
    }
}
