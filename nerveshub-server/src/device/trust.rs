//! The device endpoint's certificate trust (registered Device CAs and known device
//! certificates): loaded from the database at start, then kept current one [`TrustChange`] at
//! a time. Every write that changes trust runs in a [`TrustTx`], whose commit applies its
//! changes (and sends them to the other nodes), so no write path can forget to. A full reload
//! runs only when changes may have been missed (the cluster bus lost its connection).
//!
//! Applying a change costs about one hash-map update: a JITP fleet's first boot no longer
//! reads every certificate again per new device.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use nerveshub_pki::{Certificate, KnownCertificate, RegisteredCa, SharedTrustStore, TrustStore};
use rustls::crypto::CryptoProvider;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::Mutex;

use super::DeviceHub;
use crate::db::Db;

/// A write transaction that changes what the device endpoint trusts (from
/// [`DeviceHub::begin_trust_change`]). Writes go through it as through any transaction
/// (it dereferences to the connection); each trust change it makes is recorded with
/// [`changes`](Self::changes), and [`commit`](Self::commit) commits and then applies them.
/// Dropped or failed, nothing is applied — as nothing was stored.
pub(crate) struct TrustTx {
    tx: Transaction<'static, Any>,
    hub: DeviceHub,
    changes: Vec<TrustChange>,
}

impl TrustTx {
    pub(super) fn new(tx: Transaction<'static, Any>, hub: DeviceHub) -> Self {
        TrustTx {
            tx,
            hub,
            changes: Vec::new(),
        }
    }

    /// Records `change`, made (or about to be made) in this transaction.
    pub(crate) fn changes(&mut self, change: TrustChange) {
        self.changes.push(change);
    }

    /// Commits, then applies the recorded changes here and on the other nodes.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        for change in self.changes {
            self.hub.apply_committed(change);
        }
        Ok(())
    }
}

impl std::fmt::Debug for TrustTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustTx")
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl Deref for TrustTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for TrustTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// One change to what the device endpoint trusts, applied by [`TrustTx::commit`] once the
/// database holds it.
///
/// Small and serializable (CA certificates as base64 DER, everything else by SHA-1
/// fingerprint) so a change made on one node can be sent to the others. Applying a change
/// twice, or one already in a reloaded store, is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum TrustChange {
    /// A Device CA was registered.
    CaAdded {
        /// The CA certificate, DER (base64 when serialized).
        #[serde(with = "base64_der")]
        der: Vec<u8>,
    },
    /// A Device CA was unregistered.
    CaRemoved {
        /// The CA certificate's SHA-1 fingerprint (upper-case hex).
        fingerprint: String,
    },
    /// A device certificate was stored (uploaded, or recorded on first use).
    CertificateAdded {
        fingerprint: String,
        public_key_fingerprint: String,
        /// The owning device's identifier.
        identifier: String,
    },
    /// A device certificate was deleted.
    CertificateRemoved { fingerprint: String },
    /// A device was deleted, and with it these certificates.
    DeviceRemoved {
        identifier: String,
        fingerprints: Vec<String>,
    },
}

impl TrustChange {
    /// `cert` is now a registered Device CA.
    pub(crate) fn ca_added(cert: &Certificate) -> Self {
        TrustChange::CaAdded {
            der: cert.der().to_vec(),
        }
    }

    /// The CA stored as `der` was unregistered; `None` when the DER does not parse (such a
    /// CA was never trusted: the full load leaves it out).
    pub(crate) fn ca_removed(der: &[u8]) -> Option<Self> {
        Certificate::from_der(der)
            .ok()
            .map(|cert| TrustChange::CaRemoved {
                fingerprint: cert.fingerprint().to_owned(),
            })
    }

    /// `cert` was stored as a certificate of device `identifier`.
    pub(crate) fn certificate_added(cert: &Certificate, identifier: &str) -> Self {
        TrustChange::CertificateAdded {
            fingerprint: cert.fingerprint().to_owned(),
            public_key_fingerprint: cert.public_key_fingerprint().to_owned(),
            identifier: identifier.to_owned(),
        }
    }

    fn apply_to(&self, store: &SharedTrustStore) {
        match self {
            TrustChange::CaAdded { der } => {
                // Parsed outside the lock; a stored CA that fails the structural checks is
                // left out, as the full load does.
                match Certificate::from_der(der).and_then(|c| RegisteredCa::new(c, true)) {
                    Ok(ca) => {
                        store.update(|s| s.add_ca(ca));
                    }
                    Err(e) => tracing::warn!(error = %e, "a registered Device CA is unusable"),
                }
            }
            TrustChange::CaRemoved { fingerprint } => {
                store.update(|s| s.remove_ca(fingerprint));
            }
            TrustChange::CertificateAdded {
                fingerprint,
                public_key_fingerprint,
                identifier,
            } => {
                let known = KnownCertificate::new(
                    fingerprint.as_str(),
                    public_key_fingerprint.as_str(),
                    identifier.as_str(),
                );
                store.update(|s| s.add_known_certificate(known));
            }
            TrustChange::CertificateRemoved { fingerprint } => {
                store.update(|s| s.remove_known_certificate(fingerprint));
            }
            TrustChange::DeviceRemoved { fingerprints, .. } => store.update(|s| {
                for fingerprint in fingerprints {
                    s.remove_known_certificate(fingerprint);
                }
            }),
        }
    }
}

mod base64_der {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub(super) fn serialize<S: serde::Serializer>(der: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(der))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The shared store, the changes a running full reload must replay, and a lock that keeps
/// reloads in order.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    store: SharedTrustStore,
    /// The configured crypto provider, whose signature algorithms every store built from the
    /// database checks with.
    provider: Arc<CryptoProvider>,
    reloading: Arc<Mutex<()>>,
    journal: Arc<std::sync::Mutex<Journal>>,
    /// Full reloads since start, for tests that check a path does not cause one.
    reloads: Arc<AtomicU64>,
}

/// While a full reload runs, the changes applied meanwhile: its database read may predate
/// them, so they are applied again on top of what it read before it is swapped in.
#[derive(Debug, Default)]
struct Journal {
    recording: bool,
    changes: Vec<TrustChange>,
}

/// Stops recording when a reload ends, however it ends (error, cancellation).
#[derive(Debug)]
struct Recording<'a>(&'a std::sync::Mutex<Journal>);

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        let mut journal = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        journal.recording = false;
        journal.changes = Vec::new();
    }
}

impl Trust {
    /// Loads the store from the database; signatures are checked with `provider`'s
    /// algorithms.
    pub(crate) async fn load(db: &Db, provider: &Arc<CryptoProvider>) -> Result<Self, sqlx::Error> {
        Ok(Trust {
            store: SharedTrustStore::new(build(db, provider).await?),
            provider: Arc::clone(provider),
            reloading: Arc::new(Mutex::new(())),
            journal: Arc::default(),
            reloads: Arc::default(),
        })
    }

    /// The cell the TLS verifier and the socket handler read.
    pub(crate) fn store(&self) -> SharedTrustStore {
        self.store.clone()
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        // A poisoned journal is still a list of whole changes.
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one change (already committed to the database).
    pub(crate) fn apply(&self, change: TrustChange) {
        tracing::debug!(?change, "device trust changed");
        let mut journal = self.journal();
        // Under the journal lock, so a reload swapping its store in cannot slip between
        // applying this change and recording it.
        change.apply_to(&self.store);
        if journal.recording {
            journal.changes.push(change);
        }
    }

    /// How many full reloads began since start.
    pub(crate) fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reads the database again and swaps the store in, with the changes applied since the
    /// read began replayed on it; on a database error the current store stays and the error
    /// is logged.
    pub(crate) async fn reload(&self, db: &Db) {
        self.reload_from(build(db, &self.provider)).await;
    }

    /// [`reload`](Self::reload) from `read` (not polled before the journal records).
    async fn reload_from(&self, read: impl Future<Output = Result<TrustStore, sqlx::Error>>) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        let _one_at_a_time = self.reloading.lock().await;
        {
            let mut journal = self.journal();
            journal.recording = true;
            journal.changes.clear();
        }
        let _recording = Recording(&self.journal);
        match read.await {
            Ok(store) => {
                let previous = {
                    let mut journal = self.journal();
                    let previous = self.store.replace(store);
                    for change in journal.changes.drain(..) {
                        change.apply_to(&self.store);
                    }
                    journal.recording = false;
                    previous
                };
                // The old store (every known certificate) is freed outside the locks.
                drop(previous);
            }
            Err(e) => tracing::warn!(error = %e, "reloading the device trust store failed"),
        }
    }
}

/// A store of what the database holds now (a stored CA that no longer passes the structural
/// checks is left out with a warning rather than failing the whole endpoint).
async fn build(db: &Db, provider: &CryptoProvider) -> Result<TrustStore, sqlx::Error> {
    db.trust_store(TrustStore::builder_with_provider(provider))
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nerveshub_pki::{CertOptions, DeviceAuth, DeviceCa, UnixTime};

    use super::*;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn changes_apply_one_at_a_time_and_serialize_small() {
        let now = 1_800_000_000;
        let ca = DeviceCa::generate(&CertOptions::new("CA", at(now - 60), at(now + 60))).unwrap();
        let (cert, _) = ca
            .issue_device(&CertOptions::new("dev-1", at(now - 60), at(now + 60)))
            .unwrap();
        let store = SharedTrustStore::new(TrustStore::default());
        let chain = [cert.der().clone()];
        let auth =
            |store: &SharedTrustStore| store.verify_device(&chain, at(now)).map(|d| d.auth());

        let changes = [
            TrustChange::ca_added(ca.certificate()),
            TrustChange::certificate_added(&cert, "dev-1"),
        ];
        for change in &changes {
            // What one node sends another comes back the same.
            let text = serde_json::to_string(change).unwrap();
            assert!(text.len() < 2048, "{text}");
            let back: TrustChange = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, change);
        }
        changes[0].apply_to(&store);
        assert_eq!(auth(&store).unwrap(), DeviceAuth::NewCertificate);
        changes[1].apply_to(&store);
        changes[1].apply_to(&store);
        assert_eq!(auth(&store).unwrap(), DeviceAuth::KnownCertificate);

        TrustChange::DeviceRemoved {
            identifier: "dev-1".into(),
            fingerprints: vec![cert.fingerprint().to_owned()],
        }
        .apply_to(&store);
        assert_eq!(auth(&store).unwrap(), DeviceAuth::NewCertificate);
        TrustChange::ca_removed(ca.certificate().der())
            .unwrap()
            .apply_to(&store);
        assert!(auth(&store).is_err());
        assert!(TrustChange::ca_removed(b"not a certificate").is_none());
    }

    /// A full reload that read the database before a change and swaps after it keeps the
    /// change.
    #[tokio::test]
    async fn a_reload_replays_the_changes_made_while_it_read() {
        let now = 1_800_000_000;
        let ca = DeviceCa::generate(&CertOptions::new("CA", at(now - 60), at(now + 60))).unwrap();
        let (cert, _) = ca
            .issue_device(&CertOptions::new("dev-1", at(now - 60), at(now + 60)))
            .unwrap();
        let registered = RegisteredCa::new(ca.certificate().clone(), true).unwrap();
        let trust = Trust {
            store: SharedTrustStore::new(TrustStore::builder().ca(registered.clone()).build()),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            reloading: Arc::default(),
            journal: Arc::default(),
            reloads: Arc::default(),
        };
        // The reload's read: what the database held before the certificate was stored.
        let stale = TrustStore::builder().ca(registered).build();
        let (read_done, read_waits) = tokio::sync::oneshot::channel::<()>();
        let reload = {
            let trust = trust.clone();
            tokio::spawn(async move {
                trust
                    .reload_from(async move {
                        let _ = read_waits.await;
                        Ok(stale)
                    })
                    .await;
            })
        };
        // Wait until the reload records, then apply the change and let the read finish.
        while !trust.journal().recording {
            tokio::task::yield_now().await;
        }
        trust.apply(TrustChange::certificate_added(&cert, "dev-1"));
        read_done.send(()).unwrap();
        reload.await.unwrap();
        let verified = trust
            .store()
            .verify_device(&[cert.der().clone()], at(now))
            .unwrap();
        assert_eq!(verified.auth(), DeviceAuth::KnownCertificate);
        assert!(!trust.journal().recording);
        assert!(trust.journal().changes.is_empty());
    }
}
