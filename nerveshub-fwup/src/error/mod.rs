//! The one error type of this crate, and the typed kinds it wraps.
//!
//! [`Error`] has one variant per area (ZIP container, archive layout, signatures, keys,
//! meta.conf, deltas, partition tables, U-Boot environments, FAT, apply, create) plus
//! [`Error::Io`]; each area's kind is its own enum, so a caller matches on
//! `Error::Signature(SignatureError::Bad)` without looking at text.
//!
//! Messages follow C fwup's wording where fwup has one (the `fwup-rs` binary prints
//! `fwup: <message>` exactly as fwup does), so scripts that match on fwup's output keep
//! working. An operating-system error is never folded into a message: it stays the
//! [`source`](std::error::Error::source) of the error that reports it.

mod apply;
mod archive;
mod create;

use std::io;

pub use apply::{ApplyError, DeltaError, FatError, PartitionError, UbootEnvError};
pub use archive::{ArchiveError, KeyError, MetaConfError, SignatureError, ZipError};
pub use create::CreateError;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, verifying, creating or applying a `.fw` archive.
///
/// The kinds display as fwup words them and pass their own source through, so an error
/// chain reads `message` → operating-system error without repeating itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the archive or writing a destination failed at the operating-system level;
    /// the [`io::Error`] is the source.
    #[error("I/O error")]
    Io(#[from] io::Error),
    /// The ZIP container is unreadable.
    #[error(transparent)]
    Zip(#[from] ZipError),
    /// The archive's entries are not what fwup expects (order, sizes, resource data).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The archive's signature is missing or does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A public or private key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `meta.conf` does not parse or asks for something fwup refuses.
    #[error(transparent)]
    MetaConf(#[from] MetaConfError),
    /// A delta (VCDIFF) resource is malformed or not allowed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// An `mbr` or `gpt` section cannot be turned into a partition table.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// A U-Boot environment is unusable or unreadable.
    #[error(transparent)]
    UbootEnv(#[from] UbootEnvError),
    /// A FAT file system operation failed.
    #[error(transparent)]
    Fat(#[from] FatError),
    /// Applying a task failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Creating or signing an archive failed.
    #[error(transparent)]
    Create(#[from] CreateError),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn io_errors_stay_the_source() {
        let err = Error::from(io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert_eq!(err.to_string(), "I/O error");
        let source = err.source().expect("the io::Error is the source");
        assert_eq!(source.to_string(), "gone");
    }

    #[test]
    fn kinds_display_in_fwups_words() {
        let err = Error::from(SignatureError::Bad);
        assert_eq!(
            err.to_string(),
            "Firmware archive's meta.conf fails digital signature verification."
        );
        let err = Error::from(ZipError::BadCrc {
            entry: "data/rootfs.img".to_owned(),
            expected: 0xabc,
            actual: 0x123,
        });
        assert_eq!(err.to_string(), "ZIP bad CRC: 0x123 should be 0xabc");
    }

    #[test]
    fn a_kinds_source_passes_through() {
        let err = Error::from(CreateError::ConfigOpen {
            path: "fwup.conf".to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file"),
        });
        assert_eq!(
            err.to_string(),
            "Error opening configuration file 'fwup.conf'"
        );
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("No such file")
        );
    }
}
