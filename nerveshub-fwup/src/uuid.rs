//! `meta-uuid` and `meta-nickname`: the identity fwup derives from the meta.conf bytes.
//!
//! `uuid = BLAKE2b-256(namespace || meta.conf)[..16]` with the version nibble set to 5; the
//! variant bits are left as they are (fwup does not touch them). The nickname is two words
//! from fwup's fixed 256-word list, picked by the first two UUID bytes. Neither changes when
//! an archive is re-signed or re-compressed, because meta.conf's bytes do not.

use std::fmt;

use blake2::digest::Digest as _;

/// The namespace fwup hashes in front of meta.conf.
const NAMESPACE: [u8; 16] = [
    0x20, 0x53, 0xdf, 0xfb, 0xd5, 0x1e, 0x43, 0x10, 0xb9, 0x3b, 0x95, 0x6d, 0xa8, 0x9f, 0x9f, 0x34,
];

/// fwup's nickname word list, one word per line, in order (from fwup's `util.c`).
const WORDS: &str = include_str!("nickname-words.txt");

/// The `meta-uuid` of a firmware archive.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirmwareUuid([u8; 16]);

impl FirmwareUuid {
    /// Derives the UUID from the exact bytes of meta.conf, as fwup does.
    pub fn from_meta_conf(meta_conf: &[u8]) -> Self {
        let mut hasher = blake2::Blake2b256::new();
        hasher.update(NAMESPACE);
        hasher.update(meta_conf);
        let digest = hasher.finalize();
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&digest[..16]);
        uuid[6] = (uuid[6] & 0x0f) | 0x50;
        Self(uuid)
    }

    /// The 16 bytes of the UUID.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `meta-nickname`: two words chosen by the first two bytes, e.g. `hip-bid`.
    pub fn nickname(&self) -> String {
        format!("{}-{}", word(self.0[0]), word(self.0[1]))
    }
}

fn word(index: u8) -> &'static str {
    // The list has exactly 256 lines (checked by a test), so every index has a word.
    WORDS.lines().nth(usize::from(index)).unwrap_or("?")
}

impl fmt::Display for FirmwareUuid {
    /// Lower-case `8-4-4-4-12` hex in byte order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FirmwareUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirmwareUuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_list_has_256_words() {
        assert_eq!(WORDS.lines().count(), 256);
    }

    /// Vectors from fwup.md §2.5: an empty config, and upstream fwup test 151.
    #[test]
    fn empty_meta_conf_vector() {
        let uuid = FirmwareUuid::from_meta_conf(b"# Empty file\n");
        assert_eq!(uuid.to_string(), "73233efc-b2b6-5fc5-b8c1-7e54f96dd2e9");
        assert_eq!(uuid.nickname(), "hip-bid");
    }

    /// BLAKE2b known answers: RFC 7693 Appendix A (BLAKE2b-512 of "abc") and the 32-byte
    /// digest of the empty string that fwup stores for 0-byte resources (fwup.md §4).
    #[test]
    fn blake2b_known_answers() {
        let abc = blake2::Blake2b512::digest(b"abc");
        assert_eq!(
            hex(&abc),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        let empty = blake2::Blake2b256::digest(b"");
        assert_eq!(
            hex(&empty),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
