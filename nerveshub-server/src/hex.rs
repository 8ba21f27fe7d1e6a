//! Hexadecimal text, the server's one encoder and decoder: fingerprints, SKIs and token hashes
//! in upper case (as NervesHub stores them), URL signatures in lower case.

const UPPER: &[u8; 16] = b"0123456789ABCDEF";
const LOWER: &[u8; 16] = b"0123456789abcdef";

fn encode(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0xf)]));
    }
    out
}

/// `bytes` as upper-case hex.
pub(crate) fn upper(bytes: &[u8]) -> String {
    encode(bytes, UPPER)
}

/// `bytes` as lower-case hex.
pub(crate) fn lower(bytes: &[u8]) -> String {
    encode(bytes, LOWER)
}

/// Hex of either case to bytes; `None` for an odd length, another character, or more than
/// `max_bytes` bytes (checked before anything is decoded).
pub(crate) fn decode(text: &str, max_bytes: usize) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() / 2 > max_bytes {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_cases() {
        let bytes = [0, 1, 0x7f, 0xab, 0xff];
        assert_eq!(upper(&bytes), "00017FABFF");
        assert_eq!(lower(&bytes), "00017fabff");
        assert_eq!(decode(&upper(&bytes), 5).unwrap(), bytes);
        assert_eq!(decode(&lower(&bytes), 5).unwrap(), bytes);
        assert_eq!(decode("ABcd", 2).unwrap(), [0xab, 0xcd]);
        assert_eq!(decode("", 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn refuses_what_is_not_hex_or_too_long() {
        assert!(decode("abc", 8).is_none());
        assert!(decode("+1", 8).is_none());
        assert!(decode("0g", 8).is_none());
        assert!(decode("é1", 8).is_none());
        assert!(decode("abcdef", 2).is_none());
    }

    proptest::proptest! {
        /// Any bytes survive a round trip; any text decodes without panicking.
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64), text in "\\PC{0,40}") {
            proptest::prop_assert_eq!(decode(&upper(&bytes), 64), Some(bytes.clone()));
            proptest::prop_assert_eq!(decode(&lower(&bytes), 64), Some(bytes));
            let _ = decode(&text, 64);
        }
    }
}
