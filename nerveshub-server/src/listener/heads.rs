//! The request-head scanner that stands between a connection and hyper (sans-IO).
//!
//! hyper answers a head beyond its own limits (a request target over 64 KiB, a header section
//! over its buffer, too many fields) or one it cannot parse with an empty 414/431/400 that no
//! layer of ours can reshape. So every byte a client sends passes through this scanner first: it
//! holds each request head back until it is complete, checks it against our bounds with the
//! parser hyper itself uses (httparse, default configuration), and releases it only when it
//! passes. A head that does not pass is never shown to hyper; a small stand-in head takes its
//! place, which the connection's service recognises by its position and answers with our JSON
//! 414/431/400 (so the answer is ordered after every earlier answer on the connection).
//!
//! Between heads it follows the body framing exactly as hyper does (Content-Length, chunked
//! with hyper's strict CRLF rules, upgrades), so that on a kept-alive connection it finds the
//! next head where hyper will look for it. After a head asking for an upgrade it waits for the
//! answer: a switch (101, or 2xx to CONNECT) ends scanning for good, anything else resumes it.
//! On framing hyper would refuse (a bad chunk line) it stops scanning and lets hyper refuse it.

use axum::http::{Method, StatusCode, Uri};

use super::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_LEN};

/// The longest request line followed before a JSON 414: the target's bound plus room for the
/// method, the version and the spaces.
const REQUEST_LINE_MAX: usize = MAX_URI_LEN + 1024;
/// The longest raw header section followed before a JSON 431: the fields' bound plus room for
/// separators, line ends and optional whitespace.
const HEADER_SECTION_MAX: usize = MAX_HEADER_BYTES + 4 * 1024;
/// Stands in for a refused head; it asks hyper to close the connection after the answer.
pub(crate) const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";
/// A head buffer grown past this by an unusually large head is given back after release.
const KEPT_CAPACITY: usize = 4 * 1024;

/// Why a request head was refused before hyper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request target (or the request line) is too long.
    UriTooLong,
    /// Too many header fields, or too many bytes of them.
    HeadersTooLarge,
    /// Not a request head hyper would accept (syntax, method, target or body framing).
    Malformed,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
            Refusal::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::Malformed => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn detail(self) -> String {
        match self {
            Refusal::UriTooLong => {
                format!("the request target is longer than {MAX_URI_LEN} bytes")
            }
            Refusal::HeadersTooLarge => format!(
                "at most {MAX_HEADERS} header fields of {MAX_HEADER_BYTES} bytes in all are accepted"
            ),
            Refusal::Malformed => "the request head is malformed".to_owned(),
        }
    }
}

/// What [`Scanner::feed`] needs the connection to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Nothing: every input byte was taken.
    None,
    /// The head numbered `index` (counting from 0, every head released to hyper, the stand-in
    /// included) was refused and replaced by [`STAND_IN`]; the rest of the input was dropped.
    Refused { index: u64, refusal: Refusal },
    /// The head numbered `index` asked for an upgrade and its body is complete; input from
    /// `consumed` on was not taken and waits for [`Scanner::upgrade_answered`].
    AwaitUpgrade { index: u64, consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body {
        left: u64,
        upgrade: Option<u64>,
    },
    Chunked {
        at: Chunk,
        size: u64,
        upgrade: Option<u64>,
    },
    AwaitUpgrade {
        index: u64,
    },
    /// Upgraded, or framing hyper will refuse: everything passes untouched.
    Passthrough,
    /// A head was refused: nothing more reaches hyper.
    Refused,
}

/// hyper's chunked decoder states (`proto/h1/decode.rs`), followed byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// Scans the bytes of one connection; see the module documentation.
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    /// The head being gathered (leading empty lines dropped, as httparse skips them).
    head: Vec<u8>,
    /// Where the request line ends in `head` (index of its `\n`), once seen.
    line_end: Option<usize>,
    /// Heads released to hyper so far, the stand-in included.
    released: u64,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            line_end: None,
            released: 0,
        }
    }
}

impl Scanner {
    /// Whether a head was refused (nothing more goes to hyper).
    pub(crate) fn is_refused(&self) -> bool {
        self.state == State::Refused
    }

    /// The index of the upgrade head whose answer is awaited, if one is.
    pub(crate) fn awaiting_upgrade(&self) -> Option<u64> {
        match self.state {
            State::AwaitUpgrade { index } => Some(index),
            _ => None,
        }
    }

    /// How many of the next bytes may go to hyper straight from the socket, unscanned: a
    /// Content-Length body's remainder, or everything after an upgrade.
    pub(crate) fn direct(&self) -> Option<u64> {
        match self.state {
            State::Body { left, .. } if left > 0 => Some(left),
            State::Passthrough => Some(u64::MAX),
            _ => None,
        }
    }

    /// Accounts for `n` bytes that went to hyper straight from the socket (see [`Self::direct`]).
    pub(crate) fn passed_direct(&mut self, n: usize) {
        if let State::Body { left, upgrade } = self.state {
            let left = left.saturating_sub(n as u64);
            self.state = State::Body { left, upgrade };
            if left == 0 {
                self.message_done(upgrade);
            }
        }
    }

    /// The answer to the awaited upgrade head: whether the connection switched protocols.
    pub(crate) fn upgrade_answered(&mut self, upgraded: bool) {
        if matches!(self.state, State::AwaitUpgrade { .. }) {
            self.state = if upgraded {
                State::Passthrough
            } else {
                State::Head
            };
        }
    }

    /// Takes `input` from the socket, appending what hyper may see to `out`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Event {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Head => match self.head_bytes(&input[i..], out) {
                    Ok(taken) => i += taken,
                    Err(refused) => return refused,
                },
                State::Body { left, .. } => {
                    let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.passed_direct(take);
                }
                State::Chunked {
                    at: Chunk::Data,
                    size,
                    upgrade,
                } => {
                    // A chunk's data passes in one piece.
                    let take = (input.len() - i).min(usize::try_from(size).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let size = size - take as u64;
                    let at = if size == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data
                    };
                    self.state = State::Chunked { at, size, upgrade };
                }
                State::Chunked { .. } => {
                    let byte = input[i];
                    out.push(byte);
                    i += 1;
                    self.chunk_byte(byte);
                }
                State::AwaitUpgrade { index } => {
                    return Event::AwaitUpgrade { index, consumed: i };
                }
                State::Passthrough => {
                    out.extend_from_slice(&input[i..]);
                    i = input.len();
                }
                State::Refused => return Event::None,
            }
        }
        // A Content-Length of 0 (or a body ending exactly here) may leave an upgrade waiting.
        if let State::AwaitUpgrade { index } = self.state {
            return Event::AwaitUpgrade {
                index,
                consumed: input.len(),
            };
        }
        Event::None
    }

    /// Takes bytes of a head, up to its end; returns how many, or the refusal event.
    fn head_bytes(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Event> {
        let mut i = 0;
        if self.head.is_empty() {
            while i < input.len() && matches!(input[i], b'\r' | b'\n') {
                i += 1;
            }
        }
        while i < input.len() {
            let rest = &input[i..];
            let (segment, line_done) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..=at], true),
                None => (rest, false),
            };
            let new_len = self.head.len() + segment.len();
            let line_end = self.line_end.or(line_done.then(|| new_len - 1));
            if let Some(refusal) = over_bounds(new_len, line_end) {
                return Err(self.refuse(refusal, out));
            }
            self.head.extend_from_slice(segment);
            self.line_end = line_end;
            i += segment.len();
            if line_done && ends_with_empty_line(&self.head) {
                self.release(out)?;
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// A complete head: refused, or released to hyper with its body framing.
    fn release(&mut self, out: &mut Vec<u8>) -> Result<(), Event> {
        let framing = match check_head(&self.head) {
            Ok(framing) => framing,
            Err(refusal) => return Err(self.refuse(refusal, out)),
        };
        out.extend_from_slice(&self.head);
        self.head.clear();
        if self.head.capacity() > KEPT_CAPACITY {
            self.head = Vec::new();
        }
        self.line_end = None;
        let index = self.released;
        self.released += 1;
        let upgrade = framing.upgrade.then_some(index);
        match framing.body {
            Body::Length(0) => self.message_done(upgrade),
            Body::Length(left) => self.state = State::Body { left, upgrade },
            Body::Chunked => {
                self.state = State::Chunked {
                    at: Chunk::Start,
                    size: 0,
                    upgrade,
                }
            }
        }
        Ok(())
    }

    fn refuse(&mut self, refusal: Refusal, out: &mut Vec<u8>) -> Event {
        out.extend_from_slice(STAND_IN);
        self.head = Vec::new();
        let index = self.released;
        self.released += 1;
        self.state = State::Refused;
        Event::Refused { index, refusal }
    }

    fn message_done(&mut self, upgrade: Option<u64>) {
        self.state = match upgrade {
            Some(index) => State::AwaitUpgrade { index },
            None => State::Head,
        };
    }

    /// One byte of chunked framing outside chunk data, as hyper's decoder reads it.
    fn chunk_byte(&mut self, byte: u8) {
        let State::Chunked { at, size, upgrade } = self.state else {
            return;
        };
        let hex = (byte as char).to_digit(16).map(u64::from);
        let next = match (at, byte) {
            (Chunk::Start, _) => hex
                .and_then(|d| size.checked_mul(16)?.checked_add(d))
                .map(|s| (Chunk::Size, s)),
            (Chunk::Size, _) if hex.is_some() => hex
                .and_then(|d| size.checked_mul(16)?.checked_add(d))
                .map(|s| (Chunk::Size, s)),
            (Chunk::Size | Chunk::SizeLws, b'\t' | b' ') => Some((Chunk::SizeLws, size)),
            (Chunk::Size | Chunk::SizeLws, b';') => Some((Chunk::Extension, size)),
            (Chunk::Size | Chunk::SizeLws | Chunk::Extension, b'\r') => Some((Chunk::SizeLf, size)),
            (Chunk::Extension, b'\n') => None,
            (Chunk::Extension, _) => Some((Chunk::Extension, size)),
            (Chunk::SizeLf, b'\n') if size == 0 => Some((Chunk::EndCr, 0)),
            (Chunk::SizeLf, b'\n') => Some((Chunk::Data, size)),
            (Chunk::DataCr, b'\r') => Some((Chunk::DataLf, 0)),
            (Chunk::DataLf, b'\n') => Some((Chunk::Start, 0)),
            (Chunk::Trailer, b'\r') => Some((Chunk::TrailerLf, 0)),
            (Chunk::Trailer, _) => Some((Chunk::Trailer, 0)),
            (Chunk::TrailerLf, b'\n') => Some((Chunk::EndCr, 0)),
            (Chunk::EndCr, b'\r') => Some((Chunk::EndLf, 0)),
            (Chunk::EndCr, _) => Some((Chunk::Trailer, 0)),
            (Chunk::EndLf, b'\n') => {
                self.message_done(upgrade);
                return;
            }
            _ => None,
        };
        self.state = match next {
            Some((at, size)) => State::Chunked { at, size, upgrade },
            // hyper fails the body here and closes; it needs no more scanning.
            None => State::Passthrough,
        };
    }
}

/// The refusal due when a head grows to `len` bytes with its request line ending at
/// `line_end`.
fn over_bounds(len: usize, line_end: Option<usize>) -> Option<Refusal> {
    match line_end {
        None if len > REQUEST_LINE_MAX => Some(Refusal::UriTooLong),
        Some(end) if end > REQUEST_LINE_MAX => Some(Refusal::UriTooLong),
        Some(end) if len - end > HEADER_SECTION_MAX => Some(Refusal::HeadersTooLarge),
        _ => None,
    }
}

/// Whether `head` (ending in `\n`) ends with an empty line, which ends a request head.
fn ends_with_empty_line(head: &[u8]) -> bool {
    head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n")
}

enum Body {
    Length(u64),
    Chunked,
}

struct Framing {
    body: Body,
    upgrade: bool,
}

/// Parses a complete head as hyper would (`proto/h1/role.rs`, `Server::parse`), then checks
/// it against our bounds.
fn check_head(head: &[u8]) -> Result<Framing, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadersTooLarge),
        _ => return Err(Refusal::Malformed),
    }
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(Refusal::Malformed);
    };
    if path.len() > MAX_URI_LEN {
        return Err(Refusal::UriTooLong);
    }
    let field_bytes: usize = request
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    if field_bytes > MAX_HEADER_BYTES {
        return Err(Refusal::HeadersTooLarge);
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::Malformed)?;
    Uri::try_from(path).map_err(|_| Refusal::Malformed)?;

    let http11 = version == 1;
    let mut upgrade = method == Method::CONNECT;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(Refusal::Malformed);
            }
            transfer_encoding = true;
            length = None;
            chunked = std::str::from_utf8(field.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if field.name.eq_ignore_ascii_case("content-length") {
            if transfer_encoding {
                continue;
            }
            let value = digits(field.value).ok_or(Refusal::Malformed)?;
            if length.is_some_and(|previous| previous != value) {
                return Err(Refusal::Malformed);
            }
            length = Some(value);
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            upgrade = http11;
        }
    }
    if transfer_encoding && !chunked {
        return Err(Refusal::Malformed);
    }
    let body = if chunked {
        Body::Chunked
    } else {
        Body::Length(length.unwrap_or(0))
    };
    Ok(Framing { body, upgrade })
}

/// A Content-Length value as hyper reads it: decimal digits only, at most hyper's largest
/// length.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n = 0u64;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (n < u64::MAX - 1).then_some(n)
}

/// Drives a scanner over `data` as a connection does (see `fuzzing::http_heads`): the first
/// byte sets the read size and whether upgrades switch.
pub(crate) fn fuzz(data: &[u8]) -> Result<(), String> {
    let Some((&control, input)) = data.split_first() else {
        return Ok(());
    };
    let piece = usize::from(control & 0x7f) + 1;
    let upgraded = control & 0x80 != 0;
    let mut scanner = Scanner::default();
    let mut out = Vec::new();
    let mut held = Vec::new();
    let mut refused = false;
    for chunk in input.chunks(piece) {
        held.extend_from_slice(chunk);
        while !held.is_empty() && !refused {
            if scanner.awaiting_upgrade().is_some() {
                scanner.upgrade_answered(upgraded);
            }
            if let Some(limit) = scanner.direct() {
                let n = held.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
                out.extend(held.drain(..n));
                scanner.passed_direct(n);
                continue;
            }
            let bytes = std::mem::take(&mut held);
            match scanner.feed(&bytes, &mut out) {
                Event::None => {}
                Event::Refused { .. } => {
                    refused = true;
                    if !out.ends_with(STAND_IN) || !scanner.is_refused() {
                        return Err("a refusal without its stand-in".to_owned());
                    }
                }
                Event::AwaitUpgrade { consumed, .. } => match bytes.get(consumed..) {
                    Some(rest) => held = rest.to_vec(),
                    None => return Err(format!("consumed {consumed} of {}", bytes.len())),
                },
            }
        }
    }
    let allowed = input.len() + if refused { STAND_IN.len() } else { 0 };
    if out.len() > allowed {
        return Err(format!("{} bytes out of {allowed}", out.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
