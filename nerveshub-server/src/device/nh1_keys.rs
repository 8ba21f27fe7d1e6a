//! NH1 derived keys, cached for a short while.
//!
//! PBKDF2 (1,000 iterations for nerves_hub_link's alg) is most of the CPU a shared-secret
//! connect costs, and its salt is only the alg, the key and the signing second: devices that
//! share a product key and connect in the same second — a fleet coming back after an outage —
//! derive the same key. The cache holds each derivation for the seconds a token signed then
//! can still be fresh, keyed also by a digest of the secret, so a rotated or revoked secret
//! never meets an old entry, and it is bounded so that forged headers cannot grow it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nerveshub_proto::{SharedSecretHeaders, nh1_derive_key};
use sha2::{Digest as _, Sha256};

/// Signing seconds this far from now are cached; older or later tokens fail freshness anyway
/// (90 s old, 60 s ahead), and are derived without caching.
const CACHE_WINDOW_SECONDS: u64 = 120;
/// Entries kept at most; beyond it the cache starts over.
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Salted {
    alg: String,
    key: String,
    time: u64,
    secret_digest: [u8; 32],
}

/// A bounded map from (alg, key, second, secret digest) to the derived key. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nh1Keys {
    entries: Arc<Mutex<HashMap<Salted, Arc<Vec<u8>>>>>,
}

impl Nh1Keys {
    /// The key `headers` were signed with if `secret` is the key's secret, derived or cached.
    pub(crate) fn derive(
        &self,
        headers: &SharedSecretHeaders,
        secret: &[u8],
        now_ms: u64,
    ) -> Result<Arc<Vec<u8>>, nerveshub_proto::Error> {
        let now = now_ms / 1000;
        let time = match headers.time.parse::<u64>() {
            Ok(time) if time.abs_diff(now) <= CACHE_WINDOW_SECONDS => time,
            _ => {
                return nh1_derive_key(&headers.alg, &headers.key, &headers.time, secret)
                    .map(Arc::new);
            }
        };
        let salted = Salted {
            alg: headers.alg.clone(),
            key: headers.key.clone(),
            time,
            secret_digest: Sha256::digest(secret).into(),
        };
        // Derived under the lock: devices arriving together wait for one derivation instead
        // of each running their own (the lock is held for well under a millisecond).
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(derived) = entries.get(&salted) {
            return Ok(derived.clone());
        }
        let derived = Arc::new(nh1_derive_key(
            &headers.alg,
            &headers.key,
            &headers.time,
            secret,
        )?);
        entries.retain(|k, _| k.time.abs_diff(now) <= CACHE_WINDOW_SECONDS);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(salted, derived.clone());
        Ok(derived)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use nerveshub_proto::Nh1Policy;

    use super::*;

    const NOW_S: u64 = 1_787_120_842;

    fn signed(identifier: &str, at: u64) -> SharedSecretHeaders {
        SharedSecretHeaders::sign("nhp_k", b"s3cret", identifier, at)
    }

    #[test]
    fn devices_sharing_a_key_and_second_share_one_derivation() {
        let keys = Nh1Keys::default();
        let a = signed("dev-a", NOW_S);
        let b = signed("dev-b", NOW_S);
        let now_ms = NOW_S * 1000 + 500;
        let ka = keys.derive(&a, b"s3cret", now_ms).unwrap();
        let kb = keys.derive(&b, b"s3cret", now_ms).unwrap();
        assert!(Arc::ptr_eq(&ka, &kb));
        assert_eq!(keys.len(), 1);
        for (headers, key) in [(&a, &ka), (&b, &kb)] {
            let token = headers
                .verify_with_derived_key(key, now_ms, Nh1Policy::default())
                .unwrap();
            assert_eq!(token, headers.verify(b"s3cret", now_ms).unwrap());
        }
    }

    #[test]
    fn another_secret_or_second_is_another_entry() {
        let keys = Nh1Keys::default();
        let now_ms = NOW_S * 1000;
        let a = signed("dev-a", NOW_S);
        let right = keys.derive(&a, b"s3cret", now_ms).unwrap();
        let rotated = keys.derive(&a, b"rotated", now_ms).unwrap();
        assert_ne!(right, rotated);
        assert!(matches!(
            a.verify_with_derived_key(&rotated, now_ms, Nh1Policy::default()),
            Err(nerveshub_proto::Error::BadSignature)
        ));
        keys.derive(&signed("dev-a", NOW_S + 1), b"s3cret", now_ms)
            .unwrap();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn far_seconds_are_not_cached_and_the_cache_stays_bounded() {
        let keys = Nh1Keys::default();
        let now_ms = NOW_S * 1000;
        keys.derive(&signed("d", NOW_S - 3600), b"s3cret", now_ms)
            .unwrap();
        assert_eq!(keys.len(), 0);
        let mut forged = signed("d", NOW_S);
        for i in 0..(MAX_ENTRIES + 10) {
            forged.key = format!("nhp_{i}");
            keys.derive(&forged, b"s3cret", now_ms).unwrap();
            assert!(keys.len() <= MAX_ENTRIES);
        }
        // Entries of seconds that left the window go on the next insert.
        let later_ms = (NOW_S + 2 * CACHE_WINDOW_SECONDS) * 1000;
        keys.derive(
            &signed("d", NOW_S + 2 * CACHE_WINDOW_SECONDS),
            b"s3cret",
            later_ms,
        )
        .unwrap();
        assert_eq!(keys.len(), 1);
    }
}
