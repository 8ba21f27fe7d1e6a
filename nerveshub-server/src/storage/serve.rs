//! `GET /firmware/<key>?expires=…&signature=…` on the device endpoint: the signed, expiring
//! downloads of local storage and of a product's object store, with single-range HTTP Range
//! support (devices resume downloads with `Range: bytes=N-`).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use object_store::GetRange;

use super::StorageError;
use super::signed_url::UrlCheck;
use crate::api::{Download, DownloadError};
use crate::state::AppState;

/// Serves a local firmware object to whoever holds a valid signed URL for it.
pub(crate) async fn serve_firmware(
    State(state): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (expires, signature) = parse_query(query.as_deref().unwrap_or(""));
    let check = match (expires, signature) {
        (Some(expires), Some(signature)) => {
            let now = state.storage.unix_now();
            state.storage.check_local_url(&key, expires, signature, now)
        }
        _ => UrlCheck::Invalid,
    };
    match check {
        UrlCheck::Valid => {}
        UrlCheck::Expired => return DownloadError::Expired.into_response(),
        UrlCheck::Invalid => return DownloadError::InvalidUrl.into_response(),
    }
    respond(&state, &key, &headers).await.into_response()
}

async fn respond(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
) -> Result<Download, DownloadError> {
    let storage = |e: StorageError| match e {
        StorageError::Store(object_store::Error::NotFound { .. }) => DownloadError::NotFound,
        e => DownloadError::Storage(e),
    };
    let meta = state.storage.head(key).await.map_err(storage)?;
    let len = meta.size;
    let etag = meta
        .e_tag
        .as_deref()
        .map(|tag| format!("\"{}\"", tag.trim_matches('"')));
    // A conditional range whose validator is not this object's ETag gets the whole object.
    let if_range_matches = match headers.get(header::IF_RANGE) {
        None => true,
        Some(value) => etag
            .as_deref()
            .is_some_and(|etag| value.as_bytes() == etag.as_bytes()),
    };
    let range = headers
        .get(header::RANGE)
        .filter(|_| if_range_matches)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_range);
    let range = match range {
        None => None,
        Some(spec) => Some(
            spec.resolve(len)
                .ok_or(DownloadError::RangeNotSatisfiable { len })?,
        ),
    };
    let (body_len, get_range) = match range {
        // `end` is inclusive, as in Content-Range.
        Some((start, end)) => (end - start + 1, Some(GetRange::Bounded(start..end + 1))),
        None => (len, None),
    };
    let body = if body_len == 0 {
        Body::empty()
    } else {
        // Counted as sent, so a download cut short counts only what left.
        Body::from_stream(futures_util::TryStreamExt::inspect_ok(
            state
                .storage
                .get(key, get_range)
                .await
                .map_err(storage)?
                .into_stream(),
            |chunk| crate::observability::download_bytes(chunk.len() as u64),
        ))
    };
    Ok(Download {
        body,
        body_len,
        len,
        range,
        etag,
    })
}

/// `expires` and `signature` from the query string; a parameter given twice is refused.
fn parse_query(query: &str) -> (Option<u64>, Option<&str>) {
    let mut expires = None;
    let mut signature = None;
    let mut twice = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "expires" => twice |= expires.replace(value.parse::<u64>().ok()).is_some(),
            "signature" => twice |= signature.replace(value).is_some(),
            _ => {}
        }
    }
    if twice {
        return (None, None);
    }
    (expires.flatten(), signature)
}

/// One `bytes=` range as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last` (inclusive) or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The inclusive byte range to send from an object of `len` bytes, or `None` when the
    /// range is not satisfiable (416).
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            RangeSpec::From { first, last } => {
                if first >= len {
                    return None;
                }
                let last = last.map_or(len - 1, |last| last.min(len - 1));
                Some((first, last))
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || len == 0 {
                    return None;
                }
                Some((len - n.min(len), len - 1))
            }
        }
    }
}

/// Parses a `Range` header holding one byte range. Several ranges, other units and malformed
/// values give `None`: the header is then ignored and the whole object sent, as RFC 9110
/// allows.
fn parse_range(value: &str) -> Option<RangeSpec> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.trim().is_empty() {
        return Some(RangeSpec::Suffix(number(last)?));
    }
    let first = number(first)?;
    let last = if last.trim().is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::From { first, last })
}

/// For `crate::fuzzing`: a `Range` header against an object of `len` bytes.
pub(crate) fn fuzz_range(header: &str, len: u64) -> Result<(), String> {
    if let Some(spec) = parse_range(header)
        && let Some((first, last)) = spec.resolve(len)
        && !(first <= last && last < len)
    {
        return Err(format!(
            "{header:?} resolved to {first}..={last} in {len} bytes"
        ));
    }
    Ok(())
}

/// For `crate::fuzzing`: a signed-URL query string.
pub(crate) fn fuzz_query(query: &str) -> Result<(), String> {
    let (expires, signature) = parse_query(query);
    let count = |name: &str| {
        query
            .split('&')
            .filter(|p| p.split_once('=').map_or(*p, |(n, _)| n) == name)
            .count()
    };
    if (count("expires") > 1 || count("signature") > 1)
        && (expires.is_some() || signature.is_some())
    {
        return Err(format!("{query:?}: a repeated parameter was accepted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve() {
        let from = |first, last| Some(RangeSpec::From { first, last });
        assert_eq!(parse_range("bytes=0-99"), from(0, Some(99)));
        assert_eq!(parse_range("bytes=100-"), from(100, None));
        assert_eq!(parse_range("bytes=-5"), Some(RangeSpec::Suffix(5)));
        assert_eq!(parse_range(" bytes= 7 - 9 "), from(7, Some(9)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=a-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
        assert_eq!(from(0, Some(99)).unwrap().resolve(50), Some((0, 49)));
        assert_eq!(from(49, None).unwrap().resolve(50), Some((49, 49)));
        assert_eq!(from(50, None).unwrap().resolve(50), None);
        assert_eq!(from(0, None).unwrap().resolve(0), None);
        assert_eq!(RangeSpec::Suffix(10).resolve(50), Some((40, 49)));
        assert_eq!(RangeSpec::Suffix(100).resolve(50), Some((0, 49)));
        assert_eq!(RangeSpec::Suffix(0).resolve(50), None);
        assert_eq!(RangeSpec::Suffix(3).resolve(0), None);
    }

    #[test]
    fn queries_need_both_parameters_once() {
        assert_eq!(parse_query("expires=5&signature=ab"), (Some(5), Some("ab")));
        assert_eq!(
            parse_query("signature=ab&x=1&expires=5"),
            (Some(5), Some("ab"))
        );
        assert_eq!(parse_query("expires=5"), (Some(5), None));
        assert_eq!(parse_query("expires=x&signature=ab"), (None, Some("ab")));
        assert_eq!(
            parse_query("expires=5&expires=6&signature=ab"),
            (None, None)
        );
        assert_eq!(parse_query(""), (None, None));
    }

    proptest::proptest! {
        /// Any header value: no panic, and a parsed range always resolves inside the object.
        #[test]
        fn any_range_header_resolves_in_bounds(value in "\\PC{0,40}", tail in "[0-9 ,=-]{0,24}", len in 0u64..10_000) {
            for header in [value.clone(), format!("bytes={tail}"), format!("bytes={value}")] {
                if let Some(spec) = parse_range(&header)
                    && let Some((first, last)) = spec.resolve(len)
                {
                    proptest::prop_assert!(first <= last && last < len, "{header:?} {len}");
                }
            }
        }

        /// Any query string: no panic.
        #[test]
        fn any_query_parses(query in "\\PC{0,80}") {
            let _ = parse_query(&query);
        }
    }
}
