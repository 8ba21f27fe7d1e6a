//! NH1 shared-secret authentication: the `x-nh-*` headers of the WebSocket upgrade.
//!
//! The algorithm is nerves_hub_link's (`NH1`): a key is derived with PBKDF2-HMAC over a
//! five-line salt built from the headers, and a Plug.Crypto `MessageVerifier` token (`HS256`)
//! carrying the Erlang term `{identifier, signed_at_ms, max_age}` is signed with it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Sha256, Sha384, Sha512};

use crate::error::{Error, Result};
use crate::etf::Term;

/// The `x-nh-alg` value nerves_hub_link sends.
pub const NH1_ALG: &str = "NH1-HMAC-sha256-1000-32";

/// The header names, lower-case as they go on the wire, in the order `alg, key, time,
/// signature`.
pub const NH1_HEADER_NAMES: [&str; 4] = ["x-nh-alg", "x-nh-key", "x-nh-time", "x-nh-signature"];

/// The `max_age` (seconds) nerves_hub_link puts inside the token: plug_crypto's default.
const TOKEN_MAX_AGE_S: i64 = 86_400;
/// base64url("HS256"), the protected header of every Plug.Crypto signed token.
const TOKEN_PREFIX: &str = "SFMyNTY";
/// Bounds on what a verifier accepts in `x-nh-alg`, so a request cannot make the server run
/// an arbitrarily expensive key derivation.
const MAX_ITERATIONS: u32 = 100_000;
const MAX_KEY_LEN: usize = 64;

/// The digest named in `x-nh-alg`, used for the PBKDF2 key derivation only (the token's MAC
/// is always HMAC-SHA256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Nh1Digest {
    /// `sha256` (what nerves_hub_link uses).
    Sha256,
    /// `sha384`.
    Sha384,
    /// `sha512`.
    Sha512,
}

/// A parsed `x-nh-alg` value: `NH1-HMAC-<digest>-<iterations>-<key length>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nh1Alg {
    /// The PBKDF2 digest (parsed case-insensitively, as the server lower-cases it).
    pub digest: Nh1Digest,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Derived key length in bytes.
    pub key_len: usize,
}

impl Nh1Alg {
    /// Parses an `x-nh-alg` value. Refuses other versions, unknown digests, zero or more than
    /// 100 000 iterations and key lengths outside 1..=64.
    pub fn parse(alg: &str) -> Result<Self> {
        let bad = || Error::UnsupportedAlg(alg.to_owned());
        let rest = alg.strip_prefix("NH1-HMAC-").ok_or_else(bad)?;
        let mut parts = rest.split('-');
        let (Some(digest), Some(iter), Some(len), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let digest = match digest.to_ascii_lowercase().as_str() {
            "sha256" => Nh1Digest::Sha256,
            "sha384" => Nh1Digest::Sha384,
            "sha512" => Nh1Digest::Sha512,
            _ => return Err(bad()),
        };
        let iterations: u32 = iter.parse().map_err(|_| bad())?;
        let key_len: usize = len.parse().map_err(|_| bad())?;
        if iterations == 0 || iterations > MAX_ITERATIONS || key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(bad());
        }
        Ok(Nh1Alg {
            digest,
            iterations,
            key_len,
        })
    }

    fn derive(&self, secret: &[u8], salt: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len];
        match self.digest {
            Nh1Digest::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, self.iterations, &mut out)
            }
            Nh1Digest::Sha384 => {
                pbkdf2::pbkdf2_hmac::<Sha384>(secret, salt, self.iterations, &mut out)
            }
            Nh1Digest::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(secret, salt, self.iterations, &mut out)
            }
        }
        out
    }
}

/// The five-line salt: `NH1:device-socket:shared-secret:connect`, an empty line, then
/// `x-nh-alg=`, `x-nh-key=` and `x-nh-time=` lines, each ending in `\n`. The alg is used
/// verbatim, case included.
pub fn nh1_salt(alg: &str, key: &str, time: &str) -> String {
    format!(
        "NH1:device-socket:shared-secret:connect\n\nx-nh-alg={alg}\nx-nh-key={key}\nx-nh-time={time}\n"
    )
}

/// The PBKDF2 key NH1 derives from a secret for the given header values.
pub fn nh1_derive_key(alg: &str, key: &str, time: &str, secret: &[u8]) -> Result<Vec<u8>> {
    let parsed = Nh1Alg::parse(alg)?;
    Ok(parsed.derive(secret, nh1_salt(alg, key, time).as_bytes()))
}

fn mac(key: &[u8]) -> Result<Hmac<Sha256>> {
    // HMAC accepts keys of every length; the error branch exists only in the type.
    <Hmac<Sha256>>::new_from_slice(key).map_err(|_| Error::UnsupportedAlg("HMAC key".into()))
}

/// The four `x-nh-*` headers of a shared-secret WebSocket upgrade.
///
/// ```
/// use nerveshub_proto::SharedSecretHeaders;
///
/// // Device side: sign right before each connection attempt.
/// let headers = SharedSecretHeaders::sign("nhp_abc123", b"s3cret-value", "my-device", 1_787_120_842);
/// assert_eq!(headers.alg, "NH1-HMAC-sha256-1000-32");
///
/// // Server side: look the secret up by `headers.key`, then verify at the current time.
/// let device = headers.verify(b"s3cret-value", 1_787_120_850_000).unwrap();
/// assert_eq!(device.identifier, "my-device");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedSecretHeaders {
    /// `x-nh-alg`, e.g. `NH1-HMAC-sha256-1000-32`.
    pub alg: String,
    /// `x-nh-key`: the product key (`nhp_…`) or device key.
    pub key: String,
    /// `x-nh-time`: the signing time in Unix seconds, as a decimal string.
    pub time: String,
    /// `x-nh-signature`: the `SFMyNTY.<payload>.<mac>` token.
    pub signature: String,
}

/// What a verified NH1 token says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifiedToken {
    /// The device identifier inside the token (the board serial for nerves_hub_link).
    pub identifier: String,
    /// When the token was signed, Unix milliseconds (from inside the token).
    pub signed_at_ms: u64,
}

/// The freshness rules a verifier applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nh1Policy {
    /// Tokens older than this are refused (NervesHub: 90 s).
    pub max_age_ms: u64,
    /// Tokens signed further than this in the future are refused (our rule: 60 s).
    pub max_future_ms: u64,
}

impl Default for Nh1Policy {
    fn default() -> Self {
        Nh1Policy {
            max_age_ms: 90_000,
            max_future_ms: 60_000,
        }
    }
}

impl SharedSecretHeaders {
    /// Signs with nerves_hub_link's alg [`NH1_ALG`]. `signed_at` is the wall clock in Unix
    /// seconds, read by the caller right before the connection attempt.
    pub fn sign(key: &str, secret: &[u8], identifier: &str, signed_at: u64) -> Self {
        // NH1_ALG always parses, so the error branch is never taken.
        Self::sign_with_alg(NH1_ALG, key, secret, identifier, signed_at).unwrap_or_else(|_| {
            SharedSecretHeaders {
                alg: NH1_ALG.to_owned(),
                key: key.to_owned(),
                time: signed_at.to_string(),
                signature: String::new(),
            }
        })
    }

    /// Signs with another `x-nh-alg` value (used verbatim in the salt, so its case matters).
    pub fn sign_with_alg(
        alg: &str,
        key: &str,
        secret: &[u8],
        identifier: &str,
        signed_at: u64,
    ) -> Result<Self> {
        let derived = nh1_derive_key(alg, key, &signed_at.to_string(), secret)?;
        Self::sign_with_derived_key(alg, key, &derived, identifier, signed_at)
    }

    /// Signs with a key already derived by [`nh1_derive_key`] for this `alg`, `key` and
    /// `signed_at`. The derivation (PBKDF2) is the costly part of signing and depends on
    /// nothing device-specific, so a simulator of many devices sharing a product key derives
    /// once per second instead of once per device.
    ///
    /// # Errors
    /// None in practice: HMAC takes keys of any length.
    pub fn sign_with_derived_key(
        alg: &str,
        key: &str,
        derived: &[u8],
        identifier: &str,
        signed_at: u64,
    ) -> Result<Self> {
        let time = signed_at.to_string();
        let signed_at_ms = i64::try_from(signed_at.saturating_mul(1000)).unwrap_or(i64::MAX);
        let payload = Term::Tuple(vec![
            Term::Binary(identifier.as_bytes().to_vec()),
            Term::Integer(signed_at_ms),
            Term::Integer(TOKEN_MAX_AGE_S),
        ])
        .encode();
        let mut token = format!("{TOKEN_PREFIX}.{}", B64URL.encode(payload));
        let mut m = mac(derived)?;
        m.update(token.as_bytes());
        let tag = m.finalize().into_bytes();
        token.push('.');
        token.push_str(&B64URL.encode(tag));
        Ok(SharedSecretHeaders {
            alg: alg.to_owned(),
            key: key.to_owned(),
            time,
            signature: token,
        })
    }

    /// Reads the four headers through a lookup by lower-case name (e.g. over an HTTP header
    /// map).
    pub fn from_lookup<'a>(mut get: impl FnMut(&str) -> Option<&'a str>) -> Result<Self> {
        let mut one = |name: &'static str| {
            get(name)
                .map(str::to_owned)
                .ok_or(Error::MissingHeader(name))
        };
        Ok(SharedSecretHeaders {
            alg: one("x-nh-alg")?,
            key: one("x-nh-key")?,
            time: one("x-nh-time")?,
            signature: one("x-nh-signature")?,
        })
    }

    /// The headers as `(name, value)` pairs, lower-case names.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (NH1_HEADER_NAMES[0], &self.alg),
            (NH1_HEADER_NAMES[1], &self.key),
            (NH1_HEADER_NAMES[2], &self.time),
            (NH1_HEADER_NAMES[3], &self.signature),
        ]
    }

    /// Verifies the token with the secret that belongs to [`key`](Self::key), at `now_ms`
    /// (Unix milliseconds, the server's wall clock), with the default [`Nh1Policy`]: tokens
    /// older than 90 s and tokens signed more than 60 s in the future are refused. The time
    /// checked is the one inside the token; the `x-nh-time` header only feeds the salt.
    pub fn verify(&self, secret: &[u8], now_ms: u64) -> Result<VerifiedToken> {
        self.verify_with(secret, now_ms, Nh1Policy::default())
    }

    /// [`verify`](Self::verify) with explicit freshness rules.
    pub fn verify_with(
        &self,
        secret: &[u8],
        now_ms: u64,
        policy: Nh1Policy,
    ) -> Result<VerifiedToken> {
        self.check_time()?;
        let derived = nh1_derive_key(&self.alg, &self.key, &self.time, secret)?;
        self.verify_with_derived_key(&derived, now_ms, policy)
    }

    /// [`verify_with`](Self::verify_with) with the key already derived by
    /// [`nh1_derive_key`]`(alg, key, time, secret)` of these headers. The derivation (PBKDF2)
    /// is the costly part and depends only on the alg, the key, the `x-nh-time` second and
    /// the secret, so a server may cache it briefly for devices sharing a product key.
    ///
    /// # Errors
    /// As [`verify_with`](Self::verify_with).
    pub fn verify_with_derived_key(
        &self,
        derived: &[u8],
        now_ms: u64,
        policy: Nh1Policy,
    ) -> Result<VerifiedToken> {
        self.check_time()?;
        let (signed, tag) = self
            .signature
            .rsplit_once('.')
            .ok_or(Error::MalformedToken)?;
        let (prefix, payload) = signed.split_once('.').ok_or(Error::MalformedToken)?;
        if prefix != TOKEN_PREFIX {
            return Err(Error::MalformedToken);
        }
        let tag = B64URL.decode(tag).map_err(|_| Error::MalformedToken)?;
        let mut m = mac(derived)?;
        m.update(signed.as_bytes());
        m.verify_slice(&tag).map_err(|_| Error::BadSignature)?;
        let payload = B64URL.decode(payload).map_err(|_| Error::MalformedToken)?;
        let term = Term::decode(&payload).map_err(|_| Error::BadTokenContents)?;
        let (identifier, signed_at) = match term {
            // {data, signed_at_ms, max_age} and the legacy {data, signed_at_ms}.
            Term::Tuple(items) if items.len() == 2 || items.len() == 3 => {
                let mut it = items.into_iter();
                match (it.next(), it.next()) {
                    (Some(Term::Binary(id)), Some(Term::Integer(at))) => (id, at),
                    _ => return Err(Error::BadTokenContents),
                }
            }
            _ => return Err(Error::BadTokenContents),
        };
        let identifier = String::from_utf8(identifier).map_err(|_| Error::BadTokenContents)?;
        let signed_at_ms = u64::try_from(signed_at).map_err(|_| Error::BadTokenContents)?;
        if signed_at_ms.saturating_add(policy.max_age_ms) < now_ms {
            return Err(Error::Expired {
                signed_at_ms,
                now_ms,
            });
        }
        if signed_at_ms > now_ms.saturating_add(policy.max_future_ms) {
            return Err(Error::SignedInFuture {
                signed_at_ms,
                now_ms,
            });
        }
        Ok(VerifiedToken {
            identifier,
            signed_at_ms,
        })
    }

    /// `x-nh-time` is decimal digits: it feeds the salt, so anything else is refused before
    /// any derivation.
    fn check_time(&self) -> Result<()> {
        if self.time.is_empty() || !self.time.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidTime(self.time.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// research/nerves_hub_link.md §2.4 "Test vector".
    #[test]
    fn published_test_vector() {
        let alg = "NH1-HMAC-SHA256-1000-32";
        let key = nh1_derive_key(alg, "nhp_abc123", "1787120842", b"s3cret-value").unwrap();
        assert_eq!(
            hex(&key),
            "7b3df9c32780d83f23b38b04128a43370094f282733587d1605c68fa8c6aea2e"
        );
        let h = SharedSecretHeaders::sign_with_alg(
            alg,
            "nhp_abc123",
            b"s3cret-value",
            "my-device",
            1_787_120_842,
        )
        .unwrap();
        assert_eq!(
            h.signature,
            "SFMyNTY.g2gDbQAAAAlteS1kZXZpY2VuBgAQ9bMYoAFiAAFRgA.9qXfZC7_ENQyT5_LZc6LsXd_uEoUB2V-IZDqcmNd7gQ"
        );
        assert_eq!(h.time, "1787120842");
        let v = h.verify(b"s3cret-value", 1_787_120_842_000).unwrap();
        assert_eq!(
            v,
            VerifiedToken {
                identifier: "my-device".into(),
                signed_at_ms: 1_787_120_842_000
            }
        );
    }

    /// plug_crypto also accepts the legacy `{data, signed_at}` payload.
    #[test]
    fn signing_with_a_derived_key_matches_signing_with_the_secret() {
        let derived = nh1_derive_key(NH1_ALG, "nhp_k", "1787120842", b"s3cret").unwrap();
        let cached = SharedSecretHeaders::sign_with_derived_key(
            NH1_ALG,
            "nhp_k",
            &derived,
            "dev-1",
            1_787_120_842,
        )
        .unwrap();
        assert_eq!(
            cached,
            SharedSecretHeaders::sign("nhp_k", b"s3cret", "dev-1", 1_787_120_842)
        );
        assert_eq!(
            cached
                .verify(b"s3cret", 1_787_120_850_000)
                .unwrap()
                .identifier,
            "dev-1"
        );
    }

    #[test]
    fn verifying_with_a_derived_key_matches_verifying_with_the_secret() {
        let headers = SharedSecretHeaders::sign("nhp_k", b"s3cret", "dev-1", 1_787_120_842);
        let derived = nh1_derive_key(NH1_ALG, "nhp_k", &headers.time, b"s3cret").unwrap();
        let now = 1_787_120_850_000;
        assert_eq!(
            headers
                .verify_with_derived_key(&derived, now, Nh1Policy::default())
                .unwrap(),
            headers.verify(b"s3cret", now).unwrap()
        );
        let wrong = nh1_derive_key(NH1_ALG, "nhp_k", &headers.time, b"other").unwrap();
        assert!(matches!(
            headers.verify_with_derived_key(&wrong, now, Nh1Policy::default()),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn legacy_two_tuple_token() {
        let (alg, key, time) = (NH1_ALG, "nhp_k", "100");
        let derived = nh1_derive_key(alg, key, time, b"s").unwrap();
        let payload =
            Term::Tuple(vec![Term::Binary(b"dev".to_vec()), Term::Integer(100_000)]).encode();
        let mut token = format!("{TOKEN_PREFIX}.{}", B64URL.encode(payload));
        let mut m = mac(&derived).unwrap();
        m.update(token.as_bytes());
        token = format!("{token}.{}", B64URL.encode(m.finalize().into_bytes()));
        let h = SharedSecretHeaders {
            alg: alg.into(),
            key: key.into(),
            time: time.into(),
            signature: token,
        };
        assert_eq!(h.verify(b"s", 100_000).unwrap().identifier, "dev");
    }

    #[test]
    fn freshness_and_tampering() {
        let h = SharedSecretHeaders::sign("nhd_k", b"secret", "dev-1", 1_000_000);
        let at = 1_000_000_000;
        assert!(h.verify(b"secret", at + 90_000).is_ok());
        assert!(matches!(
            h.verify(b"secret", at + 90_001),
            Err(Error::Expired { .. })
        ));
        assert!(h.verify(b"secret", at - 60_000).is_ok());
        assert!(matches!(
            h.verify(b"secret", at - 60_001),
            Err(Error::SignedInFuture { .. })
        ));
        assert!(matches!(h.verify(b"other", at), Err(Error::BadSignature)));
        let mut t = h.clone();
        t.time = "1000001".into();
        assert!(matches!(t.verify(b"secret", at), Err(Error::BadSignature)));
        let mut t = h.clone();
        t.alg = "NH1-HMAC-SHA256-1000-32".into();
        assert!(
            matches!(t.verify(b"secret", at), Err(Error::BadSignature)),
            "the alg is salted verbatim"
        );
        let mut t = h.clone();
        t.alg = "NH1-HMAC-sha256-100000000-32".into();
        assert!(matches!(
            t.verify(b"secret", at),
            Err(Error::UnsupportedAlg(_))
        ));
        let mut t = h;
        t.signature = "garbage".into();
        assert!(matches!(
            t.verify(b"secret", at),
            Err(Error::MalformedToken)
        ));
    }
}
