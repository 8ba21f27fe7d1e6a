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
        getrandom::fill(&mut secret).map_err(|e| ApiError::internal("random", e))?;
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
    crate::hex::upper(&Sha512::digest(secret))
}

/// For `db/`, which imports it from here (issue 21: those are the db helper's files).
pub(crate) use crate::hex::upper as hex_upper;

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
        .map_err(|e| ApiError::internal("password hashing", e))
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
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("random", e))?;
    bytes[0] |= 1;
    Ok(base62_encode(&bytes))
}

/// Sign-in attempts allowed from one address per [`ADDRESS_WINDOW`] (any outcome: each
/// costs a deliberately slow password hash; generous, as many users may share a NAT).
pub(crate) const LOGIN_ATTEMPTS_PER_ADDRESS: u32 = 60;
/// The per-address window.
pub(crate) const ADDRESS_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Failed sign-ins allowed for one account per [`ACCOUNT_WINDOW`], from anywhere.
pub(crate) const LOGIN_FAILURES_PER_ACCOUNT: u32 = 10;
/// The per-account window.
pub(crate) const ACCOUNT_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
/// The longest window, for sweeping.
const LOGIN_WINDOW: std::time::Duration = ACCOUNT_WINDOW;
/// Tracked keys before expired windows are swept (bounds memory under a spray of addresses).
const LOGIN_TRACKED_MAX: usize = 100_000;

/// Counts sign-in attempts per address and failures per account in fixed windows, so
/// passwords cannot be guessed at the speed of the server and a spray of attempts cannot
/// keep the CPU busy hashing.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
}

impl LoginLimiter {
    /// Refuses with 429 when `key` already used `limit` in its current window.
    pub(crate) fn check(
        &self,
        key: &str,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<(), ApiError> {
        let now = std::time::Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(key) {
            Some((start, count)) if now.duration_since(*start) < window && *count >= limit => {
                let left = window.saturating_sub(now.duration_since(*start));
                Err(ApiError::TooManyRequests(left.as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one attempt (or failure) against `key`.
    pub(crate) fn count(&self, key: &str, window: std::time::Duration) {
        let now = std::time::Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= LOGIN_TRACKED_MAX {
            windows.retain(|_, (start, _)| now.duration_since(*start) < LOGIN_WINDOW);
        }
        if windows.len() >= LOGIN_TRACKED_MAX {
            // Still full of live windows: forget the lot rather than grow without bound.
            windows.clear();
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// A user the web UI signed in, attached to the API requests it makes in-process on their
/// behalf. Only code inside the server can attach an extension, so no request from the
/// network carries one.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn(pub(crate) UserRow);

/// Checks an email and password as both sign-ins (`POST /api/users/auth` and the web UI's
/// form) do: rate limits per address and per account, bounded input, and a hash computed even
/// for an unknown email so timing does not tell which emails exist. Any failure is
/// `Unauthorized` (or `TooManyRequests`).
pub(crate) async fn check_password_sign_in(
    state: &AppState,
    peer: std::net::IpAddr,
    email: &str,
    password: &str,
) -> Result<UserRow, ApiError> {
    let email = email.trim().to_lowercase();
    let address = format!("address:{peer}");
    let account = format!("account:{email}");
    state
        .logins
        .check(&address, LOGIN_ATTEMPTS_PER_ADDRESS, ADDRESS_WINDOW)?;
    state
        .logins
        .check(&account, LOGIN_FAILURES_PER_ACCOUNT, ACCOUNT_WINDOW)?;
    state.logins.count(&address, ADDRESS_WINDOW);
    if password.len() > crate::api::MAX_PASSWORD_BYTES || !crate::api::valid_email(&email) {
        // Not a credential any account has; answered as a wrong password would be.
        return Err(ApiError::Unauthorized);
    }
    let user = state.db.user_by_email(&email).await?;
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .unwrap_or_else(|| dummy_hash());
    let matches = verify_password(password, stored);
    match user {
        Some(user) if matches => Ok(user),
        _ => {
            state.logins.count(&account, ACCOUNT_WINDOW);
            Err(ApiError::Unauthorized)
        }
    }
}

/// A real Argon2id hash of a random password, made once, checked against when the email is
/// unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        random_password()
            .and_then(|p| hash_password(&p))
            .unwrap_or_default()
    })
}

/// The authenticated caller of an API request.
///
/// The route table decides who may call each route ([`crate::api::Access`]); the route layer
/// authenticates and authorizes before the handler runs and leaves the result here, so a
/// handler never checks a role itself.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: UserRow,
    /// The API token the request was made with (its row id); `None` when a user
    /// certificate or a web session signed in.
    pub(crate) token_id: Option<i64>,
    /// The caller's membership of the path's org, on routes the table gives an org role.
    membership: Option<Membership>,
}

impl Caller {
    /// Authenticates the request: the `Authorization: token …` (or `Bearer …`) header, or,
    /// without one, on the HTTPS API listener, a user certificate rustls verified against the
    /// user CA (the plain HTTP listener never carries one).
    pub(crate) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        // The web UI's in-process calls: the session was checked before the call was made.
        if let Some(SignedIn(user)) = parts.extensions.get::<SignedIn>() {
            return Ok(Caller {
                user: user.clone(),
                token_id: None,
                membership: None,
            });
        }
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            let leaf = parts
                .extensions
                .get::<crate::device_endpoint::PeerCertificates>()
                .and_then(|certs| certs.0.first().cloned())
                .ok_or(ApiError::Unauthorized)?;
            let user = crate::user_ca::user_for_certificate(&state.db, &leaf)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Caller {
                user,
                token_id: None,
                membership: None,
            });
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
        Ok(Caller {
            user: owner.user,
            token_id: Some(owner.token_id),
            membership: None,
        })
    }

    /// Checks that the caller is a member of `org` with at least `needed`, and remembers the
    /// membership for the handler: a non-member (or a missing org) gets the same 404 as
    /// NervesHub gives, a member with too low a role a 403.
    pub(crate) async fn authorize_org(
        &mut self,
        state: &AppState,
        org: &str,
        needed: Role,
    ) -> Result<(), ApiError> {
        let membership = state
            .db
            .membership(self.user.id, org)
            .await?
            .ok_or(ApiError::NotFoundOrInsufficient)?;
        if membership.role < needed {
            return Err(ApiError::Forbidden);
        }
        self.membership = Some(membership);
        Ok(())
    }

    /// Lets a server admin act on `org`'s members as its admin would, member or not (404
    /// when the org does not exist).
    pub(crate) async fn authorize_server_admin_in(
        &mut self,
        state: &AppState,
        org: &str,
    ) -> Result<(), ApiError> {
        let org = state
            .db
            .org_by_name(org)
            .await?
            .ok_or(ApiError::NotFoundOrInsufficient)?;
        self.membership = Some(Membership {
            org,
            role: Role::Admin,
        });
        Ok(())
    }

    /// The membership the route layer checked for this request's org.
    ///
    /// # Errors
    /// `Internal` on a route the table does not give an org role: a programming error, which
    /// the authorization tests (every documented route × every role) would show.
    pub(crate) fn membership(&self) -> Result<Membership, ApiError> {
        self.membership
            .clone()
            .ok_or_else(|| ApiError::bug("route has no org role in the route table"))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Left by the route layer; authenticating again would cost a second query.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Caller::authenticate(parts, state).await
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
