//! Entry points for the server's fuzz targets (`fuzz/fuzz_targets/server_*.rs`) and for the
//! stable test that replays their corpus. Not part of the supported API.
//!
//! Each function takes arbitrary bytes and must return without panicking; the properties they
//! check are reported as a `Result` so the callers decide what a failure means.

/// An `Authorization` token text (`nhu_…`): only a well-formed token with a matching CRC gives
/// a hash, and a hash is always 128 upper-case hex digits.
pub fn token(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    if let Some(hash) = crate::auth::parse_token(&text) {
        if !text.starts_with("nhu_") {
            return Err(format!("{text:?} gave a hash without the nhu_ prefix"));
        }
        if hash.len() != 128 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{text:?} gave a malformed hash {hash:?}"));
        }
    }
    Ok(())
}

/// A `Range` header for an object whose length is the first 8 bytes (big-endian, or 0): a
/// parsed range always resolves inside the object.
pub fn range(data: &[u8]) -> Result<(), String> {
    let (len, header) = split_len(data);
    crate::storage::fuzz_range(&String::from_utf8_lossy(header), len)
}

/// A signed-URL query string (`expires=…&signature=…`): parsing never panics, and a
/// parameter given twice is refused.
pub fn signed_url_query(data: &[u8]) -> Result<(), String> {
    crate::storage::fuzz_query(&String::from_utf8_lossy(data))
}

/// A request path or query component: the listener's percent-decoding check never panics.
pub fn uri_component(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let _ = crate::listener::clean_component(&text);
    Ok(())
}

/// The bytes of a connection as both listeners scan them before hyper (first byte: the read
/// size and whether upgrades switch): the scanner never panics, never passes on more than it
/// was given (a refused head's stand-in aside), and a refusal is final.
pub fn http_heads(data: &[u8]) -> Result<(), String> {
    crate::listener::fuzz_heads(data)
}

/// A device poll request: `nerves_hub_link_http` headers (`name: value` lines), a blank
/// line, a JSON body. The header mapping yields only `nerves_fw_*` keys, and nothing
/// panics on the way to join parameters.
pub fn poll_request(data: &[u8]) -> Result<(), String> {
    crate::device::poll::fuzz_request(data)
}

/// What the web UI reads from a browser before any check: a `Cookie` header (the first
/// line) and a urlencoded form body (the rest). Cookie lookup, the flash message and the
/// sign-in `next` target never panic; a `next` always stays on this site; a flash message
/// survives its own encoding.
pub fn web_request(data: &[u8]) -> Result<(), String> {
    crate::web::fuzz_request(data)
}

fn split_len(data: &[u8]) -> (u64, &[u8]) {
    match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_be_bytes(*len) % (1 << 40), rest),
        None => (0, data),
    }
}
