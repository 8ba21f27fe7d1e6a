//! The small part of the Erlang external term format (`term_to_binary`) that NH1 tokens need.

use crate::error::{Error, Result};

const VERSION: u8 = 131;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const ATOM_EXT: u8 = 100;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const SMALL_ATOM_EXT: u8 = 115;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// How deeply tuples and lists may nest in a decoded term.
const MAX_DEPTH: usize = 32;

/// An Erlang term, limited to what NH1 tokens and their legacy forms carry.
///
/// ```
/// use nerveshub_proto::Term;
///
/// let term = Term::Tuple(vec![
///     Term::Binary(b"my-device".to_vec()),
///     Term::Integer(1_787_120_842_000),
///     Term::Integer(86_400),
/// ]);
/// let bytes = term.encode();
/// assert_eq!(Term::decode(&bytes).unwrap(), term);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Term {
    /// An integer. Decoding accepts `SMALL_INTEGER_EXT`, `INTEGER_EXT` and `SMALL_BIG_EXT` up
    /// to 64 bits of magnitude that fit an `i64`; encoding picks the smallest of those.
    Integer(i64),
    /// A float (`NEW_FLOAT_EXT`).
    Float(f64),
    /// An atom (any of the four atom encodings on input; `SMALL_ATOM_UTF8_EXT`/`ATOM_UTF8_EXT`
    /// on output).
    Atom(String),
    /// A binary (`BINARY_EXT`), e.g. an Elixir string.
    Binary(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A proper list (`NIL_EXT`, `LIST_EXT` with a `[]` tail, or `STRING_EXT`, whose bytes
    /// become small integers).
    List(Vec<Term>),
}

impl Term {
    /// Encodes the term with the leading version byte 131, as `:erlang.term_to_binary/1`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Term::Integer(i) => {
                if (0..=255).contains(i) {
                    out.extend_from_slice(&[SMALL_INTEGER_EXT, *i as u8]);
                } else if let Ok(small) = i32::try_from(*i) {
                    out.push(INTEGER_EXT);
                    out.extend_from_slice(&small.to_be_bytes());
                } else {
                    let mut mag = i.unsigned_abs();
                    let mut digits = Vec::with_capacity(8);
                    while mag > 0 {
                        digits.push((mag & 0xff) as u8);
                        mag >>= 8;
                    }
                    out.extend_from_slice(&[SMALL_BIG_EXT, digits.len() as u8, u8::from(*i < 0)]);
                    out.extend_from_slice(&digits);
                }
            }
            Term::Float(f) => {
                out.push(NEW_FLOAT_EXT);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Term::Atom(a) => {
                if let Ok(len) = u8::try_from(a.len()) {
                    out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, len]);
                } else {
                    out.push(ATOM_UTF8_EXT);
                    out.extend_from_slice(&(a.len().min(0xffff) as u16).to_be_bytes());
                }
                out.extend_from_slice(&a.as_bytes()[..a.len().min(0xffff)]);
            }
            Term::Binary(b) => {
                out.push(BINARY_EXT);
                out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(b);
            }
            Term::Tuple(items) => {
                if let Ok(n) = u8::try_from(items.len()) {
                    out.extend_from_slice(&[SMALL_TUPLE_EXT, n]);
                } else {
                    out.push(LARGE_TUPLE_EXT);
                    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                }
                for item in items {
                    item.write(out);
                }
            }
            Term::List(items) => {
                if !items.is_empty() {
                    out.push(LIST_EXT);
                    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                    for item in items {
                        item.write(out);
                    }
                }
                out.push(NIL_EXT);
            }
        }
    }

    /// Decodes a term written by `term_to_binary` (version byte 131 first). The decoder is
    /// bounded: nesting deeper than 32 levels, lengths longer than the input, compressed
    /// terms, trailing bytes and term types outside [`Term`] are errors, never panics.
    pub fn decode(bytes: &[u8]) -> Result<Term> {
        let mut rd = Reader { buf: bytes };
        if rd.u8()? != VERSION {
            return Err(Error::Term("missing version byte 131"));
        }
        let term = rd.term(0)?;
        if !rd.buf.is_empty() {
            return Err(Error::Term("trailing bytes"));
        }
        Ok(term)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Error::Term("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count of following elements, each at least one byte long: a count larger than the
    /// remaining input is refused before anything is allocated.
    fn count(&mut self, n: usize) -> Result<usize> {
        if n > self.buf.len() {
            return Err(Error::Term("length exceeds input"));
        }
        Ok(n)
    }

    fn atom(&mut self, len: usize, latin1: bool) -> Result<Term> {
        let bytes = self.take(len)?;
        let s = if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect::<String>()
        } else {
            std::str::from_utf8(bytes)
                .map_err(|_| Error::Term("atom is not UTF-8"))?
                .to_owned()
        };
        if s.chars().count() > 255 {
            return Err(Error::Term("atom longer than 255 characters"));
        }
        Ok(Term::Atom(s))
    }

    fn terms(&mut self, n: usize, depth: usize) -> Result<Vec<Term>> {
        let n = self.count(n)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.term(depth + 1)?);
        }
        Ok(items)
    }

    fn term(&mut self, depth: usize) -> Result<Term> {
        if depth > MAX_DEPTH {
            return Err(Error::Term("nested too deeply"));
        }
        match self.u8()? {
            SMALL_INTEGER_EXT => Ok(Term::Integer(i64::from(self.u8()?))),
            INTEGER_EXT => Ok(Term::Integer(i64::from(self.u32()? as i32))),
            SMALL_BIG_EXT => {
                let n = usize::from(self.u8()?);
                let sign = self.u8()?;
                let digits = self.take(n)?;
                let mut mag: u64 = 0;
                for (i, &d) in digits.iter().enumerate() {
                    if d == 0 {
                        continue;
                    }
                    if i >= 8 {
                        return Err(Error::Term("integer too large"));
                    }
                    mag |= u64::from(d) << (8 * i);
                }
                let v = match sign {
                    0 => i64::try_from(mag).map_err(|_| Error::Term("integer too large"))?,
                    1 => 0i64
                        .checked_sub_unsigned(mag)
                        .ok_or(Error::Term("integer too large"))?,
                    _ => return Err(Error::Term("invalid big integer sign")),
                };
                Ok(Term::Integer(v))
            }
            NEW_FLOAT_EXT => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(Term::Float(f64::from_be_bytes(a)))
            }
            ATOM_EXT => {
                let n = usize::from(self.u16()?);
                self.atom(n, true)
            }
            SMALL_ATOM_EXT => {
                let n = usize::from(self.u8()?);
                self.atom(n, true)
            }
            ATOM_UTF8_EXT => {
                let n = usize::from(self.u16()?);
                self.atom(n, false)
            }
            SMALL_ATOM_UTF8_EXT => {
                let n = usize::from(self.u8()?);
                self.atom(n, false)
            }
            BINARY_EXT => {
                let n = self.u32()? as usize;
                Ok(Term::Binary(self.take(n)?.to_vec()))
            }
            SMALL_TUPLE_EXT => {
                let n = usize::from(self.u8()?);
                Ok(Term::Tuple(self.terms(n, depth)?))
            }
            LARGE_TUPLE_EXT => {
                let n = self.u32()? as usize;
                Ok(Term::Tuple(self.terms(n, depth)?))
            }
            NIL_EXT => Ok(Term::List(Vec::new())),
            STRING_EXT => {
                let n = usize::from(self.u16()?);
                let bytes = self.take(n)?;
                Ok(Term::List(
                    bytes.iter().map(|&b| Term::Integer(i64::from(b))).collect(),
                ))
            }
            LIST_EXT => {
                let n = self.u32()? as usize;
                let items = self.terms(n, depth)?;
                match self.u8()? {
                    NIL_EXT => Ok(Term::List(items)),
                    _ => Err(Error::Term("improper lists are not supported")),
                }
            }
            _ => Err(Error::Term("unsupported term type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nh1_payload_layout() {
        let t = Term::Tuple(vec![
            Term::Binary(b"my-device".to_vec()),
            Term::Integer(1_787_120_842_000),
            Term::Integer(86_400),
        ]);
        let hex: String = t.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "8368036d000000096d792d6465766963656e060010f5b318a0016200015180"
        );
    }

    #[test]
    fn round_trips_and_refusals() {
        for t in [
            Term::Integer(0),
            Term::Integer(255),
            Term::Integer(256),
            Term::Integer(-1),
            Term::Integer(i64::MIN),
            Term::Integer(i64::MAX),
            Term::Atom("ok".into()),
            Term::List(vec![]),
            Term::List(vec![Term::Float(1.5), Term::Tuple(vec![])]),
        ] {
            assert_eq!(Term::decode(&t.encode()).unwrap(), t);
        }
        assert!(Term::decode(&[]).is_err());
        assert!(Term::decode(&[131]).is_err());
        assert!(Term::decode(&[131, 97, 1, 0]).is_err());
        assert!(Term::decode(&[131, 105, 255, 255, 255, 255]).is_err());
        assert!(Term::decode(&[131, 110, 9, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]).is_err());
        let deep: Vec<u8> = std::iter::once(131)
            .chain(std::iter::repeat_n([104u8, 1], 100).flatten())
            .collect();
        assert!(Term::decode(&deep).is_err());
    }
}
