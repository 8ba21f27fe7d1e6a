//! Kinds for applying an archive: deltas, partition tables, U-Boot environments, FAT and
//! the apply engine itself.

use std::io;

/// A delta (VCDIFF) resource is malformed, does not fit its source, or is not allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The patch is malformed or does not fit its source; the text is what xdelta3 would
    /// report.
    #[error("xdelta3 error: {0}")]
    Malformed(String),
    /// An entry's size differs from meta.conf's and its `on-resource` names no delta source.
    #[error(
        "File '{name}' isn't expected size ({size} vs {expected}) and xdelta3 patch support not enabled on it. (Add delta-source-raw-offset / delta-source-raw-count or delta-source-fat-offset / delta-source-fat-path)"
    )]
    NotEnabled {
        /// Resource name.
        name: String,
        /// Size of the entry in the archive.
        size: u64,
        /// Length meta.conf declares.
        expected: u64,
    },
}

/// An `mbr` or `gpt` section cannot be turned into a partition table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// A bad partition number, offset, count, type or GUID, overlapping partitions, bad
    /// bootstrap code, …; the text is fwup's.
    #[error("{0}")]
    Invalid(String),
}

/// A U-Boot environment is unusable or unreadable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UbootEnvError {
    /// A `uboot-environment` section (or location) is unusable: block count outside
    /// 1–65534, an offset that does not fit; the text is fwup's.
    #[error("{0}")]
    Config(String),
    /// The CRC-32 stored in a U-Boot environment does not match its data area.
    #[error(
        "U-boot environment (block {block}) CRC32 mismatch (expected 0x{expected:08x}; got 0x{actual:08x})"
    )]
    Crc {
        /// Block offset of the (primary) environment, 0 when parsing bytes without a location.
        block: u64,
        /// The CRC-32 stored in the environment.
        expected: u32,
        /// The CRC-32 of the data area.
        actual: u32,
    },
    /// The CRC matches but the `name=value` list is malformed (a name without `=`, a value
    /// without its terminating NUL).
    #[error("Invalid U-boot environment")]
    Invalid,
    /// The variables do not fit into the environment.
    #[error("Not enough room in U-boot environment")]
    Full,
}

/// A FAT file system operation failed. Displays as fwup does: the operation, the path and
/// FatFs's description of the failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("{context}({path}): {reason}")]
pub struct FatError {
    /// The operation (`fat_mkdir`, `fat_write can't open file`, …).
    pub context: String,
    /// The path (or label) it was given; empty when fwup prints none.
    pub path: String,
    /// FatFs's result, as fwup words it.
    pub reason: &'static str,
}

/// Applying a task failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A read or write reaches past the known end of the destination.
    #[error("read/write failed at offset {offset} since past end of media ({size}).")]
    PastEndOfMedia {
        /// Byte offset of the access.
        offset: u64,
        /// Length of the access in bytes.
        len: u64,
        /// Size of the destination in bytes.
        size: u64,
    },
    /// The selected task calls a function this version of fwup does not know.
    #[error("Unknown function")]
    UnknownFunction(String),
    /// No task matches the `-t` prefix with all its requirements met.
    #[error(
        "Couldn't find applicable task '{0}'. If task is available, the task's requirements may not be met."
    )]
    NoApplicableTask(String),
    /// The task called `error("message")`.
    #[error("{0}")]
    TaskError(String),
    /// A resource's data did not match its `blake2b-256` (or its length) while a function
    /// streamed it.
    #[error("{function} detected blake2b mismatch on '{resource}'")]
    HashMismatch {
        /// The function that consumed the data (`raw_write`, `path_write`, …).
        function: String,
        /// The resource name.
        resource: String,
    },
    /// A second data-consuming function in one `on-resource` found no data left.
    #[error("{0} didn't write anything and was likely called twice")]
    ResourceAlreadyConsumed(String),
    /// A host-side function (`path_write`, `pipe_write`, `execute`, …) without `--unsafe`.
    #[error("{0} requires --unsafe")]
    RequiresUnsafe(String),
    /// A function or resource kind this version of the apply engine does not implement.
    #[error("{function}: {what} is not supported by this version of fwup-rs")]
    NotSupported {
        /// The function or option.
        function: String,
        /// What is missing.
        what: &'static str,
    },
    /// A function of the task failed (bad argument, missing section, failed command, …).
    #[error("{function}: {message}")]
    FunctionFailed {
        /// The function name.
        function: String,
        /// What went wrong.
        message: String,
    },
    /// A host-side function could not reach the host: a file it writes cannot be created,
    /// a command cannot be started. The operating-system error is the source.
    #[error("{function}: {message}")]
    Host {
        /// The function name.
        function: String,
        /// What it was doing.
        message: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The caller vetoed the apply before `on-finish` ran.
    #[error("apply vetoed before on-finish: {0}")]
    Vetoed(String),
}
