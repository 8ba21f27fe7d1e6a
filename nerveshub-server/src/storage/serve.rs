//! `GET /firmware/<key>?expires=…&signature=…` on the device endpoint: local storage's signed,
//! expiring downloads, with single-range HTTP Range support (devices resume downloads with
//! `Range: bytes=N-`).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use object_store::GetRange;

use super::signed_url::UrlCheck;
use super::{StorageError, unix_now};
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
            state
                .storage
                .check_local_url(&key, expires, signature, unix_now())
        }
        _ => UrlCheck::Invalid,
    };
    match check {
        UrlCheck::Valid => {}
        UrlCheck::Expired => return plain(StatusCode::FORBIDDEN, "download URL expired"),
        UrlCheck::Invalid => return plain(StatusCode::FORBIDDEN, "invalid download URL"),
    }
    match respond(&state, &key, &headers).await {
        Ok(response) => response,
        Err(StorageError::Store(object_store::Error::NotFound { .. })) => {
            plain(StatusCode::NOT_FOUND, "firmware not found")
        }
        Err(e) => {
            tracing::error!(key = %key, error = %e, "serving firmware failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
}

async fn respond(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
) -> Result<Response, StorageError> {
    let meta = state.storage.head(key).await?;
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
    let (status, range) = match range {
        None => (StatusCode::OK, None),
        Some(spec) => match spec.resolve(len) {
            Some((start, end)) => (StatusCode::PARTIAL_CONTENT, Some((start, end))),
            None => {
                let mut response =
                    plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{len}")),
                );
                return Ok(response);
            }
        },
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
            state.storage.get(key, get_range).await?.into_stream(),
            |chunk| crate::observability::download_bytes(chunk.len() as u64),
        ))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, header_value(&body_len.to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(etag) = etag {
        h.insert(header::ETAG, header_value(&etag));
    }
    if let Some((start, end)) = range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{end}/{len}")),
        );
    }
    Ok(response)
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

/// A header value from text we made (digits, `bytes`, quotes, hex): always valid; anything
/// else becomes an empty value rather than a panic.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
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
