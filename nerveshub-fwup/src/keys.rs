//! Ed25519 keys in fwup's formats.
//!
//! fwup writes a public key as 44 characters of padded base64 with no newline
//! (`fwup-key.pub`). When loading it reads only the first 44 characters, so trailing
//! whitespace is fine, accepts unpadded base64, and also accepts a raw 32-byte file.
//!
//! A private key (`fwup-key.priv`) is the libsodium/NaCl secret-key layout: the 32-byte
//! seed followed by the 32-byte public key, written as 88 characters of padded base64
//! (or read from a raw 64-byte file).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::{Error, KeyError, Result};

/// Length of an Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes (the size of `meta.conf.ed25519`).
pub const SIGNATURE_LEN: usize = 64;
/// How many public keys fwup accepts on one command line; any one of them may match.
pub const MAX_PUBLIC_KEYS: usize = 10;

/// Base64 characters fwup reads from a public key file or argument.
const PUBLIC_KEY_B64_LEN: usize = 44;
/// Length of a private key file's contents in bytes: seed and public key.
pub const PRIVATE_KEY_LEN: usize = 64;
/// Base64 characters fwup reads from a private key file or argument.
const PRIVATE_KEY_B64_LEN: usize = 88;
/// Length of the Ed25519 seed.
pub const SEED_LEN: usize = 32;

/// An Ed25519 signing key (fwup's `.priv`). Its `Debug` output shows only the public half;
/// the secret is zeroed when the key is dropped.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Makes a key from a 32-byte seed (e.g. caller-supplied randomness).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Generates a new key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`KeyError::Random`] when the generator fails.
    #[cfg(feature = "create")]
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; SEED_LEN];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// Makes a key from fwup's 64 bytes (seed || public key). The public half must match
    /// the seed.
    pub fn from_keypair_bytes(bytes: &[u8; PRIVATE_KEY_LEN]) -> Option<Self> {
        SigningKey::from_keypair_bytes(bytes).ok().map(Self)
    }

    /// Parses a key given as base64 text, as `fwup --private-key` takes it.
    pub fn from_base64(text: &str) -> Result<Self> {
        decode_private_b64(text.as_bytes()).ok_or_else(|| {
            Error::Key(KeyError::InvalidPrivateKey {
                origin: "argument".to_owned(),
            })
        })
    }

    /// Parses the contents of a `.priv` file as `fwup -s FILE` reads it: exactly 64 raw
    /// bytes, or base64 text of which the first 88 characters are read.
    pub fn from_file_contents(contents: &[u8], origin: &str) -> Result<Self> {
        let parsed = if contents.len() == PRIVATE_KEY_LEN {
            <&[u8; PRIVATE_KEY_LEN]>::try_from(contents)
                .ok()
                .and_then(Self::from_keypair_bytes)
        } else {
            decode_private_b64(contents)
        };
        parsed.ok_or_else(|| {
            Error::Key(KeyError::InvalidPrivateKey {
                origin: format!("file '{origin}'"),
            })
        })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key as fwup writes it in a `.priv` file: 88 characters of padded base64 of
    /// seed || public key. This is the secret: never log it.
    pub fn to_base64(&self) -> String {
        let bytes = zeroize_on_drop(self.0.to_keypair_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes.0)
    }

    /// Signs `message` (Ed25519, RFC 8032; deterministic, so the same as fwup's signature).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

/// Zeroes key bytes when dropped.
struct Zeroing([u8; PRIVATE_KEY_LEN]);

impl Drop for Zeroing {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

fn zeroize_on_drop(bytes: [u8; PRIVATE_KEY_LEN]) -> Zeroing {
    Zeroing(bytes)
}

/// Decodes fwup's base64 private key text (first 88 characters, padding optional).
fn decode_private_b64(text: &[u8]) -> Option<PrivateKey> {
    let chars = key_chars(text, PRIVATE_KEY_B64_LEN)?;
    let bytes = zeroize_on_drop(STANDARD_NO_PAD.decode(chars).ok()?.try_into().ok()?);
    PrivateKey::from_keypair_bytes(&bytes.0)
}

/// The base64 characters of a key: leading whitespace skipped, at most `max` characters,
/// trailing `=` and whitespace dropped.
fn key_chars(text: &[u8], max: usize) -> Option<&[u8]> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let text = &text[start..];
    let take = text.len().min(max);
    let mut chars = &text[..take];
    while let [rest @ .., last] = chars {
        if *last == b'=' || last.is_ascii_whitespace() {
            chars = rest;
        } else {
            break;
        }
    }
    Some(chars)
}

/// An Ed25519 public key that firmware signatures are checked against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_base64()).finish()
    }
}

impl PublicKey {
    /// Makes a key from its 32 raw bytes. Fails for byte strings that are not a point on
    /// the curve.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self> {
        VerifyingKey::from_bytes(bytes).map(Self).map_err(|_| {
            Error::Key(KeyError::InvalidPublicKey {
                origin: "raw bytes".to_owned(),
            })
        })
    }

    /// Parses a key given as base64 text, as `fwup --public-key` takes it: padded or
    /// unpadded, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self> {
        decode_base64_key(text.as_bytes()).ok_or_else(|| {
            Error::Key(KeyError::InvalidPublicKey {
                origin: "argument".to_owned(),
            })
        })
    }

    /// Parses the contents of a key file as `fwup -p FILE` reads it: exactly 32 raw bytes,
    /// or base64 text of which the first 44 characters are read. `origin` names the file in
    /// the error message.
    pub fn from_file_contents(contents: &[u8], origin: &str) -> Result<Self> {
        let parsed = if contents.len() == PUBLIC_KEY_LEN {
            <&[u8; PUBLIC_KEY_LEN]>::try_from(contents)
                .ok()
                .and_then(|raw| Self::from_bytes(raw).ok())
        } else {
            decode_base64_key(contents)
        };
        parsed.ok_or_else(|| {
            Error::Key(KeyError::InvalidPublicKey {
                origin: format!("file '{origin}'"),
            })
        })
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The key as fwup writes it in a `.pub` file: 44 characters of padded base64.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes())
    }

    /// Checks an Ed25519 signature (RFC 8032) over `message`.
    ///
    /// Uses strict verification: non-canonical signatures and small-order keys are refused.
    /// Signatures made by fwup (Monocypher) and by any RFC 8032 signer pass.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl std::str::FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_base64(s)
    }
}

/// Decodes fwup's base64 key text: leading whitespace skipped, at most the first 44
/// characters used, `=` padding optional.
fn decode_base64_key(text: &[u8]) -> Option<PublicKey> {
    let chars = key_chars(text, PUBLIC_KEY_B64_LEN)?;
    let bytes = STANDARD_NO_PAD.decode(chars).ok()?;
    let raw: [u8; PUBLIC_KEY_LEN] = bytes.try_into().ok()?;
    PublicKey::from_bytes(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FWUP_KEY: &str = "Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA=";

    #[test]
    fn parses_fwup_pub_file_with_and_without_padding_and_newline() {
        let key = PublicKey::from_file_contents(FWUP_KEY.as_bytes(), "k").unwrap();
        assert_eq!(key.to_base64(), FWUP_KEY);
        let unpadded = FWUP_KEY.trim_end_matches('=');
        assert_eq!(PublicKey::from_base64(unpadded).unwrap(), key);
        let with_newline = format!("{FWUP_KEY}\n\n");
        assert_eq!(
            PublicKey::from_file_contents(with_newline.as_bytes(), "k").unwrap(),
            key
        );
        let raw = key.to_bytes();
        assert_eq!(PublicKey::from_file_contents(&raw, "k").unwrap(), key);
    }

    #[test]
    fn rejects_garbage_with_the_file_name() {
        let err = PublicKey::from_file_contents(b"not a key", "x.pub").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error reading or decoding public key from file 'x.pub'"
        );
        assert!(PublicKey::from_base64("").is_err());
        assert!(PublicKey::from_base64("AAAA").is_err());
    }

    /// RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte).
    #[test]
    fn rfc8032_vectors_verify() {
        let cases = [
            (
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (public, message, signature) in cases {
            let public: [u8; 32] = hex(public).try_into().unwrap();
            let signature: [u8; 64] = hex(signature).try_into().unwrap();
            let key = PublicKey::from_bytes(&public).unwrap();
            let message = hex(message);
            assert!(key.verify(&message, &signature));
            let mut tampered = signature;
            tampered[0] ^= 1;
            assert!(!key.verify(&message, &tampered));
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
