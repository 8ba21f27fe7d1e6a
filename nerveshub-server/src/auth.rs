//! Who is calling: API tokens (`nhu_…`, NervesHub's format), passwords (Argon2id) and org
//! roles.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha512};

use crate::db::{Membership, UserRow};
use crate::error::ApiError;
use crate::state::AppState;

/// A member's role in an org; each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    View,
    Manage,
    Admin,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Manage => "manage",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "view" => Ok(Role::View),
            "manage" => Ok(Role::Manage),
            "admin" => Ok(Role::Admin),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const TOKEN_PREFIX: &str = "nhu_";
const TOKEN_SECRET_LEN: usize = 32;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly issued API token: the text handed to the user once, and the hash we keep.
pub(crate) struct NewToken {
    pub(crate) text: String,
    pub(crate) hash: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken").finish_non_exhaustive()
    }
}

/// Issues a token as NervesHub does: `nhu_` + Base62(32 random bytes ‖ CRC-32 big-endian).
pub(crate) fn new_token() -> Result<NewToken, ApiError> {
    loop {
        let mut secret = [0u8; TOKEN_SECRET_LEN];
        getrandom::fill(&mut secret).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
        // A leading zero byte would vanish in the big-integer encoding; draw again.
        if secret[0] == 0 {
            continue;
        }
        let mut raw = secret.to_vec();
        raw.extend_from_slice(&crc32fast::hash(&secret).to_be_bytes());
        return Ok(NewToken {
            text: format!("{TOKEN_PREFIX}{}", base62_encode(&raw)),
            hash: token_hash(&secret),
        });
    }
}

/// The stored hash of a presented token, or `None` when it is not a well-formed `nhu_` token
/// (checked, CRC included, before the database is asked).
pub(crate) fn parse_token(text: &str) -> Option<String> {
    let body = text.strip_prefix(TOKEN_PREFIX)?;
    if body.is_empty() || body.len() > 64 {
        return None;
    }
    let raw = base62_decode(body)?;
    if raw.len() != TOKEN_SECRET_LEN + 4 {
        return None;
    }
    let (secret, crc) = raw.split_at(TOKEN_SECRET_LEN);
    (crc32fast::hash(secret).to_be_bytes() == crc).then(|| token_hash(secret))
}

fn token_hash(secret: &[u8]) -> String {
    hex_upper(&Sha512::digest(secret))
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

fn base62_encode(bytes: &[u8]) -> String {
    // Repeated division of the big-endian number by 62.
    let mut number = bytes.to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 62).unwrap_or(0);
            remainder = value % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn base62_decode(text: &str) -> Option<Vec<u8>> {
    let mut number: Vec<u8> = Vec::new();
    for c in text.bytes() {
        let digit = u32::try_from(BASE62.iter().position(|&d| d == c)?).ok()?;
        let mut carry = digit;
        for byte in number.iter_mut().rev() {
            let value = u32::from(*byte) * 62 + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
        while carry > 0 {
            number.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    Some(number)
}

/// Hashes a password with Argon2id and a random salt (PHC string).
pub(crate) fn hash_password(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
}

/// Whether `password` matches the stored PHC string.
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for the first admin, from the same alphabet as tokens.
pub(crate) fn random_password() -> Result<String, ApiError> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    bytes[0] |= 1;
    Ok(base62_encode(&bytes))
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: UserRow,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // No token: on the HTTPS API listener, a user certificate rustls verified against
            // the user CA (the plain HTTP listener never carries one).
            let leaf = parts
                .extensions
                .get::<crate::device_endpoint::PeerCertificates>()
                .and_then(|certs| certs.0.first().cloned())
                .ok_or(ApiError::Unauthorized)?;
            let user = crate::user_ca::user_for_certificate(&state.db, &leaf)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Caller { user });
        };
        let header = header.to_str().map_err(|_| ApiError::Unauthorized)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let hash = parse_token(token.trim()).ok_or(ApiError::Unauthorized)?;
        let owner = state
            .db
            .token_owner(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller { user: owner.user })
    }
}

impl Caller {
    /// The caller's membership of `org` if it has at least `needed`: a non-member (or a missing
    /// org) gets the same 404 as NervesHub gives, a member with too low a role a 403.
    pub(crate) async fn in_org(
        &self,
        state: &AppState,
        org: &str,
        needed: Role,
    ) -> Result<Membership, ApiError> {
        let membership = state
            .db
            .membership(self.user.id, org)
            .await?
            .ok_or(ApiError::NotFoundOrInsufficient)?;
        if membership.role < needed {
            return Err(ApiError::Forbidden);
        }
        Ok(membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        for _ in 0..50 {
            let token = new_token().unwrap();
            assert!(token.text.starts_with("nhu_"));
            assert!(token.text[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
            assert_eq!(
                parse_token(&token.text).as_deref(),
                Some(token.hash.as_str())
            );
            // Change one character: the CRC no longer matches.
            let mut tampered = token.text.clone().into_bytes();
            let last = tampered.len() - 1;
            tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
            assert_eq!(parse_token(&String::from_utf8(tampered).unwrap()), None);
        }
        assert_eq!(parse_token("nhu_"), None);
        assert_eq!(parse_token("nhu_!!!"), None);
        assert_eq!(parse_token("abc"), None);
    }

    #[test]
    fn base62_round_trips() {
        for bytes in [&[1u8][..], &[1, 0, 0], &[255; 36], &[7, 0, 200, 3]] {
            assert_eq!(base62_decode(&base62_encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(base62_encode(&[61]), "z");
        assert_eq!(base62_encode(&[62]), "10");
    }

    #[test]
    fn passwords_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Manage && Role::Manage > Role::View);
        assert_eq!("manage".parse::<Role>(), Ok(Role::Manage));
        assert!("owner".parse::<Role>().is_err());
    }

    proptest::proptest! {
        /// Any presented text: no panic, and only texts that are `nhu_` + Base62 of exactly
        /// 36 bytes with a matching CRC give a hash.
        #[test]
        fn any_token_text_is_checked_without_panicking(text in "\\PC{0,80}", body in "[0-9A-Za-z]{0,70}") {
            proptest::prop_assert!(parse_token(&text).is_none() || text.starts_with("nhu_"));
            if let Some(hash) = parse_token(&format!("nhu_{body}")) {
                proptest::prop_assert_eq!(hash.len(), 128);
            }
        }
    }
}
