//! Expiring download URLs for local storage: `/firmware/<key>?expires=<unix seconds>&signature=
//! <hex HMAC-SHA256>`, keyed by a random secret made by the first node that starts and kept in
//! the database, so a URL signed on one node is served by any.

use std::path::Path;

use hmac::{KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::error::ServerError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The secret's file under the data directory.
pub(super) const SECRET_FILE: &str = "firmware-url.key";
/// Bytes of secret.
pub(crate) const SECRET_LEN: usize = 32;
/// The key of download URL signatures.
pub(crate) type UrlSecret = [u8; SECRET_LEN];
/// Separates this use of the secret from any other: a signature is only ever over this form.
const DOMAIN: &[u8] = b"nerveshub firmware url v1\n";
/// The longest hex we decode here (a signature in a query, the 32-byte secret's file): the
/// input is bounded before it is read.
const MAX_HEX_BYTES: usize = 128;

/// How a URL's signature and expiry came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlCheck {
    /// Signed by us and not expired.
    Valid,
    /// Signed by us, but its time is up.
    Expired,
    /// Not signed by us for this key and expiry (tampered, truncated, another server's).
    Invalid,
}

/// Signs and checks local download URLs.
pub(super) struct UrlSigner {
    secret: [u8; SECRET_LEN],
}

impl UrlSigner {
    /// A signer keyed by `secret` (the one every node shares: see
    /// [`cluster::shared_url_secret`](crate::cluster::shared_url_secret)).
    pub(super) fn from_secret(secret: [u8; SECRET_LEN]) -> UrlSigner {
        UrlSigner { secret }
    }

    fn mac(&self, key: &str, expires: u64) -> HmacSha256 {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// `/firmware/<key>?expires=…&signature=…` for `key`, valid until `expires` (Unix seconds).
    /// Keys are ours (digits, hex, `-`, `.`, `/`), so they need no escaping.
    pub(super) fn url_path(&self, key: &str, expires: u64) -> String {
        let signature = crate::hex::lower(&self.mac(key, expires).finalize().into_bytes());
        format!("/firmware/{key}?expires={expires}&signature={signature}")
    }

    /// Whether `signature` is this secret's signature of `key` and `expires`, and `now` (Unix
    /// seconds) is before `expires`. The comparison takes constant time.
    pub(super) fn check(&self, key: &str, expires: u64, signature: &str, now: u64) -> UrlCheck {
        let Some(signature) = crate::hex::decode(signature, MAX_HEX_BYTES) else {
            return UrlCheck::Invalid;
        };
        if self.mac(key, expires).verify_slice(&signature).is_err() {
            UrlCheck::Invalid
        } else if now >= expires {
            UrlCheck::Expired
        } else {
            UrlCheck::Valid
        }
    }
}

/// Lower-case hex.
/// The secret an older server kept in `<data-dir>/firmware-url.key` (hex), if there is one:
/// it seeds the database's shared secret, so URLs handed out before an upgrade stay valid.
pub(crate) fn secret_from_data_dir(data_dir: &Path) -> Result<Option<UrlSecret>, ServerError> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => crate::hex::decode(text.trim(), MAX_HEX_BYTES)
            .and_then(|bytes| <UrlSecret>::try_from(bytes).ok())
            .map(Some)
            .ok_or_else(|| {
                ServerError::Config(format!(
                    "{} does not hold a {SECRET_LEN}-byte hex secret; delete it (the database keeps the secret now)",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServerError::io(format!("reading {}", path.display()), e)),
    }
}

/// A fresh random secret.
pub(crate) fn random_secret() -> Result<UrlSecret, ServerError> {
    let mut secret = [0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(|e| {
        ServerError::Config(format!("no randomness for the download URL secret: {e}"))
    })?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature_of(url: &str) -> (String, u64, String) {
        let (path, query) = url.split_once('?').unwrap();
        let key = path.strip_prefix("/firmware/").unwrap().to_owned();
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap();
            match name {
                "expires" => expires = value.parse().unwrap(),
                "signature" => signature = value.to_owned(),
                _ => panic!("unexpected {name}"),
            }
        }
        (key, expires, signature)
    }

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let signer = UrlSigner::from_secret([7; SECRET_LEN]);
        let url = signer.url_path("1/2/abc-def.fw", 1_000);
        let (key, expires, signature) = signature_of(&url);
        assert_eq!(key, "1/2/abc-def.fw");
        let check =
            |key: &str, expires, signature: &str, now| signer.check(key, expires, signature, now);
        assert_eq!(check(&key, expires, &signature, 999), UrlCheck::Valid);
        assert_eq!(
            check(&key, expires, &signature.to_uppercase(), 0),
            UrlCheck::Valid
        );
        assert_eq!(check(&key, expires, &signature, 1_000), UrlCheck::Expired);
        assert_eq!(
            check(&key, expires + 1, &signature, 0),
            UrlCheck::Invalid,
            "expiry changed"
        );
        assert_eq!(
            check("1/2/other.fw", expires, &signature, 0),
            UrlCheck::Invalid,
            "key changed"
        );
        assert_eq!(
            check(&key, expires, &signature[2..], 0),
            UrlCheck::Invalid,
            "short"
        );
        assert_eq!(check(&key, expires, "zz", 0), UrlCheck::Invalid, "not hex");
        assert_eq!(check(&key, expires, "", 0), UrlCheck::Invalid, "empty");
        let other = UrlSigner::from_secret([8; SECRET_LEN]);
        assert_eq!(
            other.check(&key, expires, &signature, 0),
            UrlCheck::Invalid,
            "other secret"
        );
    }

    #[test]
    fn an_older_servers_secret_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(secret_from_data_dir(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(SECRET_FILE),
            format!("{}\n", "ab".repeat(32)),
        )
        .unwrap();
        assert_eq!(secret_from_data_dir(dir.path()).unwrap(), Some([0xab; 32]));
        std::fs::write(dir.path().join(SECRET_FILE), "not hex").unwrap();
        assert!(secret_from_data_dir(dir.path()).is_err());
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
    }
}
