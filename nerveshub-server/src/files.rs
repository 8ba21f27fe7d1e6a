//! Who may read the data directory: only the server's own user. It holds the SQLite database
//! (with every device's identity), the keys that sign download URLs and encrypt shared
//! secrets, the first admin's token and the development TLS key.

use std::path::Path;

use crate::error::ServerError;

/// The SQLite database files: the database, and the write-ahead log and shared-memory index
/// SQLite creates beside it (with the database file's permissions).
const SQLITE_FILES: [&str; 3] = ["nerveshub.db", "nerveshub.db-wal", "nerveshub.db-shm"];

/// Makes the data directory 0700.
pub(crate) fn restrict_data_dir(dir: &Path) -> Result<(), ServerError> {
    set_mode(dir, 0o700)
}

/// Creates the SQLite database file 0600 if it is missing (SQLite then creates its `-wal` and
/// `-shm` files with the same mode), and makes existing ones 0600.
pub(crate) fn restrict_sqlite_files(dir: &Path) -> Result<(), ServerError> {
    let db = dir.join(SQLITE_FILES[0]);
    if !db.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(&db)
            .map_err(|e| ServerError::io(format!("creating {}", db.display()), e))?;
    }
    for name in SQLITE_FILES {
        let path = dir.join(name);
        if path.exists() {
            set_mode(&path, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ServerError::io(format!("restricting {} to {mode:o}", path.display()), e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ServerError> {
    Ok(())
}
