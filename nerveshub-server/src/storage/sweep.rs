//! Removing what a crash left in the firmware store: an object written by an upload whose
//! database row never committed (the process died in between), and the local store's
//! `<name>#<n>` temp files of a write that never finished. Only objects older than a
//! minimum age are touched, so an upload in progress is never swept from under itself.

use std::collections::HashSet;
use std::path::Path as FsPath;
use std::time::{Duration, SystemTime};

use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _};

use super::{Backend, Storage, StorageError};

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Objects no firmware row refers to.
    pub(crate) objects: usize,
    /// Local temp files of unfinished writes.
    pub(crate) temp_files: usize,
}

impl Storage {
    /// Deletes objects older than `min_age` whose key is not in `referenced` (every
    /// `firmwares.storage_key`, read before the listing), and stale local temp files.
    pub(crate) async fn sweep_orphans(
        &self,
        referenced: &HashSet<String>,
        min_age: Duration,
    ) -> Result<Swept, StorageError> {
        let cutoff = i64::try_from(self.unix_now().saturating_sub(min_age.as_secs())).unwrap_or(0);
        let root = match &self.inner.backend {
            Backend::Served { .. } => None,
            #[cfg(feature = "s3")]
            Backend::S3 { prefix, .. } => Some(prefix.clone()),
        };
        let mut swept = Swept::default();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let listing = self.inner.store.list_with_delimiter(dir.as_ref()).await?;
            pending.extend(listing.common_prefixes.into_iter().map(Some));
            for object in listing.objects {
                if object.last_modified.timestamp() > cutoff {
                    continue;
                }
                let key = relative_key(&object.location, root.as_ref());
                if referenced.contains(&key) {
                    continue;
                }
                match self.inner.store.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        tracing::info!(key = %key, "removed a firmware object no firmware refers to");
                        swept.objects += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if let Backend::Served {
            root: Some(root), ..
        } = &self.inner.backend
        {
            swept.temp_files = remove_stale_temp_files(root, min_age);
        }
        Ok(swept)
    }
}

/// The storage key of an object (its path below the store's prefix).
fn relative_key(location: &Path, root: Option<&Path>) -> String {
    match root {
        Some(root) => location
            .prefix_match(root)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| location.to_string()),
        None => location.to_string(),
    }
}

/// Whether a file name is object_store's temp name for a local write: `<name>#<digits>`.
fn is_temp_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes `<name>#<n>` files under `root` older than `min_age`; returns how many.
fn remove_stale_temp_files(root: &FsPath, min_age: Duration) -> usize {
    let mut removed = 0;
    let mut pending = vec![root.to_owned()];
    // Compared with file modification times, which the filesystem stamps by the system clock.
    let now = SystemTime::now();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= min_age);
            if kind.is_file() && old && is_temp_name(&entry.file_name().to_string_lossy()) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), error = %e, "could not remove a stale temp file");
                    }
                }
            }
        }
    }
    removed
}

/// How often the sweep runs after the one at start.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Sweeps at start and then every [`SWEEP_INTERVAL`] until `stop` turns true.
pub(crate) async fn sweep_task(
    db: crate::db::Db,
    storage: Storage,
    min_age: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // The referenced keys are read before the listing: an object committed after this
        // read is younger than `min_age` and left alone.
        match db.firmware_storage_keys().await {
            Ok(referenced) => match storage.sweep_orphans(&referenced, min_age).await {
                Ok(Swept {
                    objects: 0,
                    temp_files: 0,
                }) => {}
                Ok(swept) => tracing::info!(
                    objects = swept.objects,
                    temp_files = swept.temp_files,
                    "swept firmware storage"
                ),
                Err(e) => tracing::warn!(error = %e, "sweeping firmware storage failed"),
            },
            Err(e) => tracing::warn!(error = %e, "reading firmware storage keys failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            () = async {
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        return;
                    }
                }
            } => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_objectstores() {
        assert!(is_temp_name("abc.fw#1"));
        assert!(is_temp_name("abc.fw#123"));
        assert!(!is_temp_name("abc.fw"));
        assert!(!is_temp_name("abc#"));
        assert!(!is_temp_name("abc#x1"));
    }

    #[test]
    fn keys_are_relative_to_the_prefix() {
        let root = Path::from("tenant/firmware");
        assert_eq!(
            relative_key(&Path::from("tenant/firmware/1/2/x.fw"), Some(&root)),
            "1/2/x.fw"
        );
        assert_eq!(relative_key(&Path::from("1/2/x.fw"), None), "1/2/x.fw");
    }
}
