//! Times as the API shows them: the database keeps Unix milliseconds, the API ISO 8601 UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-26T12:00:00.123Z` for a Unix-millisecond time (`None` outside the representable
/// range, which the database never holds).
pub(crate) fn iso8601_ms(ms: i64) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(iso8601_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            iso8601_ms(1_764_158_400_123).as_deref(),
            Some("2025-11-26T12:00:00.123Z")
        );
    }
}
